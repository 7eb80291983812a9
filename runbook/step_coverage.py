"""Step coverage of ``runbook test``: what each step of each section did.

A scenario runs its section's steps (all of them, or those its ``steps``
lists), then the steps of each ``then`` section, numbered in that order as the
run numbers them. The transcript of each run records what happened to each
number: a ``step`` record for a step that ran, a ``decision`` record for one
that was skipped or not run. This module maps those numbers back to the
steps of the playbook and combines the runs of every scenario into one state
per step and per section.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .playbook import Playbook, Section, load_playbook

if TYPE_CHECKING:
    from .model import Step
    from .testing import Outcome

#: States of a step, and of a section, in the coverage report.
VERIFIED = "verified"
FAILED = "failed"
ERROR = "error"
PENDING = "pending"
SKIPPED = "skipped"
NOT_RUN = "not run"
NO_SCENARIO = "no scenario"
MANUAL = "manual"
PARENT = "parent"

#: When several runs of one step disagree, the state that ranks higher wins:
#: one passing scenario verifies a step that another scenario skips.
_RANK = {VERIFIED: 5, FAILED: 4, PENDING: 3, SKIPPED: 2, NOT_RUN: 1}

#: Results of one step in one run.
RAN, RAN_FAILED, SKIP, NOT_REACHED = "ran", "ran and failed", "skip", "not run"


@dataclass(frozen=True)
class StepResult:
    """The result of one step in one run, by the step's number in the run."""

    number: int
    result: str
    reason: str = ""


@dataclass(frozen=True)
class StepCoverage:
    """One step of a section: its number as ``runbook show`` gives it, and state."""

    number: int
    line: int
    label: str
    state: str
    reason: str = ""


@dataclass(frozen=True)
class CoverageRow:
    """One section: its own steps' states, and the state of the section."""

    playbook: str
    section_path: tuple[str, ...]
    line: int
    #: The number of the section's own steps (not its subsections').
    steps: int
    state: str
    reason: str = ""
    step_rows: tuple[StepCoverage, ...] = ()
    #: The names of the scenarios that run any of the section's steps.
    scenarios: tuple[str, ...] = ()


@dataclass(frozen=True)
class NumberedStep:
    """A step as a scenario's run numbers it, with the playbook it is in."""

    number: int
    playbook: str
    step: Step
    #: True for a step of a ``then`` section, which the run takes whole.
    follow_up: bool = False

    @property
    def key(self) -> tuple[str, int]:
        return (self.playbook, self.step.start_line)


@dataclass
class _Evidence:
    state: str
    reason: str = ""
    scenarios: set[str] = field(default_factory=set)
    #: True when a run that selected the step ended in an error.
    error: bool = False


def step_key(playbook: str, step: Step) -> tuple[str, int]:
    """Return the key that identifies a step across runs: file and fence line."""
    return (str(Path(playbook).resolve()), step.start_line)


def numbered_steps(
    playbook: str, section: Section, scenario: Any
) -> list[NumberedStep]:
    """Return the steps a scenario's run numbers, in order, with their playbooks.

    The section's own steps and its subsections' come first, then those of
    each ``then`` section, which may be in another playbook of the same
    directory.
    """
    resolved = str(Path(playbook).resolve())
    steps = [NumberedStep(0, resolved, step) for step in section.all_steps()]
    for follow_up in getattr(scenario, "then", ()):
        other = str((Path(resolved).parent / follow_up.playbook).resolve())
        follow_section = load_playbook(other).find_section(follow_up.section)
        steps += [
            NumberedStep(0, other, step, follow_up=True)
            for step in follow_section.all_steps()
        ]
    return [replace(item, number=number) for number, item in enumerate(steps, 1)]


def selected_numbers(scenario: Any, numbered: list[NumberedStep]) -> set[int]:
    """Return the step numbers a scenario's run takes.

    ``steps`` picks among the section's own steps; the steps of ``then``
    sections always run.
    """
    chosen = getattr(scenario, "steps", None)
    return {
        item.number
        for item in numbered
        if chosen is None or item.follow_up or item.number in chosen
    }


