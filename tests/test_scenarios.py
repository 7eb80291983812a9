"""Scenario files: each names a real section, fault and steps; bad ones fail clearly."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_scenario

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
    for follow_up in scenario.then:
        other = load_playbook(str(ROOT / "playbooks" / follow_up.playbook))
        steps += len(other.find_section(follow_up.section).all_steps())
    numbers = [
        *scenario.skip,
        *(e.step for e in scenario.expect_output),
        *(scenario.steps or ()),
    ]
    assert all(1 <= number <= steps for number in numbers), (numbers, steps)
    playbook_path = str(ROOT / "playbooks" / scenario.playbook)
    found = find_scenario(path.parent, playbook_path, section.path, scenario.name)
    assert found == scenario


#: Scenarios that tests/test_storage_full.py and test_scenario_passes run.
PASSING = {
    "storage-full",
    "ddos",
    "high-latency",
    "certificate-expiring",
    "server-not-starting-tls-missing",
    "server-not-starting-weak-token",
    "server-not-starting-db-locked",
    "server-not-starting-db-corrupt",
    "server-not-starting-port-in-use",
    "node-down-killed",
    "node-down-hung",
    "node-down-oom",
    "key-compromise-auth-token",
    "key-compromise-tls-key",
    "key-compromise-db-key",
    "key-compromise-opaque",
    # Run by tests/test_key_rotation.py.
    "key-rotation-auth-token",
    "key-rotation-tls",
    "key-rotation-db-key",
    "key-rotation-opaque",
}
PASSING |= {"server-not-starting-tls-missing-compose", "node-down-killed-compose"}
#: Scenarios that run in their own test files rather than test_scenario_passes:
#: tests/test_storage_full.py, tests/test_key_rotation.py, tests/test_compose.py.
RUN_ELSEWHERE = {"storage-full"} | {
    name for name in PASSING if name.startswith("key-rotation") or "compose" in name
}


@pytest.mark.parametrize("path", SCENARIOS, ids=[path.stem for path in SCENARIOS])
def test_scenario_passes_or_says_why_not(path: Path) -> None:
    scenario = load_scenario(path)
    if path.stem in PASSING:
        assert scenario.pending is None
    else:
        assert scenario.pending, f"{path.name}: not run end to end and not pending"


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PASSING - RUN_ELSEWHERE))
def test_scenario_passes(testserver_image: str, tmp_path: Path, name: str) -> None:
    status, records = run_scenario(name, tmp_path / "run.jsonl")
    checks = [record for record in records if record["type"] == "check"]
    assert status == 0, checks
    assert checks
    assert all(check["passed"] and not check["skipped"] for check in checks)
    assert records[-1]["type"] == "end"


def test_every_cause_has_a_scenario() -> None:
    by_section: dict[str, set[str]] = {}
    for path in SCENARIOS:
        scenario = load_scenario(path)
        by_section.setdefault(scenario.section, set()).add(scenario.fault)
    assert by_section["Server Not Starting"] == {
        "tls-missing", "weak-token", "db-locked", "db-corrupt", "port-in-use",
    }  # fmt: skip
    assert by_section["Node Down / Unresponsive"] == {
        "process-killed", "process-hung", "oom",
    }  # fmt: skip
    for section in ("Storage Full", "DDoS", "High Latency", "Certificate Expiring"):
        assert section in by_section


def test_several_scenarios_for_a_section_need_a_name() -> None:
    section = load_playbook(str(PLAYBOOK)).find_section("Server Not Starting")
    directory = ROOT / "fixtures" / "scenarios"
    with pytest.raises(ScenarioError, match="pick one with --scenario NAME: "):
        find_scenario(directory, str(PLAYBOOK), section.path)
    with pytest.raises(ScenarioError, match="tests section 'Storage Full', not"):
        find_scenario(directory, str(PLAYBOOK), section.path, "storage-full")
    with pytest.raises(ScenarioError, match="no scenario named 'nope'"):
        find_scenario(directory, str(PLAYBOOK), section.path, "nope")


def test_deployment_filter_names_the_problem() -> None:
    playbook = load_playbook(str(PLAYBOOK))
    directory = ROOT / "fixtures" / "scenarios"
    storage = playbook.find_section("Storage Full").path
    with pytest.raises(ScenarioError, match="has no deployment 'k8s'"):
        find_scenario(directory, str(PLAYBOOK), storage, deployment="k8s")
    with pytest.raises(ScenarioError, match="run the systemd deployment, not compose"):
        find_scenario(directory, str(PLAYBOOK), storage, deployment="compose")
    node_down = playbook.find_section("Node Down").path
    found = find_scenario(directory, str(PLAYBOOK), node_down, deployment="compose")
    assert found.name == "node-down-killed-compose"


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
        ("playbook: a.md\nsection: S\nfault: oom\nsteps: []\n", "'steps' must be"),
        ("playbook: a.md\nsection: S\nfault: oom\nsteps: [a]\n", "'steps' must be"),
        ("playbook: a.md\nsection: S\nfault: oom\nthen: [x]\n", "'then' must be"),
        (
            "playbook: a.md\nsection: S\nfault: oom\nthen: {playbook: b.md}\n",
            "'then' must be",
        ),
        (
            "playbook: a.md\nsection: S\nfault: oom\nfault_arguments: x\n",
            "'fault_arguments' must be a list",
        ),
        (
            "playbook: a.md\nsection: S\nfault: oom\n"
            "post_conditions: [{command: {run: 'true'}}]\n",
            "{command: {run: COMMAND, description: WHAT ITS SUCCESS SHOWS}}",
        ),
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
