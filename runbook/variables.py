"""Placeholders and shell variables in steps: finding, checking, substituting, masking.

A step's code is bash. ``<server-ip>``-style placeholders are template slots that
the operator fills in before the step runs. ``$NAME`` references are ordinary
shell variables that an earlier step, the environment or ``--var`` must set.
Both are found by ``_Scanner``, a small bash lexer that tracks which parts of the
code bash expands and which it takes literally (single quotes, comments, quoted
here-document bodies).

The scanner runs in one forward pass with an explicit stack of contexts instead
of recursion, so deeply nested input cannot exhaust the Python stack. Incomplete
input (an open quote, a here-document without its closing line) ends the pass
with whatever was found so far.
"""

from __future__ import annotations

import re
import shlex
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from runbook.errors import VariableError

# --- Public data types ------------------------------------------------------------

_Kind = Literal["placeholder", "variable"]


@dataclass(frozen=True)
class Placeholder:
    """An angle-bracket placeholder such as ``<server-ip>`` and its 1-based line."""

    name: str
    line: int


@dataclass(frozen=True)
class VariableReference:
    """A ``$NAME`` or ``${NAME...}`` reference and its 1-based line in the code."""

    name: str
    line: int


@dataclass(frozen=True)
class MissingValue:
    """A placeholder or variable that has no value at its first use.

    ``step`` is the 1-based position of the code in the sequence passed to
    ``find_missing_values``, and ``line`` the 1-based line within that code.
    """

    name: str
    kind: _Kind
    step: int
    line: int


_BUILTIN_NAMES = """
    BASH BASHOPTS BASHPID BASH_ALIASES BASH_ARGC BASH_ARGV BASH_ARGV0 BASH_CMDS
    BASH_COMMAND BASH_COMPAT BASH_ENV BASH_EXECUTION_STRING BASH_LINENO
    BASH_LOADABLES_PATH BASH_REMATCH BASH_SOURCE BASH_SUBSHELL BASH_VERSINFO
    BASH_VERSION BASH_XTRACEFD COLUMNS COMPREPLY COMP_CWORD COMP_KEY COMP_LINE
    COMP_POINT COMP_TYPE COMP_WORDBREAKS COMP_WORDS COPROC DIRSTACK EPOCHREALTIME
    EPOCHSECONDS EUID FUNCNAME GROUPS HISTCMD HISTCONTROL HISTFILE HISTFILESIZE
    HISTSIZE HOME HOSTNAME HOSTTYPE IFS LINENO LINES LOGNAME MACHTYPE MAPFILE OLDPWD
    OPTARG OPTERR OPTIND OSTYPE PATH PIPESTATUS PPID PS1 PS2 PS3 PS4 PWD RANDOM
    READLINE_LINE READLINE_MARK READLINE_POINT REPLY SECONDS SHELL SHELLOPTS SHLVL
    SRANDOM TERM UID USER _
"""
#: Variables that bash sets itself, or that every login session has, so a step
#: may use them without a value from the operator.
BASH_BUILTIN_VARIABLES = frozenset(_BUILTIN_NAMES.split())

# --- Lexical patterns -------------------------------------------------------------

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FULL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_PLACEHOLDER = re.compile(r"<([A-Za-z][A-Za-z0-9_.-]*)>")
_PLACEHOLDER_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*\Z")
_CLOSING_TAG = re.compile(r"</([A-Za-z][A-Za-z0-9_.-]*)\s*>")

# Runs of characters with no meaning in each context, skipped in one step.
_COMMAND_PLAIN = re.compile(r"[^\s'\"\\$`<>;&|()#]+")
_DOUBLE_PLAIN = re.compile(r'[^"\\$`<]+')
_HEREDOC_PLAIN = re.compile(r"[^\\$`<]+")
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

# A reference that a quoted here-document body leaves unexpanded.
_QUOTED_BODY_REFERENCE = re.compile(
    r"\\."  # an escaped character, skipped so that \$NAME does not count
    r"|\$\{[#!]?(?P<braced>[A-Za-z_][A-Za-z0-9_]*)"
    r"|\$(?P<plain>[A-Za-z_][A-Za-z0-9_]*)",
    re.S,
)

# --- Scanner records --------------------------------------------------------------


@dataclass(slots=True, eq=False)
class _Heredoc:
    delimiter: str
    quoted: bool
    strip_tabs: bool
    operator_offset: int
    body_start: int = -1
    body_end: int = -1
    terminated: bool = False


@dataclass(frozen=True, slots=True)
class _PlaceholderToken:
    name: str
    start: int
    end: int
    # "command", "double", "parameter" or "heredoc": the quoting context.
    context: str
    # One entry per enclosing backtick substitution, innermost first: whether
    # that substitution sits inside double quotes.
    backticks: tuple[bool, ...]
    heredoc: _Heredoc | None
    # The placeholder follows an unescaped "$", as in $<name>.
    after_dollar: bool


@dataclass(frozen=True, slots=True)
class _Reference:
    name: str
    offset: int
    required: bool
    quoted_heredoc: bool = False


# Words are kept for finding assignments, which only read their first characters.
_MAX_WORD_TEXT = 1024


@dataclass(frozen=True, slots=True)
class _Word:
    command: int
    start: int
    end: int
    text: str


@dataclass(slots=True)
class _Frame:
    """One open context: a command list, quotes, ``${...}``, arithmetic, a body."""

    kind: str
    limit: int
    conditional: bool = False
    # Command frames: ")" for $( and <(, "`" for backticks, "" at top level.
    closer: str = ""
    in_double: bool = False
    in_heredoc: bool = False
    word_start: int = -1
    word_is_redirect: bool = False
    redirect_next: bool = False
    new_command: bool = True
    command: int = 0
    depth: int = 0
    heredoc: _Heredoc | None = None
    resume: int = 0
    # Backticks inside double quotes: bash reads the text between \" and \" as
    # a double-quoted string.
    inner_double: bool = False
    # Command frames: the words read so far in the current simple command, and
    # one state per open case statement ("subject", "pattern" or "body").
    word_count: int = 0
    cases: list[str] = field(default_factory=list)


