"""``runbook run --target sandbox``: a section against a server with its fault.

A run finds the section's scenario and builds (or reuses) the test server
image. It starts a container, injects the scenario's fault and proves that it
took effect. Then it runs the section in the container through a docker
target, checks the scenario's output expectations and post-conditions, and
removes the container. The transcript gets ``sandbox`` and ``check`` records
next to the steps' records.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING

from .. import variables
from ..errors import RunbookError
from ..plan import Plan
from .checks import CheckResult, _tail, check_post_conditions
from .container import ENV_FILE, ServerContainer, parse_env_text, read_env_file
from .docker import DockerError
from .faults import get_fault
from .image import ensure_image
from .layout import SandboxLayout, find_layout
from .scenarios import (
    OutputExpectation,
    Scenario,
    ScenarioError,
    find_scenario,
)

if TYPE_CHECKING:
    from ..commands import RunRequest
    from ..records import RunResult
    from ..transcript import Transcript

Say = Callable[[str], None]


@dataclass
class Sandbox:
    """A started container with its fault in place, ready for a run."""

    layout: SandboxLayout
    scenario: Scenario
    server: ServerContainer
    evidence: str
    baseline: dict[str, object]


def locate(
    plan: Plan, name: str | None = None, deployment: str | None = None
) -> tuple[SandboxLayout, Scenario]:
    """Find the checkout to build from and the scenario of the plan's section.

    ``name`` picks one scenario when several test the section (``--scenario``),
    ``deployment`` keeps those of one deployment (``--deployment``).
    """
    layout = find_layout(Path(plan.playbook.path).resolve().parent)
    scenario = find_scenario(
        layout.scenario_dir, plan.playbook.path, plan.section.path, name, deployment
    )
    return layout, scenario


def prepare(
    plan: Plan,
    keep: bool = False,
    say: Say | None = None,
    rebuild: bool = False,
    scenario_name: str | None = None,
) -> Sandbox:
    """Build the image, start the server and inject the section's fault."""
    say = say or _stderr
    layout, scenario = locate(plan, scenario_name)
    fault = get_fault(scenario.fault)
    if scenario.fault_arguments:
        fault = replace(fault, arguments=scenario.fault_arguments)
    image = ensure_image(layout, progress=say, rebuild=rebuild)
    options = fault.options
    if scenario.server_env:
        options = replace(
            options, server_env={**options.server_env, **scenario.server_env}
        )
    server = ServerContainer(
        image.tag,
        layout.fixtures / "image" / "qpc-server.env",
        options=options,
        keep=keep,
    )
    started = time.monotonic()
    server.start()
    try:
        say(
            f"sandbox: container {server.id[:12]} healthy in "
            f"{server.ready_seconds:.1f} s; injecting fault {fault.name} "
            f"({fault.summary})"
        )
        evidence = fault.apply(server)
        say(f"sandbox: fault in place: {evidence}")
        baseline = _baseline(server)
    except BaseException:
        server.stop()
        raise
    say(f"sandbox: ready after {time.monotonic() - started:.1f} s")
    return Sandbox(layout, scenario, server, evidence, baseline)


def _baseline(server: ServerContainer) -> dict[str, object]:
    """Return the database's statistics before the run, for the checks after it.

    A fault that makes the database unreadable (locked, corrupt) leaves none;
    the checks that need them then fail with that reason.
    """
    try:
        return server.admin_json("stats")
    except DockerError as error:
        return {"unavailable": f"no statistics before the run: {error}"}


def server_secrets(settings: dict[str, str]) -> list[str]:
    """Return the values of the server settings whose names mark a secret.

    A step may print the env file or a setting it does not name as a
    variable, so every secret there is masked, not only the ones the steps
    use.
    """
    return [value for name, value in settings.items() if variables.is_secret_name(name)]


def server_values(sandbox: Sandbox, plan: Plan) -> dict[str, str]:
    """Return the server's settings that the plan's steps refer to, as run values.

    The settings are read from the container's environment file after the
    fault, which may have changed them (a weak token, say).
    """
    used = _referenced_names(plan)
    settings = dict(sandbox.server.server_env)
    settings.update(sandbox.server.current_env())
    return {
        name: value
        for name, value in settings.items()
        if name in used and name not in plan.values
    }


def _referenced_names(plan: Plan) -> set[str]:
    """Return the variables that the plan's steps expand."""
    return {
        reference.name
        for planned in plan.steps
        for reference in variables.find_variable_references(planned.step.code)
    }


