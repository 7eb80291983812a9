"""Terminal plumbing for the bash session: bounded capture, echo filter, raw mode."""

from __future__ import annotations

import os
import termios
import tty
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

OutputCallback = Callable[[bytes], None]


@dataclass
class OutputCapture:
    """Output of the step being run, bounded to MAX_CAPTURE_BYTES."""

    limit: int
    head: bytearray = field(default_factory=bytearray)
    tail: bytearray = field(default_factory=bytearray)
    dropped: int = 0

    def add(self, data: bytes) -> None:
        room = self.limit // 2 - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if not data:
            return
        self.tail += data
        excess = len(self.tail) - self.limit // 2
        if excess > 0:
            del self.tail[:excess]
            self.dropped += excess

    def value(self) -> bytes:
        if not self.dropped:
            return bytes(self.head + self.tail)
        note = f"\n[runbook: {self.dropped} bytes of output not kept]\n".encode()
        return bytes(self.head) + note + bytes(self.tail)


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
