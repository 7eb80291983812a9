"""``runbook lint``: static checks of a playbook; nothing runs except on --target.

Each finding has a rule id, a severity (info, warning, error), a file and
line, and a message that gives the fix.

| rule | severity | finds |
|---|---|---|
| RB001 | info | a placeholder (``<server-ip>``) that every run must be given |
| RB002 | error | a variable inside a quoted here-document, never expanded |
| RB003 | warning | a variable no step sets and the prose never mentions |
| RB004 | shellcheck's | shellcheck's findings per block (info if it is missing) |
| RB005 | error | a link to a missing file or anchor |
| RB006 | warning | a destructive command in a step without ``confirm`` |
| RB007 | error | a retired name (``--retired``) in a command or path |
| RB008 | error | a command that does not exist on ``--target`` |
| RB009 | warning | a parse warning (an unclosed fence, a ``$ `` prompt in bash) |
| RB010 | warning | an ``output`` block that follows no step, so nothing checks it |
| RB011 | info | ``when`` in a playbook whose front matter declares no deployments |
| RB012 | warning | a front matter key close to one runbook reads (``deployment``) |
| RB000 | error | a file that cannot be read or parsed at all |
"""

from __future__ import annotations

import difflib
import json
import re
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import variables
from .errors import PlaybookError, RunbookError
from .model import Playbook, Step
from .playbook import load_playbook
from .source import read_playbook_text

if TYPE_CHECKING:
    from .targets import Target

SEVERITIES = ("info", "warning", "error")

#: The front matter keys that runbook reads.
FRONT_MATTER_KEYS = ("deployments",)

#: Variables a shell has without any step setting them.
COMMON_ENVIRONMENT = (
    "HOME", "PATH", "USER", "LOGNAME", "SHELL", "TERM", "LANG", "PWD", "OLDPWD",
    "HOSTNAME", "TMPDIR", "EDITOR", "VISUAL", "PAGER",
)  # fmt: skip

#: Commands that delete data, stop service or cut traffic.
DESTRUCTIVE = re.compile(
    r"\brm\s+-[a-zA-Z]*[rR]|\bDELETE\s+FROM\b|\bDROP\s+(TABLE|DATABASE|INDEX)\b"
    r"|\bTRUNCATE\s+TABLE\b|\biptables\s+-[AIDF]|\bsystemctl\s+(stop|restart|kill|disable)\b"
    r"|\bVACUUM\b|\bkill\s+-(9|KILL)\b|\bmkfs\b|\bdd\s+.*\bof=|\bPRAGMA\s+rekey\b"
    r"|\bsed\s+-i\b",
    re.IGNORECASE,
)
_FUNCTION = re.compile(r"^\s*([A-Za-z_][\w-]*)\s*\(\)", re.MULTILINE)
_SHELL_WORD = re.compile(r"[A-Za-z0-9_./+-]+")
#: Words after which the next word is a command: `then ls`, `do echo`, `! grep`.
_PREFIX_KEYWORDS = {
    "then",
    "do",
    "else",
    "elif",
    "if",
    "while",
    "until",
    "!",
    "{",
    "time",
}
_SHELL_KEYWORDS = {
    "if", "then", "else", "elif", "fi", "for", "while", "until", "do", "done",
    "case", "esac", "function", "in", "select", "time", "{", "}", "!", "[[", "]]",
    "export", "local", "readonly", "declare", "set", "unset", "cd", "echo",
    "printf", "read", "source", ".", "eval", "exec", "exit", "return", "true",
    "false", "test", "[", "shift", "trap", "wait", "sleep", "command", "type",
}  # fmt: skip


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: str
    file: str
    line: int
    message: str

    def text(self) -> str:
        return f"{self.file}:{self.line}: {self.rule} {self.severity}: {self.message}"


def lint(
    path: str,
    retired: Sequence[str] = (),
    target: str | None = None,
    use_shellcheck: bool = True,
) -> list[Finding]:
    """Return every finding for the playbook at ``path``, in line order.

    A file that cannot be parsed gives one RB000 finding instead, so the
    other files of a run are still checked.
    """
    try:
        playbook = load_playbook(path)
    except RunbookError as error:
        return [_unparsed(path, error)]
    steps = list(playbook.root.all_steps())
    findings: list[Finding] = [
        Finding("RB009", "warning", path, warning.line, warning.message)
        for warning in playbook.warnings
    ]
    findings += _placeholders(path, steps)
    findings += _quoted_heredocs(path, steps)
    findings += _undefined_variables(path, playbook, steps)
    if use_shellcheck:
        findings += _shellcheck(path, steps)
    findings += _links(path, playbook)
    findings += _destructive(path, steps)
    findings += _retired(path, steps, retired)
    findings += _orphan_outputs(path, playbook)
    misspelt = _misspelt_front_matter(path, playbook)
    findings += misspelt
    if not misspelt:
        # A misspelt deployments key is the likelier fix than declaring names.
        findings += _undeclared_deployments(path, playbook, steps)
    if target is not None:
        findings += _missing_commands(path, steps, target)
    return sorted(findings, key=lambda f: (f.file, f.line, f.rule))