@dataclass
class _Scan:
    code: str
    placeholders: list[_PlaceholderToken] = field(default_factory=list)
    references: list[_Reference] = field(default_factory=list)
    words: list[_Word] = field(default_factory=list)
    assignments: list[tuple[str, int]] = field(default_factory=list)
    heredocs: list[_Heredoc] = field(default_factory=list)


class _LineIndex:
    """Maps character offsets to 1-based line numbers."""

    def __init__(self, code: str) -> None:
        self._starts = [0] + [m.end() for m in re.finditer("\n", code)]

    def line_of(self, offset: int) -> int:
        return bisect_right(self._starts, offset)


# --- Scanner ----------------------------------------------------------------------


class _Scanner:
    """A one-pass bash lexer that records what the rest of this module needs."""

    def __init__(self, code: str) -> None:
        self.code = code
        self.pos = 0
        self.result = _Scan(code)
        self.pending: list[_Heredoc] = []
        self.stack: list[_Frame] = []
        self.command_count = 0
        # Offset of the last "$" that bash takes literally, such as in $<name>.
        self.bare_dollar = -1

    def run(self) -> _Scan:
        self.stack.append(self._command_frame(len(self.code), closer=""))
        handlers = {
            "command": self._step_command,
            "double": self._step_double,
            "parameter": self._step_parameter,
            "arithmetic": self._step_arithmetic,
            "heredoc": self._step_heredoc,
            "quoted-heredoc": self._step_quoted_heredoc,
        }
        while self.stack:
            frame = self.stack[-1]
            if self.pos >= frame.limit:
                self._close(frame)
                continue
            handlers[frame.kind](frame)
        return self.result

    # Frames -----------------------------------------------------------------------

    def _command_frame(
        self, limit: int, closer: str, parent: _Frame | None = None
    ) -> _Frame:
        self.command_count += 1
        frame = _Frame("command", limit, closer=closer, command=self.command_count)
        if parent is not None:
            frame.conditional = parent.conditional
            frame.in_double = parent.kind == "double" or (
                parent.kind == "parameter" and parent.in_double
            )
        return frame

    def _push(
        self,
        kind: str,
        parent: _Frame,
        start: int,
        in_double: bool = False,
        in_heredoc: bool = False,
    ) -> _Frame:
        frame = _Frame(kind, parent.limit, conditional=parent.conditional)
        frame.in_double, frame.in_heredoc = in_double, in_heredoc
        self.stack.append(frame)
        self.pos = start
        return frame

    def _push_command(self, parent: _Frame, start: int, closer: str) -> None:
        self.stack.append(self._command_frame(parent.limit, closer, parent))
        self.pos = start

    def _close(self, frame: _Frame) -> None:
        self.stack.pop()
        if frame.kind == "command":
            self._end_word(frame, min(self.pos, frame.limit))
        elif frame.kind in ("heredoc", "quoted-heredoc"):
            self.pos = frame.resume

    # Words ------------------------------------------------------------------------

    def _begin_word(self, frame: _Frame) -> None:
        if frame.word_start >= 0:
            return
        frame.word_start = self.pos
        frame.word_is_redirect = frame.redirect_next
        frame.redirect_next = False
        if frame.new_command:
            self.command_count += 1
            frame.command = self.command_count
            frame.new_command = False
            frame.word_count = 0

    def _end_word(self, frame: _Frame, end: int) -> None:
        if frame.word_start < 0:
            return
        frame.word_count += 1
        self._track_case(frame, end)
        pattern = bool(frame.cases) and frame.cases[-1] == "pattern"
        if not (frame.word_is_redirect or pattern):
            start = frame.word_start
            text = self.code[start : min(end, start + _MAX_WORD_TEXT)]
            if end - start > _MAX_WORD_TEXT:
                # Names and NAME= prefixes fit in the cap, which keeps the nested
                # words of $( $( ... ) ) from costing quadratic time. The NUL
                # stops the cut prefix from passing as a whole name.
                text += "\0"
            self.result.words.append(_Word(frame.command, frame.word_start, end, text))
        frame.word_start = -1

    def _track_case(self, frame: _Frame, end: int) -> None:
        # A case pattern ends with ")" that must not close a $( ... ).
        start = frame.word_start
        first = frame.word_count == 1
        if first and end - start == 4 and self.code.startswith("case", start):
            frame.cases.append("subject")
        elif not frame.cases:
            return
        elif frame.cases[-1] == "subject" and self.code[start:end] == "in":
            frame.cases[-1] = "pattern"
            frame.new_command = True
        elif first and self.code[start:end] == "esac":
            frame.cases.pop()

    # Command context ------------------------------------------------------------

    def _step_command(self, frame: _Frame) -> None:
        code, pos = self.code, self.pos
        char = code[pos]
        following = code[pos + 1] if pos + 1 < frame.limit else ""
        if frame.in_double and frame.closer == "`" and self._scan_inner_double(frame):
            return
        if char == "#" and frame.word_start < 0:
            self._skip_comment(frame)
        elif char in " \t\r":
            self._end_word(frame, pos)
            self.pos += 1
        elif char == "\n":
            self._end_word(frame, pos)
            frame.new_command = True
            self.pos += 1
            if self.pending:
                self._read_heredoc_bodies(frame)
        elif char == "\\":
            # A backslash-newline joins lines without ending the word.
            if following != "\n":
                self._begin_word(frame)
            self.pos += 2
        elif char == "'":
            self._begin_word(frame)
            self.pos = self._skip_single_quotes(pos + 1, frame.limit)
        elif char == '"':
            self._begin_word(frame)
            self._push("double", frame, pos + 1)
        elif char == "$":
            self._begin_word(frame)
            self._scan_dollar(frame, unquoted=True)
        elif char == "`":
            if frame.closer == "`":
                self._end_word(frame, pos)
                self.stack.pop()
                self.pos += 1
            else:
                self._begin_word(frame)
                self._push_backtick(frame, pos + 1)
        elif char == "<":
            self._scan_less_than(frame)
        elif char == ">":
            self._scan_greater_than(frame)
        elif char in ";&|":
            self._scan_control(frame)
        elif char in "()":
            self._scan_paren(frame)
        else:
            self._begin_word(frame)
            match = _COMMAND_PLAIN.match(code, pos, frame.limit)
            self.pos = match.end() if match else pos + 1

    def _scan_inner_double(self, frame: _Frame) -> bool:
        # In "`cmd \"arg\"`" bash turns \" into " before it runs cmd, so the
        # text between is double-quoted: ' and # are literal there.
        # NOTE: an escaped quote inside that string (\\\") is not recognized.
        if self.code.startswith('\\"', self.pos):
            self._begin_word(frame)
            frame.inner_double = not frame.inner_double
            self.pos += 2
            return True
        if frame.inner_double and self.code[self.pos] in "'# \t":
            self.pos += 1
            return True
        return False

    def _skip_comment(self, frame: _Frame) -> None:
        end = self.code.find("\n", self.pos, frame.limit)
        if end < 0:
            end = frame.limit
        if frame.closer == "`":
            # bash finds the closing backtick before it parses the comment.
            backtick = self.code.find("`", self.pos, end)
            if backtick >= 0:
                end = backtick
        self.pos = end

    def _scan_control(self, frame: _Frame) -> None:
        code, pos = self.code, self.pos
        self._end_word(frame, pos)
        if code.startswith("&>", pos):
            # &> and &>> redirect both streams and do not end the command.
            self.pos = pos + (3 if code.startswith("&>>", pos) else 2)
            frame.redirect_next = True
            return
        length = 1
        while pos + length < frame.limit and code[pos + length] in ";&|":
            length += 1
        self.pos = pos + length
        frame.new_command = True
        operator = code[pos : pos + length]
        if frame.cases and operator in (";;", ";&", ";;&"):
            frame.cases[-1] = "pattern"

    def _scan_paren(self, frame: _Frame) -> None:
        code, pos = self.code, self.pos
        if frame.word_start < 0 and code.startswith("((", pos):
            self._push("arithmetic", frame, pos + 2)
            return
        self._end_word(frame, pos)
        self.pos += 1
        if frame.cases and frame.cases[-1] == "pattern":
            # "(" may open a case pattern; ")" ends it and starts its commands.
            if code[pos] == ")":
                frame.cases[-1] = "body"
                frame.new_command = True
        elif code[pos] == "(":
            frame.depth += 1
            frame.new_command = True
        elif frame.depth == 0 and frame.closer == ")":
            self.stack.pop()
        else:
            frame.depth = max(0, frame.depth - 1)
            frame.new_command = True

    def _scan_less_than(self, frame: _Frame) -> None:
        code, pos = self.code, self.pos
        if code.startswith("<<<", pos):
            self._end_word(frame, pos)
            self.pos = pos + 3
        elif code.startswith("<<", pos):
            self._end_word(frame, pos)
            self._read_heredoc_operator(frame)
        elif code.startswith("<(", pos):
            self._begin_word(frame)
            self._push_command(frame, pos + 2, ")")
        elif self._record_placeholder(frame):
            return
        else:
            self._scan_redirection(frame)

    def _scan_greater_than(self, frame: _Frame) -> None:
        if self.code.startswith(">(", self.pos):
            self._begin_word(frame)
            self._push_command(frame, self.pos + 2, ")")
        else:
            self._scan_redirection(frame)

    def _scan_redirection(self, frame: _Frame) -> None:
        # <, >, >>, <>, <&, >&, >| : the next word is a file or descriptor.
        self._end_word(frame, self.pos)
        self.pos += 1
        if self.pos < frame.limit and self.code[self.pos] in "<>&|":
            self.pos += 1
        frame.redirect_next = True

    def _push_backtick(self, parent: _Frame, start: int) -> None:
        self._push_command(parent, start, "`")

    # Quoted contexts --------------------------------------------------------------

    def _skip_single_quotes(self, start: int, limit: int) -> int:
        end = self.code.find("'", start, limit)
        return end + 1 if end >= 0 else limit

    def _step_double(self, frame: _Frame) -> None:
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

    def _step_parameter(self, frame: _Frame) -> None:
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
        elif char == "'":
            # Even inside double quotes bash pairs single quotes here when it
            # looks for the closing brace.
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

    def _scan_dollar(self, frame: _Frame, unquoted: bool) -> None:
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
            match = _NAME.match(code, pos + 1, frame.limit)
            if match:
                self._record_reference(match.group(), pos, not frame.conditional)
                self.pos = match.end()
            elif following.isdigit() or (following and following in "@*#?$!-"):
                self.pos = pos + 2
            else:
                self.bare_dollar = pos
                self.pos = pos + 1

    def _scan_parameter_head(self, frame: _Frame) -> None:
        pos = self.pos
        head = _PARAMETER_HEAD.match(self.code, pos + 2, frame.limit)
        assert head is not None  # every group is optional
        name, prefix, index, op = head.group("name", "prefix", "index", "op")
        after_name = head.end("name") if name else pos + 2 + len(prefix)
        listing = prefix == "!" and self.code[after_name : after_name + 1] in ("*", "@")
        if name and _NAME.fullmatch(name) and not (listing and not index):
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

    def _step_arithmetic(self, frame: _Frame) -> None:
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

    def _scan_arithmetic_name(self, frame: _Frame) -> None:
        # Inside (( )) and $(( )) a bare name is a variable: x = 1 assigns it,
        # x += 1, x++ and ++x read and assign it, anything else reads it.
        match = _NAME.match(self.code, self.pos, frame.limit)
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

    def _record_reference(self, name: str, offset: int, required: bool) -> None:
        self.result.references.append(_Reference(name, offset, required))

    def _record_placeholder(self, frame: _Frame) -> bool:
        match = _PLACEHOLDER.match(self.code, self.pos, frame.limit)
        if not match:
            return False
        if frame.kind == "command":
            self._begin_word(frame)
        backticks = tuple(f.in_double for f in reversed(self.stack) if f.closer == "`")
        heredoc = next((f.heredoc for f in reversed(self.stack) if f.heredoc), None)
        token = _PlaceholderToken(
            match.group(1),
            match.start(),
            match.end(),
            "double" if frame.inner_double else frame.kind,
            backticks,
            heredoc,
            after_dollar=self.bare_dollar == match.start() - 1,
        )
        self.result.placeholders.append(token)
        self.pos = match.end()
        return True

    # Here-documents ---------------------------------------------------------------

    def _read_heredoc_operator(self, frame: _Frame) -> None:
        code, limit = self.code, frame.limit
        start = self.pos
        pos = start + 2
        strip_tabs = pos < limit and code[pos] == "-"
        if strip_tabs:
            pos += 1
        while pos < limit and code[pos] in " \t":
            pos += 1
        delimiter, quoted, pos = self._read_heredoc_word(pos, limit)
        self.pos = pos
        if not delimiter and not quoted:
            return  # "<<" with no word is a syntax error in bash
        heredoc = _Heredoc(delimiter, quoted, strip_tabs, start)
        self.pending.append(heredoc)
        self.result.heredocs.append(heredoc)

    def _read_heredoc_word(self, pos: int, limit: int) -> tuple[str, bool, int]:
        """Read a delimiter word: (text after quote removal, quoted, end offset)."""
        code = self.code
        parts: list[str] = []
        quoted = False
        while pos < limit and code[pos] not in " \t\r\n;&|()<>":
            char = code[pos]
            if char == "'":
                end = code.find("'", pos + 1, limit)
                end = limit if end < 0 else end
                parts.append(code[pos + 1 : end])
                quoted, pos = True, end + 1
            elif char == '"':
                pos = self._read_double_quoted_word(pos + 1, limit, parts)
                quoted = True
            elif char == "\\":
                parts.append(code[pos + 1 : pos + 2])
                quoted, pos = True, pos + 2
            elif char == "$" and code[pos + 1 : pos + 2] in ("'", '"'):
                pos += 1  # $'EOF' and $"EOF" quote the word too
            else:
                parts.append(char)
                pos += 1
        return "".join(parts), quoted, min(pos, limit)

    def _read_double_quoted_word(self, pos: int, limit: int, parts: list[str]) -> int:
        code = self.code
        while pos < limit and code[pos] != '"':
            if code[pos] == "\\" and code[pos + 1 : pos + 2] in ('"', "\\", "$", "`"):
                pos += 1
            parts.append(code[pos : pos + 1])
            pos += 1
        return pos + 1

    def _read_heredoc_bodies(self, frame: _Frame) -> None:
        """Locate the bodies of the here-documents opened on the line just ended."""
        pending, self.pending = self.pending, []
        bodies: list[_Frame] = []
        pos = self.pos
        for heredoc in pending:
            heredoc.body_start = pos
            body_end, resume, heredoc.terminated = _find_heredoc_end(
                self.code, heredoc, pos, frame.limit
            )
            heredoc.body_end = body_end
            kind = "quoted-heredoc" if heredoc.quoted else "heredoc"
            body = _Frame(kind, body_end, conditional=frame.conditional)
            body.heredoc, body.resume = heredoc, resume
            bodies.append(body)
            pos = resume
        self.stack.extend(reversed(bodies))

    def _step_heredoc(self, frame: _Frame) -> None:
        code, pos = self.code, self.pos
        char = code[pos]
        if char == "\\":
            # \$, \` and \\ are escapes. Before other characters the backslash
            # is literal, but "\<name>" is still not taken as a placeholder.
            self.pos += 2
        elif char == "$":
            self._scan_dollar(frame, unquoted=False)
        elif char == "`":
            self._push_backtick(frame, pos + 1)
        elif char == "<" and self._record_placeholder(frame):
            return
        else:
            match = _HEREDOC_PLAIN.match(code, pos, frame.limit)
            self.pos = match.end() if match else pos + 1

    def _step_quoted_heredoc(self, frame: _Frame) -> None:
        for match in _QUOTED_BODY_REFERENCE.finditer(self.code, self.pos, frame.limit):
            name = match.group("braced") or match.group("plain")
            if name:
                reference = _Reference(name, match.start(), False, quoted_heredoc=True)
                self.result.references.append(reference)
        self.pos = frame.limit


