"""Plan: the steps of one section chosen for a run, with the values they need."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from . import variables
from .errors import (
    DeploymentRequired,
    DestructiveStepsNeedConsent,
    MissingValues,
    NoRunnableSteps,
    SectionRequired,
    StepSelectionError,
    UnknownDeployment,
)
from .playbook import Playbook, Section, Step, declared_deployments


@dataclass(frozen=True)
class PlannedStep:
    """A step with its number in the section (1-based, as ``runbook show`` prints)."""

    number: int
    step: Step

    @property
    def label(self) -> str:
        """The step's name, or its first command line when it has none."""
        if self.step.name:
            return self.step.name
        for line in self.step.code.splitlines():
            stripped = line.strip()
            if stripped and not stripped.startswith("#"):
                return stripped
        return "(comments only)"


@dataclass
class Plan:
    """The steps a run will take, in order, and the values they need.

    ``values`` contains the values supplied so far for placeholders and
    variables; the runner adds the ones the operator types in. ``skipped``
    maps the numbers of steps that the run skips because of their attributes
    (see ``annotation_skips``) to the reason; such steps need no values and
    no consent. ``deployment`` is the deployment the run is for, None until
    it is known.
    """

    playbook: Playbook
    section: Section
    steps: list[PlannedStep]
    total_steps: int
    values: dict[str, str] = field(default_factory=dict)
    environment: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    skipped: dict[int, str] = field(default_factory=dict)
    deployment: str | None = None

    @property
    def runnable_steps(self) -> list[PlannedStep]:
        """The selected steps that no attribute skips."""
        if not self.skipped:
            return self.steps
        return [p for p in self.steps if p.number not in self.skipped]


def build_plan(
    playbook: Playbook,
    section_query: str | None,
    step_numbers: Sequence[int] = (),
    from_number: int | None = None,
    values: Mapping[str, str] | None = None,
    environment: Mapping[str, str] | None = None,
    require_section: bool = False,
) -> Plan:
    """Select a section (the whole playbook when ``section_query`` is None) and steps.

    With ``require_section``, a missing ``section_query`` is allowed only for
    a playbook whose steps all come before its first heading.

    Raises SectionNotFound, AmbiguousSection, SectionRequired, NoRunnableSteps
    or StepSelectionError.
    """
    if section_query is None:
        section = playbook.root
        where = f"playbook {playbook.path!r}"
        if require_section and any(s.all_steps() for s in playbook.root.children):
            raise SectionRequired(
                f"--section is required: {playbook.path!r} has sections with "
                "steps; pick one ('runbook list FILE' shows them)"
            )
    else:
        section = playbook.find_section(section_query)
        where = f"section {' / '.join(section.path)!r} in {playbook.path!r}"
    steps = section.all_steps()
    if not steps:
        raise NoRunnableSteps(
            f"{where} has no runnable steps: no fenced block in bash, sh, shell, "
            "zsh or console; pick another section ('runbook list FILE' shows "
            "step counts)"
        )
    numbered = [PlannedStep(number, step) for number, step in enumerate(steps, 1)]
    chosen = select_steps(numbered, step_numbers, from_number, where)
    return Plan(
        playbook=playbook,
        section=section,
        steps=chosen,
        total_steps=len(numbered),
        values=dict(values or {}),
        environment=dict(os.environ if environment is None else environment),
    )


def select_steps(
    steps: list[PlannedStep],
    step_numbers: Sequence[int],
    from_number: int | None,
    where: str,
) -> list[PlannedStep]:
    """Apply ``--step`` (any number of times) and ``--from`` to the numbered steps."""
    count = len(steps)
    for number in [*step_numbers, *([from_number] if from_number else [])]:
        if not 1 <= number <= count:
            raise StepSelectionError(
                f"step {number} does not exist: {where} has steps 1 to {count}"
            )
    chosen = steps
    if from_number is not None:
        chosen = [s for s in chosen if s.number >= from_number]
    if step_numbers:
        wanted = set(step_numbers)
        chosen = [s for s in chosen if s.number in wanted]
    if not chosen:
        raise StepSelectionError(
            f"--step and --from together select no step of {where}; "
            f"--step {', '.join(map(str, step_numbers))} lies before --from "
            f"{from_number}"
        )
    return chosen


# --- Annotations: deployments, skip-test, interactive ------------------------------


def skip_reason(
    step: Step, deployment: str | None, testing: bool, assume_yes: bool
) -> str | None:
    """Return why a run skips ``step`` because of its attributes, or None.

    A step whose ``when`` does not name ``deployment`` is for another
    deployment; ``skip-test`` skips it in a docs-as-tests run (``testing``);
    ``interactive`` skips it when nobody is there to type (``assume_yes``).
    """
    when = step.deployments
    if when and deployment is not None and deployment not in when:
        return f"for {' or '.join(when)}; this run is {deployment}"
    reason = step.attributes.get("skip-test")
    if testing and reason is not None:
        return f"skip-test: {reason}"
    if assume_yes and step.attributes.get("interactive"):
        return "interactive: run it by hand"
    return None


