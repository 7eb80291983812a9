"""Command line interface: parses options and calls one library function each.

Only click is imported at start-up; the parser, the shell driver and the
terminal renderer load when a command needs them, so ``runbook --help`` stays
fast.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click

from . import __version__

#: Default per-step timeout, in seconds, when ``--yes`` runs without ``--timeout``.
YES_TIMEOUT = 600.0


class RunbookUsageError(click.ClickException):
    """A domain usage error (unknown section, missing value): exit status 2."""

    exit_code = 2


def _fail(error: Exception) -> click.ClickException:
    """Turn a runbook error into the click exception with the right exit status."""
    from .errors import UsageError

    if isinstance(error, UsageError):
        return RunbookUsageError(str(error))
    return click.ClickException(str(error))


def _complete_section(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[Any]:
    """Offer section titles of the playbook named earlier on the command line."""
    from click.shell_completion import CompletionItem

    from .playbook import load_playbook

    path = ctx.params.get("playbook") or _playbook_from_comp_words()
    if not path:
        return []
    try:
        playbook = load_playbook(path)
    except Exception:  # completion must never print a traceback into the shell
        return []
    # Slugs, not titles: a completed title with spaces would reach the shell
    # unquoted and split into several arguments.
    lowered = incomplete.strip("'\"").lower()
    return [
        CompletionItem(_unique_name(playbook, section), help=" / ".join(section.path))
        for section in playbook.sections()
        if lowered in section.title.lower() or lowered in section.slug
    ]


def _unique_name(playbook: Any, section: Any) -> str:
    """Return the section's slug, or a path of slugs when the slug is ambiguous.

    The slug ``diagnosis`` of the first of several Diagnosis sections also
    equals their titles in lower case, so ``--section`` rejects it as
    ambiguous. The path ``incident-server-not-starting/diagnosis`` is unique.
    """
    from .errors import RunbookError

    try:
        if playbook.find_section(section.slug) is section:
            return str(section.slug)
    except RunbookError:
        pass
    slugs = [
        s.slug for s in playbook.sections() if s.path == section.path[: len(s.path)]
    ]
    return "/".join(slugs)


def _playbook_from_comp_words() -> str | None:
    """Find the playbook path in the words the shell passes for completion.

    NOTE: click 8.4 resolves no parameters while an option such as
    ``--section`` still lacks its value, so the words are read directly.
    """
    import os
    import shlex

    try:
        words = shlex.split(os.environ.get("COMP_WORDS", ""))
    except ValueError:
        return None
    for word in words[2:]:
        if not word.startswith("-") and os.path.isfile(word):
            return word
    return None


def _finite_timeout(
    ctx: click.Context, param: click.Parameter, value: float | None
) -> float | None:
    import math

    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a number of seconds", ctx, param)
    return value


format_option = click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Output format.",
)
playbook_argument = click.argument(
    "playbook", type=click.Path(dir_okay=False, path_type=str)
)
deployment_option = click.option(
    "--deployment",
    metavar="NAME",
    help="The deployment this is (a name from the playbook's front matter "
    "deployments, such as systemd): steps marked when= for other deployments "
    "are skipped.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="runbook")
@click.option(
    "-v", "--verbose", count=True, help="Log to stderr: -v for progress, -vv for debug."
)
def main(verbose: int) -> None:
    """Run operational Markdown playbooks step by step in one persistent shell.

    Example: runbook run playbooks/incident-response.md --section "Storage Full"
    """
    import logging

    # A terminal or pipe whose encoding lacks a character (a Latin-1 locale)
    # gets a replacement character instead of a crash mid-run.
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="replace")
    if verbose:
        level = logging.DEBUG if verbose > 1 else logging.INFO
        logging.basicConfig(level=level, format="runbook: %(levelname)s: %(message)s")
        # markdown-it traces every rule it tries at debug level.
        logging.getLogger("markdown_it").setLevel(logging.WARNING)
    else:
        # Without -v the operator sees what matters through the prompter;
        # this keeps Python's last-resort handler from printing log records.
        logging.getLogger("runbook").addHandler(logging.NullHandler())


@main.command("list")
@playbook_argument
@format_option
def list_command(playbook: str, output_format: str) -> None:
    """List the sections of a playbook with their step counts.

    Example: runbook list playbooks/incident-response.md --format json
    """
    from . import commands
    from .errors import RunbookError

    try:
        click.echo(commands.list_sections(playbook, output_format), nl=False)
    except RunbookError as error:
        raise _fail(error) from error


@main.command("show")
@playbook_argument
@click.option(
    "-s",
    "--section",
    shell_complete=_complete_section,
    help="Section title, slug, heading path (A/B) or unique part of a title. "
    "Default: the whole playbook.",
)
@deployment_option
@format_option
def show_command(
    playbook: str, section: str | None, deployment: str | None, output_format: str
) -> None:
    """Print a section's numbered steps with their prose and code.

    With --deployment, steps for other deployments are marked skipped.

    Example: runbook show playbooks/incident-response.md --section "Storage Full"
    """
    from . import commands
    from .errors import RunbookError

    try:
        text = commands.show_section(playbook, section, output_format, deployment)
    except RunbookError as error:
        raise _fail(error) from error
    click.echo(text, nl=False)


@main.command("run")
@playbook_argument
@click.option(
    "-s",
    "--section",
    shell_complete=_complete_section,
    help="Section to run: title, slug, heading path (A/B) or unique part of a "
    "title. Its subsections run too. Required unless the playbook has no "
    "headings.",
)
@click.option(
    "-y",
    "--yes",
    "assume_yes",
    is_flag=True,
    help="Run every step without asking; stop at the first failure. Steps read "
    "/dev/null as stdin. Every missing value is an error before anything runs.",
)
@click.option(
    "--keep-going",
    is_flag=True,
    help="With --yes, go on after a failed step; the exit status is still 1.",
)
@click.option(
    "--allow-destructive",
    is_flag=True,
    help="With --yes, run steps marked confirm instead of refusing to start.",
)
@click.option(
    "-n",
    "--dry-run",
    is_flag=True,
    help="Print the steps that would run, with values filled in; run nothing.",
)
@click.option(
    "--step",
    "step_numbers",
    type=click.IntRange(min=1),
    multiple=True,
    metavar="N",
    help="Run only step N (as numbered by 'runbook show'); repeat for more.",
)
@click.option(
    "--from",
    "from_number",
    type=click.IntRange(min=1),
    metavar="N",
    help="Start at step N.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    callback=_finite_timeout,
    metavar="SECONDS",
    help="Per-step time limit; a step past it is interrupted, then killed. "
    f"Default: none when interactive, {YES_TIMEOUT:.0f} with --yes. A step's "
    "own timeout attribute wins.",
)
@click.option(
    "--var",
    "var_options",
    multiple=True,
    metavar="NAME=VALUE",
    help="Value for a placeholder (<server-ip>) or a variable ($QPC_DB_KEY); "
    "repeat for more. Variables are exported in the shell before the first step.",
)
@click.option(
    "--env-file",
    "env_files",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=str),
    metavar="FILE",
    help="File of NAME=VALUE lines read like --var; repeat for more; --var wins.",
)
@click.option(
    "--transcript",
    type=click.Path(dir_okay=False, path_type=str),
    metavar="PATH",
    help="JSON Lines file the run appends to. Default: a new file under "
    "$XDG_STATE_HOME/runbook/transcripts (~/.local/state/runbook/transcripts).",
)
@click.option(
    "--target",
    default="local",
    show_default=True,
    metavar="TARGET",
    help="Where the shell runs: local, docker:CONTAINER (docker exec in a running "
    "container), ssh:[USER@]HOST[:PORT] (ssh -tt in batch mode, so a key must log "
    "in without prompts) or sandbox (a test server container with the fault of "
    "the section's scenario in fixtures/scenarios; built on first use).",
)
@click.option(
    "--keep",
    is_flag=True,
    help="With --target sandbox: leave the container running after the run, "
    "to look around in it.",
)
@click.option(
    "--scenario",
    metavar="NAME",
    help="With --target sandbox: the scenario to run when several test the "
    "section (its file name in fixtures/scenarios without .yaml).",
)
@deployment_option
def run_command(
    playbook: str,
    section: str | None,
    assume_yes: bool,
    keep_going: bool,
    allow_destructive: bool,
    dry_run: bool,
    step_numbers: Sequence[int],
    from_number: int | None,
    timeout: float | None,
    var_options: Sequence[str],
    env_files: Sequence[str],
    transcript: str | None,
    target: str,
    keep: bool,
    scenario: str | None,
    deployment: str | None,
) -> None:
    """Run a section's steps one by one, asking before each.

    Before each step: run, skip, edit (opens $EDITOR), run all remaining, or
    quit. After a failure: retry, skip, edit or quit. Exit status: 0 when every
    step that ran succeeded, 1 when one failed, 2 for usage errors, 130 when
    interrupted, 143 on SIGTERM, 129 on SIGHUP.

    Example: runbook run playbooks/incident-response.md --section "Storage Full"
    """
    from . import commands
    from .errors import RunbookError

    if keep_going and not assume_yes:
        raise click.UsageError("--keep-going only applies with --yes")
    if allow_destructive and not assume_yes:
        raise click.UsageError(
            "--allow-destructive only applies with --yes; interactive runs ask "
            "before each step marked confirm"
        )
    request = commands.RunRequest(
        playbook=playbook,
        section=section,
        assume_yes=assume_yes,
        keep_going=keep_going,
        allow_destructive=allow_destructive,
        dry_run=dry_run,
        step_numbers=step_numbers,
        from_number=from_number,
        timeout=timeout if timeout or not assume_yes else YES_TIMEOUT,
        var_options=var_options,
        env_files=env_files,
        transcript=transcript,
        target=target,
        keep=keep,
        scenario=scenario,
        deployment=deployment,
    )
    if keep and target != "sandbox":
        raise click.UsageError("--keep only applies with --target sandbox")
    if scenario is not None and target != "sandbox":
        raise click.UsageError("--scenario only applies with --target sandbox")
    try:
        if dry_run:
            click.echo(commands.dry_run(request), nl=False)
            return
        status = commands.run(request)
    except RunbookError as error:
        raise _fail(error) from error
    except KeyboardInterrupt as interrupt:
        click.echo("\nrunbook: interrupted", err=True)
        sys.exit(getattr(interrupt, "exit_status", 130))
    sys.exit(status)


@main.group("sandbox")
def sandbox_group() -> None:
    """Build the test server image and clean up sandbox containers.

    "runbook run --target sandbox" builds the image on first use; these
    commands do it ahead of time or start over.
    """


@sandbox_group.command("build")
@click.option(
    "--rebuild",
    is_flag=True,
    help="Build every layer again (docker build --no-cache), even when the "
    "cached image fits.",
)
def sandbox_build_command(rebuild: bool) -> None:
    """Build the test server image (bootstrapping debian:trixie-slim if needed).

    Prints the image tag. Example: runbook sandbox build
    """
    from .errors import RunbookError
    from .sandbox.image import ensure_image
    from .sandbox.layout import find_layout

    def progress(message: str) -> None:
        click.echo(message, err=True)

    try:
        image = ensure_image(find_layout(), progress=progress, rebuild=rebuild)
    except RunbookError as error:
        raise _fail(error) from error
    except KeyboardInterrupt:
        click.echo("\nrunbook: interrupted", err=True)
        sys.exit(130)
    state = "built" if image.built else "cached"
    click.echo(f"{image.tag} ({state}, {image.seconds:.1f} s)")


@sandbox_group.command("clean")
@click.option(
    "--all",
    "remove_all",
    is_flag=True,
    help="Also remove kept and running sandboxes, and those of other hosts.",
)
@click.option(
    "--images",
    is_flag=True,
    help="Also remove test server images other than the current one.",
)
def sandbox_clean_command(remove_all: bool, images: bool) -> None:
    """Remove sandbox containers left by killed runs (with --all: every one).

    Example: runbook sandbox clean --images
    """
    from .errors import RunbookError
    from .sandbox.container import remove_leftovers

    try:
        removed = remove_leftovers(everything=remove_all)
        click.echo(f"removed {len(removed)} sandbox container(s)")
        if images:
            from .sandbox.image import ensure_image, remove_old_images
            from .sandbox.layout import find_layout

            current = ensure_image(find_layout()).tag
            old = remove_old_images(keep=current)
            click.echo(f"removed {len(old)} old image(s); kept {current}")
    except RunbookError as error:
        raise _fail(error) from error


@main.command("test")
@click.argument("playbooks", nargs=-1, type=click.Path(dir_okay=False, path_type=str))
@click.option(
    "-k",
    "--keyword",
    help="Run only the cases whose heading path or scenario name contains this "
    "text (any case).",
)
@click.option(
    "-j",
    "--jobs",
    default="1",
    show_default=True,
    metavar="N|auto",
    help="Cases to run at the same time, each in its own sandbox container; "
    "'auto' runs one per CPU.",
)
@click.option(
    "--transcripts",
    type=click.Path(file_okay=False, path_type=str),
    help="Directory for one transcript per case. Default: a new directory "
    "under $XDG_STATE_HOME/runbook/tests.",
)
@click.option(
    "--require-scenarios/--no-require-scenarios",
    default=None,
    help="Fail (exit 1) when a step has no scenario or is skipped without a "
    "reason. Default: on without -k, off with -k.",
)
@format_option
def test_command(
    playbooks: tuple[str, ...],
    keyword: str | None,
    jobs: str,
    transcripts: str | None,
    require_scenarios: bool | None,
    output_format: str,
) -> None:
    """Run every scenario of every section, each against a fresh sandbox.

    PLAYBOOKS default to playbooks/*.md. Each scenario runs as "runbook run
    --target sandbox --yes --allow-destructive --scenario NAME" would. The
    report lists each
    result, then every section and step with its coverage. Exit status: 0
    when every case passed (or failed as its pending mark expects) and, when
    scenarios are required, no step lacks one; 1 otherwise or when nothing
    ran; 2 for usage errors; 130 or 143 when interrupted (cases already
    finished are reported).

    Example: runbook test playbooks/incident-response.md -j 2
    """
    import glob
    import json

    from . import parallel, step_coverage, testing
    from .errors import RunbookError

    paths = list(playbooks) or sorted(glob.glob("playbooks/*.md"))
    if not paths:
        raise click.UsageError(
            "no playbook given and no playbooks/*.md here; name the files to test"
        )
    try:
        workers = parallel.parse_jobs(jobs)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="'-j' / '--jobs'") from error
    directory = _test_transcript_dir(transcripts)
    if require_scenarios is None:
        require_scenarios = not keyword
    text = output_format == "text"
    printer = _InOrderPrinter(enabled=text)
    try:
        cases = testing.collect(paths, keyword)
        if keyword and not cases:
            raise click.UsageError(
                f"-k {keyword!r} matches no section or scenario; "
                "'runbook test' without -k lists the coverage"
            )
        printer.expect(cases)

        # Progress goes to standard error in both formats, so that standard
        # output holds only the report or the JSON document.
        def started(case: testing.Case) -> None:
            click.echo(f"running {case.node_id} ...", err=True)

        def finished(outcome: testing.Outcome) -> None:
            click.echo(
                f"finished {outcome.case.node_id}: "
                f"{testing.MARKS[outcome.status].strip()} in "
                f"{outcome.seconds:.1f} s",
                err=True,
            )
            printer.finished(outcome)

        if workers == 1:
            result = parallel.run_serial(cases, directory, started, finished)
        else:
            result = parallel.run_parallel(cases, directory, workers, started, finished)
        rows = step_coverage.coverage(paths, result.outcomes)
    except RunbookError as error:
        raise _fail(error) from error
    outcomes = result.outcomes
    if result.interrupted is not None:
        click.echo(
            f"runbook: interrupted after {len(outcomes)} case(s) finished; "
            f"{len(result.unfinished)} stopped, later cases did not run",
            err=True,
        )
    problems = step_coverage.gaps(rows)
    if output_format == "json":
        data = {
            "cases": [_case_json(o) for o in outcomes],
            "coverage": [step_coverage.as_json(r) for r in rows],
            "coverage_problems": problems,
        }
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(testing.render_summary(outcomes, rows), nl=False)
        if require_scenarios:
            for problem in problems:
                click.echo(f"coverage: {problem}", err=True)
    if result.interrupted is not None:
        sys.exit(result.interrupted)
    failed = [o for o in outcomes if not o.ok]
    if not outcomes and text:
        click.echo("no section has a scenario; nothing ran", err=True)
    incomplete = require_scenarios and bool(problems)
    sys.exit(1 if failed or not outcomes or incomplete else 0)


class _InOrderPrinter:
    """Print result lines in document order, each as soon as those before it are."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.order: list[Any] = []
        self.done: dict[Any, Any] = {}
        self.printed = 0

    def expect(self, cases: Sequence[Any]) -> None:
        self.order = [(case.playbook, case.node_id) for case in cases]

    def finished(self, outcome: Any) -> None:
        from . import testing

        self.done[(outcome.case.playbook, outcome.case.node_id)] = outcome
        while self.printed < len(self.order) and self.order[self.printed] in self.done:
            if self.enabled:
                done = self.done[self.order[self.printed]]
                click.echo(testing.render_outcome(done), nl=False)
            self.printed += 1


def _test_transcript_dir(transcripts: str | None) -> Any:
    """Return the directory for ``runbook test``'s transcripts, created."""
    from pathlib import Path

    from .transcript import default_transcript_dir, default_transcript_path

    if transcripts:
        directory = Path(transcripts)
    else:
        stamp = Path(default_transcript_path("tests")).stem
        directory = default_transcript_dir().parent / "tests" / stamp
    if transcripts and not directory.parent.is_dir():
        raise click.UsageError(
            f"--transcripts {transcripts!r}: {str(directory.parent)!r} does not "
            "exist; create it or pick another directory"
        )
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise click.UsageError(
            f"cannot create the transcript directory {str(directory)!r}: "
            f"{error.strerror}; pass --transcripts DIR"
        ) from error
    return directory


def _case_json(outcome: Any) -> dict[str, Any]:
    """Return one case's result as ``runbook test --format json`` prints it."""
    return {
        "playbook": outcome.case.playbook,
        "section": list(outcome.case.section_path),
        "scenario": outcome.case.scenario.name,
        "node_id": outcome.case.node_id,
        "status": outcome.status,
        "exit_code": outcome.exit_code,
        "seconds": round(outcome.seconds, 3),
        "prepare_seconds": _rounded(outcome.prepare_seconds),
        "container_ready_seconds": _rounded(outcome.ready_seconds),
        "checks": outcome.checks,
        "steps": [
            {"step": r.number, "result": r.result, "reason": r.reason}
            for _, r in sorted(outcome.steps.items())
        ],
        "stopped": outcome.stopped,
        "transcript": outcome.transcript,
    }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


@main.command("lint")
@click.argument(
    "playbooks", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=str)
)
@click.option(
    "--severity",
    type=click.Choice(["info", "warning", "error"]),
    default="warning",
    show_default=True,
    help="Exit 1 when a finding has this severity or a higher one.",
)
@click.option(
    "--retired",
    "retired",
    multiple=True,
    metavar="NAME",
    help="A name that must no longer appear in commands or paths (an old "
    "project name after a rename); repeat for more.",
)
@click.option(
    "--target",
    metavar="TARGET",
    help="Also check that each command exists there (local, docker:C, ssh:H); "
    "this starts a shell on the target.",
)
@click.option("--no-shellcheck", is_flag=True, help="Skip the shellcheck rule (RB004).")
@format_option
def lint_command(
    playbooks: tuple[str, ...],
    severity: str,
    retired: tuple[str, ...],
    target: str | None,
    no_shellcheck: bool,
    output_format: str,
) -> None:
    """Check playbooks without running them: rule id, file:line, how to fix.

    Rules: RB001 placeholders, RB002 variables in quoted heredocs, RB003
    variables never set or mentioned, RB004 shellcheck, RB005 broken links,
    RB006 destructive steps without confirm, RB007 retired names, RB008
    commands missing on --target, RB009 parse warnings, RB010 output blocks
    that follow no step, RB011 when= without declared deployments, RB012
    misspelt front matter keys.

    Example: runbook lint playbooks/*.md --retired quicproquo --retired qpq
    """
    from . import lint
    from .errors import RunbookError

    if any(not name.strip() for name in retired):
        raise click.UsageError(
            "--retired needs a name; an empty one matches every line"
        )
    if target is not None and target.strip() == "sandbox":
        raise click.UsageError(
            "lint cannot check commands on --target sandbox, which exists only "
            "during a run; start one with 'runbook run ... --target sandbox --keep' "
            "and pass --target docker:CONTAINER"
        )
    findings = []
    try:
        for path in playbooks:
            findings += lint.lint(path, retired, target, not no_shellcheck)
    except RunbookError as error:
        raise _fail(error) from error
    click.echo(lint.render(findings, output_format), nl=False)
    sys.exit(1 if lint.at_or_above(findings, severity) else 0)
