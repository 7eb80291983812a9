"""Playbooks as tests: run every section that has a scenario, and report coverage.

``runbook test`` and the pytest plugin both call these functions. A section
passes when its sandbox run exits 0: every step succeeded (or was skipped by
the scenario with a reason) and every check held. A scenario marked
``pending`` is expected to fail. When it passes, the report counts that as a
failure, so that the mark is removed.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import RunbookError
from .playbook import Playbook, Section, load_playbook

#: Section states in the coverage report.
VERIFIED = "verified"
PENDING = "pending"
NO_SCENARIO = "no scenario"
MANUAL = "manual"
PARENT = "parent"


@dataclass(frozen=True)
class Case:
    """One section of one playbook, with the scenario it is tested against."""

    playbook: str
    section_path: tuple[str, ...]
    #: The section's slug: unique in the playbook, unlike a title with "/".
    slug: str
    line: int
    scenario: Any  # runbook.sandbox.scenarios.Scenario, imported lazily

    @property
    def name(self) -> str:
        return self.section_path[-1]

    @property
    def node_id(self) -> str:
        return " / ".join(self.section_path[1:] or self.section_path)


@dataclass
class Outcome:
    case: Case
    #: passed, failed, expected failure (pending), unexpected pass (pending), error
    status: str
    exit_code: int | None
    seconds: float
    checks: list[dict[str, Any]] = field(default_factory=list)
    stopped: str | None = None
    transcript: str | None = None
    log: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("passed", "expected failure")


def collect(playbooks: Iterable[str], keyword: str | None = None) -> list[Case]:
    """Return a case for each section of ``playbooks`` that has a scenario."""
    cases = []
    for path in playbooks:
        for scenario, section in _scenarios(path, load_playbook(path)):
            case = Case(path, section.path, section.slug, section.start_line, scenario)
            if keyword and keyword.lower() not in " ".join(case.section_path).lower():
                continue
            cases.append(case)
    return cases


def _scenarios(path: str, playbook: Playbook) -> list[tuple[Any, Section]]:
    from .sandbox.layout import find_layout
    from .sandbox.scenarios import scenarios_for

    layout = find_layout(Path(path).resolve().parent)
    return scenarios_for(layout.scenario_dir, path, playbook)


def run_case(case: Case, transcript_dir: Path | None = None) -> Outcome:
    """Run one case in a fresh sandbox and return its outcome."""
    from .commands import RunRequest
    from .sandbox.run import run_in_sandbox
    from .transcript import read_transcript

    transcript = None
    if transcript_dir is not None:
        transcript_dir.mkdir(parents=True, exist_ok=True)
        slug = re.sub(r"[^a-z0-9]+", "-", case.node_id.lower()).strip("-")
        transcript = str(transcript_dir / f"{Path(case.playbook).stem}--{slug}.jsonl")
    log = io.StringIO()
    request = RunRequest(
        playbook=case.playbook,
        section=case.slug,
        assume_yes=True,
        timeout=600,
        transcript=transcript,
        target="sandbox",
    )
    started = time.monotonic()
    try:
        exit_code: int | None = run_in_sandbox(request, log, say=log_line(log))
        error = None
    except RunbookError as failure:
        exit_code, error = None, str(failure)
    seconds = time.monotonic() - started
    checks: list[dict[str, Any]] = []
    stopped = error
    if transcript is not None and not Path(transcript).exists():
        transcript = None  # the run stopped before it opened one
    if transcript is not None:
        for record in read_transcript(transcript):
            if record["type"] == "check":
                checks.append(record)
            elif record["type"] == "end":
                stopped = stopped or record.get("stopped")
    pending = case.scenario.pending
    if error is not None:
        status = "expected failure" if pending else "error"
    elif exit_code == 0:
        status = "unexpected pass" if pending else "passed"
    else:
        status = "expected failure" if pending else "failed"
    return Outcome(
        case, status, exit_code, seconds, checks, stopped, transcript, log.getvalue()
    )


def log_line(stream: io.StringIO) -> Callable[[str], None]:
    def say(message: str) -> None:
        stream.write(message + "\n")

    return say


@dataclass(frozen=True)
class CoverageRow:
    playbook: str
    section_path: tuple[str, ...]
    line: int
    steps: int
    state: str
    reason: str = ""


def coverage(playbooks: Iterable[str]) -> list[CoverageRow]:
    """List every section of ``playbooks``: verified, pending, no scenario, manual."""
    rows = []
    for path in playbooks:
        playbook = load_playbook(path)
        covered = {
            section.path: scenario for scenario, section in _scenarios(path, playbook)
        }
        for section in _sections(playbook):
            own = len(section.steps)
            scenario = _nearest(section.path, covered)
            if scenario is not None:
                state = PENDING if scenario.pending else VERIFIED
                # The reason once, on the section the scenario names.
                own_scenario = covered.get(section.path) is scenario
                reason = (
                    (scenario.pending or scenario.path.name) if own_scenario else ""
                )
            elif not section.all_steps():
                state, reason = MANUAL, "no shell steps"
            elif not own:
                state, reason = PARENT, "steps only in subsections"
            else:
                state, reason = NO_SCENARIO, ""
            rows.append(
                CoverageRow(path, section.path, section.start_line, own, state, reason)
            )
    return rows


def _sections(playbook: Playbook) -> Iterator[Section]:
    """Yield every section below the root, in document order."""
    for section in playbook.root.walk():
        if section is not playbook.root:
            yield section


def _nearest(path: tuple[str, ...], mapping: dict[tuple[str, ...], Any]) -> Any:
    """Return the value for ``path`` or for its nearest ancestor, or None."""
    while path:
        if path in mapping:
            return mapping[path]
        path = path[:-1]
    return None


MARKS = {
    "passed": "PASS ",
    "failed": "FAIL ",
    "error": "ERROR",
    "expected failure": "XFAIL",
    "unexpected pass": "XPASS",
}


def render_outcome(outcome: Outcome) -> str:
    """Render one section's result line, and what went wrong when it failed."""
    checks = sum(1 for check in outcome.checks if check.get("passed"))
    lines = [
        f"{MARKS[outcome.status]} {outcome.case.node_id}  "
        f"({outcome.case.scenario.path.name}, {outcome.seconds:.1f} s, "
        f"{checks}/{len(outcome.checks)} checks)"
    ]
    if not outcome.ok:
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


