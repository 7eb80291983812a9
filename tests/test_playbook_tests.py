"""Playbooks as tests: coverage, ``runbook test`` and the pytest plugin."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
from click.testing import CliRunner

from runbook import parallel, testing
from runbook.cli import main

ROOT = Path(__file__).resolve().parent.parent
PLAYBOOK = str(ROOT / "playbooks" / "incident-response.md")


DRILL = """\
# Drill

## Check

```bash {name=look}
echo look
```

```bash {name=look-compose when=compose}
echo compose
```

```bash {name=remote skip-test="needs a second host"}
echo remote
```

## Fix

```bash {name=fix}
echo fix
```

## Uncovered

```bash {name=nobody}
echo nobody
```

## Checklist

- [ ] tell the team
"""

ALPHA = """\
playbook: drill.md
section: Check
fault: disk-full
steps: [1, 3]
then:
  - playbook: drill.md
    section: Fix
"""

BETA = """\
playbook: drill.md
section: Check
fault: tls-missing
skip:
  - step: 1
    reason: the fault hides it
"""


@pytest.fixture
def drill(tmp_path: Path) -> str:
    """Return a playbook in a checkout of its own, with two scenarios."""
    (tmp_path / "Dockerfile.testserver").write_text("FROM scratch\n")
    scenarios = tmp_path / "fixtures" / "scenarios"
    scenarios.mkdir(parents=True)
    (scenarios / "alpha.yaml").write_text(ALPHA)
    (scenarios / "beta.yaml").write_text(BETA)
    (tmp_path / "playbooks").mkdir()
    playbook = tmp_path / "playbooks" / "drill.md"
    playbook.write_text(DRILL)
    return str(playbook)


def _row(rows: list[testing.CoverageRow], title: str) -> testing.CoverageRow:
    return next(row for row in rows if row.section_path[-1] == title)


def _states(row: testing.CoverageRow) -> list[tuple[str, str]]:
    return [(step.state, step.reason) for step in row.step_rows]


def test_collect_names_cases_by_scenario(drill: str) -> None:
    cases = testing.collect([drill])
    assert [case.node_id for case in cases] == ["Check [alpha]", "Check [beta]"]
    assert [case.slug for case in cases] == ["check", "check"]


def test_collect_matches_scenario_names(drill: str) -> None:
    assert [case.scenario.name for case in testing.collect([drill], "BETA")] == ["beta"]
    assert len(testing.collect([drill], "check")) == 2


def test_coverage_without_runs(drill: str) -> None:
    rows = testing.coverage([drill])
    check = _row(rows, "Check")
    assert check.state == testing.NOT_RUN
    assert check.scenarios == ("alpha", "beta")
    assert [state for state, _ in _states(check)] == [
        testing.NOT_RUN,
        testing.NOT_RUN,  # beta runs every step, so some scenario selects it
        testing.NOT_RUN,
    ]
    assert _row(rows, "Fix").state == testing.NOT_RUN  # through alpha's then
    assert _row(rows, "Uncovered").state == testing.NO_SCENARIO
    assert _row(rows, "Checklist").state == testing.MANUAL
    assert _row(rows, "Drill").state == testing.PARENT


def test_coverage_skips_another_deployments_step(drill: str, tmp_path: Path) -> None:
    beta = tmp_path / "fixtures" / "scenarios" / "beta.yaml"
    beta.write_text(BETA + "steps: [1, 3]\n")
    check = _row(testing.coverage([drill]), "Check")
    assert _states(check)[1] == (
        testing.SKIPPED,
        "runs only on the compose deployment, which no scenario runs",
    )


def test_coverage_reads_steps_from_a_transcript(drill: str) -> None:
    alpha = testing.collect([drill], "alpha")[0]
    records = [
        {"type": "step", "step": 1, "exit_status": 0},
        {"type": "decision", "step": 3, "decision": "skip"},
        {"type": "step", "step": 4, "exit_status": 0},
    ]
    rows = testing.coverage([drill], [_outcome(alpha, "passed", records)])
    check = _row(rows, "Check")
    assert _states(check) == [
        (testing.VERIFIED, ""),
        (testing.NOT_RUN, ""),  # beta selects it, and beta did not run
        (testing.SKIPPED, "needs a second host"),
    ]
    assert _states(_row(rows, "Fix")) == [(testing.VERIFIED, "")]
    assert testing.gaps(rows) == [
        "drill.md: Drill / Uncovered: no scenario runs its 1 step(s)"
    ]


def test_coverage_combines_scenarios(drill: str) -> None:
    alpha, beta = testing.collect([drill])
    failed = _outcome(alpha, "failed", [{"type": "step", "step": 1, "exit_status": 2}])
    passed = _outcome(
        beta,
        "passed",
        [
            {"type": "decision", "step": 1, "decision": "skip"},
            {"type": "step", "step": 2, "exit_status": 0},
            {"type": "decision", "step": 3, "decision": "skip", "reason": "later"},
        ],
    )
    for outcomes in ([failed, passed], [passed, failed]):
        check = _row(testing.coverage([drill], outcomes), "Check")
        assert _states(check) == [
            (testing.FAILED, "exit status 2 in scenario alpha"),
            (testing.VERIFIED, ""),
            (testing.SKIPPED, "later"),
        ]
        assert check.state == testing.FAILED


def test_coverage_pending_scenario(drill: str, tmp_path: Path) -> None:
    beta = tmp_path / "fixtures" / "scenarios" / "beta.yaml"
    beta.write_text(BETA + "pending: the fault is not ready\n")
    case = testing.collect([drill], "beta")[0]
    records = [{"type": "step", "step": 2, "exit_status": 1}]
    rows = testing.coverage([drill], [_outcome(case, "expected failure", records)])
    check = _row(rows, "Check")
    assert _states(check)[1] == (testing.PENDING, "the fault is not ready")
    assert check.state == testing.PENDING


def test_coverage_reports_a_skip_without_reason(drill: str) -> None:
    case = testing.collect([drill], "alpha")[0]
    records = [
        {"type": "step", "step": 1, "exit_status": 0},
        {"type": "step", "step": 3, "exit_status": 0},
        {"type": "decision", "step": 4, "decision": "skip"},
    ]
    rows = testing.coverage([drill], [_outcome(case, "passed", records)])
    assert "drill.md: Drill / Fix: step 1 (line 19): skipped without a reason" in (
        testing.gaps(rows)
    )


def test_coverage_steps_a_run_never_reached(drill: str) -> None:
    case = testing.collect([drill], "alpha")[0]
    outcome = _outcome(case, "error", [])
    outcome.stopped = "the container did not start"
    rows = testing.coverage([drill], [outcome])
    check = _row(rows, "Check")
    assert check.state == testing.ERROR
    assert _states(check)[0] == (
        testing.NOT_RUN,
        "scenario alpha stopped before it: the container did not start",
    )


def _outcome(
    case: testing.Case, status: str, records: list[dict[str, object]]
) -> testing.Outcome:
    """Return an outcome whose steps come from transcript records, as a run's do."""
    from runbook.playbook import load_playbook
    from runbook.step_coverage import numbered_steps, read_step_results

    section = load_playbook(case.playbook).find_section(case.slug)
    numbered = numbered_steps(case.playbook, section, case.scenario)
    return testing.Outcome(
        case,
        status,
        0 if status == "passed" else 1,
        1.0,
        steps=read_step_results(records, numbered, case.scenario),
        numbered=numbered,
    )


