"""``runbook run --target sandbox``: a section against a server with its fault.

A run finds the section's scenario and builds (or reuses) the test server
image. It starts a container, injects the scenario's fault and proves that it
took effect. Then it runs the section in the container through a docker
target, checks the scenario's output expectations and post-conditions, and
removes the container. The transcript gets ``sandbox`` and ``check`` records
next to the steps' records.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING

from .. import variables
from ..plan import Plan
from .container import ENV_FILE, ServerContainer, read_env_file
from .docker import DockerError
from .faults import PROOF_TIMEOUT, client_command, get_fault
from .image import ensure_image
from .layout import SandboxLayout, find_layout
from .scenarios import (
    OutputExpectation,
    PostCondition,
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
class CheckResult:
    name: str
    passed: bool
    detail: str
    #: True when the check did not apply to this run (its step did not run).
    skipped: bool = False


@dataclass
class Sandbox:
    """A started container with its fault in place, ready for a run."""

    layout: SandboxLayout
    scenario: Scenario
    server: ServerContainer
    evidence: str
    baseline: dict[str, object]


def locate(plan: Plan) -> tuple[SandboxLayout, Scenario]:
    """Find the checkout to build from and the scenario of the plan's section."""
    layout = find_layout(Path(plan.playbook.path).resolve().parent)
    scenario = find_scenario(layout.scenario_dir, plan.playbook.path, plan.section.path)
    return layout, scenario


def prepare(
    plan: Plan, keep: bool = False, say: Say | None = None, rebuild: bool = False
) -> Sandbox:
    """Build the image, start the server and inject the section's fault."""
    say = say or _stderr
    layout, scenario = locate(plan)
    fault = get_fault(scenario.fault)
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
        baseline = server.admin_json("stats")
    except BaseException:
        server.stop()
        raise
    say(f"sandbox: ready after {time.monotonic() - started:.1f} s")
    return Sandbox(layout, scenario, server, evidence, baseline)


def server_values(sandbox: Sandbox, plan: Plan) -> dict[str, str]:
    """Return the server's settings that the plan's steps refer to, as run values."""
    used = _referenced_names(plan)
    return {
        name: value
        for name, value in sandbox.server.server_env.items()
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


def check_post_conditions(sandbox: Sandbox) -> list[CheckResult]:
    return [
        _check(sandbox, condition) for condition in sandbox.scenario.post_conditions
    ]


def _check(sandbox: Sandbox, condition: PostCondition) -> CheckResult:
    server = sandbox.server
    name = condition.describe()
    try:
        if condition.kind == "service_active":
            return _check_active(server, name)
        if condition.kind == "client_roundtrip":
            return _check_roundtrip(server, name)
        stats = server.admin_json("stats")
        if condition.kind == "expired_messages_gone":
            expired = int(str(stats["expired"]))
            return CheckResult(name, expired == 0, f"{expired} expired messages left")
        if condition.kind == "unexpired_messages_kept":
            before, after = sandbox.baseline, stats
            kept = (
                before["unexpired_ids_sha256"] == after["unexpired_ids_sha256"]
                and before["unexpired"] == after["unexpired"]
            )
            detail = (
                f"{after['unexpired']} unexpired now, "
                f"{before['unexpired']} before the run"
            )
            return CheckResult(name, kept, detail)
        if condition.kind == "metric":
            value = server.metric(str(condition.arguments["name"]))
            if value is None:
                return CheckResult(name, False, "the metric is not in /metrics")
            low = condition.arguments.get("min")
            high = condition.arguments.get("max")
            passed = (low is None or value >= low) and (high is None or value <= high)
            return CheckResult(name, passed, f"value {value:g}")
    except (DockerError, OSError, ValueError, KeyError) as error:
        return CheckResult(name, False, f"check failed: {error}")
    raise AssertionError(condition.kind)


def _check_active(server: ServerContainer, name: str) -> CheckResult:
    deadline = time.monotonic() + PROOF_TIMEOUT
    state, health = "", 0
    while time.monotonic() < deadline:
        state = server.unit_state()
        try:
            health, _ = server.http_get("/health", timeout=1.0)
        except OSError:
            health = 0
        if state == "active" and health == 200:
            return CheckResult(name, True, "qpc-server active, /health 200")
        time.sleep(0.3)
    return CheckResult(
        name, False, f"qpc-server {state or 'unknown'}, /health {health or 'no answer'}"
    )


def _check_roundtrip(server: ServerContainer, name: str) -> CheckResult:
    # Above the server's inline limit (1 KiB), so the payload goes to a blob
    # file: a full data volume fails this even when SQLite's WAL has room.
    payload = f"sandbox-check-{time.time_ns()}-" + "x" * 4096
    status, output = client_command(
        server, f"enqueue --to sandbox-check --ttl 600 --payload {payload}"
    )
    if status != 0:
        return CheckResult(name, False, f"enqueue failed: {_tail(output)}")
    status, output = client_command(server, "fetch --for sandbox-check")
    if status != 0 or payload not in _fetched_payloads(output):
        return CheckResult(
            name, False, f"fetch did not return the message: {_tail(output)}"
        )
    return CheckResult(name, True, "a 4 KiB message went through enqueue and fetch")


def _fetched_payloads(output: str) -> str:
    import base64

    try:
        reply = json.loads(output.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return ""
    texts = []
    for message in reply.get("messages", []):
        try:
            texts.append(base64.b64decode(message.get("payload_b64", "")).decode())
        except (ValueError, UnicodeDecodeError):
            continue
    return "\n".join(texts)


def _tail(text: str, size: int = 300) -> str:
    text = text.strip()
    return text if len(text) <= size else "…" + text[-size:]


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
    plan = plan_run(request)
    layout, scenario = locate(plan)
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
    if scenario.pending:
        lines.append(f"sandbox: pending, expected to fail: {scenario.pending}")
    if supplied:
        lines.append(
            f"sandbox: supplies {', '.join(supplied)} from the server's settings"
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

    plan, _, scenario = sandbox_plan(request)
    if scenario.pending:
        say(
            f"sandbox: warning: {scenario.path.name} is marked pending, so this "
            f"section is expected to fail: {scenario.pending}"
        )
    sandbox = _prepare_with_signals(plan, request.keep, say)
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


class SandboxTerminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived while the sandbox was being prepared."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.exit_status = 128 + signum


def _prepare_with_signals(plan: Plan, keep: bool, say: Say) -> Sandbox:
    """Prepare the sandbox; SIGTERM and SIGHUP remove its container and end the run."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return prepare(plan, keep=keep, say=say)

    def terminate(signum: int, frame: object) -> None:
        raise SandboxTerminated(signum)

    previous = {
        number: signal.signal(number, terminate)
        for number in (signal.SIGTERM, signal.SIGHUP)
    }
    try:
        return prepare(plan, keep=keep, say=say)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _server_setting_names(layout: SandboxLayout) -> dict[str, str]:
    """Return the names the sandbox supplies from the server's settings."""
    names = read_env_file(layout.fixtures / "image" / "qpc-server.env")
    return dict.fromkeys([*names, "QPC_DB_KEY", "QPC_AUTH_TOKEN"], "set-by-sandbox")
