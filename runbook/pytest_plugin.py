"""pytest plugin: collect playbooks as tests, one item per scenario of a section.

Registered through the ``pytest11`` entry point, so installing runbook is
enough: ``pytest playbooks/ -k storage --junitxml=report.xml`` runs the
Storage Full section against its sandbox. An item is named after its section,
with the scenario in brackets when several scenarios test the section, and
``-k`` also matches scenario names. Each item starts its own container, so
pytest-xdist can run items in parallel (``-n 2``).

A Markdown file is collected only when it is named on the command line, or
lies under a directory named there. It must also lie under one of the
``runbook_playbook_dirs`` (default ``playbooks``, relative to pytest's
rootdir), so a test suite's own Markdown fixtures never turn into tests. A
scenario marked ``pending`` becomes a strict xfail: its failure is expected,
and a pass fails the run until the mark is removed.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "runbook_playbook_dirs",
        "directories (relative to rootdir) whose Markdown files are playbooks",
        type="args",
        default=["playbooks"],
    )
    group = parser.getgroup("runbook", "runbook playbooks as tests")
    group.addoption(
        "--runbook-transcripts",
        metavar="DIR",
        help="directory for one runbook transcript per section (default: "
        "pytest's temporary directory)",
    )


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> Any:
    config = parent.config
    if file_path.suffix != ".md" or not _named_on_command_line(config, file_path):
        return None
    resolved = file_path.resolve()
    playbook_dirs = [
        (config.rootpath / name).resolve()
        for name in config.getini("runbook_playbook_dirs")
    ]
    if not any(directory in resolved.parents for directory in playbook_dirs):
        return None
    return PlaybookFile.from_parent(parent, path=file_path)


def _named_on_command_line(config: pytest.Config, path: Path) -> bool:
    """Tell whether ``path`` is, or lies under, a command-line argument.

    Paths that come from the ``testpaths`` setting do not count.
    """
    arguments = config.option.file_or_dir or ()
    named = [Path(str(arg).split("::")[0]).resolve() for arg in arguments]
    resolved = path.resolve()
    return any(resolved == item or item in resolved.parents for item in named)


class PlaybookFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        from .sandbox.layout import find_layout
        from .testing import collect

        try:
            find_layout(self.path.resolve().parent)
        except Exception:  # not a playbook of a sandbox checkout: nothing to run
            return
        from .errors import RunbookError

        try:
            cases = collect([str(self.path)])
        except RunbookError as error:
            raise self.CollectError(str(error)) from error
        for case in cases:
            item = SectionItem.from_parent(self, name=case.node_id, case=case)
            # -k matches the scenario's name too, also when the item's name
            # leaves it out (a section with one scenario).
            item.extra_keyword_matches.add(case.scenario.name)
            if case.scenario.pending:
                mark = pytest.mark.xfail(reason=case.scenario.pending, strict=True)
                item.add_marker(mark)
            yield item


class SectionFailed(Exception):
    """A section's sandbox run failed; the message is the report."""


class SectionItem(pytest.Item):
    def __init__(self, *, case: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case = case

    def runtest(self) -> None:
        from .testing import failed_steps, run_case

        option = self.config.getoption("--runbook-transcripts")
        directory = Path(option or tempfile.mkdtemp(prefix="runbook-transcripts-"))
        outcome = run_case(self.case, directory)
        if outcome.status == "skipped":
            shutil.rmtree(directory, ignore_errors=True)
            pytest.skip(str(outcome.stopped))
        if outcome.exit_code == 0 and not option:
            shutil.rmtree(directory, ignore_errors=True)  # kept only for a failure
        if outcome.exit_code != 0:
            lines = [f"{self.case.node_id}: exit status {outcome.exit_code}"]
            lines += failed_steps(outcome)
            lines += [
                f"check failed: {check['name']}: {check['detail']}"
                for check in outcome.checks
                if not check.get("passed")
            ]
            if outcome.stopped:
                lines.append(f"stopped: {outcome.stopped}")
            lines.append(f"transcript: {outcome.transcript}")
            lines.append(outcome.log.rstrip())
            raise SectionFailed("\n".join(lines))

    def repr_failure(
        self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None
    ) -> str:
        if isinstance(excinfo.value, SectionFailed):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.case.line - 1, f"section: {self.case.node_id}"
