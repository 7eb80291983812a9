"""Terminal plumbing for the bash session: bounded capture, echo filter, raw mode."""

from __future__ import annotations

import codecs
import os
import termios
import tty
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

OutputCallback = Callable[[bytes], None]


@dataclass
class OutputCapture:
    """Output of the step being run, bounded to about ``limit`` bytes.

    Past the limit the first and the last ``limit // 2`` bytes are kept, and
    ``value`` puts a note of how many bytes were left out between them. Where
    a cut would split a valid UTF-8 character, it moves back to the start of
    that character, by at most 3 bytes: the head keeps up to 3 bytes less and
    the tail up to 3 bytes more. So output that is valid UTF-8 stays valid,
    and the transcript can store it as text.
    """

    limit: int
    head: bytearray = field(default_factory=bytearray)
    tail: bytearray = field(default_factory=bytearray)
    dropped: int = 0
    head_full: bool = False

    def add(self, data: bytes) -> None:
        if not self.head_full:
            data = self._fill_head(data)
        if not data:
            return
        self.tail += data
        excess = len(self.tail) - self.limit // 2
        if excess > 0:
            excess = _character_start(self.tail, excess)
            del self.tail[:excess]
            self.dropped += excess

    def _fill_head(self, data: bytes) -> bytes:
        """Move data into the head until it is full; return the rest."""
        room = self.limit // 2 - len(self.head)
        if len(data) < room:
            self.head += data
            return b""
        # The head ends at a cut: if a character spans it, that character
        # starts the tail instead.
        self.head += data[:room]
        rest = data[room:]
        before = bytes(self.head[-3:])
        back = len(before) - _character_start(before + rest[:3], len(before))
        self.head_full = True
        if not back:
            return rest
        moved = bytes(self.head[-back:])
        del self.head[-back:]
        return moved + rest

    def value(self) -> bytes:
        if not self.dropped:
            return bytes(self.head + self.tail)
        note = f"\n[runbook: {self.dropped} bytes of output not kept]\n".encode()
        return bytes(self.head) + note + bytes(self.tail)


def _character_start(data: bytes | bytearray, cut: int) -> int:
    """Return the start of the UTF-8 character that ``cut`` splits, or ``cut``.

    Only a valid character counts: a lead byte at most 3 bytes before ``cut``,
    with the continuation bytes it needs. Where ``data`` ends first, the bytes
    up to its end must be a valid start of such a character.
    """
    for start in range(cut - 1, max(cut - 4, -1), -1):
        if data[start] & 0xC0 != 0x80:  # not a continuation byte
            length = _SEQUENCE_LENGTHS.get(data[start] >> 4, 1)
            if start + length > cut and _valid_utf8_start(data[start : start + length]):
                return start
            return cut
    return cut


# UTF-8 sequence length by the high 4 bits of its lead byte.
_SEQUENCE_LENGTHS = {0xC: 2, 0xD: 2, 0xE: 3, 0xF: 4}


def _valid_utf8_start(data: bytes | bytearray) -> bool:
    try:
        codecs.getincrementaldecoder("utf-8")().decode(data, final=False)
    except UnicodeDecodeError:
        return False
    return True


class EchoFilter:
    """Passes output on, minus one leading copy of ``echo`` if it comes first."""

    def __init__(self, echo: bytes, sink: OutputCallback) -> None:
        self.echo = echo
        self.sink = sink
        self.held = b""
        self.decided = False

    def __call__(self, data: bytes) -> None:
        if self.decided:
            self.sink(data)
            return
        self.held += data
        if self.held.startswith(self.echo):
            rest = self.held[len(self.echo) :]
            self._decide()
            if rest:
                self.sink(rest)
        elif not self.echo.startswith(self.held):
            self.flush()

    def flush(self) -> None:
        """Pass on whatever is held back; no echo is expected after this."""
        held = self.held
        self._decide()
        if held and not self.echo.startswith(held):
            self.sink(held)

    def _decide(self) -> None:
        self.decided = True
        self.held = b""


def enter_raw_mode(fd: int | None) -> list[Any] | None:
    """Put the operator's terminal in raw mode so keys reach the step unchanged."""
    if fd is None or not os.isatty(fd):
        return None
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    return saved


def restore_mode(fd: int | None, saved: list[Any] | None) -> None:
    """Leave raw mode, discarding keys typed but not yet read (stray Ctrl-C)."""
    if fd is not None and saved is not None:
        termios.tcsetattr(fd, termios.TCSAFLUSH, saved)
