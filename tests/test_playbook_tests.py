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


def test_coverage_lone_variant_without_scenario(drill: str, tmp_path: Path) -> None:
    # Check's compose step has no systemd variant, so no tested step of the
    # section replaces it.
    beta = tmp_path / "fixtures" / "scenarios" / "beta.yaml"
    beta.write_text(BETA + "steps: [1, 3]\n")
    rows = testing.coverage([drill])
    check = _row(rows, "Check")
    reason = "for compose; no scenario runs it, nor a variant for another deployment"
    assert _states(check)[1] == (testing.NO_SCENARIO, reason)
    assert (
        f"drill.md: Drill / Check: step 2 (line 9): no scenario runs it ({reason})"
        in testing.gaps(rows)
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
    assert "no section ran; 1 section(s) have steps that no scenario runs" in report
    assert "steps: 4 not run, 1 no scenario" in report


OPS = """\
---
deployments: [systemd, compose]
---
# Ops

## Logs

```bash {name=journal when=systemd}
echo systemd
```

```bash {name=compose-logs when=compose}
echo compose
```

## Restart

```bash {name=restart when=systemd}
echo systemd
```

```bash {name=restart-compose when=compose}
echo compose
```

## Unscripted

```bash {name=one}
echo one
```

```bash {name=two}
echo two
```

```bash {name=remote skip-test="needs a second host"}
echo remote
```

```bash {name=three}
echo three
```

## Partly Tested

```bash {name=first}
echo first
```

```bash {name=second}
echo second
```

## Lone Variant

```bash {name=common}
echo common
```

```bash {name=compose-only when=compose}
echo compose
```
"""


def _ops(tmp_path: Path, scenarios: dict[str, str]) -> str:
    """Return the Ops playbook in a checkout of its own, with ``scenarios``."""
    (tmp_path / "Dockerfile.testserver").write_text("FROM scratch\n")
    directory = tmp_path / "fixtures" / "scenarios"
    directory.mkdir(parents=True)
    for name, text in scenarios.items():
        (directory / f"{name}.yaml").write_text(f"playbook: ops.md\n{text}")
    (tmp_path / "playbooks").mkdir()
    playbook = tmp_path / "playbooks" / "ops.md"
    playbook.write_text(OPS)
    return str(playbook)


LOGS = "section: Logs\nfault: disk-full\n"
LOGS_COMPOSE = "section: Logs\nfault: tls-missing\ndeployment: compose\n"
VARIANT_SKIP = {"type": "decision", "step": 2, "decision": "skip",
                "reason": "for compose; this run is systemd"}  # fmt: skip


def test_coverage_untested_steps_fail_a_section(tmp_path: Path) -> None:
    ops = _ops(tmp_path, {"partly": "section: Partly Tested\nfault: disk-full\n"
                                    "steps: [1]\n"})  # fmt: skip
    case = testing.collect([ops])[0]
    records = [{"type": "step", "step": 1, "exit_status": 0}]
    rows = testing.coverage([ops], [_outcome(case, "passed", records)])
    unscripted = _row(rows, "Unscripted")
    assert _states(unscripted) == [
        (testing.NO_SCENARIO, ""),
        (testing.NO_SCENARIO, ""),
        (testing.SKIPPED, "needs a second host"),
        (testing.NO_SCENARIO, ""),
    ]
    assert unscripted.state == testing.NO_SCENARIO
    partly = _row(rows, "Partly Tested")
    assert _states(partly) == [(testing.VERIFIED, ""), (testing.NO_SCENARIO, "")]
    assert partly.state == testing.NO_SCENARIO
    assert partly.reason == "partly; no scenario runs step 2"
    problems = testing.gaps(rows)
    assert "ops.md: Ops / Unscripted: step 4 (line 40): no scenario runs it" in (
        problems
    )
    assert "ops.md: Ops / Partly Tested: step 2 (line 50): no scenario runs it" in (
        problems
    )


def test_coverage_variants_without_any_scenario(tmp_path: Path) -> None:
    ops = _ops(tmp_path, {"logs": LOGS})
    rows = testing.coverage([ops])
    restart = _row(rows, "Restart")
    assert [state for state, _ in _states(restart)] == [testing.NO_SCENARIO] * 2
    assert restart.state == testing.NO_SCENARIO
    problems = [problem for problem in testing.gaps(rows) if "Restart" in problem]
    assert len(problems) == 2
    assert problems[0].startswith(
        "ops.md: Ops / Restart: step 1 (line 18): no scenario runs it (for systemd;"
    )


def test_coverage_excuses_a_variant_beside_one_that_ran(tmp_path: Path) -> None:
    ops = _ops(tmp_path, {"logs": LOGS})
    case = testing.collect([ops])[0]
    records = [{"type": "step", "step": 1, "exit_status": 0}, VARIANT_SKIP]
    rows = testing.coverage([ops], [_outcome(case, "passed", records)])
    logs = _row(rows, "Logs")
    assert _states(logs) == [
        (testing.VERIFIED, ""),
        (testing.SKIPPED, "for compose; no scenario runs that deployment here"),
    ]
    assert logs.state == testing.VERIFIED
    assert not [problem for problem in testing.gaps(rows) if "Logs" in problem]


def test_coverage_run_skips_a_lone_variant(tmp_path: Path) -> None:
    ops = _ops(tmp_path, {"lone": "section: Lone Variant\nfault: disk-full\n"})
    case = testing.collect([ops])[0]
    records = [{"type": "step", "step": 1, "exit_status": 0}, VARIANT_SKIP]
    rows = testing.coverage([ops], [_outcome(case, "passed", records)])
    lone = _row(rows, "Lone Variant")
    assert _states(lone)[1][0] == testing.NO_SCENARIO
    assert lone.state == testing.NO_SCENARIO
    assert any("Lone Variant: step 2" in problem for problem in testing.gaps(rows))


def test_coverage_skipped_compose_scenario(tmp_path: Path) -> None:
    ops = _ops(tmp_path, {"logs": LOGS, "logs-compose": LOGS_COMPOSE})
    systemd, compose = testing.collect([ops])
    skipped = _outcome(compose, "skipped", [])
    skipped.stopped = "no Compose plugin"
    reason = "scenario logs-compose skipped: no Compose plugin"
    # Alone (-k logs-compose): every step keeps the skip's reason.
    logs = _row(testing.coverage([ops], [skipped]), "Logs")
    assert _states(logs) == [(testing.SKIPPED, reason)] * 2
    assert logs.state == testing.SKIPPED
    # Beside the systemd run, the compose step keeps that reason too.
    records = [{"type": "step", "step": 1, "exit_status": 0}, VARIANT_SKIP]
    passed = _outcome(systemd, "passed", records)
    rows = testing.coverage([ops], [passed, skipped])
    assert _states(_row(rows, "Logs")) == [
        (testing.VERIFIED, ""),
        (testing.SKIPPED, reason),
    ]
    assert not [problem for problem in testing.gaps(rows) if "Logs" in problem]


def test_coverage_variant_whose_scenario_did_not_run(tmp_path: Path) -> None:
    ops = _ops(tmp_path, {"logs": LOGS, "logs-compose": LOGS_COMPOSE})
    systemd = testing.collect([ops], "logs")[0]
    records = [{"type": "step", "step": 1, "exit_status": 0}, VARIANT_SKIP]
    rows = testing.coverage([ops], [_outcome(systemd, "passed", records)])
    logs = _row(rows, "Logs")
    assert _states(logs) == [(testing.VERIFIED, ""), (testing.NOT_RUN, "")]
    assert logs.state == testing.NOT_RUN


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"exit_status": 0, "output_matched": False, "output_diff": "-a\n+b\n"},
         "output did not match"),
        ({"exit_status": 2}, "exit status 2"),
        ({"exit_status": None, "timed_out": True}, "timed out"),
        ({"exit_status": 130, "interrupted": True}, "interrupted"),
    ],
)  # fmt: skip
def test_coverage_names_why_a_step_failed(
    drill: str, record: dict[str, object], reason: str
) -> None:
    case = testing.collect([drill], "alpha")[0]
    records = [{"type": "step", "step": 1, **record}]
    outcome = _outcome(case, "failed", records)
    check = _row(testing.coverage([drill], [outcome]), "Check")
    assert _states(check)[0] == (testing.FAILED, f"{reason} in scenario alpha")
    assert testing.failed_steps(outcome) == [
        f"step 1 (look, drill.md:5) failed: {reason}"
    ]


