"""Playbooks as tests: run every scenario of every section, and report coverage.

``runbook test`` and the pytest plugin both call these functions. A scenario
passes when its sandbox run exits 0: every step succeeded (or was skipped with
a reason) and every check held. A scenario marked ``pending`` is expected to
fail. When it passes, the report counts that as a failure, so that the mark
is removed. Several scenarios may test one section (one per cause of an
incident); each is its own case.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .errors import RunbookError
from .playbook import load_playbook
from .step_coverage import (
    ERROR,
    FAILED,
    MANUAL,
    NO_SCENARIO,
    NOT_RUN,
    PARENT,
    PENDING,
    RAN_FAILED,
    SKIP,
    SKIPPED,
    VERIFIED,
    CoverageRow,
    NumberedStep,
    StepResult,
    coverage,
    gaps,
    numbered_steps,
    read_step_results,
    render_coverage,
    step_counts,
)

__all__ = [
    "ERROR", "FAILED", "MANUAL", "NO_SCENARIO", "NOT_RUN", "PARENT", "PENDING",
    "SKIPPED", "VERIFIED",
    "Case", "CoverageRow", "Outcome", "collect", "coverage", "failed_steps", "gaps",
    "run_case", "render_outcome", "render_report", "render_summary",
]  # fmt: skip


@dataclass(frozen=True)
class Case:
    """One scenario of one section of one playbook."""

    playbook: str
    section_path: tuple[str, ...]
    #: The section's slug: unique in the playbook, unlike a title with "/".
    slug: str
    line: int
    scenario: Any  # runbook.sandbox.scenarios.Scenario, imported lazily
    #: True when other scenarios test the same section: the node id names it.
    shared: bool = False

    @property
    def name(self) -> str:
        return self.section_path[-1]

    @property
    def node_id(self) -> str:
        """The section path below the top heading, and the scenario when shared."""
        section = " / ".join(self.section_path[1:] or self.section_path)
        return f"{section} [{self.scenario.name}]" if self.shared else section

    def matches(self, keyword: str) -> bool:
        """Tell whether ``-k keyword`` selects this case (any case)."""
        text = " ".join(self.section_path) + " " + self.scenario.name
        return keyword.lower() in text.lower()


@dataclass
class Outcome:
    case: Case
    #: passed, failed, expected failure (pending), unexpected pass (pending),
    #: error, or skipped (the sandbox cannot run the scenario's deployment here)
    status: str
    exit_code: int | None
    seconds: float
    checks: list[dict[str, Any]] = field(default_factory=list)
    stopped: str | None = None
    transcript: str | None = None
    log: str = ""
    #: What the run did with each step, by its number in the run.
    steps: dict[int, StepResult] = field(default_factory=dict)
    #: The steps of the run, numbered as the transcript numbers them.
    numbered: list[NumberedStep] = field(default_factory=list)
    #: Seconds from the container's start until /health returned 200.
    ready_seconds: float | None = None
    #: Seconds from the case's start to the first transcript record: the image
    #: lookup, the container's start and the fault with its proof.
    prepare_seconds: float | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("passed", "expected failure", "skipped")


def collect(playbooks: Iterable[str], keyword: str | None = None) -> list[Case]:
    """Return a case for each scenario of ``playbooks``, in document order.

    ``keyword`` keeps the cases whose section path or scenario name contains
    it, in any case.
    """
    cases = []
    for path in playbooks:
        pairs = _scenarios(path)
        per_section: dict[tuple[str, ...], int] = {}
        for _, section in pairs:
            per_section[section.path] = per_section.get(section.path, 0) + 1
        # Document order, and the scenarios of one section by name.
        pairs.sort(key=lambda pair: (pair[1].start_line, pair[0].name))
        for scenario, section in pairs:
            case = Case(
                path,
                section.path,
                section.slug,
                section.start_line,
                scenario,
                shared=per_section[section.path] > 1,
            )
            if keyword and not case.matches(keyword):
                continue
            cases.append(case)
    return cases


def _scenarios(path: str) -> list[tuple[Any, Any]]:
    from .sandbox.layout import find_layout
    from .sandbox.scenarios import scenarios_for

    layout = find_layout(Path(path).resolve().parent)
    return scenarios_for(layout.scenario_dir, path, load_playbook(path))


def transcript_name(case: Case) -> str:
    """Return the file name of a case's transcript, unique per scenario."""
    slug = re.sub(r"[^a-z0-9]+", "-", case.node_id.lower()).strip("-")
    return f"{Path(case.playbook).stem}--{slug}.jsonl"


def run_case(case: Case, transcript_dir: Path | None = None) -> Outcome:
    """Run one case in a fresh sandbox and return its outcome."""
    from .commands import RunRequest
    from .sandbox.compose import ComposeUnavailable
    from .sandbox.run import run_in_sandbox

    transcript = None
    if transcript_dir is not None:
        transcript_dir.mkdir(parents=True, exist_ok=True)
        transcript = str(transcript_dir / transcript_name(case))
    log = io.StringIO()
    request = RunRequest(
        playbook=case.playbook,
        section=case.slug,
        assume_yes=True,
        # The container is thrown away after the run, so steps marked confirm
        # run too: a test that left them out would not test them.
        allow_destructive=True,
        timeout=600,
        transcript=transcript,
        target="sandbox",
        scenario=case.scenario.name,
        testing=True,
    )
    started_at = time.time()
    started = time.monotonic()
    skipped = False
    try:
        exit_code: int | None = run_in_sandbox(request, log, say=log_line(log))
        error = None
    except ComposeUnavailable as unavailable:
        # The machine lacks the deployment's tool: not a defect of the playbook.
        exit_code, error, skipped = None, str(unavailable), True
    except RunbookError as failure:
        exit_code, error = None, str(failure)
    seconds = time.monotonic() - started
    pending = case.scenario.pending
    if skipped:
        status = "skipped"
    elif error is not None:
        status = "expected failure" if pending else "error"
    elif exit_code == 0:
        status = "unexpected pass" if pending else "passed"
    else:
        status = "expected failure" if pending else "failed"
    outcome = Outcome(case, status, exit_code, seconds, stopped=error, log="")
    section = load_playbook(case.playbook).find_section(case.slug)
    outcome.numbered = numbered_steps(case.playbook, section, case.scenario)
    if transcript is not None and Path(transcript).exists():
        outcome.transcript = transcript
        _read_transcript(outcome, started_at)
    outcome.log = log.getvalue()
    return outcome