def check_outputs(
    expectations: tuple[OutputExpectation, ...],
    outputs: dict[int, bytes],
    selected: set[int] | None = None,
) -> list[CheckResult]:
    """Match each expectation against its step's output.

    A step outside ``selected`` (left out by --step or --from, or skipped by
    the scenario) is reported as not checked rather than failed.
    """
    import re

    results = []
    for expectation in expectations:
        name = f"step {expectation.step} output matches '{expectation.pattern}'"
        output = outputs.get(expectation.step)
        if output is None and selected is not None and expectation.step not in selected:
            results.append(
                CheckResult(name, True, "not checked: the step was not selected", True)
            )
            continue
        if output is None:
            results.append(
                CheckResult(name, False, f"step {expectation.step} did not run")
            )
            continue
        text = output.decode("utf-8", "replace")
        match = re.search(expectation.pattern, text)
        detail = match.group(0) if match else "no match in: " + _tail(text)
        results.append(CheckResult(name, match is not None, detail))
    return results


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def describe(sandbox: Sandbox) -> dict[str, object]:
    """Return the sandbox record for the transcript (no secrets)."""
    return {
        "image": sandbox.server.image,
        "container": sandbox.server.id[:12],
        "scenario": sandbox.scenario.path.name,
        "fault": sandbox.scenario.fault,
        "evidence": sandbox.evidence,
        "ready_seconds": round(sandbox.server.ready_seconds, 3),
        "env_file": ENV_FILE,
    }


def report(results: list[CheckResult], say: Say | None = None) -> None:
    say = say or _stderr
    for result in results:
        if result.skipped:
            mark = "skip"
        elif result.passed:
            mark = "ok  "
        else:
            mark = "FAIL"
        say(f"  {mark} {result.name}: {result.detail}")


def sandbox_plan(request: RunRequest) -> tuple[Plan, SandboxLayout, Scenario]:
    """The plan of a sandbox run, its scenario's values in it, checked before any start.

    Raises the errors a ``--yes`` run would raise before it builds or starts
    anything: no scenario, scenario steps outside the section, steps marked
    confirm without --allow-destructive, values that no option or setting supplies.
    """
    from ..commands import plan_run
    from ..plan import check_destructive, check_values
    from ..targets import SandboxTarget, target_environment

    # The steps run in the container, whose shell has none of this
    # machine's environment.
    request.environment = target_environment(SandboxTarget(), request.environment)
    layout, scenario = _scenario_of(request)
    # Steps marked when=... run for the scenario's deployment only.
    request.deployment = scenario.deployment
    plan = plan_run(request)
    _select_scenario_steps(scenario, plan)
    _add_follow_ups(scenario, plan)
    check_scenario_steps(scenario, plan)
    for name, value in scenario.variables.items():
        plan.values.setdefault(name, value)
    if request.assume_yes:
        if not request.allow_destructive:
            check_destructive(plan)
        # The server's settings (QPC_DB_KEY, ...) are supplied once it runs.
        supplied = _server_setting_names(layout)
        check_values(replace(plan, values={**supplied, **plan.values}))
    return plan, layout, scenario


def _scenario_of(request: RunRequest) -> tuple[SandboxLayout, Scenario]:
    """Find the scenario of the request's section before its plan is built."""
    from ..commands import plan_run
    from ..playbook import load_playbook

    if request.section is None:
        plan_run(request)  # raises the usual "--section is required" error
    playbook = load_playbook(request.playbook)
    section = playbook.find_section(request.section) if request.section else None
    path = section.path if section is not None else playbook.root.path
    layout = find_layout(Path(request.playbook).resolve().parent)
    scenario = find_scenario(
        layout.scenario_dir, request.playbook, path, request.scenario,
        request.deployment,
    )  # fmt: skip
    return layout, scenario


def _select_scenario_steps(scenario: Scenario, plan: Plan) -> None:
    """Keep only the section steps that the scenario's ``steps`` names."""
    if scenario.steps is None:
        return
    for number in scenario.steps:
        if not 1 <= number <= plan.total_steps:
            raise ScenarioError(
                f"{scenario.path}: 'steps' names step {number}, but section "
                f"{scenario.section!r} has steps 1 to {plan.total_steps} "
                "('runbook show FILE --section S' numbers them)"
            )
    wanted = set(scenario.steps)
    plan.steps = [planned for planned in plan.steps if planned.number in wanted]
    if not plan.steps:
        raise ScenarioError(
            f"{scenario.path}: --step/--from and the scenario's 'steps' "
            f"{list(scenario.steps)} select no step together"
        )


def _add_follow_ups(scenario: Scenario, plan: Plan) -> None:
    """Append the steps of the scenario's ``then`` sections, numbered on."""
    from ..plan import PlannedStep
    from ..playbook import load_playbook

    for follow_up in scenario.then:
        path = Path(plan.playbook.path).parent / follow_up.playbook
        try:
            section = load_playbook(str(path)).find_section(follow_up.section)
        except RunbookError as error:
            raise ScenarioError(
                f"{scenario.path}: 'then' entry {follow_up.playbook} / "
                f"{follow_up.section!r}: {error}"
            ) from error
        for step in section.all_steps():
            plan.total_steps += 1
            plan.steps.append(PlannedStep(plan.total_steps, step))