def test_render_summary_lists_steps(drill: str) -> None:
    report = testing.render_report([], testing.coverage([drill]))
    assert "  no scenario    Uncovered  [1 step, line 23]\n" in report
    assert "  no scenario      1. nobody  [line 25]\n" in report
    assert "no section ran; 1 section(s) with steps have no scenario" in report
    assert "steps: 4 not run, 1 no scenario" in report


def _case(scenario_name: str) -> testing.Case:
    """Return the case of one of the incident-response playbook's scenarios."""
    return next(
        case
        for case in testing.collect([PLAYBOOK])
        if case.scenario.name == scenario_name
    )


def test_collect_filters_by_keyword() -> None:
    cases = testing.collect([PLAYBOOK], keyword="storage")
    assert [case.node_id for case in cases] == ["Incident: Storage Full"]
    assert cases[0].slug == "incident-storage-full"


def test_collect_names_shared_sections_by_scenario() -> None:
    cases = testing.collect([PLAYBOOK], keyword="server-not-starting-tls-missing")
    assert cases
    for case in cases:
        assert case.node_id == f"Incident: Server Not Starting [{case.scenario.name}]"


def test_collect_keeps_document_order() -> None:
    lines = [case.line for case in testing.collect([PLAYBOOK])]
    assert lines == sorted(lines)


@pytest.mark.parametrize("value", ["0", "-1", "two", ""])
def test_runbook_test_rejects_bad_jobs(value: str) -> None:
    result = CliRunner().invoke(
        main, ["test", PLAYBOOK, "-j", value], catch_exceptions=False
    )
    assert result.exit_code == 2
    assert f"{value!r} is not a number of parallel cases" in result.output