def test_render_outcome_notes_all_steps_skipped(drill: str) -> None:
    case = testing.collect([drill], "alpha")[0]
    records = [
        {"type": "decision", "step": number, "decision": "skip", "reason": "r"}
        for number in (1, 2, 3)
    ]
    line = testing.render_outcome(_outcome(case, "passed", records))
    assert line.startswith("PASS  Check [alpha]  (alpha.yaml, 1.0 s, 0/0 checks, ")
    assert "all 3 steps skipped)" in line
    ran = [{"type": "step", "step": 1, "exit_status": 0}] + records[1:]
    assert "skipped" not in testing.render_outcome(_outcome(case, "passed", ran))


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


MISMATCH = """\
# Mine

## Output Mismatch

```bash {name=status-wrong}
systemctl is-active qpc-server
```

```output
inactive
```

```bash {name=after}
echo after
```

## All Skipped
<!-- runbook: skip-test="needs a second host" -->

```bash {name=other-host}
echo would-run
```
"""


def _checkout_with_image(tmp_path: Path) -> Path:
    """Return a checkout whose test server files are this one's (same image tag).

    The Dockerfile and the image's files are symlinks, so the content hash
    and the cached image are this checkout's; the scenarios are the test's.
    """
    root = tmp_path / "checkout"
    (root / "fixtures" / "scenarios").mkdir(parents=True)
    (root / "Dockerfile.testserver").symlink_to(ROOT / "Dockerfile.testserver")
    for name in ("image", "server"):
        (root / "fixtures" / name).symlink_to(ROOT / "fixtures" / name)
    for name, section in (("mismatch", "Output Mismatch"), ("skips", "All Skipped")):
        (root / "fixtures" / "scenarios" / f"{name}.yaml").write_text(
            f"playbook: mine.md\nsection: {section}\nfault: cert-expiring\n"
        )
    (root / "playbooks").mkdir()
    (root / "playbooks" / "mine.md").write_text(MISMATCH)
    return root


