"""Records of a run: decisions, per-step records, the run result, exit statuses."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from .plan import PlannedStep
from .session import StepOutcome

EXIT_OK = 0
EXIT_STEP_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class Decision(StrEnum):
    """A choice for a step, made by the operator or by the ``--yes`` policy."""

    RUN = "run"
    SKIP = "skip"
    EDIT = "edit"
    QUIT = "quit"
    ALL = "all"
    RETRY = "retry"
    RESTART = "restart"


@dataclass
class StepRecord:
    """The final state of one planned step in a run."""

    planned: PlannedStep
    decision: str
    code: str = ""
    outcome: StepOutcome | None = None
    attempts: int = 0
    #: Why a step was skipped without asking (its deployment, skip-test,
    #: interactive under --yes, a sandbox scenario).
    reason: str | None = None

    @property
    def failed(self) -> bool:
        return self.outcome is not None and not self.outcome.succeeded

    @property
    def status_text(self) -> str:
        """The exit status column of the summary table."""
        outcome = self.outcome
        if outcome is None:
            return "-"
        if outcome.session_ended and outcome.exit_status is None:
            return "shell lost (no prompt)"
        if outcome.session_ended:
            return f"shell exited ({outcome.exit_status})"
        if outcome.timed_out:
            return "timed out"
        if outcome.killed:
            return "killed"
        if outcome.interrupted:
            return f"interrupted ({outcome.exit_status})"
        if outcome.exit_status is None:
            return "incomplete input"
        expected = outcome.expected_status
        if not outcome.status_accepted and expected != 0 and expected is not None:
            return f"{outcome.exit_status} (expected {describe_statuses(expected)})"
        if outcome.output_diff is not None:
            return f"{outcome.exit_status}, output did not match"
        return str(outcome.exit_status)

    @property
    def duration(self) -> float | None:
        return None if self.outcome is None else self.outcome.duration


@dataclass
class RunResult:
    """Every step's record, the exit status of the run, and why it stopped early."""

    records: list[StepRecord]
    exit_code: int
    stopped: str | None = None
    transcript_path: str | None = None
    #: True when the transcript could not be written in full.
    transcript_failed: bool = False


@dataclass
class RunOptions:
    """Run-wide settings from the command line."""

    assume_yes: bool = False
    keep_going: bool = False
    allow_destructive: bool = False
    timeout: float | None = None
    target: str = "local"
    mode: str = "interactive"
    #: Steps not to run, by number, with the reason (a sandbox scenario's skips).
    skip_steps: Mapping[int, str] = field(default_factory=dict)
    #: A docs-as-tests run: steps marked ``skip-test`` are skipped.
    testing: bool = False
    #: The deployment this run is for: steps whose ``when`` names other
    #: deployments are skipped. None asks the operator when a step has ``when``
    #: (a ``--yes`` run without it is rejected before it starts).
    deployment: str | None = None


def summary_row(record: StepRecord) -> dict[str, object]:
    duration = record.duration
    row: dict[str, object] = {
        "step": record.planned.number,
        "decision": record.decision,
        "exit_status": None if record.outcome is None else record.outcome.exit_status,
        "result": record.status_text,
        "duration": None if duration is None else round(duration, 3),
    }
    if record.reason is not None:
        row["reason"] = record.reason
    return row


def describe_statuses(expected: int | frozenset[int] | tuple[int, ...] | str) -> str:
    """Return accepted exit statuses as text: ``3``, ``0 or 1``, ``any``."""
    if isinstance(expected, int):
        return str(expected)
    if isinstance(expected, str):
        return expected
    numbers = [str(number) for number in sorted(expected)]
    if len(numbers) == 1:
        return numbers[0]
    return ", ".join(numbers[:-1]) + " or " + numbers[-1]
