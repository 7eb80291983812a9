"""Library functions behind the CLI commands; tests call them directly."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

from . import variables
from .plan import (
    Plan,
    annotation_skips,
    build_plan,
    check_deployment,
    check_destructive,
    check_values,
    find_missing,
)
from .playbook import load_playbook

if TYPE_CHECKING:
    from .records import RunResult
    from .targets import Target
    from .transcript import Transcript


@dataclass
class RunRequest:
    """Everything ``runbook run`` was asked to do."""

    playbook: str
    section: str | None
    assume_yes: bool = False
    keep_going: bool = False
    allow_destructive: bool = False
    dry_run: bool = False
    step_numbers: Sequence[int] = ()
    from_number: int | None = None
    timeout: float | None = None
    var_options: Sequence[str] = ()
    env_files: Sequence[str] = ()
    transcript: str | None = None
    target: str = "local"
    #: With ``--target sandbox``: leave the container running after the run.
    keep: bool = False
    #: With ``--target sandbox``: the scenario file's stem, when several
    #: scenarios test the section.
    scenario: str | None = None
    #: A docs-as-tests run: steps marked ``skip-test`` are skipped.
    testing: bool = False
    #: The deployment variant to run (``when=`` steps); None when not given.
    deployment: str | None = None
    environment: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))


def list_sections(path: str, output_format: str = "text") -> str:
    """Return the section tree of a playbook as text or JSON."""
    from .views import render_tree, section_tree

    playbook = load_playbook(path)
    if output_format == "json":
        return json.dumps(section_tree(playbook), indent=2, ensure_ascii=False) + "\n"
    return render_tree(playbook)


def show_section(
    path: str,
    section: str | None,
    output_format: str = "text",
    deployment: str | None = None,
) -> str:
    """Return the numbered steps of a section (the whole playbook when None).

    With ``deployment``, steps for other deployments are marked as skipped.
    """
    from .views import plan_data, render_plan

    plan = build_plan(load_playbook(path), section)
    check_deployment(plan, deployment, required=False)
    plan.deployment = deployment
    plan.skipped = annotation_skips(plan, deployment)
    if output_format == "json":
        return json.dumps(plan_data(plan), indent=2, ensure_ascii=False) + "\n"
    return render_plan(plan)


def collect_values(
    var_options: Sequence[str], env_files: Sequence[str]
) -> dict[str, str]:
    """Merge ``--env-file`` files in order, then ``--var`` options, which win."""
    values: dict[str, str] = {}
    for env_file in env_files:
        values.update(variables.load_env_file(env_file))
    for option in var_options:
        name, value = variables.parse_var_option(option)
        values[name] = value
    return values


def plan_run(request: RunRequest) -> Plan:
    """Parse the playbook and select the steps and values of a run.

    The steps that the request's deployment, test mode or ``--yes`` skip are
    marked in ``Plan.skipped``. Raises DeploymentRequired when a ``--yes`` or
    dry run has steps with ``when`` and no deployment, and UnknownDeployment
    for a deployment the front matter does not declare.
    """
    plan = build_plan(
        load_playbook(request.playbook),
        request.section,
        step_numbers=request.step_numbers,
        from_number=request.from_number,
        values=collect_values(request.var_options, request.env_files),
        environment=request.environment,
        require_section=True,
    )
    required = request.assume_yes or request.dry_run
    check_deployment(plan, request.deployment, required)
    plan.deployment = request.deployment
    plan.skipped = annotation_skips(
        plan, request.deployment, request.testing, request.assume_yes
    )
    return plan


def dry_run(request: RunRequest) -> str:
    """Return what ``run`` would send to the shell; nothing is executed.

    With ``assume_yes`` the checks of a real ``--yes`` run apply first, so a
    dry run fails exactly where the real run would refuse to start.
    """
    from .targets import SandboxTarget, parse_target, target_environment
    from .views import render_dry_run

    target = parse_target(request.target)
    request.environment = target_environment(target, request.environment)
    if isinstance(target, SandboxTarget):
        from .sandbox.run import dry_run_header

        plan, header = dry_run_header(request)
        return header + render_dry_run(plan, find_missing(plan))
    plan = plan_run(request)
    if request.assume_yes:
        if not request.allow_destructive:
            check_destructive(plan)
        check_values(plan)
    return render_dry_run(plan, find_missing(plan))


def run(request: RunRequest, stdout: IO[str] | None = None) -> int:
    """Run the selected steps, asking or with ``--yes``; return the exit status."""
    from .targets import SandboxTarget, parse_target, target_environment

    target = parse_target(request.target)
    request.environment = target_environment(target, request.environment)
    if isinstance(target, SandboxTarget):
        from .sandbox.run import run_in_sandbox

        return run_in_sandbox(request, stdout)
    plan = plan_run(request)
    return execute(request, plan, target, stdout).exit_code


def execute(
    request: RunRequest,
    plan: Plan,
    target: Target,
    stdout: IO[str] | None = None,
    skip_steps: Mapping[int, str] | None = None,
    finish: Callable[[RunResult, Transcript], int | None] | None = None,
    describe_target: str | None = None,
    first_records: Sequence[tuple[str, Mapping[str, object]]] = (),
    secrets: Iterable[str] = (),
) -> RunResult:
    """Run ``plan`` on ``target`` with the request's options and transcript.

    ``skip_steps`` maps step numbers to the reason they are not run.
    ``finish`` runs after the steps, before the transcript's end record,
    and may return a new exit status (the sandbox checks post-conditions
    there). ``first_records`` are written as soon as the transcript is open.
    ``secrets`` are values masked in the transcript and on the terminal.
    """
    from .errors import TranscriptPathError
    from .prompter import TerminalPrompter
    from .runner import Runner, RunOptions
    from .session import BashSession
    from .transcript import Transcript, default_transcript_path

    options = RunOptions(
        assume_yes=request.assume_yes,
        keep_going=request.keep_going,
        allow_destructive=request.allow_destructive,
        timeout=request.timeout,
        target=describe_target or target.describe(),
        mode="yes" if request.assume_yes else "interactive",
        skip_steps=dict(skip_steps or {}),
        testing=request.testing,
        deployment=request.deployment,
    )
    prompter = TerminalPrompter(
        total_steps=plan.total_steps,
        assume_yes=request.assume_yes,
        stdout=stdout,
    )
    path = request.transcript or default_transcript_path(plan.section.slug)
    transcript = Transcript(Path(path))
    # Masked wherever they appear, whether or not a step names them.
    transcript.masker.add(secrets)
    hook = None
    if finish is not None:

        def hook(result: RunResult) -> int | None:
            return finish(result, transcript)

    runner = Runner(
        plan,
        prompter,
        transcript,
        options,
        lambda: BashSession(target=target),
        finish=hook,
        # Steps marked target=local run in a shell on this machine, which
        # has this machine's environment whatever the run's target.
        local_session_factory=None if target.is_local else BashSession,
    )
    # Before the transcript exists: nothing has run yet.
    runner.check_deployment()
    runner.check_destructive()
    runner.check_values()
    try:
        transcript.open(create_parents=request.transcript is None)
    except TranscriptPathError as error:
        if request.transcript is not None:
            raise
        # The default location is not writable. A full disk is a common
        # reason to run a playbook, so run without a transcript and warn.
        prompter.warn(f"{error}; running without a transcript")
        cause = error.__cause__
        transcript.disable(cause if isinstance(cause, OSError) else OSError(str(error)))
    for record_type, fields in first_records:
        transcript.write(record_type, **fields)
    try:
        return runner.run()
    finally:
        transcript.close()