def check_scenario_steps(scenario: Scenario, plan: Plan) -> None:
    """Reject scenario step numbers that the section does not have."""
    numbers = [*scenario.skip, *(item.step for item in scenario.expect_output)]
    for number in numbers:
        if not 1 <= number <= plan.total_steps:
            raise ScenarioError(
                f"{scenario.path}: step {number} does not exist: section "
                f"{scenario.section!r} has steps 1 to {plan.total_steps} "
                "('runbook show FILE --section S' numbers them)"
            )


def dry_run_header(request: RunRequest) -> tuple[Plan, str]:
    """Return a sandbox dry run's plan and lines that describe what it would do."""
    plan, layout, scenario = sandbox_plan(request)
    fault = get_fault(scenario.fault)
    supplied = sorted(set(_server_setting_names(layout)) & _referenced_names(plan))
    lines = [
        f"sandbox: scenario {scenario.path.name}, fault {fault.name} ({fault.summary})"
    ]
    for follow_up in scenario.then:
        lines.append(
            f"sandbox: then runs {follow_up.playbook} / {follow_up.section!r} in "
            "the same shell"
        )
    if scenario.pending:
        lines.append(f"sandbox: pending, expected to fail: {scenario.pending}")
    if supplied:
        lines.append(
            f"sandbox: supplies {', '.join(supplied)} from the server's settings"
        )
    if scenario.steps is not None:
        listed = ", ".join(str(number) for number in scenario.steps)
        lines.append(
            f"sandbox: runs only steps {listed} of the section, as the "
            "scenario's 'steps' lists them"
        )
    for number, reason in sorted(scenario.skip.items()):
        lines.append(f"sandbox: skips step {number}: {reason}")
    for expectation in scenario.expect_output:
        lines.append(
            f"sandbox: checks step {expectation.step} output matches "
            f"'{expectation.pattern}'"
        )
    for condition in scenario.post_conditions:
        lines.append(f"sandbox: checks {condition.describe()}")
    supplied_values = dict.fromkeys(supplied, "set-by-sandbox")
    plan.values = {**supplied_values, **plan.values}
    return plan, "\n".join(lines) + "\n\n"


def run_in_sandbox(
    request: RunRequest,
    stdout: IO[str] | None = None,
    on_ready: Callable[[Sandbox], None] | None = None,
    say: Say | None = None,
) -> int:
    """``runbook run --target sandbox``: the whole sandbox run; the exit status.

    Exit status: the run's own, or 1 when every step passed but an output
    expectation or post-condition failed. ``on_ready`` receives the sandbox once
    its fault is in place (tests use it to learn the container's secrets).
    ``say`` gets the sandbox's progress lines (default: standard error).
    """
    say = say or _stderr
    from ..commands import execute
    from ..targets import DockerTarget

    plan, layout, scenario = sandbox_plan(request)
    if scenario.pending:
        say(
            f"sandbox: warning: {scenario.path.name} is marked pending, so this "
            f"section is expected to fail: {scenario.pending}"
        )
    if scenario.deployment == "compose":
        return _run_compose(request, plan, layout, scenario, stdout, say)
    sandbox = _prepare_with_signals(plan, request.keep, say, scenario.name)
    try:
        if on_ready is not None:
            on_ready(sandbox)
        plan.values.update(server_values(sandbox, plan))
        target = DockerTarget(sandbox.server.id)
        selected = {planned.number for planned in plan.steps} - set(scenario.skip)

        def finish(result: RunResult, transcript: Transcript) -> int | None:
            if result.exit_code >= 128:
                say("sandbox: the run was interrupted; no check ran")
                return None
            outputs = {
                record.planned.number: record.outcome.output
                for record in result.records
                if record.outcome is not None
            }
            if not sandbox.server.running():
                checks = [
                    CheckResult(
                        "sandbox container",
                        False,
                        "the container is gone; no check ran",
                    )
                ]
            else:
                checks = check_outputs(scenario.expect_output, outputs, selected)
                checks += check_post_conditions(sandbox)
            for check in checks:
                transcript.write(
                    "check",
                    name=check.name,
                    passed=check.passed,
                    skipped=check.skipped,
                    detail=check.detail,
                )
            if checks:
                say(f"sandbox: checks of {scenario.path.name}:")
                report(checks, say)
            failed = [check for check in checks if not check.passed]
            if failed and result.exit_code == 0:
                result.stopped = result.stopped or (
                    f"{len(failed)} sandbox check(s) failed: "
                    + "; ".join(check.name for check in failed)
                )
                return 1
            return None

        result = execute(
            request,
            plan,
            target,
            stdout,
            skip_steps=scenario.skip,
            finish=finish,
            describe_target=f"sandbox (docker:{sandbox.server.id[:12]})",
            first_records=[("sandbox", describe(sandbox))],
            secrets=server_secrets(
                {**sandbox.server.server_env, **sandbox.server.current_env()}
            ),
        )
        return result.exit_code
    finally:
        if request.keep:
            say(
                f"sandbox: container {sandbox.server.id[:12]} kept; enter it with "
                f"'docker exec -it {sandbox.server.id[:12]} bash', remove it with "
                f"'docker rm -f {sandbox.server.id[:12]}'"
            )
        else:
            sandbox.server.stop()


