"""Here-documents for the bash lexer: operators, delimiters and bodies.

``<<WORD`` queues a here-document. When the line that contains the operator
ends, ``HeredocScanner`` locates each queued body and pushes a frame for it. An
unquoted body expands ``$`` and backticks. A quoted one (``<<'EOF'``,
``<<"EOF"``, ``<<\\EOF``) is literal, so each ``$NAME`` written in it is
recorded as a quoted-here-document reference.
"""

from __future__ import annotations

import re

from runbook.shell_expansions import ExpansionScanner
from runbook.shell_frames import Frame
from runbook.shell_tokens import Heredoc, Reference

# Runs of characters with no meaning in an unquoted body, skipped in one step.
_HEREDOC_PLAIN = re.compile(r"[^\\$`<]+")

# A reference that a quoted here-document body leaves unexpanded.
_QUOTED_BODY_REFERENCE = re.compile(
    r"\\."  # an escaped character, skipped so that \$NAME does not count
    r"|\$\{[#!]?(?P<braced>[A-Za-z_][A-Za-z0-9_]*)"
    r"|\$(?P<plain>[A-Za-z_][A-Za-z0-9_]*)",
    re.S,
)


class HeredocScanner(ExpansionScanner):
    """Adds here-document operators and the bodies of both kinds."""

    def _read_heredoc_operator(self, frame: Frame) -> None:
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
        heredoc = Heredoc(delimiter, quoted, strip_tabs, start)
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

    def _read_heredoc_bodies(self, frame: Frame) -> None:
        """Locate the bodies of the here-documents opened on the line just ended."""
        pending, self.pending = self.pending, []
        bodies: list[Frame] = []
        pos = self.pos
        for heredoc in pending:
            heredoc.body_start = pos
            body_end, resume, heredoc.terminated = find_heredoc_end(
                self.code, heredoc, pos, frame.limit
            )
            heredoc.body_end = body_end
            kind = "quoted-heredoc" if heredoc.quoted else "heredoc"
            body = Frame(kind, body_end, conditional=frame.conditional)
            body.heredoc, body.resume = heredoc, resume
            bodies.append(body)
            pos = resume
        self.stack.extend(reversed(bodies))

    def _step_heredoc(self, frame: Frame) -> None:
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

    def _step_quoted_heredoc(self, frame: Frame) -> None:
        for match in _QUOTED_BODY_REFERENCE.finditer(self.code, self.pos, frame.limit):
            name = match.group("braced") or match.group("plain")
            if name:
                reference = Reference(name, match.start(), False, quoted_heredoc=True)
                self.result.references.append(reference)
        self.pos = frame.limit


def find_heredoc_end(
    code: str, heredoc: Heredoc, start: int, limit: int
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