def _unparsed(path: str, error: RunbookError) -> Finding:
    """Return the RB000 finding for ``error``, at its line, without repeating it."""
    message = str(error)
    line = 1
    if isinstance(error, PlaybookError):
        line = error.line or 1
        location = error.path if error.line is None else f"{error.path}:{error.line}"
        message = message.removeprefix(f"{location}: ")
    return Finding("RB000", "error", path, line, message)


def at_or_above(findings: Iterable[Finding], severity: str) -> list[Finding]:
    floor = SEVERITIES.index(severity)
    return [f for f in findings if SEVERITIES.index(f.severity) >= floor]


def render(findings: list[Finding], output_format: str = "text") -> str:
    if output_format == "json":
        return json.dumps([asdict(f) for f in findings], indent=2) + "\n"
    lines = [finding.text() for finding in findings]
    counts = {s: sum(1 for f in findings if f.severity == s) for s in SEVERITIES}
    lines.append(
        f"{len(findings)} finding(s): {counts['error']} error, "
        f"{counts['warning']} warning, {counts['info']} info"
    )
    return "\n".join(lines) + "\n"


def _line(step: Step, code_line: int) -> int:
    """Return the file line of a 1-based line of the step's code (fence line + n)."""
    return step.start_line + code_line


def _placeholders(path: str, steps: list[Step]) -> list[Finding]:
    return [
        Finding(
            "RB001",
            "info",
            path,
            _line(step, item.line),
            f"placeholder <{item.name}> needs a value in every run: "
            f"--var {item.name}=VALUE, or a prompt",
        )  # fmt: skip
        for step in steps
        for item in variables.find_placeholders(step.code)
    ]


def _quoted_heredocs(path: str, steps: list[Step]) -> list[Finding]:
    return [
        Finding(
            "RB002",
            "error",
            path,
            _line(step, ref.line),
            f"${ref.name} is inside a quoted here-document (<<'EOF'), so bash "
            "never expands it; unquote the delimiter (<<EOF) if it should be",
        )  # fmt: skip
        for step in steps
        for ref in variables.find_quoted_heredoc_references(step.code)
    ]


def _undefined_variables(
    path: str, playbook: Playbook, steps: list[Step]
) -> list[Finding]:
    prose = _prose(Path(path), steps)
    missing = variables.find_missing_values(
        [step.code for step in steps], {}, dict.fromkeys(COMMON_ENVIRONMENT, "")
    )
    findings = []
    for item in missing:
        if item.kind != "variable" or re.search(rf"\b{re.escape(item.name)}\b", prose):
            continue
        step = steps[item.step - 1]
        findings.append(
            Finding(
                "RB003",
                "warning",
                path,
                _line(step, item.line),
                f"${item.name} is never set by a step and never mentioned in the "
                "prose; say where its value comes from, or set it in an earlier step",
            )  # fmt: skip
        )
    return findings


def _prose(path: Path, steps: list[Step]) -> str:
    """Return the file's text outside fenced blocks."""
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    inside: set[int] = set()
    for step in steps:
        inside.update(range(step.start_line, step.end_line + 1))
    return "\n".join(
        text for number, text in enumerate(lines, 1) if number not in inside
    )


def _shellcheck(path: str, steps: list[Step]) -> list[Finding]:
    executable = shutil.which("shellcheck")
    if executable is None:
        return [
            Finding(
                "RB004",
                "info",
                path,
                1,
                "shellcheck is not installed, so blocks were not checked; "
                "install it (apt-get install shellcheck)",
            )  # fmt: skip
        ]
    levels = {"error": "error", "warning": "warning", "info": "info", "style": "info"}
    findings = []
    for step in steps:
        # shellcheck cannot parse <placeholders>; a plain word takes their place.
        names = {
            item.name: "placeholder" for item in variables.find_placeholders(step.code)
        }
        code = (
            variables.substitute_placeholders(step.code, names) if names else step.code
        )
        result = subprocess.run(
            [executable, "--shell=bash", "--format=json", "-"],
            input=code,
            capture_output=True,
            text=True,
            check=False,
        )
        try:
            reports = json.loads(result.stdout or "[]")
        except json.JSONDecodeError:
            continue
        for report in reports:
            findings.append(
                Finding(
                    "RB004",
                    levels.get(report.get("level"), "info"),
                    path,
                    _line(step, int(report.get("line", 1))),
                    f"SC{report.get('code')}: {report.get('message')}",
                )  # fmt: skip
            )
    return findings


