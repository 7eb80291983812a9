"""The frame stack and the words of the bash lexer, shared by every context.

A ``Frame`` is one open context: a command list, double quotes, ``${...}``,
arithmetic or a here-document body. ``FrameScanner`` keeps the state of one
scan (the code, the position, the stack, the here-documents whose bodies are
still to come, the ``Scan`` being filled) and the operations that every context
uses: opening and closing frames, delimiting words for ``shell_assignments``,
following case statements and compound commands through their reserved words,
and recording references and placeholders. The contexts themselves are read by
the subclasses in ``shell_expansions``, ``shell_heredoc`` and ``shell_lexer``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from runbook.shell_tokens import (
    MAX_WORD_TEXT,
    Heredoc,
    PlaceholderToken,
    Reference,
    Scan,
    Word,
)

# A placeholder: a name that variables._PLACEHOLDER_NAME accepts, in angle brackets.
_PLACEHOLDER = re.compile(r"<([A-Za-z][A-Za-z0-9_.-]*)>")

# Reserved words that open a compound command, and the word that closes it.
_BLOCK_CLOSERS = {
    "if": "fi",
    "for": "done",
    "select": "done",
    "while": "done",
    "until": "done",
    "{": "}",
}
# Reserved words after which the next word may start a command.
_COMMAND_PREFIXES = frozenset(
    {"if", "then", "elif", "else", "while", "until", "do", "{", "!", "time"}
)


@dataclass(slots=True)
class Frame:
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
    heredoc: Heredoc | None = None
    resume: int = 0
    # Backticks inside double quotes: bash reads the text between \" and \" as
    # a double-quoted string.
    inner_double: bool = False
    # Command frames: the words read so far in the current simple command, and
    # one state per open case statement ("subject", "pattern" or "body").
    word_count: int = 0
    cases: list[str] = field(default_factory=list)
    # Command frames: the reserved word that closes each open compound command
    # ("fi", "done" or "}").
    blocks: list[str] = field(default_factory=list)
    # Command frames: after how many more words a command may start within the
    # same simple command, 1 after "then" and 2 after "function" (NAME first).
    command_in: int = 0
    # Command frames: the depth of the "(" of an open NAME=( ... ), or 0.
    array_depth: int = 0


class FrameScanner:
    """The state of one scan, and the operations that every context shares."""

    def __init__(self, code: str) -> None:
        self.code = code
        self.pos = 0
        self.result = Scan(code)
        self.pending: list[Heredoc] = []
        self.stack: list[Frame] = []
        self.command_count = 0
        # Offset of the last "$" that bash takes literally, such as in $<name>.
        self.bare_dollar = -1
        # The last thing read was |, |&, && or ||, which needs a command after it.
        self.after_operator = False

    # Frames -----------------------------------------------------------------------

    def _command_frame(
        self, limit: int, closer: str, parent: Frame | None = None
    ) -> Frame:
        self.command_count += 1
        frame = Frame("command", limit, closer=closer, command=self.command_count)
        if parent is not None:
            frame.conditional = parent.conditional
            frame.in_double = parent.kind == "double" or (
                parent.kind == "parameter" and parent.in_double
            )
        return frame

    def _push(
        self,
        kind: str,
        parent: Frame,
        start: int,
        in_double: bool = False,
        in_heredoc: bool = False,
    ) -> Frame:
        frame = Frame(kind, parent.limit, conditional=parent.conditional)
        frame.in_double, frame.in_heredoc = in_double, in_heredoc
        self.stack.append(frame)
        self.pos = start
        self.after_operator = False
        return frame

    def _push_command(self, parent: Frame, start: int, closer: str) -> None:
        self.stack.append(self._command_frame(parent.limit, closer, parent))
        self.pos = start
        self.after_operator = False

    def _push_backtick(self, parent: Frame, start: int) -> None:
        self._push_command(parent, start, "`")

    def _close(self, frame: Frame) -> None:
        self.stack.pop()
        if frame.kind == "command":
            self._end_word(frame, min(self.pos, frame.limit))
        elif frame.kind in ("heredoc", "quoted-heredoc"):
            self.pos = frame.resume
            assert frame.heredoc is not None
            if frame.heredoc.terminated and len(self.stack) == 1:
                self._line_started()

    def _line_started(self) -> None:
        """Note that a line of the top-level command list starts at ``self.pos``.

        Called after a newline at the top level, and after the closing line of
        the last here-document that the previous line opened. Subclasses that
        need to know where commands end override it.
        """

    # Words ------------------------------------------------------------------------

    def _begin_word(self, frame: Frame) -> None:
        self.after_operator = False
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

    def _end_word(self, frame: Frame, end: int) -> None:
        if frame.word_start < 0:
            return
        frame.word_count += 1
        self._track_reserved_word(frame, end)
        pattern = bool(frame.cases) and frame.cases[-1] == "pattern"
        if not (frame.word_is_redirect or pattern):
            start = frame.word_start
            text = self.code[start : min(end, start + MAX_WORD_TEXT)]
            if end - start > MAX_WORD_TEXT:
                # Names and NAME= prefixes fit in the cap, which keeps the nested
                # words of $( $( ... ) ) from costing quadratic time. The NUL
                # stops the cut prefix from passing as a whole name.
                text += "\0"
            self.result.words.append(Word(frame.command, frame.word_start, end, text))
        frame.word_start = -1

    def _track_reserved_word(self, frame: Frame, end: int) -> None:
        """Follow case statements and compound commands through their words.

        bash takes a word as a reserved word only where a command may start:
        as the first word of a simple command or after a word such as ``then``.
        A case pattern ends with ")" that must not close a $( ... ), and
        ``shell_lexer.find_command_end`` needs to know what is still open.
        """
        start = frame.word_start
        # Reserved words are short, so longer words are not copied.
        text = self.code[start:end] if end - start <= 8 else ""
        at_command = frame.word_count == 1 or frame.command_in == 1
        frame.command_in = max(0, frame.command_in - 1)
        state = frame.cases[-1] if frame.cases else ""
        if frame.word_is_redirect or frame.array_depth:
            return
        if state == "subject":
            if text == "in":
                frame.cases[-1] = "pattern"
                frame.new_command = True
            return
        if not at_command:
            return
        if text == "esac" and state:
            frame.cases.pop()
        elif state == "pattern":
            return  # a pattern such as "done)" is not a reserved word
        elif text == "case":
            frame.cases.append("subject")
        elif text in _BLOCK_CLOSERS:
            frame.blocks.append(_BLOCK_CLOSERS[text])
        elif frame.blocks and text == frame.blocks[-1]:
            frame.blocks.pop()
        if text in _COMMAND_PREFIXES:
            frame.command_in = 1
        elif text == "function":
            frame.command_in = 2

    # Records ----------------------------------------------------------------------

    def _record_reference(self, name: str, offset: int, required: bool) -> None:
        self.result.references.append(Reference(name, offset, required))

    def _record_placeholder(self, frame: Frame) -> bool:
        match = _PLACEHOLDER.match(self.code, self.pos, frame.limit)
        if not match:
            return False
        if frame.kind == "command":
            self._begin_word(frame)
        context = "double" if frame.inner_double else frame.kind
        after_dollar = self.bare_dollar == match.start() - 1
        self._add_placeholder(match, context, after_dollar)
        self.pos = match.end()
        return True

    def _record_single_quoted_placeholders(self, start: int, end: int) -> None:
        """Record the placeholders in the single-quoted text from start to end."""
        for match in _PLACEHOLDER.finditer(self.code, start, end):
            self._add_placeholder(match, "single", after_dollar=False)

    def _add_placeholder(
        self, match: re.Match[str], context: str, after_dollar: bool
    ) -> None:
        backticks = tuple(f.in_double for f in reversed(self.stack) if f.closer == "`")
        heredoc = next((f.heredoc for f in reversed(self.stack) if f.heredoc), None)
        token = PlaceholderToken(
            match.group(1),
            match.start(),
            match.end(),
            context,
            backticks,
            heredoc,
            after_dollar,
        )
        self.result.placeholders.append(token)
