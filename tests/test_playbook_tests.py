"""Playbooks as tests: coverage, ``runbook test`` and the pytest plugin."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
from click.testing import CliRunner

from runbook import testing
from runbook.cli import main

ROOT = Path(__file__).resolve().parent.parent
PLAYBOOK = str(ROOT / "playbooks" / "incident-response.md")


def _states() -> dict[str, str]:
    return {row.section_path[-1]: row.state for row in testing.coverage([PLAYBOOK])}


def test_coverage_names_every_section() -> None:
    states = _states()
    assert states["Incident: Storage Full"] == testing.VERIFIED
    assert states["Recovery"] in {testing.VERIFIED, testing.PENDING}
    assert states["Incident: Node Down / Unresponsive"] == testing.PENDING
    assert states["Auth Token Compromised"] == testing.NO_SCENARIO
    assert states["Post-Incident Checklist"] == testing.MANUAL


def test_collect_filters_by_keyword() -> None:
    cases = testing.collect([PLAYBOOK], keyword="storage")
    assert [case.node_id for case in cases] == ["Incident: Storage Full"]
    assert cases[0].slug == "incident-storage-full"


def test_report_counts_sections_without_scenario() -> None:
    report = testing.render_report([], testing.coverage([PLAYBOOK]))
    assert "no section ran; 4 section(s) with steps have no scenario" in report
    assert "no scenario" in report


@pytest.mark.docker
def test_runbook_test_runs_a_section(
    testserver_image: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(
        main,
        ["test", PLAYBOOK, "-k", "certificate", "--transcripts", str(tmp_path)],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "PASS  Incident: Certificate Expiring" in result.output
    assert "1 passed; 4 section(s) with steps have no scenario" in result.output
    assert len(list(tmp_path.glob("*.jsonl"))) == 1


def test_runbook_test_rejects_a_keyword_that_matches_nothing() -> None:
    result = CliRunner().invoke(
        main, ["test", PLAYBOOK, "-k", "no such section"], catch_exceptions=False
    )
    assert result.exit_code == 2
    assert "-k 'no such section' matches no section with a scenario" in result.output


@pytest.mark.docker
@pytest.mark.slow
def test_pytest_collects_sections_with_scenarios(
    testserver_image: str, tmp_path: Path
) -> None:
    report = tmp_path / "junit.xml"
    command = [
        sys.executable, "-m", "pytest", "playbooks/incident-response.md",
        "-k", "Certificate or Node", "-p", "no:cacheprovider",
        f"--junitxml={report}", f"--runbook-transcripts={tmp_path}",
    ]  # fmt: skip
    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed, 4 deselected, 1 xfailed" in result.stdout
    cases = {
        case.get("name"): case for case in ElementTree.parse(report).iter("testcase")
    }
    assert set(cases) == {
        "Incident: Certificate Expiring",
        "Incident: Node Down / Unresponsive",
    }
    assert cases["Incident: Node Down / Unresponsive"].find("skipped") is not None


def test_pytest_leaves_markdown_outside_playbook_dirs_alone() -> None:
    command = [
        sys.executable, "-m", "pytest", "tests/fixtures/original",
        "--collect-only", "-q", "-p", "no:cacheprovider",
    ]  # fmt: skip
    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert "no tests collected" in result.stdout
