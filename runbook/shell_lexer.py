"""A bash lexer that finds the placeholders and variables in a step's code.

``scan`` returns a ``Scan`` (see ``shell_tokens``) with the placeholders, the
variable references, the words and the here-documents of the code. The lexer
tracks which parts of the code bash expands and which it takes literally
(single quotes, comments, quoted here-document bodies).

The scanner runs in one forward pass with an explicit stack of contexts instead
of recursion, so deeply nested input cannot exhaust the Python stack. Incomplete
input (an open quote, a here-document without its closing line) ends the pass
with whatever was found so far.

The scanner is one class built in layers, a module each: ``shell_frames`` (the
frame stack and words), ``shell_expansions`` (quotes, ``${...}``, arithmetic and
``$``), ``shell_heredoc`` (here-documents) and this module (the command context
and the main loop).
"""

from __future__ import annotations

import re

from runbook.shell_frames import Frame
from runbook.shell_heredoc import HeredocScanner
from runbook.shell_tokens import Scan

# Runs of characters with no meaning in the command context, skipped in one step.
_COMMAND_PLAIN = re.compile(r"[^\s'\"\\$`<>;&|()#]+")


class _Scanner(HeredocScanner):
    """A one-pass bash lexer that records what ``variables`` needs."""

    def run(self) -> Scan:
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

    # Command context ------------------------------------------------------------

    def _step_command(self, frame: Frame) -> None:
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
            elif len(self.stack) == 1:
                self._line_started()
        elif char == "\\":
            # A backslash-newline joins lines without ending the word.
            if following != "\n":
                self._begin_word(frame)
            self.pos += 2
        elif char == "'":
            self._begin_word(frame)
            self._scan_single_quotes(frame)
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

    def _scan_inner_double(self, frame: Frame) -> bool:
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

    def _skip_comment(self, frame: Frame) -> None:
        end = self.code.find("\n", self.pos, frame.limit)
        if end < 0:
            end = frame.limit
        if frame.closer == "`":
            # bash finds the closing backtick before it parses the comment.
            backtick = self.code.find("`", self.pos, end)
            if backtick >= 0:
                end = backtick
        self.pos = end

    def _scan_control(self, frame: Frame) -> None:
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
        self.after_operator = operator in ("|", "|&", "&&", "||")
        if frame.cases and operator in (";;", ";&", ";;&"):
            frame.cases[-1] = "pattern"

    def _scan_paren(self, frame: Frame) -> None:
        code, pos = self.code, self.pos
        if frame.word_start < 0 and code.startswith("((", pos):
            self._push("arithmetic", frame, pos + 2)
            return
        array = frame.word_start >= 0 and code[pos - 1 : pos + 1] == "=("
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
            if array:
                # The words of NAME=( ... ) are array elements, not reserved words.
                frame.array_depth = frame.depth
        elif frame.depth == 0 and frame.closer == ")":
            self.stack.pop()
        else:
            if frame.depth == frame.array_depth:
                frame.array_depth = 0
            frame.depth = max(0, frame.depth - 1)
            frame.new_command = True

    def _scan_less_than(self, frame: Frame) -> None:
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

    def _scan_greater_than(self, frame: Frame) -> None:
        if self.code.startswith(">(", self.pos):
            self._begin_word(frame)
            self._push_command(frame, self.pos + 2, ")")
        else:
            self._scan_redirection(frame)

    def _scan_redirection(self, frame: Frame) -> None:
        # <, >, >>, <>, <&, >&, >| : the next word is a file or descriptor.
        self._end_word(frame, self.pos)
        self.pos += 1
        if self.pos < frame.limit and self.code[self.pos] in "<>&|":
            self.pos += 1
        frame.redirect_next = True


class _CommandEndScanner(_Scanner):
    """Stops at the first line start where the top-level command list is complete."""

    def __init__(self, code: str, start: int) -> None:
        super().__init__(code)
        self.pos = start
        self.end: int | None = None

    def _line_started(self) -> None:
        root = self.stack[0]
        if root.depth or root.cases or root.blocks or self.after_operator:
            return  # an open ( ... ), case, if, loop or { ...; }, or "cmd |"
        self.end = self.pos
        self.stack.clear()


def scan(code: str) -> Scan:
    """Scan bash code and return what the lexer found, even in incomplete code."""
    return _Scanner(code).run()


def find_command_end(code: str, start: int = 0) -> int | None:
    """Return the offset after the line that completes the commands from ``start``.

    bash reads a command line by line. It prompts for another line (with its
    ``PS2`` prompt, ``> ``) while the text so far ends inside a quote, an
    expansion, a subshell or a compound command, after a backslash-newline,
    after ``|``, ``&&`` or ``||``, or before the closing line of a
    here-document. A compound command lasts from ``if`` to ``fi``, from
    ``for``, ``select``, ``while`` or ``until`` to ``done``, from ``case`` to
    ``esac`` and from ``{`` to ``}``. The result is the start of the first
    line after ``start`` where none of these is open, or None when the code
    ends before that.

    NOTE: a function header without its body (``f()`` or ``function f``
    alone on a line) counts as complete, although bash waits for the body.
    """
    scanner = _CommandEndScanner(code, start)
    scanner.run()
    return scanner.end