def read_step_results(
    records: Iterable[Mapping[str, Any]], numbered: list[NumberedStep], scenario: Any
) -> dict[int, StepResult]:
    """Return what a run did with each step number, from its transcript records.

    A skip record without a reason gets the reason the playbook or scenario
    gives (the scenario's ``skip``, a ``skip-test`` or ``when`` attribute); when
    none does, the reason stays empty and the coverage check reports it.
    """
    by_number = {item.number: item for item in numbered}
    results: dict[int, StepResult] = {}
    for record in records:
        number = record.get("step")
        if not isinstance(number, int):
            continue
        if record["type"] == "step":
            item = by_number.get(number)
            accepted = frozenset((0,)) if item is None else item.step.accepted_statuses
            status = record.get("exit_status")
            ok = (
                status is not None
                and (accepted is None or status in accepted)
                and not record.get("output_diff")
                and not record.get("timed_out")
                and not record.get("interrupted")
                and not record.get("session_ended")
                and not record.get("killed")
            )
            reason = "" if ok else f"exit status {record.get('exit_status')}"
            results[number] = StepResult(number, RAN if ok else RAN_FAILED, reason)
        elif record["type"] == "decision":
            if record.get("decision") == "skip":
                reason = str(record.get("reason") or "")
                if not reason and number in by_number:
                    reason = _known_skip_reason(scenario, by_number[number])
                results[number] = StepResult(number, SKIP, reason)
            else:
                results[number] = StepResult(number, NOT_REACHED)
    return results


def _known_skip_reason(scenario: Any, item: NumberedStep) -> str:
    """Return the reason the scenario or the step's attributes give for a skip."""
    skip = getattr(scenario, "skip", {})
    if item.number in skip:
        return str(skip[item.number])
    attributes = item.step.attributes
    if attributes.get("skip-test"):
        return str(attributes["skip-test"])
    if attributes.get("when"):
        return f"runs only on the {' or '.join(_deployments(item.step))} deployment"
    return ""


def _scenario_pairs(path: str, playbook: Playbook) -> list[tuple[Any, Section]]:
    from .sandbox.layout import find_layout
    from .sandbox.scenarios import scenarios_for

    layout = find_layout(Path(path).resolve().parent)
    return scenarios_for(layout.scenario_dir, path, playbook)


def coverage(
    playbooks: Iterable[str], outcomes: Iterable[Outcome] = ()
) -> list[CoverageRow]:
    """List every section of ``playbooks`` and each of its steps with its state.

    Without ``outcomes`` a step that a scenario runs is ``not run``; with
    them, each step gets the best state any run gave it.
    """
    paths = list(playbooks)
    loaded = {path: load_playbook(path) for path in paths}
    selectors: dict[tuple[str, int], set[str]] = {}
    # The deployments (``when``) whose steps some scenario picks by number,
    # or some run ran: the sandbox runs those.
    deployments: set[str] = set()
    for path, playbook in loaded.items():
        for scenario, section in _scenario_pairs(path, playbook):
            numbered = numbered_steps(path, section, scenario)
            chosen = selected_numbers(scenario, numbered)
            for item in numbered:
                if item.number in chosen:
                    selectors.setdefault(item.key, set()).add(scenario.name)
                    if getattr(scenario, "steps", None):
                        deployments.update(_deployments(item.step))
    evidence = _evidence(outcomes)
    for outcome in outcomes:
        for item in outcome.numbered:
            result = outcome.steps.get(item.number)
            if result is not None and result.result in (RAN, RAN_FAILED):
                deployments.update(_deployments(item.step))
    rows = []
    for path, playbook in loaded.items():
        for section in _sections(playbook):
            rows.append(_section_row(path, section, selectors, evidence, deployments))
    return rows


