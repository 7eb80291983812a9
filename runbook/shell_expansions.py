"""Quoted contexts and ``$`` expansions for the bash lexer.

``ExpansionScanner`` reads double quotes, the inside of ``${...}``, arithmetic,
and every ``$`` form: ``$NAME``, ``${...}``, ``$(...)``, ``$((...))``,
``$'...'`` and ``$"..."``. It records each reference bash expands, whether the
reference is required (it has no default and is not in a word that bash expands
only in some cases), and the assignments made by ``${NAME:=...}`` and
arithmetic.
"""

from __future__ import annotations

import re

from runbook.shell_frames import Frame, FrameScanner
from runbook.shell_tokens import NAME

# Runs of characters with no meaning in each context, skipped in one step.
_DOUBLE_PLAIN = re.compile(r'[^"\\$`<]+')
_PARAMETER_PLAIN = re.compile(r"[^{}'\"\\$`<]+")
_ARITHMETIC_PLAIN = re.compile(r"[^()$\"'`\\A-Za-z0-9_]+")
_ARITHMETIC_NUMBER = re.compile(r"[0-9][0-9A-Za-z_#@]*")

# The body of $'...' after the opening quote: backslash escapes, then the quote.
_ANSI_C_BODY = re.compile(r"(?:[^'\\]|\\.)*'", re.S)

# After "${": optional length/indirection prefix, the parameter, a subscript and
# the operator that decides whether the reference has a default.
_PARAMETER_HEAD = re.compile(
    r"(?P<prefix>[#!]?)"
    r"(?P<name>[A-Za-z_][A-Za-z0-9_]*|[0-9]+|[-@*#?$!])?"
    r"(?P<index>\[[^\]]*\])?"
    r"(?P<op>:[-=+?]|[-=+?]|\#\#?|%%?|/[/#%]?|\^\^?|,,?|:|@)?"
)
_DEFAULT_OPERATORS = frozenset({":-", "-", ":=", "=", ":+", "+"})
# Operators whose word bash expands only in some cases.
_CONDITIONAL_OPERATORS = _DEFAULT_OPERATORS | {":?", "?"}

# Arithmetic: what follows a name that makes it an assignment target.
_ARITHMETIC_ASSIGN = re.compile(r"\s*(?:(?:[-+*/%&|^]|<<|>>)?=(?!=)|\+\+|--)")


