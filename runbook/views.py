"""Plain-text and JSON views of playbooks and plans, for list, show and dry-run."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import variables
from .plan import Plan, PlannedStep, describe_missing, unexpanded_references
from .playbook import Playbook, Section

MASK = "***"
#: Width of the title column in ``runbook list``; longer titles overflow it.
MAX_TITLE_COLUMN = 60


def section_tree(playbook: Playbook) -> dict[str, Any]:
    """Return the section tree as JSON-ready data."""
    return {
        "path": playbook.path,
        "title": playbook.title,
        "steps": len(playbook.root.all_steps()),
        "sections": [_section_data(child) for child in playbook.root.children],
        "warnings": [
            {"line": warning.line, "message": warning.message}
            for warning in playbook.warnings
        ],
    }


def _section_data(section: Section) -> dict[str, Any]:
    return {
        "title": section.title,
        "level": section.level,
        "slug": section.slug,
        "path": list(section.path),
        "line": section.start_line,
        "own_steps": len(section.steps),
        "steps": len(section.all_steps()),
        "children": [_section_data(child) for child in section.children],
    }


def render_tree(playbook: Playbook) -> str:
    """Return the section tree, one indented line per heading with step counts."""
    total = len(playbook.root.all_steps())
    lines = [f"{playbook.path}: {total} step{'s' if total != 1 else ''}"]
    if playbook.root.steps:
        lines.append(f"  (before the first heading)  {len(playbook.root.steps)} steps")
    rows = []
    for section in playbook.sections():
        # Indented by depth in the tree, not by heading level: a ##### under
        # a # is one step deeper, not four.
        label = "  " * (len(section.path) - 1) + section.title
        rows.append((label, len(section.all_steps()), section.slug, section.start_line))
    # One very long title must not push every row far to the right.
    width = min(max((len(row[0]) for row in rows), default=0), MAX_TITLE_COLUMN)
    for label, count, slug, line in rows:
        steps = f"{count} step{'s' if count != 1 else ''}" if count else "-"
        lines.append(f"{label.ljust(width)}  {steps:>8}  #{slug}  line {line}")
    lines.extend(
        f"{playbook.path}:{w.line}: warning: {w.message}" for w in playbook.warnings
    )
    return "\n".join(lines) + "\n"


def render_step(
    planned: PlannedStep,
    total: int,
    code: str | None = None,
    skip_reason: str | None = None,
) -> str:
    """Return one numbered step: heading path, source line, description, code.

    Attributes that come from a section's runbook comment are marked
    ``(section)``. ``skip_reason`` marks a step that the run would skip.
    """
    step = planned.step
    lines = [
        f"Step {planned.number}/{total}  {' › '.join(step.heading_path)}"
        f"  (line {step.start_line})"
    ]
    if skip_reason is not None:
        lines.append(f"  skipped: {skip_reason}")
    shown = {k: v for k, v in step.attributes.items() if k != "name"}
    if step.name:
        lines.append(f"  name: {step.name}")
    if shown:
        described = ", ".join(
            _describe_attribute(key, value, key not in step.own_attributes)
            for key, value in shown.items()
        )
        lines.append(f"  attributes: {described}")
    if step.description:
        lines.extend("  " + line for line in step.description.splitlines())
    body = step.code if code is None else code
    lines.extend("    " + line for line in body.rstrip("\n").splitlines())
    if not body.strip():
        lines.append("    (empty block)")
    if step.expected_output is not None:
        how = ", each line a regular expression" if step.output_regex else ""
        lines.append(f"  expected output (line {step.output_line}{how}):")
        lines.extend("    " + line for line in step.expected_output.splitlines())
        if not step.expected_output.strip():
            lines.append("    (no output)")
    return "\n".join(lines) + "\n"


def _describe_attribute(key: str, value: Any, inherited: bool) -> str:
    text = key if value is True else f"{key}={_attribute_text(value)}"
    return f"{text} (section)" if inherited else text


def render_plan(plan: Plan) -> str:
    """Return every selected step of a plan, for ``runbook show``.

    Steps in ``plan.skipped`` (for another deployment) are marked skipped.
    """
    section = plan.section
    title = " / ".join(section.path) or section.title
    parts = [
        f"{title}  ({plan.playbook.path}:{section.start_line}, "
        f"{plan.total_steps} step{'s' if plan.total_steps != 1 else ''})\n"
    ]
    if plan.deployment is not None:
        parts.append(f"deployment: {plan.deployment}\n")
    parts.extend(
        "\n" + render_step(p, plan.total_steps, skip_reason=plan.skipped.get(p.number))
        for p in plan.steps
    )
    parts.extend(
        f"\n{plan.playbook.path}:{w.line}: warning: {w.message}"
        for w in plan.playbook.warnings
    )
    return "".join(parts) + ("\n" if plan.playbook.warnings else "")


def plan_data(plan: Plan) -> dict[str, Any]:
    """Return the selected steps as JSON-ready data."""
    return {
        "playbook": plan.playbook.path,
        "section": list(plan.section.path),
        "total_steps": plan.total_steps,
        "deployment": plan.deployment,
        "warnings": [
            {"line": warning.line, "message": warning.message}
            for warning in plan.playbook.warnings
        ],
        "steps": [_step_data(p, plan.skipped.get(p.number)) for p in plan.steps],
    }


def _step_data(planned: PlannedStep, skip_reason: str | None) -> dict[str, Any]:
    step = planned.step
    return {
        "number": planned.number,
        "name": step.name,
        "heading_path": list(step.heading_path),
        "start_line": step.start_line,
        "end_line": step.end_line,
        "language": step.language,
        "description": step.description,
        "code": step.code,
        # In effect: the sections' runbook comments, overridden by the step's own.
        "attributes": _json_attributes(step.attributes),
        "own_attributes": _json_attributes(step.own_attributes),
        "expected_output": step.expected_output,
        "output_line": step.output_line,
        "output_regex": step.output_regex,
        "skipped": skip_reason,
    }


def _json_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """Return attributes with tuples (``when``, ``expect`` lists) as lists."""
    return {
        key: list(value) if isinstance(value, tuple) else value
        for key, value in attributes.items()
    }


def render_dry_run(plan: Plan, missing: list[variables.MissingValue]) -> str:
    """Return what a run would send to the shell, with placeholder values filled in.

    Values of secret-looking names are shown as ``***``.
    """
    shown = {
        name: MASK if variables.is_secret_name(name) else value
        for name, value in plan.values.items()
    }
    runnable = len(plan.runnable_steps)
    parts = [
        f"Dry run: nothing is executed. {runnable} of {plan.total_steps} "
        f"steps of {' / '.join(plan.section.path) or plan.section.title!r} "
        "would run.\n"
    ]
    if plan.deployment is not None:
        parts.append(f"Deployment: {plan.deployment}\n")
    exported = [name for name in shown if name.isidentifier()]
    if exported:
        parts.append("Variables exported before the first step:\n")
        parts.extend(f"  {name}={shown[name]}\n" for name in exported)
    for planned in plan.steps:
        code = variables.substitute_placeholders(planned.step.code, shown)
        reason = plan.skipped.get(planned.number)
        parts.append("\n" + render_step(planned, plan.total_steps, code, reason))
    warnings = [
        f"{plan.playbook.path}:{w.line}: warning: {w.message}"
        for w in plan.playbook.warnings
    ]
    warnings.extend(
        _located_warning(plan.playbook.path, text)
        for text in unexpanded_references(plan)
    )
    parts.extend(f"\n{text}" for text in warnings)
    if warnings:
        parts.append("\n")
    if missing:
        parts.append("\nMissing values (a run would ask for them):\n")
        parts.extend(f"  {describe_missing(plan, item)}\n" for item in missing)
    return "".join(parts)


def _attribute_text(value: Any) -> str:
    """Return an attribute value as written in Markdown (false, not False)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(str(item) for item in value)
    return str(value)


def _located_warning(path: str, text: str) -> str:
    """Return ``PATH:LINE: message`` as ``PATH:LINE: warning: message``."""
    end = text.find(": ", len(path) + 1) if text.startswith(f"{path}:") else -1
    if end < 0:
        return f"warning: {text}"
    return f"{text[:end]}: warning: {text[end + 2 :]}"