def _evidence(outcomes: Iterable[Outcome]) -> dict[tuple[str, int], _Evidence]:
    """Combine every run's step results into the best state per step.

    A step that a run selected but never reached (the sandbox failed to start,
    an earlier step failed) counts as not run by that run.
    """
    found: dict[tuple[str, int], _Evidence] = {}
    for outcome in outcomes:
        scenario = outcome.case.scenario
        chosen = selected_numbers(scenario, outcome.numbered)
        for item in outcome.numbered:
            result = outcome.steps.get(item.number)
            if result is None and item.number not in chosen:
                continue
            if result is None and outcome.status == "skipped":
                reason = f"scenario {scenario.name} skipped: {outcome.stopped}"
                result = StepResult(item.number, SKIP, _shorten(reason))
            if result is None:
                stopped = f": {outcome.stopped}" if outcome.stopped else ""
                reason = f"scenario {scenario.name} stopped before it{stopped}"
                result = StepResult(item.number, NOT_REACHED, _shorten(reason))
            state, reason = _state_in_run(result, outcome)
            known = found.get(item.key)
            if known is None or _RANK[state] > _RANK[known.state]:
                known = found[item.key] = _Evidence(
                    state,
                    reason,
                    known.scenarios if known else set(),
                    known.error if known else False,
                )
            known.scenarios.add(scenario.name)
            known.error = known.error or outcome.status == ERROR
    return found