class ExpansionScanner(FrameScanner):
    """Adds double quotes, ``${...}``, arithmetic and the ``$`` expansions."""

    # Quoted contexts --------------------------------------------------------------

    def _skip_single_quotes(self, start: int, limit: int) -> int:
        end = self.code.find("'", start, limit)
        return end + 1 if end >= 0 else limit

    def _scan_single_quotes(self, frame: Frame) -> None:
        # bash takes the text literally, but an author who writes
        # 'systemctl restart <service>' still means <service> as a placeholder.
        start = self.pos + 1
        close = self.code.find("'", start, frame.limit)
        end = frame.limit if close < 0 else close
        self._record_single_quoted_placeholders(start, end)
        self.pos = end if close < 0 else close + 1

    def _step_double(self, frame: Frame) -> None:
        code, pos = self.code, self.pos
        char = code[pos]
        if char == '"':
            self.stack.pop()
            self.pos += 1
        elif char == "\\":
            self.pos += 2
        elif char == "$":
            self._scan_dollar(frame, unquoted=False)
        elif char == "`":
            self._push_backtick(frame, pos + 1)
        elif char == "<" and self._record_placeholder(frame):
            return
        else:
            match = _DOUBLE_PLAIN.match(code, pos, frame.limit)
            self.pos = match.end() if match else pos + 1

    def _step_parameter(self, frame: Frame) -> None:
        code, pos = self.code, self.pos
        char = code[pos]
        if char == "}":
            self.pos += 1
            if frame.depth == 0:
                self.stack.pop()
            else:
                frame.depth -= 1
        elif char == "{":
            frame.depth += 1
            self.pos += 1
        elif char == "\\":
            self.pos += 2
        elif char == "'" and not (frame.in_double or frame.in_heredoc):
            self._scan_single_quotes(frame)
        elif char == "'":
            # Inside double quotes bash still pairs single quotes here when it
            # looks for the closing brace, but prints them as they are.
            # NOTE: a placeholder between them is not found, because a value
            # that contains a quote would change where the closing brace is.
            self.pos = self._skip_single_quotes(pos + 1, frame.limit)
        elif char == '"':
            self._push("double", frame, pos + 1)
        elif char == "$":
            unquoted = not (frame.in_double or frame.in_heredoc)
            self._scan_dollar(frame, unquoted=unquoted)
        elif char == "`":
            self._push_backtick(frame, pos + 1)
        elif char == "<" and self._record_placeholder(frame):
            return
        else:
            match = _PARAMETER_PLAIN.match(code, pos, frame.limit)
            self.pos = match.end() if match else pos + 1

    # Expansions -------------------------------------------------------------------

    def _scan_dollar(self, frame: Frame, unquoted: bool) -> None:
        code, pos = self.code, self.pos
        following = code[pos + 1] if pos + 1 < frame.limit else ""
        if following == "(":
            if code.startswith("((", pos + 1):
                self._push("arithmetic", frame, pos + 3)
            else:
                self._push_command(frame, pos + 2, ")")
        elif following == "{":
            self._scan_parameter_head(frame)
        elif following == "'" and unquoted:
            match = _ANSI_C_BODY.match(code, pos + 2, frame.limit)
            self.pos = match.end() if match else frame.limit
        elif following == '"' and unquoted:
            self._push("double", frame, pos + 2)
        else:
            match = NAME.match(code, pos + 1, frame.limit)
            if match:
                self._record_reference(match.group(), pos, not frame.conditional)
                self.pos = match.end()
            elif following.isdigit() or (following and following in "@*#?$!-"):
                self.pos = pos + 2
            else:
                self.bare_dollar = pos
                self.pos = pos + 1

    def _scan_parameter_head(self, frame: Frame) -> None:
        pos = self.pos
        head = _PARAMETER_HEAD.match(self.code, pos + 2, frame.limit)
        assert head is not None  # every group is optional
        name, prefix, index, op = head.group("name", "prefix", "index", "op")
        after_name = head.end("name") if name else pos + 2 + len(prefix)
        listing = prefix == "!" and self.code[after_name : after_name + 1] in ("*", "@")
        if name and NAME.fullmatch(name) and not (listing and not index):
            # bash treats ${arr[@]} of an unset array as empty even with set -u.
            whole_array = index in ("[@]", "[*]") and prefix != "#"
            has_default = op in _DEFAULT_OPERATORS
            required = not (has_default or whole_array or frame.conditional)
            self._record_reference(name, pos, required)
            if op in (":=", "="):
                self.result.assignments.append((name, pos))
        in_double = frame.kind == "double" or (
            frame.kind == "parameter" and frame.in_double
        )
        in_heredoc = frame.kind == "heredoc" or (
            frame.kind == "parameter" and frame.in_heredoc
        )
        child = self._push(
            "parameter",
            frame,
            head.start("index") if index else head.end(),
            in_double=in_double,
            in_heredoc=in_heredoc,
        )
        child.conditional = frame.conditional or op in _CONDITIONAL_OPERATORS

    def _step_arithmetic(self, frame: Frame) -> None:
        code, pos = self.code, self.pos
        char = code[pos]
        if char == "(":
            frame.depth += 1
            self.pos += 1
        elif char == ")":
            if frame.depth > 0:
                frame.depth -= 1
                self.pos += 1
            elif code.startswith("))", pos):
                self.stack.pop()
                self.pos += 2
            else:
                self.pos += 1
        elif char == "$":
            self._scan_dollar(frame, unquoted=False)
        elif char == '"':
            self._push("double", frame, pos + 1)
        elif char == "'":
            self.pos = self._skip_single_quotes(pos + 1, frame.limit)
        elif char == "`":
            self._push_backtick(frame, pos + 1)
        elif char == "\\":
            self.pos += 2
        elif char.isdigit():
            match = _ARITHMETIC_NUMBER.match(code, pos, frame.limit)
            self.pos = match.end() if match else pos + 1
        elif char.isalpha() or char == "_":
            self._scan_arithmetic_name(frame)
        else:
            match = _ARITHMETIC_PLAIN.match(code, pos, frame.limit)
            self.pos = match.end() if match else pos + 1

    def _scan_arithmetic_name(self, frame: Frame) -> None:
        # Inside (( )) and $(( )) a bare name is a variable: x = 1 assigns it,
        # x += 1, x++ and ++x read and assign it, anything else reads it.
        match = NAME.match(self.code, self.pos, frame.limit)
        assert match is not None
        name, start = match.group(), match.start()
        assign = _ARITHMETIC_ASSIGN.match(self.code, match.end(), frame.limit)
        prefix_step = self.code[max(0, start - 2) : start] in ("++", "--")
        plain_assignment = assign is not None and assign.group().strip() == "="
        if assign or prefix_step:
            self.result.assignments.append((name, start))
        if not plain_assignment:
            self._record_reference(name, start, not frame.conditional)
        self.pos = match.end()
