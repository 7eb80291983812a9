"""``runbook test -j N``: run cases at the same time, each in its own process.

Each case runs in a child process (``python -m runbook.parallel DIR``) that
calls ``run_case`` exactly as a serial run does, so it starts its own sandbox
container. The container carries the child's process id in its owner label
and gets a name from Docker, so no two cases share a container or a name.

The children run in their own sessions, so a Ctrl-C at the terminal reaches
only this process, which forwards SIGINT (or the SIGTERM or SIGHUP it got) to
every running child once. Each child then stops its step, removes its
container and writes its outcome. A child that has not ended after
``STOP_GRACE`` seconds, or a second signal, gets SIGKILL, and the containers
of killed children are removed here.
"""

from __future__ import annotations

import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from .live import handle_stop_signals
from .testing import Case, Outcome, run_case

#: Seconds a child may take to stop its step and remove its container.
STOP_GRACE = 60.0
#: Seconds between two looks at the running children.
POLL_INTERVAL = 0.1


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived; ``exit_status`` is 128 plus the signal number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.exit_status = 128 + signum


def cpu_count() -> int:
    """Return the number of CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def parse_jobs(value: str) -> int:
    """Return the number of parallel cases that ``--jobs VALUE`` requests."""
    if value == "auto":
        return cpu_count()
    try:
        jobs = int(value)
    except ValueError:
        jobs = 0
    if jobs < 1:
        raise ValueError(
            f"{value!r} is not a number of parallel cases; give a whole number "
            "from 1, or 'auto' for one per CPU"
        )
    return jobs


@dataclass
class _Child:
    index: int
    case: Case
    process: subprocess.Popen[bytes]
    workdir: Path


@dataclass
class ParallelResult:
    #: The outcomes of the cases that finished, in the order of the cases.
    outcomes: list[Outcome]
    #: 130, 143 or 129 when a signal stopped the run; None otherwise.
    interrupted: int | None
    #: The cases that started but wrote no outcome, because the run stopped.
    unfinished: list[Case]


def run_parallel(
    cases: Sequence[Case],
    transcript_dir: Path,
    jobs: int,
    on_start: Callable[[Case], None] | None = None,
    on_finish: Callable[[Outcome], None] | None = None,
) -> ParallelResult:
    """Run ``cases``, at most ``jobs`` at a time; stop them all on a signal.

    ``on_start`` and ``on_finish`` are called in this process, one at a time,
    as cases start and end. A case whose run ends with a signal's exit
    status (128 and above) stops the others, as in a serial run.
    """
    waiting = list(enumerate(cases))
    running: dict[int, _Child] = {}
    finished: dict[int, Outcome] = {}
    unfinished: list[Case] = []
    interrupted: int | None = None
    with handle_stop_signals(_raise_stopped):
        try:
            while waiting or running:
                while waiting and len(running) < jobs:
                    index, case = waiting.pop(0)
                    running[index] = _start(index, case, transcript_dir)
                    if on_start is not None:
                        on_start(case)
                ended = [
                    index
                    for index, child in running.items()
                    if child.process.poll() is not None
                ]
                for index in ended:
                    outcome = _collect(running.pop(index))
                    if outcome is None:
                        continue
                    finished[index] = outcome
                    if on_finish is not None:
                        on_finish(outcome)
                    if outcome.exit_code is not None and outcome.exit_code >= 128:
                        raise _Interrupted(outcome.exit_code)
                if not ended:
                    time.sleep(POLL_INTERVAL)
        except KeyboardInterrupt as interrupt:
            interrupted = getattr(interrupt, "exit_status", 130)
            for index, outcome in _stop(running, interrupted - 128).items():
                finished[index] = outcome
                if on_finish is not None:
                    on_finish(outcome)
            unfinished = [
                child.case for i, child in running.items() if i not in finished
            ]
            for child in running.values():
                shutil.rmtree(child.workdir, ignore_errors=True)
    ordered = [finished[index] for index in sorted(finished)]
    return ParallelResult(ordered, interrupted, unfinished)


class _Interrupted(KeyboardInterrupt):
    """A case ended with a signal's exit status, so the others stop too."""

    def __init__(self, exit_status: int) -> None:
        super().__init__(exit_status)
        self.exit_status = exit_status


