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
    #: True when the state is ``skipped`` only because the runs were of
    #: another deployment than the step's ``when`` names.
    variant_skip: bool = False


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
            reason = step_failure(record, accepted)
            results[number] = StepResult(number, RAN_FAILED if reason else RAN, reason)
        elif record["type"] == "decision":
            if record.get("decision") == "skip":
                reason = str(record.get("reason") or "")
                if not reason and number in by_number:
                    reason = _known_skip_reason(scenario, by_number[number])
                results[number] = StepResult(number, SKIP, reason)
            else:
                results[number] = StepResult(number, NOT_REACHED)
    return results


def step_failure(record: Mapping[str, Any], accepted: frozenset[int] | None) -> str:
    """Return why a transcript ``step`` record failed, or "" when it succeeded.

    ``accepted`` is the step's accepted exit statuses (its ``expect``); None
    accepts any.
    """
    status = record.get("exit_status")
    if record.get("timed_out"):
        return "timed out"
    if record.get("interrupted"):
        return "interrupted"
    if record.get("killed"):
        return "killed"
    if record.get("session_ended"):
        return "the shell ended"
    if status is None or (accepted is not None and status not in accepted):
        return f"exit status {status}"
    if record.get("output_diff") or record.get("output_matched") is False:
        return "output did not match"
    return ""


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
    # For each step, the scenarios that select it and the deployment each runs.
    selectors: dict[tuple[str, int], dict[str, str]] = {}
    for path, playbook in loaded.items():
        for scenario, section in _scenario_pairs(path, playbook):
            numbered = numbered_steps(path, section, scenario)
            chosen = selected_numbers(scenario, numbered)
            for item in numbered:
                if item.number in chosen:
                    by_name = selectors.setdefault(item.key, {})
                    by_name[scenario.name] = _deployment_of(scenario)
    evidence = _evidence(outcomes)
    rows = []
    for path, playbook in loaded.items():
        for section in _sections(playbook):
            rows.append(_section_row(path, section, selectors, evidence))
    return rows


def _evidence(outcomes: Iterable[Outcome]) -> dict[tuple[str, int], _Evidence]:
    """Combine every run's step results into the best state per step.

    A step that a run selected but never reached (the sandbox failed to start,
    an earlier step failed) counts as not run by that run. Of two skips, one
    with a reason of its own (``skip-test``, the scenario's ``skip``, a
    scenario that could not run here) wins over one of a run of another
    deployment than the step's ``when``.
    """
    found: dict[tuple[str, int], _Evidence] = {}
    for outcome in outcomes:
        scenario = outcome.case.scenario
        chosen = selected_numbers(scenario, outcome.numbered)
        for item in outcome.numbered:
            result = _result_in_run(outcome, item, chosen)
            if result is None:
                continue
            state, reason = _state_in_run(result, outcome)
            variant = state == SKIPPED and _skipped_as_variant(item, outcome)
            known = found.get(item.key)
            if known is None or _outranks(state, variant, known):
                known = found[item.key] = _Evidence(
                    state,
                    reason,
                    known.scenarios if known else set(),
                    known.error if known else False,
                    variant,
                )
            known.scenarios.add(scenario.name)
            known.error = known.error or outcome.status == ERROR
    return found


def _result_in_run(
    outcome: Outcome, item: NumberedStep, chosen: set[int]
) -> StepResult | None:
    """Return what one run did with a step; None when the run did not select it."""
    result = outcome.steps.get(item.number)
    if result is not None:
        return result
    if item.number not in chosen:
        return None
    name = outcome.case.scenario.name
    if outcome.status == "skipped":
        why = outcome.stopped or "no reason given"
        if not why.startswith(f"scenario {name} "):
            why = f"scenario {name} skipped: {why}"
        return StepResult(item.number, SKIP, _shorten(why))
    stopped = f": {outcome.stopped}" if outcome.stopped else ""
    reason = f"scenario {name} stopped before it{stopped}"
    return StepResult(item.number, NOT_REACHED, _shorten(reason))


def _skipped_as_variant(item: NumberedStep, outcome: Outcome) -> bool:
    """Tell whether a run skipped a step only for its ``when``.

    That is, the step's ``when`` names another deployment than the scenario's.
    """
    scenario = outcome.case.scenario
    variants = _deployments(item.step)
    return (
        outcome.status != "skipped"
        and bool(variants)
        and _deployment_of(scenario) not in variants
        and item.number not in getattr(scenario, "skip", {})
        and not item.step.attributes.get("skip-test")
    )


def _outranks(state: str, variant: bool, known: _Evidence) -> bool:
    if _RANK[state] != _RANK[known.state]:
        return _RANK[state] > _RANK[known.state]
    return state == SKIPPED and known.variant_skip and not variant