def _shorten(text: str, size: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= size else text[: size - 1] + "…"


def _state_in_run(result: StepResult, outcome: Outcome) -> tuple[str, str]:
    """Return a step's state and reason from one run and the run's status."""
    scenario = outcome.case.scenario
    if result.result == SKIP:
        return SKIPPED, result.reason
    if result.result == NOT_REACHED:
        return NOT_RUN, result.reason or _shorten(outcome.stopped or "")
    if scenario.pending and outcome.status == "expected failure":
        return PENDING, scenario.pending
    if result.result == RAN_FAILED:
        return FAILED, f"{result.reason} in scenario {scenario.name}"
    if outcome.status in ("passed", "unexpected pass"):
        return VERIFIED, ""
    return FAILED, f"ran, but scenario {scenario.name} {outcome.status}"


def _section_row(
    path: str,
    section: Section,
    selectors: Mapping[tuple[str, int], set[str]],
    evidence: Mapping[tuple[str, int], _Evidence],
    deployments: set[str],
) -> CoverageRow:
    line = section.start_line
    own = len(section.steps)
    if not section.all_steps():
        return CoverageRow(path, section.path, line, 0, MANUAL, "no shell steps")
    if not own:
        return CoverageRow(
            path, section.path, line, 0, PARENT, "steps only in subsections"
        )
    section_skip = _section_skip_reason(section)
    step_rows = []
    names: set[str] = set()
    error = False
    for number, step in enumerate(section.steps, 1):
        key = step_key(path, step)
        label = _label(step)
        known = evidence.get(key)
        if known is not None:
            names |= known.scenarios
            error = error or known.error
            step_rows.append(
                StepCoverage(number, step.start_line, label, known.state, known.reason)
            )
        elif key in selectors:
            names |= selectors[key]
            step_rows.append(StepCoverage(number, step.start_line, label, NOT_RUN))
        elif reason := section_skip or _unselected_skip_reason(step, deployments):
            step_rows.append(
                StepCoverage(number, step.start_line, label, SKIPPED, reason)
            )
        else:
            step_rows.append(StepCoverage(number, step.start_line, label, NO_SCENARIO))
    state, reason = _section_state(step_rows, error, section_skip)
    if names and not reason:
        reason = ", ".join(sorted(names))
    return CoverageRow(
        path, section.path, line, own, state, reason, tuple(step_rows),
        tuple(sorted(names)),
    )  # fmt: skip


def _section_state(
    step_rows: list[StepCoverage], error: bool, section_skip: str
) -> tuple[str, str]:
    states = {row.state for row in step_rows}
    if states == {NO_SCENARIO}:
        return NO_SCENARIO, ""
    if FAILED in states:
        return FAILED, ""
    if error:
        return ERROR, ""
    if PENDING in states:
        reasons = {row.reason for row in step_rows if row.state == PENDING}
        return PENDING, "; ".join(sorted(reasons))
    if NOT_RUN in states:
        return NOT_RUN, ""
    if states == {SKIPPED}:
        return SKIPPED, section_skip
    return VERIFIED, ""


def _unselected_skip_reason(step: Step, deployments: set[str]) -> str:
    """Return why no scenario needs to run a step, or "" when one should.

    A ``skip-test`` step has its reason. A ``when`` step for a deployment that
    no scenario runs (Docker Compose, when every scenario runs systemd) is
    another deployment's variant of a step that is tested.
    """
    if step.attributes.get("skip-test"):
        return str(step.attributes["skip-test"])
    variants = _deployments(step)
    if variants and not deployments & set(variants):
        return (
            f"runs only on the {' or '.join(variants)} deployment, which no "
            "scenario runs"
        )
    return ""


def _deployments(step: Step) -> tuple[str, ...]:
    """Return the deployments a step's ``when`` names; empty for every one."""
    when = step.attributes.get("when")
    if not when:
        return ()
    return (when,) if isinstance(when, str) else tuple(str(name) for name in when)


def _section_skip_reason(section: Section) -> str:
    """Return the section's own ``skip-test`` reason, or ""."""
    reason = section.attributes.get("skip-test")
    return str(reason) if reason else ""


def _label(step: Step) -> str:
    if step.name:
        return str(step.name)
    for line in step.code.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            return stripped if len(stripped) <= 60 else stripped[:59] + "…"
    return "(comments only)"


def _sections(playbook: Playbook) -> Iterator[Section]:
    """Yield every section below the root, in document order."""
    for section in playbook.root.walk():
        if section is not playbook.root:
            yield section


def gaps(rows: Iterable[CoverageRow]) -> list[str]:
    """Return what makes coverage incomplete: untested steps, skips without reason."""
    problems = []
    for row in rows:
        where = f"{Path(row.playbook).name}: {' / '.join(row.section_path)}"
        if row.state == NO_SCENARIO:
            problems.append(f"{where}: no scenario runs its {row.steps} step(s)")
            continue
        for step in row.step_rows:
            if step.state == NO_SCENARIO:
                problems.append(
                    f"{where}: step {step.number} (line {step.line}): no scenario "
                    "runs it"
                )
            elif step.state == SKIPPED and not step.reason:
                problems.append(
                    f"{where}: step {step.number} (line {step.line}): skipped "
                    "without a reason"
                )
    return problems


def render_coverage(rows: list[CoverageRow]) -> list[str]:
    """Return the coverage lines: each section, and each of its steps under it."""
    lines = ["", "coverage:"] if rows else []
    for row in rows:
        indent = "  " * (len(row.section_path) - 1)
        detail = f" ({row.reason})" if row.reason else ""
        steps = f"{row.steps} step" + ("" if row.steps == 1 else "s")
        lines.append(
            f"  {row.state:<12} {indent}{row.section_path[-1]}  "
            f"[{steps}, line {row.line}]{detail}"
        )
        for step in row.step_rows:
            why = f" ({step.reason})" if step.reason else ""
            lines.append(
                f"  {step.state:<12} {indent}  {step.number}. {step.label}  "
                f"[line {step.line}]{why}"
            )
    return lines


def step_counts(rows: Iterable[CoverageRow]) -> dict[str, int]:
    """Count the steps in each state, over every section."""
    counts: dict[str, int] = {}
    for row in rows:
        for step in row.step_rows:
            counts[step.state] = counts.get(step.state, 0) + 1
    return counts


def as_json(row: CoverageRow) -> dict[str, Any]:
    """Return a coverage row as ``--format json`` prints it."""
    return {
        "playbook": row.playbook,
        "section": list(row.section_path),
        "line": row.line,
        "steps": row.steps,
        "state": row.state,
        "reason": row.reason,
        "scenarios": list(row.scenarios),
        "step_coverage": [
            {
                "step": step.number,
                "line": step.line,
                "label": step.label,
                "state": step.state,
                "reason": step.reason,
            }
            for step in row.step_rows
        ],
    }
