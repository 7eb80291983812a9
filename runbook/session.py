"""One persistent bash session driven by pexpect.

How a step runs: the step's text is written to a file in a private temporary
directory, and the shell is sent one short line that sources it
(``. FILE``, with ``</dev/null`` when the step must not read the terminal).
A remote shell (``docker exec``, ``ssh``) cannot read a file on this machine,
so it gets one command line that decodes the step from base64 lines that
follow into a file in its own private directory, then sources that file.
Sourcing runs the text in the shell itself, so variables, ``cd`` and functions
carry over, and heredocs, ``\\`` continuations and multi-line quotes behave as
in a script. Because bash has read the whole command line before the step
starts, a command in the step that reads the terminal cannot swallow runbook's
own input.

The end of a step is the shell's next prompt. Before it, ``PROMPT_COMMAND``
writes a marker with a random nonce and ``$?`` to the terminal. The marker
carries the exit status, and output that merely looks like it cannot end a
step, because it lacks the nonce. bash runs
with ``--noediting``, so readline never switches on bracketed paste or redraws
the input line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import select
import shutil
import signal
import tempfile
import termios
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import pexpect

from . import targets
from .errors import SessionEnded, SessionStartError
from .targets import LocalTarget, Target
from .terminal import (
    EchoFilter,
    OutputCallback,
    OutputCapture,
    enter_raw_mode,
    restore_mode,
)
from .workdir import WORKDIR_PREFIX, remove_stale_workdirs, workdir_base

log = logging.getLogger(__name__)

#: Seconds a step gets after its interrupt (Ctrl-C) before it is killed.
INTERRUPT_GRACE = 5.0
#: Seconds to wait for the prompt after the step's processes were killed.
KILL_GRACE = 3.0
#: Ctrl-C presses in a row, forwarded to a step, after which runbook stops it.
CTRL_C_ESCALATION = 3
#: Output kept per step in memory; the middle of longer output is dropped.
MAX_CAPTURE_BYTES = 8 * 1024 * 1024

_RS = b"\x1e"  # ASCII record separator: starts the prompt marker
_US = b"\x1f"  # ASCII unit separator: ends it
_BRACKETED_PASTE = re.compile(rb"\x1b\[\?2004[hl]")


@dataclass
class StepOutcome:
    """The result of running one step.

    ``exit_status`` is None when the step did not finish normally: it timed
    out and was killed, or the shell itself ended (then ``session_ended`` is
    set and ``exit_status`` is the shell's own exit status when known).
    """

    exit_status: int | None
    output: bytes
    duration: float
    timed_out: bool = False
    interrupted: bool = False
    killed: bool = False
    session_ended: bool = False
    truncated_bytes: int = 0
    #: The exit statuses that count as success (a step's ``expect``
    #: attribute); None accepts any status the step finished with.
    expected_status: int | frozenset[int] | None = 0
    #: A unified diff when the output did not match the step's expected output.
    output_diff: str | None = None

    @property
    def status_accepted(self) -> bool:
        """Whether the step finished with an exit status that counts as success."""
        expected = self.expected_status
        if self.exit_status is None:
            return False
        if expected is None:
            return True
        if isinstance(expected, int):
            return self.exit_status == expected
        return self.exit_status in expected

    @property
    def succeeded(self) -> bool:
        return (
            self.status_accepted
            and self.output_diff is None
            and not self.timed_out
            and not self.interrupted
            and not self.session_ended
        )


class BashSession:
    """A bash process on a pseudo-terminal that runs steps one after another.

    ``target`` says where bash runs (default: this machine). ``command``
    replaces the local bash command; the shell it starts must read step files
    written on this machine. ``env`` is the environment of the local process:
    bash's own for a local target, the docker or ssh client's otherwise.
    ``start_timeout`` defaults to the target's.
    """

    def __init__(
        self,
        command: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        dimensions: tuple[int, int] = (40, 160),
        start_timeout: float | None = None,
        interrupt_grace: float = INTERRUPT_GRACE,
        target: Target | None = None,
    ) -> None:
        self.target = target or LocalTarget()
        self.remote = command is None and not self.target.is_local
        if command is not None:
            self.command = list(command)
        elif self.remote:
            self.command = []  # start() builds it: it carries the prompt settings
        else:
            self.command = self.target.shell_command({})
        self.env = dict(os.environ if env is None else env)
        self.cwd = cwd
        self.dimensions = dimensions
        if start_timeout is None:
            start_timeout = self.target.start_timeout
        self.start_timeout = start_timeout
        self.interrupt_grace = interrupt_grace
        self._child: pexpect.spawn | None = None
        self._workdir: str | None = None
        self._step_file = ""
        self._nonce = b""
        self._marker: re.Pattern[bytes] | None = None
        self._pending = bytearray()
        self._step_fd: int | None = None
        self._ctrl_c_presses = 0
        self._ctrl_c_forwarded = False
        self._escalated = False
        #: The remote shell's pid and step directory, as the shell reported them.
        self._remote_pid = 0
        self._remote_dir = ""
        self.exit_status: int | None = None
        #: True when a remote shell ended and its target does not respond to a
        #: side command (container stopped or removed, ssh host unreachable).
        self.target_lost = False

    # --- lifecycle ------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return self._child is not None and self._child.isalive()

    def start(self) -> None:
        """Start the shell and wait for its first prompt."""
        self._nonce = secrets.token_hex(8).encode()
        self._marker = re.compile(
            re.escape(_RS + b"RB" + self._nonce + b":") + rb"(\d+)" + re.escape(_US)
        )
        if not self.remote:
            base = workdir_base()
            remove_stale_workdirs(base)
            self._workdir = tempfile.mkdtemp(
                prefix=f"{WORKDIR_PREFIX}{os.getpid()}.", dir=base
            )
            self._step_file = os.path.join(self._workdir, "step")
        # bash takes PS1, PS2 and PROMPT_COMMAND from the environment when it
        # reads no rc file; the init line below stops exporting them.
        # PROMPT_COMMAND writes the marker to /dev/tty, so a step that sets
        # PS1 (or sources a bashrc that does) or redirects the shell's own
        # stdout or stderr (exec 2>/dev/null) cannot hide it. It also empties
        # PS1 and PS2, and the init line makes it read-only.
        # NOTE: a step that turns on line editing (set -o vi, set -o emacs)
        # makes bash skip its next prompt, so that step ends by its timeout.
        # A remote shell also empties its step file there, before the marker.
        cleanup = targets.remote_prompt_cleanup() if self.remote else ""
        shell_env = {
            "PS1": "",
            "PS2": "",
            "PROMPT_COMMAND": (
                f"__runbook_status=$?; PS1=; PS2=; {cleanup}"
                f"printf '\\036RB{self._nonce.decode()}:%s\\037' "
                '"$__runbook_status" >/dev/tty'
            ),
            "TERM": self.env.get("TERM", "xterm-256color"),
            # A pager would wait for keys that a --yes run never sends.
            "PAGER": "cat",
            "SYSTEMD_PAGER": "cat",
            "GIT_PAGER": "cat",
        }
        if self.remote:
            self.command = self.target.shell_command(shell_env)
            env = dict(self.env)
            if shutil.which(self.command[0], path=env.get("PATH")) is None:
                raise SessionStartError(
                    f"cannot start a shell on {self.target}: {self.command[0]!r} "
                    "not found on PATH; install it or add it to PATH"
                )
        else:
            env = {**self.env, **shell_env}
        try:
            self._child = pexpect.spawn(
                self.command[0],
                self.command[1:],
                env=env,
                cwd=self.cwd,
                echo=False,
                encoding=None,
                dimensions=self.dimensions,
            )
        except pexpect.ExceptionPexpect as error:
            raise SessionStartError(
                f"cannot start shell {' '.join(self.command)!r}: {error}"
            ) from error
        self._child.delaybeforesend = None
        self._child.delayafterclose = 0
        self._child.ptyproc.delayafterclose = 0
        self.exit_status = None
        self.target_lost = False
        self._pending.clear()
        self._wait_for_prompt(self.start_timeout, "the shell's first prompt")
        # No history file: steps may contain secrets.
        # No `!` history expansion on the one line runbook types per step.
        init = (
            "export -n PS1 PS2 PROMPT_COMMAND; readonly PROMPT_COMMAND; "
            "unset HISTFILE; set +o history +H"
        )
        if self.remote:
            self._start_remote(init)
        else:
            self._send_line(init)
            self._wait_for_prompt(self.start_timeout, "the shell to take its settings")
        log.debug("shell started: %s (pid %s)", self.command, self._child.pid)

    def _start_remote(self, init: str) -> None:
        """Set up a remote shell: no echo, the settings, a private step directory.

        The terminal over there echoes what it receives until ``stty -echo``
        runs, so the echo of this one line is discarded with the output before
        the prompt.
        """
        nonce = self._nonce.decode()
        self._send_line(f"stty -echo; {init}; {targets.remote_setup_line(nonce)}")
        seen = bytearray()
        self._wait_for_prompt(
            self.start_timeout, "the shell to take its settings", seen.extend
        )
        found = re.search(rb"RBINFO" + self._nonce + rb" (\d+) (/\S+)\r?\n", seen)
        if found is None:
            tail = bytes(seen[-500:]).decode("utf-8", "replace")
            raise SessionStartError(
                f"cannot create a private step directory on {self.target} with "
                f"mktemp -d (in /dev/shm or the temporary directory); output: {tail!r}"
            )
        self._remote_pid = int(found.group(1))
        self._remote_dir = found.group(2).decode("utf-8", "surrogateescape")
        self._end_stale_remote_shells()
        log.info(
            "shell started on %s (remote pid %d, step directory %s)",
            self.target,
            self._remote_pid,
            self._remote_dir,
        )

    def _end_stale_remote_shells(self) -> None:
        """End the shells and remove the step files of killed runbooks on the target.

        A killed runbook cannot clean up after itself, and ``docker exec``
        leaves its shell running. Only directories named after this host are
        touched, and only when their process here is gone.
        """
        listing = self.target.run_side_command(
            targets.LIST_REMOTE_DIRS_SCRIPT, self.env, timeout=10
        )
        if listing is None:
            return
        for path in targets.stale_remote_dirs(listing, own=self._remote_dir):
            log.info("ending the shell of a killed run on %s: %s", self.target, path)
            self.target.run_side_command(
                targets.end_stale_script(path), self.env, timeout=10
            )

    def close(self) -> None:
        """Stop the shell and remove the temporary directory."""
        child = self._child
        removed = False
        if child is not None:
            if child.isalive():
                line = "kill -HUP $(jobs -p) 2>/dev/null; exit 0"
                if self._remote_dir:
                    line = f'rm -rf -- "${targets.REMOTE_DIR_VARIABLE}"; {line}'
                try:
                    # Background jobs of the steps get SIGHUP, as when a
                    # terminal closes, instead of outliving the run.
                    child.sendline(line)
                    child.expect(pexpect.EOF, timeout=3 if self.remote else 1)
                    removed = True
                except (pexpect.ExceptionPexpect, OSError):
                    pass
            child.close(force=True)
            self.exit_status = child.exitstatus
            self._child = None
        if self._remote_dir and not removed:
            # The shell ended on its own (exit in a step, a lost connection),
            # so remove the directory from outside if the target responds.
            script = targets.remove_dir_script(self._remote_dir)
            self.target.run_side_command(script, self.env, timeout=3)
        self._remote_dir = ""
        self._remote_pid = 0
        if self._step_fd is not None:
            os.close(self._step_fd)
            self._step_fd = None
        if self._workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def restart(self) -> None:
        """Replace the shell with a fresh one (state from earlier steps is lost)."""
        self.close()
        self.start()

    def __enter__(self) -> BashSession:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- running steps -----------------------------------------------------------

    def run(
        self,
        code: str,
        timeout: float | None = None,
        stdin_from_terminal: bool = False,
        on_output: OutputCallback | None = None,
        input_fd: int | None = None,
        stop_requested: Callable[[], bool] | None = None,
    ) -> StepOutcome:
        """Run one step's code and return its outcome.

        ``on_output`` gets the output as it arrives, and ``b""`` about every
        0.2 s while the step is silent.
        ``stdin_from_terminal`` lets the step read the session's terminal, and
        turns terminal echo on while the step runs; otherwise the step's stdin
        is /dev/null, so ``read`` fails at once and ``cat`` reads end of file.
        Bytes readable on ``input_fd`` (the operator's terminal in raw mode)
        are forwarded to the step, Ctrl-C included. A KeyboardInterrupt while
        the step runs interrupts the step and is reported, not re-raised, and
        so does ``stop_requested`` returning True (it is polled at least every
        0.2 s).
        """
        child = self._require_child()
        line = ""
        if not self.remote:
            self._write_step_file(code)
            line = f". {self._step_file}"
            line += "" if stdin_from_terminal else " </dev/null"
        started = time.monotonic()
        capture = OutputCapture(MAX_CAPTURE_BYTES)

        def deliver(data: bytes) -> None:
            if data:
                data = _BRACKETED_PASTE.sub(b"", data)
                capture.add(data)
            if on_output is not None:
                on_output(data)

        emit: OutputCallback = deliver
        echo_filter = None
        if self.remote:
            # NOTE: keys typed before the step's own `stty echo` has run are
            # read by the step but not echoed.
            terminator = f"__RB_END_{self._nonce.decode()}"
            child.send(targets.remote_step_text(code, terminator, stdin_from_terminal))
        else:
            self._send_line(line)
        if stdin_from_terminal and not self.remote:
            # Echo goes on so that the operator sees what they type. The kernel
            # may process the line above after this change, and then echoes it
            # too: the filter drops that copy.
            child.setecho(True)
            echo_filter = EchoFilter(line.encode() + b"\r\n", deliver)
            emit = echo_filter
        outcome = StepOutcome(exit_status=None, output=b"", duration=0.0)
        deadline = None if timeout is None else started + timeout
        self._ctrl_c_presses = 0
        self._ctrl_c_forwarded = False
        self._escalated = False
        # Raw mode lasts until the step is over, interrupt included, so that
        # a Ctrl-C typed meanwhile reaches the step, never runbook itself.
        saved_mode = enter_raw_mode(input_fd)
        try:
            try:
                status = self._pump(emit, deadline, outcome, input_fd, stop_requested)
            except KeyboardInterrupt:
                outcome.interrupted = True
                status = None
            if status is None and not outcome.session_ended:
                status = self._interrupt(emit, outcome)
        finally:
            with contextlib.suppress(termios.error, OSError):
                # The operator's terminal is gone (ssh dropped, pane closed).
                restore_mode(input_fd, saved_mode)
        if self._ctrl_c_forwarded:
            outcome.interrupted = True
        if echo_filter is not None:
            echo_filter.flush()
        if stdin_from_terminal and self.alive:
            if self.remote:
                self._remote_echo_off()
            else:
                child.setecho(False)
        if not outcome.session_ended:
            outcome.exit_status = status
        self._clear_step_file()
        outcome.output = capture.value()
        outcome.truncated_bytes = capture.dropped
        outcome.duration = time.monotonic() - started
        del child
        return outcome

    def _remote_echo_off(self) -> None:
        """Turn the remote terminal's echo off again after a step that read it."""
        self._send_line("stty -echo")
        probe = StepOutcome(exit_status=None, output=b"", duration=0.0)
        if self._pump(lambda data: None, time.monotonic() + KILL_GRACE, probe) is None:
            log.warning("the shell on %s did not return after stty -echo", self.target)

    def _wait_for_prompt(
        self, timeout: float, what: str, emit: OutputCallback | None = None
    ) -> None:
        """Pass output up to the next prompt to ``emit`` (default: discard it).

        Raises SessionStartError when the prompt does not come.
        """
        seen = bytearray()
        probe = StepOutcome(exit_status=None, output=b"", duration=0.0)
        status = self._pump(seen.extend, time.monotonic() + timeout, probe)
        if emit is not None:
            emit(bytes(seen))
        if status is not None:
            return
        tail = bytes(seen[-500:]).decode("utf-8", "replace")
        if self.remote:
            raise self._remote_start_error(tail, probe, timeout)
        if probe.session_ended:
            reason = f"the shell exited with status {probe.exit_status}"
        else:
            reason = f"timed out after {timeout:.0f} s"
        raise SessionStartError(
            f"shell {' '.join(self.command)!r} did not show {what}: {reason}; "
            f"last output: {tail!r}"
        )

    def _remote_start_error(
        self, tail: str, probe: StepOutcome, timeout: float
    ) -> SessionStartError:
        hint = self.target.explain_start_failure(tail)
        client = os.path.basename(self.command[0])
        if probe.session_ended:
            what = f"{client} exited with status {probe.exit_status}"
        else:
            what = f"no prompt within {timeout:.0f} s"
        return SessionStartError(
            f"cannot start a shell on {self.target}: {hint}. "
            f"({what}; output: {tail.strip()!r})"
        )

    def _write_step_file(self, code: str) -> None:
        """Replace the step file's contents; the descriptor stays open between steps."""
        data = code.encode("utf-8", "surrogateescape")
        if data and not data.endswith(b"\n"):
            data += b"\n"
        if self._step_fd is None:
            self._step_fd = os.open(
                self._step_file, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600
            )
        os.ftruncate(self._step_fd, 0)
        os.pwrite(self._step_fd, data, 0)

    def _clear_step_file(self) -> None:
        """Empty the step file once bash has run it: it may hold secrets."""
        if self._step_fd is not None:
            os.ftruncate(self._step_fd, 0)

    def send(self, data: bytes) -> None:
        """Send bytes the operator typed to the step that is running."""
        child = self._require_child()
        child.send(data)

    # --- internals -----------------------------------------------------------------

    def _require_child(self) -> pexpect.spawn:
        if self._child is None:
            raise SessionEnded("the shell session is not running; start it first")
        if self._child.closed or (not self._pending and not self._child.isalive()):
            where = f" on {self.target}" if self.remote else ""
            raise SessionEnded(
                f"the shell session{where} has ended "
                f"(exit status {self._child.exitstatus})"
            )
        return self._child

    def _send_line(self, line: str) -> None:
        assert self._child is not None
        self._child.send(line.encode() + b"\n")

    def _read(self, timeout: float, input_fd: int | None = None) -> bytes:
        """Return the next output chunk, b'' on timeout; raise EOF when the shell ends.

        Forwards what arrives on ``input_fd`` to the shell meanwhile.
        """
        child = self._child
        assert child is not None
        if input_fd is not None:
            ready, _, _ = select.select([child.child_fd, input_fd], [], [], timeout)
            if input_fd in ready:
                typed = os.read(input_fd, 1024)
                if typed:
                    if self.remote and b"\x03" in typed:
                        # SIGINT to bash before the Ctrl-C, as in _interrupt.
                        self._signal_shell(signal.SIGINT)
                    child.send(typed)
                    self._count_ctrl_c(typed)
            if child.child_fd not in ready:
                return b""
            timeout = 0
        try:
            return child.read_nonblocking(65536, timeout=timeout)
        except pexpect.TIMEOUT:
            return b""

    def _count_ctrl_c(self, typed: bytes) -> None:
        """Raise KeyboardInterrupt when the operator keeps pressing Ctrl-C.

        A step that ignores the forwarded SIGINT is then interrupted and, after
        the grace period, killed.
        """
        if b"\x03" not in typed:
            self._ctrl_c_presses = 0
            return
        self._ctrl_c_forwarded = True
        if not self.remote:
            self._signal_shell(signal.SIGINT)
        self._ctrl_c_presses += typed.count(b"\x03")
        if self._ctrl_c_presses >= CTRL_C_ESCALATION:
            self._ctrl_c_presses = 0
            self._escalated = True
            raise KeyboardInterrupt

    def _pump(
        self,
        emit: OutputCallback,
        deadline: float | None,
        outcome: StepOutcome,
        input_fd: int | None = None,
        stop_requested: Callable[[], bool] | None = None,
    ) -> int | None:
        """Pass output to ``emit`` until the prompt marker; return the exit status.

        Returns None at the deadline, when the shell ends, or when
        ``stop_requested`` returns True (then ``outcome.interrupted`` is set).
        """
        assert self._marker is not None
        buffer = self._pending
        while True:
            match = self._marker.search(buffer)
            if match:
                emit(bytes(buffer[: match.start()]))
                status = int(match.group(1))
                del buffer[: match.end()]
                return status
            # Hold back output from a possible marker start onwards.
            cut = buffer.rfind(_RS)
            if cut == -1:
                cut = len(buffer)
            if cut:
                emit(bytes(buffer[:cut]))
                del buffer[:cut]
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return None
            if stop_requested is not None and stop_requested():
                outcome.interrupted = True
                return None
            wait = 0.2 if deadline is None else min(0.2, deadline - now)
            try:
                chunk = self._read(wait, input_fd)
                if not chunk:
                    emit(b"")  # an idle tick, so callers can flush
                buffer += chunk
            except pexpect.EOF:
                if buffer:
                    emit(bytes(buffer))
                    buffer.clear()
                self._note_shell_ended(outcome)
                return None

    def _interrupt(self, emit: OutputCallback, outcome: StepOutcome) -> int | None:
        """Stop the running step: Ctrl-C, then after a grace period kill it.

        SIGINT goes to the step's foreground job through the terminal and to
        bash itself, so bash abandons the rest of the step even when the job
        handles SIGINT and exits normally. The session stays usable when the
        prompt comes back; when it does not, the shell is declared ended.

        NOTE: a step that set a trap on INT (``trap 'cleanup' INT``, in this
        step or an earlier one) is not abandoned: bash runs the trap and goes
        on with the step's next command, and the trap stays set for later
        steps. A DEBUG trap under ``shopt -s extdebug`` could skip those
        commands, but it made every simple command about 11 times slower
        (bash 5.2, a loop of assignments), ran for the user's trap commands
        too, and changes shell state that steps can see.
        """
        if not outcome.interrupted:
            outcome.timed_out = True
        child = self._require_child()
        log.info("interrupting step (Ctrl-C)")
        # bash gets SIGINT first. A job that handles Ctrl-C and exits at once
        # would otherwise let bash go on with the rest of the step before a
        # remote side command (tens of milliseconds) gets there.
        self._signal_shell(signal.SIGINT)
        child.sendcontrol("c")
        status = None
        if not self._escalated:
            grace_deadline = time.monotonic() + self.interrupt_grace
            try:
                status = self._pump(emit, grace_deadline, outcome)
            except KeyboardInterrupt:
                # Ctrl-C again: kill without waiting longer.
                status = None
        if status is not None or outcome.session_ended:
            return status
        log.warning(
            "step ignored Ctrl-C for %.1f s; killing its processes",
            self.interrupt_grace,
        )
        outcome.killed = True
        self._kill_foreground()
        status = self._pump(emit, time.monotonic() + KILL_GRACE, outcome)
        if status is None and not outcome.session_ended:
            log.error("shell did not return to its prompt; ending the session")
            self.close()
            outcome.session_ended = True
        # A killed step has no exit status of its own worth reporting.
        return None if outcome.killed else status

    def _signal_shell(self, signum: int) -> None:
        """Send a signal to the bash process itself.

        For a remote shell, child.pid is the docker or ssh client, which must
        not get the signal. A side command sends SIGINT (the only signal used)
        to the remote bash instead, and only while a job runs in the foreground.
        """
        if self._child is None or not self._child.isalive():
            return
        if self.remote:
            script = targets.interrupt_script(self._remote_pid)
            if self.target.run_side_command(script, self.env) is None:
                log.warning("could not send SIGINT to the shell on %s", self.target)
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self._child.pid, signum)

    def _kill_foreground(self) -> None:
        """Kill the terminal's foreground process group unless it is the shell."""
        child = self._require_child()
        if self.remote:
            script = targets.kill_foreground_script(self._remote_pid)
            answer = self.target.run_side_command(script, self.env)
            if answer is None:
                log.warning("could not kill the step's processes on %s", self.target)
            if answer != "killed\n":
                # The shell itself is busy, or the target did not respond.
                child.sendcontrol("\\")
            return
        try:
            group = os.tcgetpgrp(child.child_fd)
        except OSError:
            group = -1
        if group > 0 and group != child.pid:
            try:
                os.killpg(group, signal.SIGKILL)
                return
            except OSError as error:
                log.debug("killpg(%s) failed: %s", group, error)
        # The shell itself is busy (a builtin loop) or the group is remote: Ctrl-\.
        child.sendcontrol("\\")

    def _note_shell_ended(self, outcome: StepOutcome) -> None:
        assert self._child is not None
        self._child.close(force=True)
        self.exit_status = self._child.exitstatus
        if self.exit_status is None and self._child.signalstatus is not None:
            self.exit_status = 128 + self._child.signalstatus
        outcome.session_ended = True
        outcome.exit_status = self.exit_status
        log.info("shell on %s ended with status %s", self.target, self.exit_status)
        if self.remote and self._remote_pid:
            # A step ended the shell, or the target went away: ask the target.
            answer = self.target.run_side_command("true", self.env, timeout=3)
            self.target_lost = answer is None
            if self.target_lost:
                log.error("%s does not respond after its shell ended", self.target)