def _links(path: str, playbook: Playbook) -> list[Finding]:
    """Links and images (inline and reference) to missing files or anchors."""
    from urllib.parse import unquote, urlsplit

    from markdown_it import MarkdownIt

    text = Path(path).read_text(encoding="utf-8-sig")
    tokens = MarkdownIt("commonmark").parse(text)
    base = Path(path).resolve().parent
    own_slugs = {section.slug for section in playbook.root.walk()}
    findings = []
    for block in tokens:
        if block.type != "inline" or not block.children or not block.map:
            continue
        line = block.map[0] + 1
        for token in block.children:
            if token.type == "softbreak":
                line += 1
            if token.type not in ("link_open", "image"):
                continue
            link = str(token.attrGet("href") or token.attrGet("src") or "")
            parts = urlsplit(link)
            if parts.scheme or link.startswith("//"):
                continue  # http:, mailto: and other schemes are not checked
            file_part, anchor = unquote(parts.path), parts.fragment
            target = (base / file_part).resolve() if file_part else Path(path).resolve()
            if file_part and not target.exists():
                findings.append(
                    Finding("RB005", "error", path, line,
                            f"link to {link!r}: no such file next to the playbook")
                )  # fmt: skip
                continue
            if not anchor or target.suffix != ".md":
                continue
            try:
                slugs = own_slugs if not file_part else _slugs(target)
            except (RunbookError, OSError) as error:
                findings.append(
                    Finding("RB005", "error", path, line,
                            f"link to {link!r}: cannot read its headings: {error}")
                )  # fmt: skip
                continue
            if anchor not in slugs:
                findings.append(
                    Finding("RB005", "error", path, line,
                            f"link to {link!r}: {target.name} has no heading "
                            f"with the anchor #{anchor}")
                )  # fmt: skip
    return findings


def _slugs(path: Path) -> set[str]:
    return {section.slug for section in load_playbook(str(path)).root.walk()}


def _destructive(path: str, steps: list[Step]) -> list[Finding]:
    findings = []
    for step in steps:
        if step.attributes.get("confirm"):
            continue
        for number, line in enumerate(step.code.splitlines(), 1):
            if line.lstrip().startswith("#"):
                continue
            match = DESTRUCTIVE.search(line)
            if match:
                findings.append(
                    Finding(
                        "RB006",
                        "warning",
                        path,
                        _line(step, number),
                        f"{match.group(0).strip()!r} is destructive but the step "
                        "has no confirm attribute (```bash {confirm}), so --yes "
                        "runs it without consent",
                    )  # fmt: skip
                )
                break
    return findings


def _retired(path: str, steps: list[Step], retired: Sequence[str]) -> list[Finding]:
    findings = []
    for name in retired:
        pattern = re.compile(rf"(?<![A-Za-z0-9]){re.escape(name)}(?![A-Za-z0-9])", re.I)
        for step in steps:
            for number, line in enumerate(step.code.splitlines(), 1):
                if pattern.search(line):
                    findings.append(
                        Finding(
                            "RB007",
                            "error",
                            path,
                            _line(step, number),
                            f"retired name {name!r} in a command; use the current name",
                        )  # fmt: skip
                    )
    return findings


def _orphan_outputs(path: str, playbook: Playbook) -> list[Finding]:
    """Find ``output`` blocks that no step owns: prose or a block comes first."""
    return [
        Finding(
            "RB010",
            "warning",
            path,
            block.start_line,
            "output block follows no step, so no run checks it; put it right "
            "after the closing fence of the step whose output it shows (only "
            "blank lines between), or make it a text block if it is an example",
        )  # fmt: skip
        for section in playbook.root.walk()
        for block in section.context
        if block.language == "output"
    ]


def _misspelt_front_matter(path: str, playbook: Playbook) -> list[Finding]:
    """Report front matter keys that look like a misspelling of one runbook reads.

    Other keys are left alone: front matter often carries keys for other
    tools (``title``, ``tags``).
    """
    findings = []
    text = ""
    for key in playbook.front_matter:
        if not isinstance(key, str) or key in FRONT_MATTER_KEYS:
            continue
        close = difflib.get_close_matches(key.lower(), FRONT_MATTER_KEYS, 1, 0.75)
        if not close:
            continue
        text = text or read_playbook_text(path)
        found = re.search(rf"^\s*{re.escape(key)}\s*[:=]", text, re.MULTILINE)
        line = text.count("\n", 0, found.start()) + 1 if found else 1
        findings.append(
            Finding(
                "RB012",
                "warning",
                path,
                line,
                f"front matter key {key!r} is not one runbook reads, so it is "
                f"ignored; rename it to {close[0]!r}",
            )
        )
    return findings