def _deployment_of(scenario: Any) -> str:
    return str(getattr(scenario, "deployment", "systemd"))


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
    selectors: Mapping[tuple[str, int], Mapping[str, str]],
    evidence: Mapping[tuple[str, int], _Evidence],
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
    # Indexes of the ``when`` steps that no scenario of their deployment ran.
    variants = []
    names: set[str] = set()
    error = False
    for index, step in enumerate(section.steps):
        key = step_key(path, step)
        chosen_by = selectors.get(key, {})
        known = evidence.get(key)
        names |= set(chosen_by)
        if known is not None:
            names |= known.scenarios
            error = error or known.error
        state, reason, variant = _step_state(step, chosen_by, known, section_skip)
        if variant:
            variants.append(index)
        step_rows.append(
            StepCoverage(index + 1, step.start_line, _label(step), state, reason)
        )

    tested = _tested_deployments(section, step_rows)
    for index in variants:
        step = section.steps[index]
        step_rows[index] = _judge_variant(step, step_rows[index], tested)

    state, reason = _section_state(step_rows, error, section_skip)
    if names:
        listed = ", ".join(sorted(names))
        if not reason:
            reason = listed
        elif state in (NO_SCENARIO, SKIPPED) and reason != section_skip:
            reason = f"{listed}; {reason}"
    return CoverageRow(
        path, section.path, line, own, state, reason, tuple(step_rows),
        tuple(sorted(names)),
    )  # fmt: skip


def _step_state(
    step: Step,
    chosen_by: Mapping[str, str],
    known: _Evidence | None,
    section_skip: str,
) -> tuple[str, str, bool]:
    """Return a step's state and reason, and whether it waits for ``_judge_variant``.

    ``chosen_by`` maps the scenarios that select the step to their
    deployments; ``known`` is what the runs did with it.
    """
    if known is not None:
        if not known.variant_skip:
            return known.state, known.reason, False
        # A scenario of the step's own deployment selects it but did not run
        # (-k left it out): the step is not run yet, which is no gap.
        own = {
            name
            for name, deployment in chosen_by.items()
            if deployment in _deployments(step)
        }
        if own - known.scenarios:
            return NOT_RUN, "", False
        return known.state, known.reason, True
    if chosen_by:
        return NOT_RUN, "", False
    if section_skip:
        return SKIPPED, section_skip, False
    if step.attributes.get("skip-test"):
        return SKIPPED, str(step.attributes["skip-test"]), False
    return NO_SCENARIO, "", bool(_deployments(step))


#: Step states that show a scenario ran the step, or selects it and would.
_TESTED = (VERIFIED, FAILED, PENDING, NOT_RUN)


def _tested_deployments(section: Section, step_rows: list[StepCoverage]) -> set[str]:
    """Return the deployments whose ``when`` steps of the section a scenario tests."""
    tested: set[str] = set()
    for step, row in zip(section.steps, step_rows, strict=True):
        if row.state in _TESTED:
            tested.update(_deployments(step))
    return tested


def _judge_variant(step: Step, row: StepCoverage, tested: set[str]) -> StepCoverage:
    """Return the row of a ``when`` step that no scenario of its deployment runs.

    The step is skipped when a scenario tests a ``when`` step of the same
    section for another deployment, because that step is its variant.
    Otherwise nothing tests this part of the section, so it is a gap.
    """
    variants = _deployments(step)
    label = " or ".join(variants)
    if tested - set(variants):
        reason = f"for {label}; no scenario runs that deployment here"
        return replace(row, state=SKIPPED, reason=reason)
    reason = f"for {label}; no scenario runs it, nor a variant for another deployment"
    return replace(row, state=NO_SCENARIO, reason=reason)


def _section_state(
    step_rows: list[StepCoverage], error: bool, section_skip: str
) -> tuple[str, str]:
    """Return the state of a section from its steps', worst first.

    A section is verified only when each step is verified or skipped with a
    reason.
    """
    states = {row.state for row in step_rows}
    if FAILED in states:
        return FAILED, ""
    if error:
        return ERROR, ""
    if PENDING in states:
        reasons = {row.reason for row in step_rows if row.state == PENDING}
        return PENDING, "; ".join(sorted(reasons))
    if NOT_RUN in states:
        return NOT_RUN, ""
    missing = [row.number for row in step_rows if row.state == NO_SCENARIO]
    if len(missing) == len(step_rows):
        return NO_SCENARIO, ""
    if missing:
        return NO_SCENARIO, f"no scenario runs {_step_numbers(missing)}"
    unexplained = [
        row.number for row in step_rows if row.state == SKIPPED and not row.reason
    ]
    if unexplained:
        return SKIPPED, f"{_step_numbers(unexplained)} skipped without a reason"
    if states == {SKIPPED}:
        return SKIPPED, section_skip
    return VERIFIED, ""


def _step_numbers(numbers: list[int]) -> str:
    listed = ", ".join(str(number) for number in numbers)
    return f"step {listed}" if len(numbers) == 1 else f"steps {listed}"


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
        untested = [step for step in row.step_rows if step.state == NO_SCENARIO]
        whole = row.step_rows and untested == list(row.step_rows)
        if whole and not any(step.reason for step in untested):
            problems.append(f"{where}: no scenario runs its {row.steps} step(s)")
            continue
        for step in row.step_rows:
            if step.state == NO_SCENARIO:
                detail = f" ({step.reason})" if step.reason else ""
                problems.append(
                    f"{where}: step {step.number} (line {step.line}): no scenario "
                    f"runs it{detail}"
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
