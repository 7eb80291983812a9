"""Records of the bash lexer: placeholders, references, words, here-documents.

``shell_lexer.scan`` returns a ``Scan`` that contains these records, and
``variables`` and ``shell_assignments`` read them. Every offset is a character
offset into the scanned code.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, field

# A shell variable name: NAME matches one at a position, FULL_NAME a whole string.
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
FULL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

# --- Scanner records --------------------------------------------------------------


@dataclass(slots=True, eq=False)
class Heredoc:
    """A ``<<WORD`` operator, where its body lies and whether a line closed it."""

    delimiter: str
    quoted: bool
    strip_tabs: bool
    operator_offset: int
    body_start: int = -1
    body_end: int = -1
    terminated: bool = False


@dataclass(frozen=True, slots=True)
class PlaceholderToken:
    """A ``<name>`` that bash would see, with what quoting it needs."""

    name: str
    start: int
    end: int
    # "command", "single", "double", "parameter" or "heredoc": the quoting
    # context. "single" is inside '...', where bash takes the text literally.
    context: str
    # One entry per enclosing backtick substitution, innermost first: whether
    # that substitution sits inside double quotes.
    backticks: tuple[bool, ...]
    heredoc: Heredoc | None
    # The placeholder follows an unescaped "$", as in $<name>.
    after_dollar: bool


@dataclass(frozen=True, slots=True)
class Reference:
    """A variable reference, ``required`` when bash needs a value for it."""

    name: str
    offset: int
    required: bool
    quoted_heredoc: bool = False


# Words are kept for finding assignments, which only read their first characters.
MAX_WORD_TEXT = 1024


@dataclass(frozen=True, slots=True)
class Word:
    """A shell word of simple command number ``command``, cut at MAX_WORD_TEXT."""

    command: int
    start: int
    end: int
    text: str


@dataclass
class Scan:
    """Everything one pass of the lexer found in ``code``, in source order."""

    code: str
    placeholders: list[PlaceholderToken] = field(default_factory=list)
    references: list[Reference] = field(default_factory=list)
    words: list[Word] = field(default_factory=list)
    assignments: list[tuple[str, int]] = field(default_factory=list)
    heredocs: list[Heredoc] = field(default_factory=list)


class LineIndex:
    """Maps character offsets to 1-based line numbers."""

    def __init__(self, code: str) -> None:
        self._starts = [0] + [m.end() for m in re.finditer("\n", code)]

    def line_of(self, offset: int) -> int:
        return bisect_right(self._starts, offset)