def _find_heredoc_end(
    code: str, heredoc: _Heredoc, start: int, limit: int
) -> tuple[int, int, bool]:
    """Return (end of body, offset after the delimiter line, found) for a body.

    Both offsets are ``limit`` when no line closes the here-document. In an
    unquoted here-document a line ending in an odd number of backslashes joins
    the next line before bash compares with the delimiter.
    """
    pos = start
    logical_start = start
    joined: list[str] = []
    while pos < limit:
        newline = code.find("\n", pos, limit)
        line_end = limit if newline < 0 else newline
        after = limit if newline < 0 else newline + 1
        line = code[pos:line_end]
        if not joined:
            logical_start = pos
        if not heredoc.quoted and _ends_with_odd_backslashes(line):
            joined.append(line[:-1])
            pos = after
            continue
        logical = "".join(joined) + line if joined else line
        joined = []
        if heredoc.strip_tabs:
            logical = logical.lstrip("\t")
        if logical == heredoc.delimiter:
            return logical_start, after, True
        pos = after
    return limit, limit, False


def _ends_with_odd_backslashes(line: str) -> bool:
    count = len(line) - len(line.rstrip("\\"))
    return count % 2 == 1


def _scan(code: str) -> _Scan:
    return _Scanner(code).run()


def _tag_names(code: str) -> set[str]:
    """Return names that close an HTML or XML tag (``</b>``) somewhere in the code.

    ``<b>`` in ``echo "<b>bold</b>"`` is markup, not a placeholder.
    """
    return set(_CLOSING_TAG.findall(code))


