"""runbook lint: every rule on a fixture playbook, severities, formats, targets."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from runbook import lint
from runbook.cli import main

ROOT = Path(__file__).resolve().parent.parent
CASES = str(ROOT / "tests" / "fixtures" / "lint" / "lint-cases.md")


def _by_rule(findings: list[lint.Finding]) -> dict[str, list[tuple[int, str]]]:
    rules: dict[str, list[tuple[int, str]]] = {}
    for finding in findings:
        rules.setdefault(finding.rule, []).append((finding.line, finding.message))
    return rules


def test_each_rule_finds_its_case() -> None:
    rules = _by_rule(lint.lint(CASES, retired=["qpq"], use_shellcheck=False))
    assert [line for line, _ in rules["RB001"]] == [11]
    assert rules["RB002"] == [(18, rules["RB002"][0][1])]
    assert "$QUOTED_KEY" in rules["RB002"][0][1]
    assert [message.split()[0] for _, message in rules["RB003"]] == ["$NEVER_SET"]
    assert [line for line, _ in rules["RB005"]] == [4, 5, 5]
    assert [line for line, _ in rules["RB006"]] == [41, 51]
    assert rules["RB007"] == [
        (51, "retired name 'qpq' in a command; use the current name")
    ]
    assert "RB008" not in rules


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck missing")
def test_shellcheck_findings_map_to_file_lines() -> None:
    findings = [f for f in lint.lint(CASES) if f.rule == "RB004"]
    codes = {(f.line, f.message.split(":")[0]) for f in findings}
    assert (57, "SC2045") in codes
    assert (57, "SC2086") in codes
    assert not any(f.line == 11 for f in findings)  # placeholders do not confuse it


def test_missing_shellcheck_is_reported(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    findings = [f for f in lint.lint(CASES) if f.rule == "RB004"]
    assert [(f.severity, f.line) for f in findings] == [("info", 1)]
    assert "shellcheck is not installed" in findings[0].message


def test_missing_command_on_target() -> None:
    findings = lint.lint(CASES, target="local", use_shellcheck=False)
    missing = {(f.line, f.message.split()[0]) for f in findings if f.rule == "RB008"}
    assert (63, "'definitely-not-a-command-rb008'") in missing
    assert not any(name in {"'cat'", "'rm'", "'systemctl'"} for _, name in missing)


def test_command_names_skip_heredoc_bodies_and_keywords() -> None:
    code = "X=1 sqlcipher db <<EOF\nSELECT 1;\nEOF\nif true; then ls | wc -l; fi\n"
    assert lint.command_names(code) == [("sqlcipher", 1), ("ls", 4), ("wc", 4)]


def test_cli_severity_decides_the_exit_status() -> None:
    runner = CliRunner()
    errors = runner.invoke(main, ["lint", CASES, "--no-shellcheck"])
    assert errors.exit_code == 1
    assert "lint-cases.md:18: RB002 error:" in errors.output
    playbook = str(ROOT / "playbooks" / "incident-response.md")
    clean = runner.invoke(
        main, ["lint", playbook, "--severity", "error", "--retired", "quicproquo"]
    )
    assert clean.exit_code == 0, clean.output


def test_cli_json_lists_findings() -> None:
    result = CliRunner().invoke(
        main,
        ["lint", CASES, "--no-shellcheck", "--format", "json", "--severity", "error"],
    )
    data = json.loads(result.output)
    assert {"rule", "severity", "file", "line", "message"} <= set(data[0])
    assert result.exit_code == 1


def test_links_come_from_markdown_not_lines(tmp_path) -> None:
    (tmp_path / "here dir").mkdir()
    (tmp_path / "here dir" / "f.md").write_text("# F\n")
    playbook = tmp_path / "p.md"
    playbook.write_text(
        "# P\n\n![image](missing.png) [ref][r1] [spaced](here%20dir/f.md?x=1)\n"
        "[two\nlines](gone2.md)\n\n[r1]: gone.md\n\n"
        "```text\n[in code](in-code.md)\n```\n\n    [indented](also-code.md)\n"
    )
    findings = lint.lint(str(playbook), use_shellcheck=False)
    assert [(f.line, f.message.split(":")[0]) for f in findings] == [
        (3, "link to 'missing.png'"),
        (3, "link to 'gone.md'"),
        (4, "link to 'gone2.md'"),
    ]


def test_parse_problems_and_unreadable_files_are_findings(tmp_path) -> None:
    playbook = tmp_path / "open.md"
    playbook.write_text("# P\n\n```bash\n$ echo hi\n```\n\n```bash\necho open\n")
    findings = lint.lint(str(playbook), use_shellcheck=False)
    assert [(f.rule, f.line) for f in findings] == [("RB009", 4), ("RB009", 7)]
    missing = lint.lint(str(tmp_path / "absent.md"))
    assert [(f.rule, f.severity) for f in missing] == [("RB000", "error")]


def test_functions_and_continuations_are_not_commands() -> None:
    code = "greet() { echo hi; }\ngreet\nfunction other { :; }\nother\necho a \\\n  b\n"
    assert lint.command_names(code) == []


@pytest.mark.docker
def test_local_steps_checked_on_this_machine(docker_engine, tmp_path) -> None:
    """With a docker target, target=local steps are looked up here, not there."""
    container = subprocess.run(
        ["docker", "run", "-d", "--label", "runbook.dev=1", "debian:trixie-slim",
         "sleep", "infinity"],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout.strip()  # fmt: skip
    playbook = tmp_path / "p.md"
    playbook.write_text(
        "# P\n\n```bash {target=local}\npython3 -c pass\nlocal-only-missing-rb\n```\n"
        "\n```bash\npython3 -c pass\n```\n"
    )
    try:
        findings = lint.lint(
            str(playbook), target=f"docker:{container}", use_shellcheck=False
        )
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True)
    missing = [(f.line, f.message) for f in findings if f.rule == "RB008"]
    assert [line for line, _ in missing] == [5, 9]
    assert missing[0][1].startswith("'local-only-missing-rb' is not a command on this")
    assert missing[1][1].startswith(f"'python3' is not a command on docker:{container}")


def test_parse_error_finding_at_its_line(tmp_path) -> None:
    playbook = tmp_path / "bad.md"
    playbook.write_text("# A\n\ntext\n\n```bash {colour=red}\necho\n```\n")

    findings = lint.lint(str(playbook), use_shellcheck=False)

    assert [(f.rule, f.line) for f in findings] == [("RB000", 5)]
    assert findings[0].message.startswith("invalid attribute 'colour=red'")
    assert findings[0].text().count(str(playbook)) == 1


def test_misspelt_front_matter_key(tmp_path) -> None:
    playbook = tmp_path / "p.md"
    playbook.write_text(
        "---\ntitle: Ops\ndeployment: [systemd]\n---\n# A\n\n"
        "```bash {when=systmd}\necho\n```\n"
    )

    findings = lint.lint(str(playbook), use_shellcheck=False)

    assert [(f.rule, f.severity, f.line) for f in findings] == [("RB012", "warning", 3)]
    assert "rename it to 'deployments'" in findings[0].message