def annotation_skips(
    plan: Plan, deployment: str | None, testing: bool = False, assume_yes: bool = False
) -> dict[int, str]:
    """Return the steps of ``plan`` that their attributes skip, with the reason."""
    skips = {}
    for planned in plan.steps:
        reason = skip_reason(planned.step, deployment, testing, assume_yes)
        if reason is not None:
            skips[planned.number] = reason
    return skips


def variant_steps(plan: Plan) -> list[PlannedStep]:
    """Return the selected steps that are only for some deployments (``when``)."""
    return [p for p in plan.steps if p.step.deployments]


def deployment_choices(plan: Plan) -> tuple[str, ...]:
    """Return the deployments to choose from: the front matter's, else the steps'."""
    declared = declared_deployments(plan.playbook.front_matter, plan.playbook.path)
    if declared:
        return declared
    names: dict[str, None] = {}
    for planned in variant_steps(plan):
        names.update(dict.fromkeys(planned.step.deployments))
    return tuple(names)


def check_deployment(plan: Plan, deployment: str | None, required: bool) -> None:
    """Reject a deployment the front matter does not declare, or a missing one.

    A deployment is missing when ``required`` (a ``--yes`` run, a dry run)
    and a selected step has ``when``. Raises UnknownDeployment or
    DeploymentRequired.
    """
    declared = declared_deployments(plan.playbook.front_matter, plan.playbook.path)
    if deployment is not None:
        if declared is not None and deployment not in declared:
            raise UnknownDeployment(
                f"--deployment {deployment!r} is not a deployment of "
                f"{plan.playbook.path!r}; its front matter declares: "
                f"{', '.join(declared) or '(none)'}"
            )
        return
    variants = variant_steps(plan)
    if not required or not variants:
        return
    first = variants[0]
    choices = ", ".join(deployment_choices(plan))
    raise DeploymentRequired(
        f"step {first.number} ({first.label}, {plan.playbook.path}:"
        f"{first.step.start_line}) runs only for "
        f"{' or '.join(first.step.deployments)}, and {len(variants)} selected "
        f"step(s) have when=; pass --deployment NAME to pick the variants to "
        f"run (one of: {choices})"
    )


# --- Values and consent --------------------------------------------------------------


def find_missing(plan: Plan) -> list[variables.MissingValue]:
    """Return the values the runnable steps use that are neither supplied nor set.

    ``MissingValue.step`` counts from 1 in ``plan.runnable_steps``.
    """
    codes = [p.step.code for p in plan.runnable_steps]
    return variables.find_missing_values(codes, plan.values, plan.environment)


def check_destructive(plan: Plan) -> None:
    """Raise DestructiveStepsNeedConsent when the plan has steps marked confirm."""
    marked = [p for p in plan.runnable_steps if p.step.attributes.get("confirm")]
    if marked:
        listed = ", ".join(
            f"{p.number} ({p.label}, line {p.step.start_line})" for p in marked
        )
        raise DestructiveStepsNeedConsent(
            f"steps marked confirm cannot run unattended: {listed}; pass "
            "--allow-destructive to run them with --yes, or leave them out "
            "with --step/--from"
        )


def check_values(plan: Plan) -> None:
    """Raise MissingValues when a step needs a value that nobody supplied."""
    missing = find_missing(plan)
    if missing:
        raise MissingValues(
            [m.name for m in missing],
            [describe_missing(plan, m) for m in missing],
        )


def unexpanded_references(plan: Plan) -> list[str]:
    """Return one message per variable written inside a quoted heredoc.

    bash never expands ``$NAME`` in the body of ``<<'EOF'``, so the command
    receives the literal text, which is rarely what the author meant.
    """
    messages = []
    for planned in plan.steps:
        for ref in variables.find_quoted_heredoc_references(planned.step.code):
            line = planned.step.start_line + ref.line
            messages.append(
                f"{plan.playbook.path}:{line}: ${ref.name} in step {planned.number} "
                "is inside a quoted here-document (<<'EOF'), so bash does not "
                "expand it and the command gets the literal text"
            )
    return messages


def unused_values(plan: Plan) -> list[str]:
    """Return the supplied names that no selected step uses, often a typo."""
    used: set[str] = set()
    for planned in plan.steps:
        code = planned.step.code
        used.update(p.name for p in variables.find_placeholders(code))
        used.update(r.name for r in variables.find_variable_references(code))
        used.update(r.name for r in variables.find_quoted_heredoc_references(code))
    return sorted(name for name in plan.values if name not in used)


def describe_missing(plan: Plan, missing: variables.MissingValue) -> str:
    """Say where a missing value is first used, for error messages."""
    planned = plan.runnable_steps[missing.step - 1]
    line = planned.step.start_line + missing.line
    what = f"<{missing.name}>" if missing.kind == "placeholder" else f"${missing.name}"
    return (
        f"{what} ({missing.kind}) first used in step {planned.number} at "
        f"{plan.playbook.path}:{line}"
    )