def _placeholder_tokens(scan: _Scan) -> list[_PlaceholderToken]:
    tags = _tag_names(scan.code) if "</" in scan.code else set()
    return [token for token in scan.placeholders if token.name not in tags]


# --- Finding placeholders, references and assignments -----------------------------


def find_placeholders(code: str) -> list[Placeholder]:
    """Find ``<name>`` placeholders that bash would see, one per name.

    The result is in order of first appearance, each with the line of that
    first use. Heredoc operators, redirections, process substitution, comments,
    single-quoted strings, ``$'...'``, arithmetic, quoted here-document bodies
    and names that also appear as a closing tag (``</b>``) are not placeholders.
    """
    lines = _LineIndex(code)
    found: dict[str, Placeholder] = {}
    for token in _placeholder_tokens(_scan(code)):
        if token.name not in found:
            found[token.name] = Placeholder(token.name, lines.line_of(token.start))
    return list(found.values())


def find_variable_references(code: str) -> list[VariableReference]:
    """Find every variable reference that bash expands and that has no default.

    Each occurrence is listed, in source order. Included: ``$NAME``,
    ``${NAME}``, ``${NAME:?msg}``, ``${#NAME}``, ``${!NAME}``, bare names in
    ``$(( ))`` and ``(( ))``, inside double quotes, unquoted here-document
    bodies, ``$(...)`` and backticks.

    Excluded: single quotes, comments, quoted here-document bodies,
    ``\\$NAME``, special and positional parameters, and references with a
    default or alternative value (``${X:-..}``, ``${X-..}``, ``${X:=..}``,
    ``${X=..}``, ``${X:+..}``, ``${X+..}``). Also excluded are references
    nested in such a word or in a ``${X:?msg}`` message, because bash expands
    them only in some cases, and ``${NAME[@]}``, which bash expands to nothing
    when NAME is unset even under ``set -u``.
    """
    lines = _LineIndex(code)
    return [
        VariableReference(reference.name, lines.line_of(reference.offset))
        for reference in _scan(code).references
        if reference.required
    ]