def run_serial(
    cases: Sequence[Case],
    transcript_dir: Path,
    on_start: Callable[[Case], None] | None = None,
    on_finish: Callable[[Outcome], None] | None = None,
) -> ParallelResult:
    """Run ``cases`` one after another in this process (``--jobs 1``)."""
    outcomes: list[Outcome] = []
    interrupted: int | None = None
    unfinished: list[Case] = []
    with handle_stop_signals(_raise_stopped):
        for case in cases:
            if on_start is not None:
                on_start(case)
            try:
                outcome = run_case(case, transcript_dir)
            except KeyboardInterrupt as interrupt:
                interrupted = getattr(interrupt, "exit_status", 130)
                unfinished.append(case)
                break
            outcomes.append(outcome)
            if on_finish is not None:
                on_finish(outcome)
            if outcome.exit_code is not None and outcome.exit_code >= 128:
                interrupted = outcome.exit_code
                break
    return ParallelResult(outcomes, interrupted, unfinished)


def _start(index: int, case: Case, transcript_dir: Path) -> _Child:
    workdir = Path(tempfile.mkdtemp(prefix="runbook-case-"))
    (workdir / "case.pickle").write_bytes(pickle.dumps((case, transcript_dir)))
    with open(workdir / "output.log", "wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "runbook.parallel", str(workdir)],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return _Child(index, case, process, workdir)


def _collect(child: _Child) -> Outcome | None:
    """Read a finished child's outcome; a child that wrote none is an error."""
    try:
        output = (child.workdir / "output.log").read_text("utf-8", "replace")
        path = child.workdir / "outcome.pickle"
        if path.exists():
            outcome: Outcome = pickle.loads(path.read_bytes())
            if output.strip():
                outcome.log += output
            return outcome
        status = child.process.returncode
        if status is not None and (status < 0 or status >= 128):
            return None  # stopped by a signal before it could report
        tail = output.strip()[-2000:] or "no output"
        return Outcome(
            child.case,
            "error",
            None,
            0.0,
            stopped=f"the process running the case exited with status {status} "
            f"and no outcome: {tail}",
        )
    finally:
        shutil.rmtree(child.workdir, ignore_errors=True)


def _stop(running: dict[int, _Child], signum: int) -> dict[int, Outcome]:
    """Forward a signal to every running child, wait, and return their outcomes."""
    for child in running.values():
        _send(child, signum)
    deadline = time.monotonic() + STOP_GRACE
    outcomes: dict[int, Outcome] = {}
    left = dict(running)
    while left:
        try:
            for index, child in list(left.items()):
                if child.process.poll() is not None:
                    del left[index]
                    outcome = _collect(child)
                    if outcome is not None:
                        outcomes[index] = outcome
            if left and time.monotonic() > deadline:
                raise KeyboardInterrupt
            if left:
                time.sleep(POLL_INTERVAL)
        except KeyboardInterrupt:
            # A second signal, or the grace period is over: end them now.
            for child in left.values():
                _send(child, signal.SIGKILL)
            for child in left.values():
                child.process.wait()
            left.clear()
    # A child stopped while its container was starting, or killed, leaves
    # the container behind; its owner process is gone now, so this removes it.
    from .sandbox.container import remove_leftovers

    remove_leftovers()
    return outcomes


def _send(child: _Child, signum: int) -> None:
    with suppress(ProcessLookupError):
        os.kill(child.process.pid, signum)


def _child_main(workdir: Path) -> int:
    """Run one case in this process and write its outcome next to its input."""
    case, transcript_dir = pickle.loads((workdir / "case.pickle").read_bytes())
    try:
        with handle_stop_signals(_raise_stopped):
            outcome = run_case(case, transcript_dir)
    except KeyboardInterrupt as interrupt:
        return int(getattr(interrupt, "exit_status", 130))
    partial = workdir / "outcome.pickle.part"
    partial.write_bytes(pickle.dumps(outcome))
    partial.rename(workdir / "outcome.pickle")
    return 0


def _raise_stopped(signum: int, frame: FrameType | None) -> None:
    """Turn SIGTERM and SIGHUP into ``Stopped`` (see ``handle_stop_signals``)."""
    raise Stopped(signum)


if __name__ == "__main__":
    sys.exit(_child_main(Path(sys.argv[1])))
