"""Scenario files: each names a real section, fault and steps; bad ones fail clearly."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from runbook.playbook import load_playbook
from runbook.sandbox.faults import FAULTS
from runbook.sandbox.scenarios import ScenarioError, find_scenario, load_scenario

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = sorted((ROOT / "fixtures" / "scenarios").glob("*.yaml"))
PLAYBOOK = ROOT / "playbooks" / "incident-response.md"


@pytest.mark.parametrize("path", SCENARIOS, ids=[path.stem for path in SCENARIOS])
def test_scenario_refers_to_what_exists(path: Path) -> None:
    scenario = load_scenario(path)
    playbook = load_playbook(str(ROOT / "playbooks" / scenario.playbook))
    section = playbook.find_section(scenario.section)
    steps = len(section.all_steps())
    assert scenario.fault in FAULTS
    numbers = [*scenario.skip, *(e.step for e in scenario.expect_output)]
    assert all(1 <= number <= steps for number in numbers), (numbers, steps)
    assert find_scenario(path.parent, str(PLAYBOOK), section.path) == scenario


#: Scenarios that tests/test_storage_full.py and test_scenario_passes run.
PASSING = {"storage-full", "ddos", "high-latency", "certificate-expiring"}


@pytest.mark.parametrize("path", SCENARIOS, ids=[path.stem for path in SCENARIOS])
def test_scenario_passes_or_says_why_not(path: Path) -> None:
    scenario = load_scenario(path)
    if path.stem in PASSING:
        assert scenario.pending is None
    else:
        assert scenario.pending, f"{path.name}: not run end to end and not pending"


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PASSING - {"storage-full"}))
def test_scenario_passes(testserver_image: str, tmp_path: Path, name: str) -> None:
    from runbook.commands import RunRequest
    from runbook.sandbox.run import run_in_sandbox
    from runbook.transcript import read_transcript

    scenario = load_scenario(ROOT / "fixtures" / "scenarios" / f"{name}.yaml")
    transcript = tmp_path / "run.jsonl"
    request = RunRequest(
        playbook=str(ROOT / "playbooks" / scenario.playbook),
        section=scenario.section,
        assume_yes=True,
        timeout=300,
        transcript=str(transcript),
        target="sandbox",
    )
    status = run_in_sandbox(request, io.StringIO())
    records = list(read_transcript(transcript))
    checks = [record for record in records if record["type"] == "check"]
    assert status == 0, checks
    assert checks
    assert all(check["passed"] and not check["skipped"] for check in checks)
    assert records[-1]["type"] == "end"


def test_sections_with_faults_have_scenarios() -> None:
    covered = {load_scenario(path).section for path in SCENARIOS}
    assert covered == {
        "Storage Full",
        "Server Not Starting",
        "Node Down",
        "DDoS",
        "High Latency",
        "Certificate Expiring",
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- just a list\n", "a scenario is a mapping"),
        ("playbook: a.md\nsection: S\n", "'fault' must be a non-empty string"),
        ("playbook: a.md\nsection: S\nfault: flood\n", "unknown fault 'flood'"),
        (
            "playbook: a.md\nsection: S\nfault: oom\ncolour: red\n",
            "unknown key(s) colour",
        ),
        (
            "playbook: a.md\nsection: S\nfault: oom\nskip: [{step: 1}]\n",
            "needs step (a number) and reason",
        ),
        (
            "playbook: a.md\nsection: S\nfault: oom\n"
            "expect_output: [{step: 1, matches: '('}]\n",
            "bad regular expression '('",
        ),
        (
            "playbook: a.md\nsection: S\nfault: oom\npost_conditions: [fast]\n",
            "unknown post-condition 'fast'",
        ),
        (
            "playbook: a.md\nsection: S\nfault: oom\n"
            "post_conditions: [{metric: {name: x}}]\n",
            "unknown post-condition",
        ),
        ("playbook: [\n", "cannot read scenario"),
        ("playbook: a.md\nsection: S\nfault: oom\npending: ''\n", "'pending' must say"),
    ],
)
def test_malformed_scenarios_name_the_file_and_the_problem(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert message in str(caught.value)
    assert str(path) in str(caught.value)


def test_missing_scenario_lists_existing_ones() -> None:
    playbook = load_playbook(str(PLAYBOOK))
    section = playbook.find_section("Incident: Key Compromise")
    with pytest.raises(ScenarioError) as caught:
        find_scenario(ROOT / "fixtures" / "scenarios", str(PLAYBOOK), section.path)
    message = str(caught.value)
    assert "no scenario in" in message
    assert "'Storage Full' (storage-full.yaml)" in message
    assert "--target docker:CONTAINER" in message