def find_quoted_heredoc_references(code: str) -> list[VariableReference]:
    """Find ``$NAME`` and ``${NAME...}`` written inside a quoted here-document body.

    bash never expands these (``<<'EOF'``, ``<<"EOF"``, ``<<\\EOF``), so a
    ``${QPC_DB_KEY}`` there reaches the command literally. Every occurrence is
    listed, in source order, defaults or not; ``\\$NAME`` is skipped.
    """
    lines = _LineIndex(code)
    return [
        VariableReference(reference.name, lines.line_of(reference.offset))
        for reference in _scan(code).references
        if reference.quoted_heredoc
    ]


def find_unterminated_heredoc(code: str) -> tuple[str, int] | None:
    """Return the delimiter and 1-based line of the first unclosed here-document.

    A here-document is unclosed when no line equals its delimiter, for example
    ``EOF > out.txt`` where ``EOF`` was meant. bash would wait for more input.
    """
    for heredoc in _scan(code).heredocs:
        if not heredoc.terminated:
            line = _LineIndex(code).line_of(heredoc.operator_offset)
            return heredoc.delimiter, line
    return None


def find_assignments(code: str) -> set[str]:
    """Return the names of the shell variables that the code sets.

    Recognized: ``NAME=...`` and ``NAME+=...`` standing alone (a prefix such as
    ``NAME=1 cmd`` sets NAME only for cmd), ``export``, ``local``, ``declare``,
    ``typeset`` and ``readonly`` arguments, ``read`` and ``read -a`` names,
    ``for``/``select`` loop names, ``mapfile``/``readarray`` arrays,
    ``printf -v``, ``getopts``, ``let`` and arithmetic assignments, and
    ``${NAME:=default}``.
    """
    return set(_assignment_offsets(_scan(code)))


def _assignment_offsets(scan: _Scan) -> dict[str, int]:
    """Map each assigned name to the offset from which the code has set it."""
    offsets: dict[str, int] = {}
    found = list(scan.assignments)
    for words in _group_commands(scan.words):
        found.extend(_command_assignments(words))
    for name, offset in found:
        if offset < offsets.get(name, len(scan.code) + 1):
            offsets[name] = offset
    return offsets


def _group_commands(words: list[_Word]) -> Iterator[list[_Word]]:
    commands: dict[int, list[_Word]] = {}
    for word in sorted(words, key=lambda w: w.start):
        commands.setdefault(word.command, []).append(word)
    yield from commands.values()


