"""A running step's output on its way out, and signals that stop a run."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType

from .transcript import Masker, StreamMasker, Transcript, output_fields

#: Seconds between ``output`` records while a step runs.
PARTIAL_OUTPUT_SECONDS = 1.0


class LiveOutput:
    """Output of a running step on its way to the operator and the transcript.

    Secrets are masked before anything is shown. Output of a step that runs
    longer than PARTIAL_OUTPUT_SECONDS is also written as ``output`` records
    at that interval, so a run killed mid-step keeps what the step printed.
    """

    def __init__(
        self,
        show: Callable[[bytes], None],
        transcript: Transcript,
        step_number: int,
    ) -> None:
        self.show = show
        self.transcript = transcript
        self.step_number = step_number
        self.masking = StreamMasker(transcript.masker)
        self.pending = bytearray()
        self.last_write = time.monotonic()

    def feed(self, data: bytes) -> None:
        shown = self.masking.feed(data)
        if shown:
            self.show(shown)
            self.pending += shown
        if (
            self.pending
            and time.monotonic() - self.last_write >= PARTIAL_OUTPUT_SECONDS
        ):
            self._write_partial()

    def flush(self) -> None:
        self.show(self.masking.flush())

    def _write_partial(self) -> None:
        self.transcript.write(
            "output",
            step=self.step_number,
            **output_fields(bytes(self.pending), Masker()),
        )
        self.pending.clear()
        self.last_write = time.monotonic()


#: The signals that stop a run as Ctrl-C does.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)

StopHandler = Callable[[int, FrameType | None], None]


@contextlib.contextmanager
def handle_stop_signals(handler: StopHandler) -> Iterator[None]:
    """Install ``handler`` for SIGTERM and SIGHUP while the block runs.

    The previous handlers come back afterwards. Outside the main thread,
    where Python cannot install handlers, nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.signal(number, handler) for number in STOP_SIGNALS}
    try:
        yield
    finally:
        for number, old in previous.items():
            signal.signal(number, old)


@contextlib.contextmanager
def signals_as_interrupts(
    on_signal: Callable[[int], bool],
) -> Iterator[None]:
    """Report SIGTERM and SIGHUP to ``on_signal`` while the block runs.

    ``on_signal`` gets the signal number and returns whether to raise
    KeyboardInterrupt at once. It returns False while a step runs, because
    the session notices the request itself and records the step properly.
    Outside the main thread, where Python cannot install handlers, nothing
    changes.
    """

    def interrupt(signum: int, frame: FrameType | None) -> None:
        if on_signal(signum):
            raise KeyboardInterrupt

    with handle_stop_signals(interrupt):
        yield