def _run_compose(
    request: RunRequest,
    plan: Plan,
    layout: SandboxLayout,
    scenario: Scenario,
    stdout: IO[str] | None,
    say: Say,
) -> int:
    """Run a Compose scenario: its steps in a local shell, against a project.

    Only output expectations are checked: the Compose project has no systemd
    unit and no post-condition applies to it.
    """
    from ..commands import execute
    from ..targets import LocalTarget
    from .compose import (
        COMPOSE_FAULTS,
        ComposeProject,
        ComposeUnavailable,
        compose_tool,
    )

    tool, reason = compose_tool()
    if tool is None:
        raise ComposeUnavailable(
            f"scenario {scenario.name} runs the Compose deployment, but {reason}"
        )
    if scenario.post_conditions:
        raise ScenarioError(
            f"{scenario.path}: a Compose scenario cannot check post-conditions "
            "(they read the systemd unit); remove 'post_conditions'"
        )
    image = ensure_image(layout, progress=say)
    project = ComposeProject.create(layout.fixtures, image.tag, tool)
    try:
        seconds = project.up()
        # Read before the fault, which may stop the container for good.
        secrets = server_secrets(parse_env_text(project.exec(f"cat {ENV_FILE}")))
        say(
            f"sandbox: Compose project {project.name} healthy in {seconds:.1f} s; "
            f"injecting fault {scenario.fault}"
        )
        evidence = COMPOSE_FAULTS[scenario.fault](project)
        say(f"sandbox: fault in place: {evidence}")
        # docker compose finds the project through these, from any directory.
        plan.values.update(project.environment)
        selected = {planned.number for planned in plan.steps} - set(scenario.skip)

        def finish(result: RunResult, transcript: Transcript) -> int | None:
            if result.exit_code >= 128:
                return None
            outputs = {
                record.planned.number: record.outcome.output
                for record in result.records
                if record.outcome is not None
            }
            checks = check_outputs(scenario.expect_output, outputs, selected)
            for check in checks:
                transcript.write(
                    "check", name=check.name, passed=check.passed,
                    skipped=check.skipped, detail=check.detail,
                )  # fmt: skip
            if checks:
                say(f"sandbox: checks of {scenario.path.name}:")
                report(checks, say)
            if any(not check.passed for check in checks) and result.exit_code == 0:
                result.stopped = result.stopped or "sandbox output checks failed"
                return 1
            return None

        result = execute(
            request,
            plan,
            LocalTarget(),
            stdout,
            skip_steps=scenario.skip,
            finish=finish,
            describe_target=f"sandbox (Compose project {project.name})",
            secrets=secrets,
            first_records=[
                (
                    "sandbox",
                    {
                        "deployment": "compose",
                        "project": project.name,
                        "scenario": scenario.name,
                        "fault": scenario.fault,
                        "evidence": evidence,
                    },
                )
            ],
        )
        return result.exit_code
    finally:
        if request.keep:
            say(
                f"sandbox: Compose project {project.name} kept in {project.directory}; "
                f"remove it with 'docker compose -p {project.name} down --volumes'"
            )
        else:
            project.down()


class SandboxTerminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived while the sandbox was being prepared."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.exit_status = 128 + signum


def _prepare_with_signals(
    plan: Plan, keep: bool, say: Say, scenario_name: str | None = None
) -> Sandbox:
    """Prepare the sandbox; SIGTERM and SIGHUP remove its container and end the run."""
    from ..live import handle_stop_signals

    def terminate(signum: int, frame: object) -> None:
        raise SandboxTerminated(signum)

    with handle_stop_signals(terminate):
        return prepare(plan, keep=keep, say=say, scenario_name=scenario_name)


def _server_setting_names(layout: SandboxLayout) -> dict[str, str]:
    """Return the names the sandbox supplies from the server's settings."""
    names = read_env_file(layout.fixtures / "image" / "qpc-server.env")
    return dict.fromkeys([*names, "QPC_DB_KEY", "QPC_AUTH_TOKEN"], "set-by-sandbox")