# Reserved words after which the next word starts a command.
_COMMAND_PREFIXES = frozenset(
    {"if", "then", "else", "elif", "do", "while", "until", "!", "time", "{", "}"}
)
_ASSIGNMENT_WORD = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:\[[^\]]*\])?\+?=")
_DECLARED_NAME = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:\[[^\]]*\])?(?:\+?=|\Z)")
_LET_ASSIGNMENT = re.compile(
    r"([A-Za-z_][A-Za-z0-9_]*)(?:\[[^\]]*\])?\s*(?:(?:[-+*/%&|^]|<<|>>)?=(?!=)|\+\+|--)"
)
_DECLARATION_COMMANDS = frozenset({"export", "local", "declare", "typeset", "readonly"})


def _command_assignments(words: list[_Word]) -> Iterator[tuple[str, int]]:
    """Yield (name, offset) for the variables that one simple command sets.

    The offset is the end of the word that sets the name, because bash expands
    the right-hand side (``X=$((X+1))``) before it assigns.
    """
    index = 0
    while index < len(words) and words[index].text in _COMMAND_PREFIXES:
        index += 1
    prefix: list[tuple[str, int]] = []
    while index < len(words):
        match = _ASSIGNMENT_WORD.match(words[index].text)
        if not match:
            break
        prefix.append((match.group(1), words[index].end))
        index += 1
    if index == len(words):
        yield from prefix
        return
    command, arguments = words[index].text, words[index + 1 :]
    if command in _DECLARATION_COMMANDS:
        yield from _declared_names(arguments)
    elif command == "read":
        yield from _option_names(arguments, "adinNptu", array_option="a", rest=True)
    elif command in ("mapfile", "readarray"):
        yield from _option_names(arguments, "dnOsuCc", array_option="", rest=False)
    elif command == "printf":
        yield from _printf_names(arguments)
    elif command == "getopts" and len(arguments) >= 2:
        yield from _plain_names(arguments[1:2])
    elif command in ("for", "select") and arguments:
        yield from _plain_names(arguments[:1])
    elif command == "let":
        for word in arguments:
            match = _LET_ASSIGNMENT.match(_unquote(word.text))
            if match:
                yield match.group(1), word.end


def _unquote(text: str) -> str:
    """Remove one pair of surrounding quotes from a simple word."""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _plain_names(words: Iterable[_Word]) -> Iterator[tuple[str, int]]:
    for word in words:
        text = _unquote(word.text)
        if _FULL_NAME.match(text):
            yield text, word.end


def _declared_names(arguments: list[_Word]) -> Iterator[tuple[str, int]]:
    for word in arguments:
        text = _unquote(word.text)
        if text.startswith(("-", "+")):
            if "f" in text or "F" in text:
                return  # declare -f lists or marks functions, not variables
            continue
        match = _DECLARED_NAME.match(text)
        if match:
            yield match.group(1), word.end


def _option_names(
    arguments: list[_Word], takes_value: str, array_option: str, rest: bool
) -> Iterator[tuple[str, int]]:
    """Yield the names set by ``read`` or ``mapfile`` after parsing their options.

    With ``rest`` every remaining word is a name (read), otherwise only the
    first one is (mapfile).
    """
    index = 0
    while index < len(arguments):
        text = arguments[index].text
        if text == "--":
            index += 1
            break
        if len(text) < 2 or not text.startswith("-"):
            break
        for position, option in enumerate(text[1:], start=1):
            if option not in takes_value:
                continue
            value = text[position + 1 :]
            if not value and index + 1 < len(arguments):
                index += 1
                value = arguments[index].text
            value = _unquote(value)
            if option == array_option and _FULL_NAME.match(value):
                yield value, arguments[index].end
            break
        index += 1
    remaining = arguments[index:] if rest else arguments[index : index + 1]
    yield from _plain_names(remaining)


def _printf_names(arguments: list[_Word]) -> Iterator[tuple[str, int]]:
    if not arguments or not arguments[0].text.startswith("-v"):
        return
    text, end = arguments[0].text[2:], arguments[0].end
    if not text and len(arguments) > 1:
        text, end = arguments[1].text, arguments[1].end
    match = _NAME.match(_unquote(text))
    if match:
        yield match.group(), end


# --- Missing values ---------------------------------------------------------------


def find_missing_values(
    codes: Sequence[str],
    provided: Mapping[str, str],
    environment: Mapping[str, str],
) -> list[MissingValue]:
    """List the placeholders and variables that have no value, each at its first use.

    Steps are walked in order. A variable reference (without a default) is
    satisfied by an assignment in an earlier step or earlier in the same step,
    by ``provided`` (``--var`` and env-file values), by ``environment`` or by
    ``BASH_BUILTIN_VARIABLES``. A placeholder is satisfied only by ``provided``,
    under its name as written (``server-ip``).
    """
    assigned: set[str] = set()
    reported: set[str] = set()
    missing: list[MissingValue] = []
    for step, code in enumerate(codes, start=1):
        scan = _scan(code)
        step_assignments = _assignment_offsets(scan)
        lines = _LineIndex(code)
        for offset, kind, name in _uses(scan):
            if name in reported:
                continue
            if kind == "placeholder":
                satisfied = name in provided
            else:
                assigned_here = step_assignments.get(name, len(code) + 1) < offset
                satisfied = (
                    name in assigned
                    or assigned_here
                    or name in provided
                    or name in environment
                    or name in BASH_BUILTIN_VARIABLES
                )
            if not satisfied:
                reported.add(name)
                missing.append(MissingValue(name, kind, step, lines.line_of(offset)))
        assigned.update(step_assignments)
    return missing


def _uses(scan: _Scan) -> list[tuple[int, _Kind, str]]:
    """Return (offset, kind, name) for each placeholder and required reference."""
    uses: list[tuple[int, _Kind, str]] = [
        (token.start, "placeholder", token.name) for token in _placeholder_tokens(scan)
    ]
    uses.extend(
        (reference.offset, "variable", reference.name)
        for reference in scan.references
        if reference.required
    )
    uses.sort(key=lambda use: use[0])
    return uses