def render_summary(outcomes: list[Outcome], rows: list[CoverageRow]) -> str:
    """Render the coverage list, with this run's results, and the counts."""
    results = {outcome.case.section_path: outcome for outcome in outcomes}
    lines = []
    if rows:
        lines.append("")
        lines.append("coverage:")
    for row in rows:
        state = row.state
        if state in (VERIFIED, PENDING) and outcomes:
            outcome = _nearest(row.section_path, results)
            if outcome is None:
                state = "not run"
            elif not outcome.ok:
                state = outcome.status
        indent = "  " * (len(row.section_path) - 1)
        detail = f" ({row.reason})" if row.reason else ""
        steps = f"{row.steps} step" + ("" if row.steps == 1 else "s")
        lines.append(
            f"  {state:<12} {indent}{row.section_path[-1]}  "
            f"[{steps}, line {row.line}]{detail}"
        )
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    summary = ", ".join(f"{count} {status}" for status, count in counts.items())
    missing = sum(1 for row in rows if row.state == NO_SCENARIO and row.steps)
    lines.append("")
    lines.append(
        f"{summary or 'no section ran'}; {missing} section(s) with steps have no "
        "scenario"
    )
    return "\n".join(lines) + "\n"


def render_report(outcomes: list[Outcome], rows: list[CoverageRow]) -> str:
    """Render every result line, then the coverage and the counts."""
    return "".join(render_outcome(o) for o in outcomes) + render_summary(outcomes, rows)
