"""Runner: walks a plan step by step, asks for decisions, records results.

The runner never talks to the terminal itself. It asks a Prompter what to do
before each step and after each failure, runs steps in a BashSession, and
writes every decision and result to the transcript as it happens.
"""

from __future__ import annotations

import logging
import shlex
import signal
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from . import variables
from .errors import EndOfInput, SessionEnded, SessionError
from .expected import check_output
from .live import LiveOutput, signals_as_interrupts
from .plan import (
    Plan,
    PlannedStep,
    annotation_skips,
    check_deployment,
    check_destructive,
    check_values,
    deployment_choices,
    find_missing,
    variant_steps,
)
from .records import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_STEP_FAILED,
    Decision,
    RunOptions,
    RunResult,
    StepRecord,
    summary_row,
)
from .session import BashSession, StepOutcome
from .transcript import Masker, Transcript, output_fields

log = logging.getLogger(__name__)


class Prompter(Protocol):
    """How the runner asks for decisions and shows progress."""

    #: File descriptor of the operator's terminal to forward to a running step.
    input_fd: int | None
    #: Whether steps may read the terminal (otherwise their stdin is /dev/null).
    steps_read_terminal: bool

    def before_step(self, planned: PlannedStep, position: int, code: str) -> Decision:
        """Show the step and return RUN, SKIP, EDIT, QUIT or ALL."""
        ...

    def edit(self, code: str) -> str | None:
        """Return the edited code, or None when the operator gave up editing."""
        ...

    def ask_value(self, name: str, kind: str, secret: bool) -> str | None:
        """Return a value for a placeholder or variable, None to leave it unset."""
        ...

    def run_started(self, plan: Plan) -> None:
        """Show what the run is about to do, with the playbook's parse warnings."""
        ...

    def choose_deployment(self, choices: Sequence[str], plan: Plan) -> str | None:
        """Return the deployment the operator picks from ``choices``, None to quit."""
        ...

    def step_skipped(self, planned: PlannedStep, reason: str) -> None:
        """Show that a step is skipped without asking, and why."""
        ...

    def step_started(self, planned: PlannedStep, code: str, announce: bool) -> None:
        """Show that a step starts; ``announce`` shows the step itself first."""
        ...

    def step_output(self, data: bytes) -> None: ...

    def step_finished(self, planned: PlannedStep, outcome: StepOutcome) -> None: ...

    def confirm(self, planned: PlannedStep, code: str, show: bool) -> bool:
        """Return whether the operator confirmed a step marked ``confirm``."""
        ...

    def warn(self, text: str) -> None:
        """Show a warning that does not stop the run."""
        ...

    def after_failure(self, planned: PlannedStep, outcome: StepOutcome) -> Decision:
        """Return RETRY, SKIP, EDIT or QUIT after a failed step."""
        ...

    def after_session_ended(
        self, planned: PlannedStep, outcome: StepOutcome
    ) -> Decision:
        """Return RESTART or QUIT after a step ended the shell."""
        ...

    def finished(self, result: RunResult) -> None: ...


@dataclass
class _State:
    records: list[StepRecord] = field(default_factory=list)
    run_all: bool = False
    stopped: str | None = None
    interrupted: bool = False
    #: The shell could not be started, or its target stopped responding.
    session_failed: bool = False