# --- Substitution -----------------------------------------------------------------


def substitute_placeholders(code: str, values: Mapping[str, str]) -> str:
    """Replace each known placeholder with its value, quoted for its position.

    Unquoted, the value is quoted with ``shlex.quote``. Inside double quotes,
    ``\\``, ``"``, ``$`` and backtick are escaped, and in an unquoted
    here-document body ``\\``, ``$`` and backtick. Inside a ``${X:-...}`` word
    the value becomes a double-quoted string. Inside backticks the result is
    escaped once more for the backtick layer. Only placeholders that
    ``find_placeholders`` reports are replaced, so comments and quoted
    here-document bodies stay as written. Unknown placeholders are kept.

    Raises VariableError when a value contains a NUL byte, which bash cannot
    store, when a placeholder written as ``$<name>`` gets a value other than a
    variable name, or when a value would put the delimiter on a line of its own
    and so end a here-document early.
    """
    scan = _scan(code)
    pieces: list[str] = []
    replaced: list[tuple[_PlaceholderToken, str]] = []
    last = 0
    for token in _placeholder_tokens(scan):
        if token.name not in values:
            continue
        value = values[token.name]
        _check_value(token, value)
        replacement = _quote_for_context(token, value)
        pieces.append(code[last : token.start])
        pieces.append(replacement)
        replaced.append((token, replacement))
        last = token.end
    pieces.append(code[last:])
    _check_heredoc_bodies(code, replaced)
    return "".join(pieces)


def _check_value(token: _PlaceholderToken, value: str) -> None:
    if "\0" in value:
        raise VariableError(
            f"value for <{token.name}> contains a NUL byte, which bash cannot "
            "hold; remove it"
        )
    # After a bare "$" a value such as "(cmd)" would turn into $(cmd), and no
    # quoting prevents that. A variable name is allowed: $NAME is a reference.
    if token.after_dollar and not _FULL_NAME.match(value):
        raise VariableError(
            f"placeholder <{token.name}> follows a '$', so its value would form a "
            "shell expansion; give a variable name as the value or rewrite the "
            "step without the '$'"
        )


def _quote_for_context(token: _PlaceholderToken, value: str) -> str:
    if token.context == "double":
        text = _escape_double_quoted(value)
    elif token.context == "heredoc":
        text = _escape_heredoc(value)
    elif token.context == "parameter":
        text = '"' + _escape_double_quoted(value) + '"'
    else:
        text = shlex.quote(value)
    for in_double in token.backticks:
        text = _escape_backtick(text, in_double)
    return text


def _escape_double_quoted(value: str) -> str:
    """Escape a value for the inside of a double-quoted bash string.

    NOTE: an interactive bash with history expansion on (``set -H``, its
    default) still expands ``!`` inside double quotes. No escape removes it
    cleanly, so the session must run with ``set +H``.
    """
    return re.sub(r'([\\"$`])', r"\\\1", value)


def _escape_heredoc(value: str) -> str:
    # In an unquoted here-document body only \, $ and ` are special.
    return re.sub(r"([\\$`])", r"\\\1", value)


def _escape_backtick(text: str, in_double: bool) -> str:
    # Inside `...` bash removes a backslash before \, ` and $ (and before " when
    # the backticks sit in double quotes) before it parses the command.
    special = r'[\\`$"]' if in_double else r"[\\`$]"
    return re.sub(f"({special})", r"\\\1", text)


def _check_heredoc_bodies(
    code: str, replaced: list[tuple[_PlaceholderToken, str]]
) -> None:
    """Raise VariableError if a substituted body has a line equal to its delimiter."""
    by_heredoc: dict[_Heredoc, list[tuple[_PlaceholderToken, str]]] = {}
    for token, replacement in replaced:
        if token.heredoc is not None:
            by_heredoc.setdefault(token.heredoc, []).append((token, replacement))
    for heredoc, edits in by_heredoc.items():
        pieces: list[str] = []
        last = heredoc.body_start
        for token, replacement in edits:
            pieces.append(code[last : token.start])
            pieces.append(replacement)
            last = token.end
        pieces.append(code[last : heredoc.body_end])
        body = "".join(pieces)
        if _find_heredoc_end(body, heredoc, 0, len(body))[2]:
            names = ", ".join(sorted({f"<{token.name}>" for token, _ in edits}))
            raise VariableError(
                f"the value for {names} would put the here-document delimiter "
                f"{heredoc.delimiter!r} on a line of its own and end the "
                "here-document early; choose a different value"
            )


# --- Values from the command line and from env files ------------------------------


def _is_value_name(name: str) -> bool:
    return bool(_FULL_NAME.match(name) or _PLACEHOLDER_NAME.match(name))


def parse_var_option(text: str) -> tuple[str, str]:
    """Split a ``--var NAME=VALUE`` option into name and value.

    NAME is a shell variable name or a placeholder name, with or without the
    angle brackets (``--var '<server-ip>=10.0.0.5'``). VALUE may be empty.
    Raises VariableError when there is no ``=`` or the name is invalid.
    """
    name, equals, value = text.partition("=")
    if not equals:
        raise VariableError(
            f"invalid --var {text!r}: expected NAME=VALUE, for example "
            "--var server-ip=10.0.0.5 or --var QPC_AUTH_TOKEN="
        )
    if name.startswith("<") and name.endswith(">"):
        name = name[1:-1]
    if not _is_value_name(name):
        raise VariableError(
            f"invalid --var {text!r}: {name!r} is not a variable or placeholder "
            "name; use letters, digits and _ (placeholders may also use - and .)"
        )
    return name, value