def test_jobs_auto_is_the_cpu_count() -> None:
    assert parallel.parse_jobs("auto") == parallel.cpu_count()
    assert parallel.parse_jobs("3") == 3


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
    assert "1 passed; " in result.output
    assert "  verified           1. openssl x509" in result.output
    assert len(list(tmp_path.glob("*.jsonl"))) == 1


@pytest.mark.docker
@pytest.mark.slow
def test_parallel_cases_report_in_document_order(
    testserver_image: str, tmp_path: Path
) -> None:
    # High Latency comes first in the playbook and takes longer.
    cases = [_case("high-latency"), _case("certificate-expiring")]
    started: list[testing.Case] = []
    finished: list[testing.Outcome] = []
    result = parallel.run_parallel(
        cases, tmp_path, 2, on_start=started.append, on_finish=finished.append
    )
    assert result.interrupted is None
    assert len(started) == 2
    names = [outcome.case.scenario.name for outcome in result.outcomes]
    assert names == ["high-latency", "certificate-expiring"]
    assert finished[0].case.scenario.name == "certificate-expiring"
    for outcome in result.outcomes:
        assert outcome.status == "passed", outcome.log
        assert outcome.ready_seconds is not None
        assert outcome.prepare_seconds is not None
    containers = [_container_id(o.transcript) for o in result.outcomes]
    assert len(set(containers)) == 2
    for container in containers:
        assert not _container_exists(container)


@pytest.mark.docker
@pytest.mark.slow
def test_runbook_test_stops_cases_on_sigterm(
    testserver_image: str, tmp_path: Path
) -> None:
    command = [
        sys.executable, "-m", "runbook", "test", PLAYBOOK, "-j", "2",
        "-k", "node-down", "--transcripts", str(tmp_path),
    ]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    # Wait until two transcripts name their containers, so both cases run steps.
    while time.monotonic() < deadline and len(_sandbox_records(tmp_path)) < 2:
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stdout + stderr
    assert "interrupted after" in stderr
    containers = _sandbox_records(tmp_path)
    assert len(containers) >= 2
    for container in containers:
        assert not _container_exists(container), container


def _sandbox_records(directory: Path) -> list[str]:
    """Return the container ids that the transcripts in ``directory`` name."""
    found = []
    for path in directory.glob("*.jsonl"):
        container = _container_id(str(path))
        if container:
            found.append(container)
    return found


def _container_id(transcript: str | None) -> str:
    from runbook.transcript import read_transcript

    assert transcript is not None
    for record in read_transcript(transcript):
        if record["type"] == "sandbox":
            return str(record["container"])
    return ""


def _container_exists(container: str) -> bool:
    result = subprocess.run(
        ["docker", "inspect", container], capture_output=True, timeout=30, check=False
    )
    return result.returncode == 0


def test_runbook_test_rejects_a_keyword_that_matches_nothing() -> None:
    result = CliRunner().invoke(
        main, ["test", PLAYBOOK, "-k", "no such section"], catch_exceptions=False
    )
    assert result.exit_code == 2
    assert "-k 'no such section' matches no section or scenario" in result.output


@pytest.mark.docker
@pytest.mark.slow
def test_pytest_runs_sections_under_xdist(
    testserver_image: str, tmp_path: Path
) -> None:
    report = tmp_path / "junit.xml"
    command = [
        sys.executable, "-m", "pytest", "playbooks/incident-response.md",
        "-k", "Certificate or high-latency", "-p", "no:cacheprovider", "-n", "2",
        "-v", f"--junitxml={report}", f"--runbook-transcripts={tmp_path}",
    ]  # fmt: skip
    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
    # Each worker ran one item.
    workers = re.findall(r"^\[(gw\d)\] \[ *\d+%\] PASSED", result.stdout, re.M)
    assert sorted(workers) == ["gw0", "gw1"], result.stdout
    names = {case.get("name") for case in ElementTree.parse(report).iter("testcase")}
    assert names == {"Incident: Certificate Expiring", "Incident: High Latency"}
    containers = _sandbox_records(tmp_path)
    assert len(set(containers)) == 2
    for container in containers:
        assert not _container_exists(container), container


def test_pytest_leaves_markdown_outside_playbook_dirs_alone() -> None:
    command = [
        sys.executable, "-m", "pytest", "tests/fixtures/original",
        "--collect-only", "-q", "-p", "no:cacheprovider",
    ]  # fmt: skip
    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert "no tests collected" in result.stdout