class Runner:
    """Runs one plan in one shell session."""

    def __init__(
        self,
        plan: Plan,
        prompter: Prompter,
        transcript: Transcript,
        options: RunOptions,
        session_factory: Callable[[], BashSession] = BashSession,
        finish: Callable[[RunResult], int | None] | None = None,
        local_session_factory: Callable[[], BashSession] | None = None,
    ) -> None:
        self.plan = plan
        self.prompter = prompter
        self.transcript = transcript
        self.options = options
        self.session_factory = session_factory
        #: Starts the shell for steps marked target=local when the run's own
        #: shell is elsewhere; None runs them in the run's shell.
        self.local_session_factory = local_session_factory
        #: That shell, started at the first step marked target=local.
        self.local_session: BashSession | None = None
        #: The shell of the step that runs or ran last.
        self._step_session: BashSession | None = None
        #: Called after the steps, before the end record; may return a new exit status.
        self.finish = finish
        self.session: BashSession | None = None
        self.masker: Masker = transcript.masker
        self._asked: set[str] = set()
        self._assigned: set[str] = set()
        self._sourced = False
        self._current: StepRecord | None = None
        #: True from a step's ``started`` record to its ``step`` record.
        self._in_step = False
        #: The signal number when SIGTERM or SIGHUP stopped the run.
        self.terminated_by: int | None = None

    def check_deployment(self) -> None:
        """Settle the run's deployment and mark the steps that attributes skip.

        ``RunOptions.deployment`` wins over ``Plan.deployment``. A ``--yes``
        run with ``when`` steps and no deployment raises DeploymentRequired;
        an interactive one asks when it starts.
        """
        deployment = self.options.deployment or self.plan.deployment
        check_deployment(self.plan, deployment, required=self.options.assume_yes)
        self._set_deployment(deployment)

    def _set_deployment(self, deployment: str | None) -> None:
        self.options.deployment = self.plan.deployment = deployment
        self.plan.skipped = annotation_skips(
            self.plan, deployment, self.options.testing, self.options.assume_yes
        )

    def check_destructive(self) -> None:
        """Reject a ``--yes`` run of steps marked ``confirm`` without consent."""
        if self.options.assume_yes and not self.options.allow_destructive:
            check_destructive(self.plan)

    def check_values(self) -> list[variables.MissingValue]:
        """Return the values the plan needs that nobody supplied.

        With ``assume_yes`` a missing value raises MissingValues, because
        nobody can be asked.
        """
        if self.options.assume_yes:
            check_values(self.plan)
            return []
        return find_missing(self.plan)

    def run(self) -> RunResult:
        """Run the plan; return every step's record and the run's exit status.

        SIGTERM and SIGHUP stop the run like Ctrl-C: the step in progress is
        interrupted and recorded, and the transcript gets its end record.
        """
        self.check_deployment()
        self.check_destructive()
        self.check_values()
        self._collect_secrets()
        state = _State(run_all=self.options.assume_yes)
        self.transcript.on_error = self.prompter.warn
        self.transcript.write(
            "start",
            playbook=self.plan.playbook.path,
            section=list(self.plan.section.path),
            steps=[p.number for p in self.plan.steps],
            total_steps=self.plan.total_steps,
            target=self.options.target,
            mode=self.options.mode,
            deployment=self.options.deployment,
            testing=self.options.testing,
        )
        self.prompter.run_started(self.plan)
        with signals_as_interrupts(self._note_signal):
            self._run_steps(state)
        result = RunResult(
            records=state.records,
            exit_code=_exit_code(state, self.terminated_by),
            stopped=state.stopped,
            transcript_path=str(self.transcript.path),
            transcript_failed=self.transcript.error is not None,
        )
        if self.finish is not None:
            changed = self.finish(result)
            if changed is not None:
                result.exit_code = changed
        log.info(
            "run of %s finished with exit status %d; transcript %s",
            self.plan.playbook.path,
            result.exit_code,
            self.transcript.path,
        )
        self.transcript.write(
            "end",
            exit_code=result.exit_code,
            stopped=result.stopped,
            summary=[summary_row(r) for r in result.records],
        )
        self.prompter.finished(result)
        return result

    def _run_steps(self, state: _State) -> None:
        """Start the shell and run each planned step; record what did not run."""
        try:
            asks = self.options.deployment is None and variant_steps(self.plan)
            if asks and not self._ask_deployment():
                state.stopped = "operator quit at the deployment prompt"
                self._record_unfinished(state)
                return
            self.session = self.session_factory()
            self.session.start()
            self._export_values(self.plan.values.keys(), self.session)
            for position, planned in enumerate(self.plan.steps, 1):
                if self.terminated_by is not None and not state.stopped:
                    state.interrupted = True
                    state.stopped = self._interrupt_reason()
                if state.stopped:
                    self._record(state, StepRecord(planned, "not run"))
                    continue
                self._run_step(state, planned, position)
        except KeyboardInterrupt as interrupt:
            state.interrupted = True
            reason = self._interrupt_reason()
            if isinstance(interrupt, EndOfInput) and self.terminated_by is None:
                reason = f"no answer: {interrupt}"
            state.stopped = state.stopped or reason
            self._record_unfinished(state)
        except SessionError as error:
            # A shell that cannot start, or a target that went away: nothing
            # more can run, but the transcript still gets its end record.
            log.error("%s", error)
            state.session_failed = True
            state.stopped = state.stopped or str(error)
            self._record_unfinished(state)
        finally:
            self._current = None
            if self.session is not None:
                self.session.close()
            if self.local_session is not None:
                self.local_session.close()

    def _ask_deployment(self) -> bool:
        """Ask which deployment this run is for, once, and record the answer.

        Returns False when the operator quit instead of answering.
        """
        name = self.prompter.choose_deployment(deployment_choices(self.plan), self.plan)
        if name is None:
            return False
        self._set_deployment(name)
        self.transcript.write("deployment", deployment=name)
        return True

    def _record_unfinished(self, state: _State) -> None:
        """Record the step in progress, if it ran, and the rest as not run."""
        current = self._current
        if (
            current is not None
            and current.outcome is not None
            and current not in state.records
        ):
            self._record(state, current)
        done = {r.planned.number for r in state.records}
        for planned in self.plan.steps:
            if planned.number not in done:
                self._record(state, StepRecord(planned, "not run"))

    def _note_signal(self, signum: int) -> bool:
        """Record a stop signal; raise at once only when no step is running."""
        self.terminated_by = signum
        return not self._in_step

    def _stop_requested(self) -> bool:
        return self.terminated_by is not None

    def _on_local_shell(self) -> bool:
        """Return whether the last step ran in the separate shell on this machine."""
        return (
            self._step_session is not None and self._step_session is self.local_session
        )

    def _where(self) -> str:
        """Return " on TARGET" for a remote shell, "" for a local one."""
        if self.options.target == "local" or self._on_local_shell():
            return ""
        return f" on {self.options.target}"

    def _target_lost(self) -> str:
        """Return a note when the remote target stopped responding, else ""."""
        session = self._step_session or self.session
        if session is None or not session.target_lost:
            return ""
        return (
            f", and {self.options.target} no longer responds "
            "(stopped, removed or unreachable)"
        )

    def _interrupt_reason(self) -> str:
        if self.terminated_by is not None:
            return f"terminated by {signal.Signals(self.terminated_by).name}"
        return "interrupted by the operator"

    # --- one step ----------------------------------------------------------

    def _run_step(self, state: _State, planned: PlannedStep, position: int) -> None:
        code = planned.step.code
        reason = self.options.skip_steps.get(planned.number)
        if reason is None:
            reason = self.plan.skipped.get(planned.number)
        if reason is not None:
            self.prompter.step_skipped(planned, reason)
            self._record(state, StepRecord(planned, "skip", reason=reason))
            return
        record = StepRecord(planned, "run", code)
        self._current = record
        edited = False
        while True:
            decision = Decision.RUN
            if not state.run_all:
                decision = self.prompter.before_step(planned, position, code)
            if decision is Decision.ALL:
                state.run_all = True
                decision = Decision.RUN
            if decision is Decision.QUIT:
                state.stopped = f"operator quit before step {planned.number}"
                self._record(state, StepRecord(planned, "quit"))
                return
            if decision is Decision.SKIP:
                self._record(state, StepRecord(planned, "skip"))
                return
            if decision is Decision.EDIT:
                new_code = self.prompter.edit(code)
                if new_code is None:
                    continue
                code, edited = new_code, True
            break
        announce = state.run_all
        if planned.step.attributes.get("confirm") and not self._confirmed(
            planned, code, show=announce
        ):
            reason = "operator did not confirm"
            self._record(state, StepRecord(planned, "skip", reason=reason))
            return
        if planned.step.attributes.get("confirm") and not self.options.assume_yes:
            announce = False  # the confirmation already showed the step
        while True:
            record.decision = "edit" if edited else "run"
            record.code = code
            record.attempts += 1
            outcome = self._execute(planned, code, edited, announce)
            announce = state.run_all
            record.outcome = outcome
            if outcome.succeeded:
                break
            follow_up = self._after_failure(state, planned, outcome)
            if follow_up is Decision.EDIT:
                new_code = self.prompter.edit(code)
                if new_code is not None:
                    code, edited = new_code, True
                continue
            if follow_up is Decision.RETRY:
                continue
            break
        self._record(state, record)
        self._current = None

    def _confirmed(self, planned: PlannedStep, code: str, show: bool) -> bool:
        """Return whether a step marked ``confirm`` may run.

        Interactive runs ask the operator to type the step's name, showing the
        step first when no prompt has (``show``). ``--yes`` runs only get here
        with ``--allow-destructive`` (see ``check_destructive``).
        """
        if self.options.assume_yes:
            return self.options.allow_destructive
        return self.prompter.confirm(planned, self._display_code(code), show)

    def _after_failure(
        self, state: _State, planned: PlannedStep, outcome: StepOutcome
    ) -> Decision:
        """Decide what follows a failed step; set ``state.stopped`` to end the run."""
        if self.terminated_by is not None:
            state.interrupted = True
            state.stopped = self._interrupt_reason()
            return Decision.QUIT
        if outcome.session_ended:
            if self.options.assume_yes:
                if outcome.exit_status is None:
                    how = "stopped responding and was closed"
                else:
                    how = f"exited with status {outcome.exit_status}"
                state.stopped = (
                    f"the shell{self._where()} {how} during step {planned.number}"
                    f"{self._target_lost()}; later steps need its state and were "
                    "not run"
                )
                return Decision.QUIT
            choice = self.prompter.after_session_ended(planned, outcome)
            if choice is Decision.RESTART:
                session = self._step_session or self.session
                assert session is not None
                session.restart()
                if session is self.session:
                    # What earlier steps set is gone with the old shell.
                    self._assigned.clear()
                    self._sourced = False
                self._export_values(self.plan.values.keys(), session)
                return Decision.SKIP
            state.stopped = f"operator quit after step {planned.number} ended the shell"
            return Decision.QUIT
        if self.options.assume_yes:
            if outcome.interrupted:
                state.interrupted = True
                state.stopped = f"interrupted during step {planned.number}"
            elif not self.options.keep_going:
                state.stopped = (
                    f"step {planned.number} failed; stopping "
                    "(--keep-going would run the remaining steps)"
                )
            return Decision.QUIT
        choice = self.prompter.after_failure(planned, outcome)
        if choice is Decision.QUIT:
            state.stopped = f"operator quit after step {planned.number} failed"
        return choice

    def _execute(
        self, planned: PlannedStep, code: str, edited: bool, announce: bool
    ) -> StepOutcome:
        """Run one step with stop signals deferred to the session's own check."""
        self._ask_missing(planned, code)
        self._in_step = True
        try:
            return self._execute_step(planned, code, edited, announce)
        finally:
            self._in_step = False

    def _execute_step(
        self, planned: PlannedStep, code: str, edited: bool, announce: bool
    ) -> StepOutcome:
        """Fill in values, run the code in the session and return the outcome.

        ``announce`` shows the step first, for runs where no prompt showed it.
        """
        step = planned.step
        session = self._session_for(planned)
        to_run = code
        if "<" in code and self.plan.values:
            to_run = variables.substitute_placeholders(code, self.plan.values)
        timeout = step.attributes.get("timeout", self.options.timeout)
        heredoc = None
        if "<<" in to_run:
            heredoc = variables.find_unterminated_heredoc(to_run)
        shown = self._display_code(code)
        self.prompter.step_started(planned, shown, announce)
        if heredoc is not None:
            outcome = _incomplete_input(heredoc)
            self.prompter.step_output(outcome.output)
        else:
            if not session.alive:
                raise SessionEnded("the shell session has ended")
            self.transcript.write(
                "started", step=planned.number, line=step.start_line,
                command=shown,
            )  # fmt: skip
            if step.attributes.get("interactive") and self.prompter.input_fd is None:
                self.prompter.warn(
                    f"step {planned.number} is marked interactive, but stdin is "
                    "not a terminal, so nobody can type into it"
                )
            live = LiveOutput(
                self.prompter.step_output, self.transcript, planned.number
            )
            outcome = session.run(
                to_run,
                timeout=timeout,
                stdin_from_terminal=self.prompter.steps_read_terminal,
                on_output=live.feed,
                input_fd=self.prompter.input_fd,
                stop_requested=self._stop_requested,
            )
            live.flush()
            accepted = step.accepted_statuses
            if accepted is not None and len(accepted) == 1:
                outcome.expected_status = next(iter(accepted))
            else:
                outcome.expected_status = accepted
            if step.expected_output is not None and _finished(outcome):
                self._check_output(planned, outcome)
        if not self.options.assume_yes:
            self._assigned |= variables.find_assignments(to_run)
            self._sourced = self._sourced or variables.may_set_any_variable(to_run)
        log.info(
            "step %d (line %d) finished: %s in %.3f s",
            planned.number,
            planned.step.start_line,
            StepRecord(planned, "run", outcome=outcome).status_text,
            outcome.duration,
        )
        self.prompter.step_finished(planned, outcome)
        extra: dict[str, object] = {}
        if step.runs_locally:
            extra["target"] = "local"
        if step.expected_output is not None and _finished(outcome):
            extra["output_matched"] = outcome.output_diff is None
        if outcome.output_diff is not None:
            extra["output_diff"] = outcome.output_diff
        self.transcript.write(
            "step",
            step=planned.number,
            name=step.name,
            heading_path=list(step.heading_path),
            line=step.start_line,
            command=shown,
            edited=edited,
            exit_status=outcome.exit_status,
            timed_out=outcome.timed_out,
            interrupted=outcome.interrupted,
            killed=outcome.killed,
            session_ended=outcome.session_ended,
            duration=round(outcome.duration, 6),
            truncated_bytes=outcome.truncated_bytes,
            **output_fields(outcome.output, self.masker),
            **extra,
        )
        return outcome

    def _session_for(self, planned: PlannedStep) -> BashSession:
        """Return the shell a step runs in; start the local one on first use."""
        assert self.session is not None
        if not planned.step.runs_locally or self.local_session_factory is None:
            self._step_session = self.session
            return self.session
        if self.local_session is None:
            self.local_session = self.local_session_factory()
            self.local_session.start()
            self._export_values(self.plan.values.keys(), self.local_session)
        self._step_session = self.local_session
        return self.local_session

    def _check_output(self, planned: PlannedStep, outcome: StepOutcome) -> None:
        """Set ``outcome.output_diff``; a stop signal meanwhile interrupts the step.

        A step's own timeout does not cover this check. A user's regular
        expression can backtrack for minutes, and Python runs signal handlers
        inside the ``re`` module, so SIGTERM, SIGHUP and Ctrl-C raise
        KeyboardInterrupt here and the step is recorded as interrupted.
        """
        try:
            self._in_step = False
            if self.terminated_by is not None:
                raise KeyboardInterrupt
            outcome.output_diff = self._compare_output(planned, outcome)
        except KeyboardInterrupt:
            outcome.interrupted = True
            self.prompter.warn(
                f"step {planned.number}: the output check was interrupted; "
                "the output was not compared"
            )
        finally:
            self._in_step = True

    def _compare_output(self, planned: PlannedStep, outcome: StepOutcome) -> str | None:
        """Return the diff from the step's expected output to its masked output."""
        step = planned.step
        assert step.expected_output is not None
        actual = self.masker.data(outcome.output).decode("utf-8", "replace")
        return check_output(
            self.masker.text(step.expected_output),
            actual,
            regex=step.output_regex,
            expected_label=f"expected ({self.plan.playbook.path}:{step.output_line})",
            actual_label=f"output of step {planned.number}",
        )

    # --- values ------------------------------------------------------------

    def _ask_missing(self, planned: PlannedStep, code: str) -> None:
        """Ask the operator for the values this step needs and nobody supplied.

        Names that steps run so far assign count as supplied. With
        ``assume_yes`` nothing is asked: ``check_values`` already failed the
        run if anything was missing.
        """
        if self.options.assume_yes:
            return
        known = {**dict.fromkeys(self._assigned, ""), **self.plan.values}
        missing = variables.find_missing_values([code], known, self.plan.environment)
        if self._sourced:
            # An earlier step ran source or eval: any variable may be set now.
            missing = [m for m in missing if m.kind == "placeholder"]
        new_variables = []
        for item in missing:
            if item.name in self._asked:
                continue
            self._asked.add(item.name)
            secret = variables.is_secret_name(item.name)
            value = self.prompter.ask_value(item.name, item.kind, secret)
            if value is None:
                continue
            self.plan.values[item.name] = value
            if secret:
                self.masker.add([value])
            if item.kind == "variable":
                new_variables.append(item.name)
        for session in (self.session, self.local_session):
            if session is not None:
                self._export_values(new_variables, session)

    def _export_values(self, names: Iterable[str], session: BashSession) -> None:
        """Set supplied variables in a shell, without recording the command."""
        lines = [
            f"export {name}={shlex.quote(self.plan.values[name])}"
            for name in names
            if name.isidentifier()
        ]
        if lines:
            session.run("\n".join(lines), timeout=10)

    def _display_code(self, code: str) -> str:
        """Return the code as shown and recorded: secret values become ``***``.

        Placeholders are filled in with ``***`` for secret names, so no quoted
        or escaped form of a secret reaches the screen or the transcript.
        """
        shown_values = {
            name: "***" if variables.is_secret_name(name) else value
            for name, value in self.plan.values.items()
        }
        if "<" in code and shown_values:
            code = variables.substitute_placeholders(code, shown_values)
        return self.masker.text(code)

    def _collect_secrets(self) -> None:
        secret_values = [
            value
            for name, value in self.plan.values.items()
            if variables.is_secret_name(name)
        ]
        for planned in self.plan.steps:
            for ref in variables.find_variable_references(planned.step.code):
                value = self.plan.environment.get(ref.name)
                if value and variables.is_secret_name(ref.name):
                    secret_values.append(value)
        self.masker.add(secret_values)

    def _record(self, state: _State, record: StepRecord) -> None:
        state.records.append(record)
        if record.outcome is None:
            reason = record.reason
            extra = {} if reason is None else {"reason": reason}
            self.transcript.write(
                "decision",
                step=record.planned.number,
                decision=record.decision,
                **extra,
            )


def _finished(outcome: StepOutcome) -> bool:
    """Return whether a step ended on its own with an accepted exit status."""
    return (
        outcome.status_accepted
        and not outcome.timed_out
        and not outcome.interrupted
        and not outcome.session_ended
    )


def _incomplete_input(heredoc: tuple[str, int]) -> StepOutcome:
    delimiter, line = heredoc
    message = (
        f"runbook: incomplete input: the here-document opened on line {line} of "
        f"this step is never closed by a line containing only {delimiter!r}; "
        "the step was not sent to the shell. Edit the step to close it.\n"
    )
    return StepOutcome(exit_status=None, output=message.encode(), duration=0.0)


def _exit_code(state: _State, terminated_by: int | None) -> int:
    if terminated_by is not None:
        return 128 + terminated_by
    if state.interrupted:
        return EXIT_INTERRUPTED
    if state.session_failed:
        return EXIT_STEP_FAILED
    if any(r.failed for r in state.records):
        return EXIT_STEP_FAILED
    return EXIT_OK