_ENV_LINE = re.compile(r"(?:export\s+)?([^\s=]+)\s*=(.*)\Z", re.S)
_DOUBLE_QUOTED_ESCAPES = {'"': '"', "\\": "\\", "n": "\n"}


def load_env_file(path: str) -> dict[str, str]:
    """Read ``NAME=VALUE`` lines from a dotenv-style file.

    ``export`` before a name, blank lines and ``#`` comment lines are allowed.
    Single-quoted values are literal. Double-quoted values understand ``\\"``,
    ``\\\\`` and ``\\n``. Unquoted values lose a trailing `` # comment`` and
    surrounding blanks. Names may be shell variables or placeholder names. A
    later line overrides an earlier one. Raises VariableError for a missing or
    unreadable file and for a malformed line, naming ``path:line``.
    """
    try:
        with open(path, encoding="utf-8-sig") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise VariableError(f"env file not found: {path}; check the path") from None
    except (OSError, UnicodeDecodeError) as error:
        raise VariableError(
            f"failed to read env file {path}: {error}; check that it is a readable "
            "UTF-8 text file"
        ) from None
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        name, value = _parse_env_line(stripped, f"{path}:{number}")
        values[name] = value
    return values


def _parse_env_line(line: str, location: str) -> tuple[str, str]:
    match = _ENV_LINE.match(line)
    if not match or not _is_value_name(match.group(1)):
        raise VariableError(
            f"{location}: invalid line {line!r}: expected NAME=VALUE, where NAME is "
            "a variable or placeholder name"
        )
    name, raw = match.groups()
    raw_value = raw.lstrip()
    if raw_value.startswith("'"):
        end = raw_value.find("'", 1)
        if end < 0:
            raise VariableError(
                f"{location}: unterminated single quote in the value of {name}; "
                "add the closing '"
            )
        value, rest = raw_value[1:end], raw_value[end + 1 :]
    elif raw_value.startswith('"'):
        value, rest = _parse_double_quoted_value(raw_value, name, location)
    else:
        # "#" starts a comment only after a blank, so X=a#b keeps its "#".
        return name, re.sub(r"\s+#.*\Z", "", raw, flags=re.S).strip()
    if rest.strip() and not rest.lstrip().startswith("#"):
        raise VariableError(
            f"{location}: unexpected text {rest.strip()!r} after the quoted value of "
            f"{name}; quote the whole value or start a comment with ' #'"
        )
    return name, value


def _parse_double_quoted_value(raw: str, name: str, location: str) -> tuple[str, str]:
    chars: list[str] = []
    index = 1
    while index < len(raw):
        char = raw[index]
        if char == '"':
            return "".join(chars), raw[index + 1 :]
        if char == "\\" and raw[index + 1 : index + 2] in _DOUBLE_QUOTED_ESCAPES:
            chars.append(_DOUBLE_QUOTED_ESCAPES[raw[index + 1]])
            index += 2
            continue
        chars.append(char)
        index += 1
    raise VariableError(
        f"{location}: unterminated double quote in the value of {name}; "
        'add the closing "'
    )


# --- Secrets ----------------------------------------------------------------------

_SECRET_PARTS = frozenset(
    {
        "TOKEN",
        "KEY",
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "PASS",
        "PASSPHRASE",
        "CREDENTIAL",
        "PRIVATE",
        "APIKEY",
    }
)
# Compound words that are secrets even when not separated: DBPASSWORD, apikey.
_SECRET_SUBSTRINGS = ("PASSWORD", "PASSWD", "APIKEY", "SECRETKEY", "PRIVATEKEY")
_NAME_PARTS = re.compile(r"[_\-.\s]+|(?<=[a-z0-9])(?=[A-Z])")

#: Secret values shorter than this are not masked, because masking "1" or "yes"
#: would garble unrelated output.
MIN_SECRET_LENGTH = 4


def is_secret_name(name: str) -> bool:
    """Return whether a variable or placeholder name looks like a secret's name.

    The name is split at ``_``, ``-``, ``.`` and camelCase boundaries. A part
    equal to TOKEN, KEY, SECRET, PASSWORD, PASSWD, PASS, PASSPHRASE, CREDENTIAL,
    PRIVATE or APIKEY (or its plural) makes it a secret, so ``QPC_DB_KEY`` and
    ``db-password`` are secrets and ``KEYBOARD_LAYOUT`` and ``MONKEY`` are not.
    """
    for part in _NAME_PARTS.split(name):
        upper = part.upper()
        if upper in _SECRET_PARTS or upper.removesuffix("S") in _SECRET_PARTS:
            return True
        if any(word in upper for word in _SECRET_SUBSTRINGS):
            return True
    return False


def _secret_pattern(secrets: Iterable[str]) -> re.Pattern[str] | None:
    values = sorted(
        {s for s in secrets if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True
    )
    if not values:
        return None
    return re.compile("|".join(re.escape(value) for value in values))


def mask_secrets(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of each secret value with ``***``.

    Values shorter than MIN_SECRET_LENGTH characters are left alone. Where one
    secret contains another, the longer one is masked whole.
    """
    pattern = _secret_pattern(secrets)
    return pattern.sub("***", text) if pattern else text


def mask_secrets_bytes(data: bytes, secrets: Iterable[str]) -> bytes:
    """Replace every occurrence of each secret's UTF-8 encoding with ``***``."""
    values = sorted(
        {s.encode() for s in secrets if len(s) >= MIN_SECRET_LENGTH},
        key=len,
        reverse=True,
    )
    if not values:
        return data
    pattern = re.compile(b"|".join(re.escape(value) for value in values))
    return pattern.sub(b"***", data)