def _read_transcript(outcome: Outcome, started_at: float) -> None:
    """Fill in an outcome's checks, steps and timings from its transcript."""
    from .transcript import read_transcript

    assert outcome.transcript is not None
    records = list(read_transcript(outcome.transcript))
    for record in records:
        if record["type"] == "check":
            outcome.checks.append(record)
        elif record["type"] == "end":
            outcome.stopped = outcome.stopped or _for_test_report(record.get("stopped"))
        elif record["type"] == "sandbox" and "ready_seconds" in record:
            outcome.ready_seconds = float(record["ready_seconds"])
    if records and "time" in records[0]:
        first = datetime.fromisoformat(records[0]["time"]).timestamp()
        outcome.prepare_seconds = max(0.0, first - started_at)
    scenario = outcome.case.scenario
    outcome.steps = read_step_results(records, outcome.numbered, scenario)


#: The runner's advice when a ``--yes`` run stops at a failed step. ``runbook
#: test`` has no ``--keep-going``, so its report words the stop for a test.
_KEEP_GOING_ADVICE = re.compile(r";? stopping \(--keep-going would [^)]*\)")


def _for_test_report(stopped: str | None) -> str | None:
    if stopped is None:
        return None
    test_wording = "; runbook test stops a scenario at its first failed step"
    return _KEEP_GOING_ADVICE.sub(test_wording, stopped)


def log_line(stream: io.StringIO) -> Callable[[str], None]:
    def say(message: str) -> None:
        stream.write(message + "\n")

    return say


MARKS = {
    "passed": "PASS ",
    "failed": "FAIL ",
    "error": "ERROR",
    "expected failure": "XFAIL",
    "unexpected pass": "XPASS",
    "skipped": "SKIP ",
}


def render_outcome(outcome: Outcome) -> str:
    """Render one case's result line, and what went wrong when it failed."""
    checks = sum(1 for check in outcome.checks if check.get("passed"))
    lines = [
        f"{MARKS[outcome.status]} {outcome.case.node_id}  "
        f"({outcome.case.scenario.path.name}, {outcome.seconds:.1f} s, "
        f"{checks}/{len(outcome.checks)} checks{_all_skipped(outcome)})"
    ]
    if outcome.status == "skipped":
        lines.append(f"      skipped: {outcome.stopped}")
    if not outcome.ok:
        lines += [f"      {failure}" for failure in failed_steps(outcome)]
        for check in outcome.checks:
            if not check.get("passed"):
                detail = str(check["detail"]).replace("\n", "\n        ")
                lines.append(f"      check failed: {check['name']}: {detail}")
        if outcome.stopped:
            lines.append(f"      stopped: {outcome.stopped}")
        if outcome.status == "unexpected pass":
            lines.append(
                "      the scenario is marked pending but passed: remove 'pending'"
            )
        if outcome.transcript:
            lines.append(f"      transcript: {outcome.transcript}")
    return "\n".join(lines) + "\n"


def _all_skipped(outcome: Outcome) -> str:
    """Return ", all N steps skipped" when the run skipped every step, else ""."""
    results = outcome.steps.values()
    if not results or any(result.result != SKIP for result in results):
        return ""
    count = len(results)
    return ", its 1 step skipped" if count == 1 else f", all {count} steps skipped"


def failed_steps(outcome: Outcome) -> list[str]:
    """Return a line for each step that failed in a case's run, with the cause."""
    by_number = {item.number: item for item in outcome.numbered}
    lines = []
    for number, result in sorted(outcome.steps.items()):
        if result.result != RAN_FAILED:
            continue
        item = by_number.get(number)
        where = ""
        if item is not None:
            name = f"{item.step.name}, " if item.step.name else ""
            where = f" ({name}{Path(item.playbook).name}:{item.step.start_line})"
        lines.append(f"step {number}{where} failed: {result.reason}")
    return lines


def render_summary(outcomes: list[Outcome], rows: list[CoverageRow]) -> str:
    """Render the coverage of every section and step, and the counts."""
    lines = render_coverage(rows)
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    summary = ", ".join(f"{count} {status}" for status, count in counts.items())
    missing = sum(
        1 for row in rows if any(step.state == NO_SCENARIO for step in row.step_rows)
    )
    steps = ", ".join(f"{n} {state}" for state, n in step_counts(rows).items())
    lines.append("")
    lines.append(
        f"{summary or 'no section ran'}; {missing} section(s) have steps that no "
        "scenario runs"
    )
    if steps:
        lines.append(f"steps: {steps}")
    return "\n".join(lines) + "\n"


def render_report(outcomes: list[Outcome], rows: list[CoverageRow]) -> str:
    """Render every result line, then the coverage and the counts."""
    return "".join(render_outcome(o) for o in outcomes) + render_summary(outcomes, rows)