@pytest.mark.docker
@pytest.mark.slow
def test_runbook_test_reports_an_output_mismatch(
    testserver_image: str, tmp_path: Path
) -> None:
    root = _checkout_with_image(tmp_path)
    command = [
        sys.executable, "-m", "runbook", "test", "playbooks/mine.md",
        "--transcripts", str(tmp_path / "text"),
    ]  # fmt: skip
    result = subprocess.run(
        command, cwd=root, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 1, result.stdout + result.stderr

    out = result.stdout
    assert "FAIL  Output Mismatch  (mismatch.yaml, " in out
    assert (
        "      step 1 (status-wrong, mine.md:5) failed: output did not match\n" in out
    )
    assert (
        "      stopped: step 1 failed; runbook test stops a scenario at its first "
        "failed step\n"
    ) in out
    assert "--keep-going" not in out + result.stderr

    assert "  failed           1. status-wrong  [line 5] (output did not match in " in (
        out
    )
    assert re.search(
        r"^PASS  All Skipped  \(skips.yaml, .*, its 1 step skipped\)$", out, re.M
    )

    # -j 1 writes both progress lines of each case.
    for name in ("Output Mismatch", "All Skipped"):
        assert f"running {name} ...\n" in result.stderr
        assert re.search(
            rf"^finished {name}: (FAIL|PASS) in [\d.]+ s$", result.stderr, re.M
        )


@pytest.mark.docker
@pytest.mark.slow
def test_runbook_test_json_writes_progress(
    testserver_image: str, tmp_path: Path
) -> None:
    import json

    root = _checkout_with_image(tmp_path)
    command = [
        sys.executable, "-m", "runbook", "test", "playbooks/mine.md", "-j", "2",
        "--format", "json", "--transcripts", str(tmp_path / "json"),
    ]  # fmt: skip
    result = subprocess.run(
        command, cwd=root, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 1, result.stdout + result.stderr
    for name in ("Output Mismatch", "All Skipped"):
        assert f"running {name} ...\n" in result.stderr
        assert f"finished {name}: " in result.stderr
    report = json.loads(result.stdout)
    statuses = {case["node_id"]: case["status"] for case in report["cases"]}
    assert statuses == {"Output Mismatch": "failed", "All Skipped": "passed"}
    mismatch = report["cases"][0]
    assert mismatch["stopped"] == (
        "step 1 failed; runbook test stops a scenario at its first failed step"
    )