def _undeclared_deployments(
    path: str, playbook: Playbook, steps: list[Step]
) -> list[Finding]:
    """Report the first ``when`` when the front matter declares no deployments."""
    if "deployments" in playbook.front_matter:
        return []
    names: dict[str, None] = {}
    first: Step | None = None
    for step in steps:
        if step.deployments:
            first = first or step
            names.update(dict.fromkeys(step.deployments))
    if first is None:
        return []
    listed = ", ".join(names)
    return [
        Finding(
            "RB011",
            "info",
            path,
            first.start_line,
            f"steps are marked when= ({listed}) but the front matter declares "
            f"no deployments, so a misspelt name is not caught; add "
            f"deployments: [{listed}] to the front matter",
        )  # fmt: skip
    ]


def command_names(code: str) -> list[tuple[str, int]]:
    """Return the first word of each simple command and its line (a heuristic).

    Backslash continuations are joined first, and names of functions that
    the code defines are left out.
    """
    names = []
    heredoc_end: str | None = None
    joined: list[tuple[int, str]] = []
    pending = ""
    for number, raw in enumerate(code.splitlines(), 1):
        if pending:
            joined[-1] = (joined[-1][0], pending + raw)
        else:
            joined.append((number, raw))
        text = joined[-1][1]
        pending = text[:-1] + " " if text.endswith("\\") else ""
    functions = set(_FUNCTION.findall(code))
    functions |= set(re.findall(r"\bfunction\s+([A-Za-z_][\w-]*)", code))
    for number, line in joined:
        stripped = line.strip()
        if heredoc_end is not None:
            if stripped == heredoc_end:
                heredoc_end = None
            continue
        heredoc = re.search(r"<<-?\s*['\"]?([A-Za-z_][A-Za-z0-9_]*)['\"]?", line)
        if heredoc:
            heredoc_end = heredoc.group(1)
        if not stripped or stripped.startswith("#"):
            continue
        for part in re.split(r"\|\||&&|[|;]|\$\(|`", stripped):
            words = part.split()
            while words and (
                re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0])
                or words[0] in _PREFIX_KEYWORDS
            ):
                words = words[1:]
            if not words or words[0].startswith(
                ("#", "<", ">", "(", ")", "$", '"', "'")
            ):
                continue
            word = words[0]
            if word in _SHELL_KEYWORDS or word in functions:
                continue
            if not _SHELL_WORD.fullmatch(word):
                continue
            names.append((word, number))
    return names


def _missing_commands(path: str, steps: list[Step], target_text: str) -> list[Finding]:
    """Find commands that do not exist where their steps run.

    Steps marked ``target=local`` run on this machine whatever the run's
    target is, so their commands are looked up here, not on ``target_text``.
    """
    from .targets import LocalTarget, parse_target

    target = parse_target(target_text)
    remote_uses: dict[str, tuple[Step, int]] = {}
    local_uses: dict[str, tuple[Step, int]] = {}
    for step in steps:
        uses = local_uses if step.runs_locally and not target.is_local else remote_uses
        for name, number in command_names(step.code):
            uses.setdefault(name, (step, number))
    findings = _probe_commands(path, remote_uses, target, target.describe())
    where = "this machine, where steps marked target=local run"
    findings += _probe_commands(path, local_uses, LocalTarget(), where)
    return findings


def _probe_commands(
    path: str, uses: dict[str, tuple[Step, int]], target: Target, where: str
) -> list[Finding]:
    """Return an RB008 finding for each name in ``uses`` that ``target`` lacks."""
    from .session import BashSession

    if not uses:
        return []
    probe = " ".join(
        f"command -v {name} >/dev/null 2>&1 || echo MISSING:{name};" for name in uses
    )
    with BashSession(target=target) as session:
        outcome = session.run(probe, timeout=30)
    missing = re.findall(r"MISSING:(\S+)", outcome.output.decode("utf-8", "replace"))
    findings = []
    for name in missing:
        step, number = uses[name]
        findings.append(
            Finding(
                "RB008",
                "error",
                path,
                _line(step, number),
                f"{name!r} is not a command on {where}; install it "
                "there or mark the step for another deployment",
            )  # fmt: skip
        )
    return findings
