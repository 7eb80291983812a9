"""Tests for runbook.variables: the bash lexer, missing values, quoting, env files.

Where bash decides the truth (which references it expands, what a substituted
value becomes) the tests run the real bash and compare.
"""

from __future__ import annotations

import os
import random
import re
import shlex
import stat
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from runbook.errors import VariableError
from runbook.shell_lexer import find_command_end
from runbook.variables import (
    BASH_BUILTIN_VARIABLES,
    MissingValue,
    Placeholder,
    VariableReference,
    find_assignments,
    find_missing_values,
    find_placeholders,
    find_quoted_heredoc_references,
    find_unterminated_heredoc,
    find_variable_references,
    is_secret_name,
    load_env_file,
    mask_secrets,
    mask_secrets_bytes,
    may_set_any_variable,
    parse_var_option,
    substitute_placeholders,
)

BASH_TIMEOUT = 10

# The shell steps of an incident-response playbook for a quicprochat server,
# one string per fenced block, as an operator would run them.
INCIDENT_STEPS = [
    """# Check server logs
journalctl -u qpc-server --since "10 min ago" --no-pager
# Docker
docker compose logs --tail=50 server""",
    """# Production requires pre-existing certs (no auto-generation)
ls -la data/server-cert.der data/server-key.der
# If missing, restore from backup or generate new ones
# See: key-rotation.md""",
    """# Production requires QPC_AUTH_TOKEN >= 16 chars, not "devtoken"
echo $QPC_AUTH_TOKEN | wc -c""",
    """# Check if another process holds the database
fuser data/qpc.db
# Verify database integrity
sqlite3 data/qpc.db "PRAGMA key='${QPC_DB_KEY}'; PRAGMA integrity_check;\"""",
    """# 1. Check if the process is running
systemctl status qpc-server
# or: docker compose ps
# 2. Check resource usage
top -bn1 | grep qpc
df -h /var/lib/quicprochat
free -h
# 3. Check QUIC port is reachable
# From another host:
nc -uzv <server-ip> 7000
# 4. Check for OOM kills
dmesg | grep -i "out of memory\\|oom" | tail -5
journalctl -k | grep -i oom""",
    """# 1. Identify and remove expired messages (the cleanup task handles this,
# but if it's behind, you can trigger manual cleanup)
# For SQL backend: delete expired delivery messages
sqlite3 data/qpc.db <<'EOF'
PRAGMA key = '${QPC_DB_KEY}';
DELETE FROM delivery_queue WHERE expires_at IS NOT NULL AND expires_at < unixepoch();
VACUUM;
EOF
# 4. Move to a larger disk
systemctl stop qpc-server
rsync -av /var/lib/quicprochat/ /mnt/new-volume/quicprochat/
systemctl start qpc-server""",
    """# 2. Block offending IPs at the firewall level
iptables -A INPUT -s <attacker-ip> -j DROP
# 4. If the server is overwhelmed, restart to clear state
systemctl restart qpc-server""",
    """# 1. Immediately rotate the auth token
NEW_TOKEN=$(openssl rand -base64 32)
# 4. Review logs for unauthorized access
journalctl -u qpc-server | grep "auth_login_success" | tail -100""",
    """# 2. Check database performance
sqlite3 data/qpc.db <<'EOF'
PRAGMA key = '${QPC_DB_KEY}';
PRAGMA integrity_check;
PRAGMA wal_checkpoint(PASSIVE);
-- Check table sizes
SELECT 'delivery_queue', count(*) FROM delivery_queue
UNION ALL SELECT 'key_packages', count(*) FROM key_packages
UNION ALL SELECT 'users', count(*) FROM users;
EOF
# 3. Check queue depth via metrics
curl -s http://localhost:9090/metrics | grep delivery_queue_depth""",
]


# --- Helpers that ask bash --------------------------------------------------------

# "bash: line 1: NAME: unbound variable", "environment: line 2: NAME[0]: ...",
# "bash: NAME: needed" (the message of ${NAME:?needed}).
_BASH_ERROR = re.compile(
    r"^[^:\n]+: (?:line \d+: )?([A-Za-z_][A-Za-z0-9_]*)(?:\[[^\]]*\])?: ", re.M
)


@dataclass(frozen=True)
class BashRun:
    """What one code did in its subshell: output, errors, status, a guarded rm."""

    stdout: str
    stderr: str
    returncode: int
    rm_ran: bool


def make_guarded_bin(workdir: Path) -> Path:
    """Create ``workdir/bin`` whose ``rm`` only leaves the marker ``workdir/rm-ran``.

    Values such as ``$(rm -rf /)`` are fed to bash. If quoting ever failed, this
    ``rm`` would run instead of the real one and leave its marker file.
    """
    directory = workdir / "bin"
    directory.mkdir()
    fake = directory / "rm"
    fake.write_text(f"#!/bin/sh\ntouch '{workdir}/rm-ran'\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    return directory


@pytest.fixture
def guarded_bin(tmp_path: Path) -> Path:
    """Return a ``bin`` directory in ``tmp_path`` whose ``rm`` only leaves a marker."""
    return make_guarded_bin(tmp_path)


def run_bash(
    code: str, workdir: Path, bin_dir: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-c", code],
        env={"PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": str(workdir)},
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=BASH_TIMEOUT,
    )


def run_in_subshells(
    codes: Sequence[str], workdir: Path, bin_dir: Path | None = None
) -> list[BashRun]:
    """Run each code in its own subshell of one bash process, in order.

    One bash for a whole table instead of one per code is what keeps the
    bash-backed tests fast. Each code runs as ``( eval CODE )`` with stdin from
    /dev/null, so bash parses it on its own and a code that fails to parse
    stops only itself. After each code the script writes a NUL-framed record
    to stdout (the exit status, and whether the fake ``rm`` of
    ``make_guarded_bin(workdir)`` left its marker) and a NUL to stderr. No code
    here prints a NUL. The script sets no variables, so the codes see none but
    bash's own.
    """
    marker = shlex.quote(str(workdir / "rm-ran"))
    script: list[str] = []
    for index, code in enumerate(codes):
        script.append(f"( eval {shlex.quote(code)} ) </dev/null; printf '\\0%s\\0' $?")
        script.append(
            f"if [ -e {marker} ]; then mv {marker} {marker}.{index}; printf 1; "
            "else printf 0; fi; printf '\\0'; printf '\\0' >&2"
        )
    path = os.environ["PATH"]
    if bin_dir is not None:
        path = f"{bin_dir}:{path}"
    batch = subprocess.run(
        ["bash", "--noprofile", "--norc", "-c", "\n".join(script)],
        env={"PATH": path, "HOME": str(workdir)},
        cwd=workdir,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=BASH_TIMEOUT,
    )
    assert batch.returncode == 0, batch.stderr
    fields = batch.stdout.split("\0")
    errors = batch.stderr.split("\0")
    assert len(fields) == 3 * len(codes) + 1, batch.stdout
    assert len(errors) == len(codes) + 1, batch.stderr
    return [
        BashRun(
            stdout=fields[3 * index],
            stderr=errors[index],
            returncode=int(fields[3 * index + 1]),
            rm_ran=fields[3 * index + 2] == "1",
        )
        for index in range(len(codes))
    ]


def ask_bash_unset_names(snippets: Sequence[str], workdir: Path) -> dict[str, set[str]]:
    """Return, per snippet, the names whose unset value stops it under ``set -u``.

    bash reports one unbound variable per (sub)shell and stops, so each name
    it reports is set to 1 and the snippet runs again until bash is content.
    Each round runs all the snippets still reporting names in one bash process,
    so a table costs one process per round rather than one per run.
    """
    found: dict[str, set[str]] = {snippet: set() for snippet in snippets}
    pending = list(found)
    for _ in range(30):
        if not pending:
            return found
        codes = [
            "".join(f"export {name}=1\n" for name in sorted(found[snippet]))
            + "set -u\n"
            + snippet
            for snippet in pending
        ]
        runs = run_in_subshells(codes, workdir)
        unsettled = []
        for snippet, run in zip(pending, runs, strict=True):
            reported = set(_BASH_ERROR.findall(run.stderr)) - found[snippet]
            if reported:
                found[snippet] |= reported
                unsettled.append(snippet)
        pending = unsettled
    raise AssertionError(f"bash kept reporting new names for {pending!r}")


def test_subshell_batch_keeps_codes_apart(tmp_path: Path, guarded_bin: Path) -> None:
    codes = ["echo a; rm -rf x", "echo 'open", "printf 'b\\n\\n'; exit 3", "echo c >&2"]
    runs = run_in_subshells(codes, tmp_path, guarded_bin)
    assert [run.stdout for run in runs] == ["a\n", "", "b\n\n", ""]
    assert [run.returncode for run in runs] == [1, 2, 3, 0]
    assert [run.rm_ran for run in runs] == [True, False, False, False]
    assert "unexpected EOF" in runs[1].stderr
    assert runs[3].stderr == "c\n"


def names(references: list[VariableReference]) -> set[str]:
    return {reference.name for reference in references}


# --- find_variable_references against bash ----------------------------------------

# (snippet, names that bash expands without a default). Every snippet runs
# every expansion it contains, so `set -u` checks each one.
REFERENCE_CASES = [
    ("echo $ALPHA", {"ALPHA"}),
    ('echo "${ALPHA}" "$BETA"', {"ALPHA", "BETA"}),
    ("echo '$ALPHA' '${BETA}'", set()),
    ('echo "${A:-x}" ${B-y} ${C:=z} ${D=w} ${E:+v} ${F+u}', set()),
    ("echo ${ALPHA:?needed}", {"ALPHA"}),
    ("echo ${ALPHA?}", {"ALPHA"}),
    ('echo \\$ALPHA "\\$BETA"', set()),
    ("# echo $ALPHA\necho hi # $BETA", set()),
    ("echo a#$ALPHA", {"ALPHA"}),
    ('echo $? $# $$ $- $0; echo "$@" "$*"', set()),
    ("cat <<EOF\n$ALPHA\nEOF", {"ALPHA"}),
    ("cat <<'EOF'\n$ALPHA ${BETA}\nEOF", set()),
    ('cat <<"EOF"\n$ALPHA\nEOF', set()),
    ("cat <<\\EOF\n$ALPHA\nEOF", set()),
    ("cat <<-EOF\n\t$ALPHA\n\tEOF\necho $BETA", {"ALPHA", "BETA"}),
    ("cat <<ONE <<'TWO'\n$ALPHA\nONE\n$BETA\nTWO\necho $GAMMA", {"ALPHA", "GAMMA"}),
    ("cat <<'ONE' <<TWO\n$ALPHA\nONE\n$BETA\nTWO", {"BETA"}),
    ("cat <<EOF\nEOF not yet\n EOF\n$ALPHA\nEOF\necho $BETA", {"ALPHA", "BETA"}),
    ("cat <<EOF\nline\\\nEOF\n$ALPHA\nEOF", {"ALPHA"}),
    (
        "cat <<EOF\n\\$ALPHA \\\\$BETA '$GAMMA' \"$DELTA\"\nEOF",
        {"BETA", "GAMMA", "DELTA"},
    ),
    (
        "cat <<EOF\n# $ALPHA\n$(echo $BETA) `echo $GAMMA`\nEOF",
        {"ALPHA", "BETA", "GAMMA"},
    ),
    ("echo $(echo $ALPHA) `echo $BETA`", {"ALPHA", "BETA"}),
    ('echo "$(echo "$ALPHA")"', {"ALPHA"}),
    ("echo ${#ALPHA}", {"ALPHA"}),
    (
        "echo ${A#x} ${B%y} ${C/a/b} ${D^^} ${E:0:1} ${F@Q}",
        {"A", "B", "C", "D", "E", "F"},
    ),
    ("echo $((ALPHA + 1))", {"ALPHA"}),
    ("(( BETA++ )); echo $(( GAMMA = 1 ))", {"BETA"}),
    ("echo $(( 16#ff + 0x1f + 2#101 ))", set()),
    ("for ((i = 0; i < LIMIT; i++)); do :; done", {"LIMIT"}),
    ("echo $'$ALPHA \\' $BETA' $\"$GAMMA\"", {"GAMMA"}),
    ('echo "${ARR[@]}" ${ARR[*]}', set()),
    ("echo ${#COUNT[@]}", {"COUNT"}),
    ('echo "${ONE[0]}"', {"ONE"}),
    ("echo ${!PREFIX*} ${!PREFIX@}", set()),
    ("echo ${!ALPHA}", {"ALPHA"}),
    ("echo \\\n$ALPHA", {"ALPHA"}),
    ('echo "a\\"$ALPHA"', {"ALPHA"}),
    ("echo 'it'\"'\"'s' $ALPHA", {"ALPHA"}),
    ('cat <<< "$ALPHA"', {"ALPHA"}),
    ("cat <(echo $ALPHA) >/dev/null 2>&1", {"ALPHA"}),
    ("[[ -n $ALPHA ]]", {"ALPHA"}),
    ("case $ALPHA in *) echo $BETA;; esac", {"ALPHA", "BETA"}),
    ("f() { echo $ALPHA; }; f", {"ALPHA"}),
    ("echo $ALPHA$BETA ${GAMMA}x$DELTA_E", {"ALPHA", "BETA", "GAMMA", "DELTA_E"}),
    ('echo "$ALPHA\'" \'"$BETA"\'', {"ALPHA"}),
    ('x=( $ALPHA ); echo "${x[@]}"', {"ALPHA"}),
    ('echo "${ALPHA:-"a}b"}" ${BETA:-{c}} $GAMMA', {"GAMMA"}),
    ("echo `echo \\`echo $ALPHA\\``", {"ALPHA"}),
    ("echo ${X:-$(echo hi)} $(echo ')' $ALPHA)", {"ALPHA"}),
    ("echo $( (echo a) ; echo $ALPHA )", {"ALPHA"}),
    ("echo <<EOF >/dev/null\n$ALPHA\nEOF\necho $BETA", {"ALPHA", "BETA"}),
    ("x=$(cat <<EOF\n$ALPHA\nEOF\n); echo $BETA", {"ALPHA", "BETA"}),
    ('echo "$(case a in a) echo $ALPHA;; esac)" "$BETA"', {"ALPHA", "BETA"}),
    ("x=$(case a in (b) :;; a|c) echo $ALPHA;; esac); echo $BETA", {"ALPHA", "BETA"}),
    (
        "case a in a) case b in b) echo $ALPHA;; esac;; esac; echo $BETA",
        {"ALPHA", "BETA"},
    ),
]


@pytest.fixture(scope="module")
def bash_unset_names(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """Ask bash once for the whole table; several tests read each verdict."""
    snippets = [snippet for snippet, _ in REFERENCE_CASES]
    return ask_bash_unset_names(snippets, tmp_path_factory.mktemp("set-u"))


@pytest.mark.parametrize(("snippet", "expected"), REFERENCE_CASES)
def test_table_agrees_with_bash(
    snippet: str, expected: set[str], bash_unset_names: dict[str, set[str]]
) -> None:
    assert bash_unset_names[snippet] == expected


@pytest.mark.parametrize(("snippet", "expected"), REFERENCE_CASES)
def test_references_cover_bash_expansions(
    snippet: str, expected: set[str], bash_unset_names: dict[str, set[str]]
) -> None:
    found = names(find_variable_references(snippet))
    bash_names = bash_unset_names[snippet]
    assert bash_names <= found
    # A name bash did not complain about is one the snippet assigns first,
    # such as i in for ((i = 0; ...)).
    assert found - bash_names <= find_assignments(snippet)


@pytest.mark.parametrize(("snippet", "expected"), REFERENCE_CASES)
def test_missing_values_match_bash(
    snippet: str, expected: set[str], bash_unset_names: dict[str, set[str]]
) -> None:
    missing = {m.name for m in find_missing_values([snippet], {}, {})}
    assert missing == bash_unset_names[snippet]


def test_default_word_references_are_optional() -> None:
    # bash expands $BETA here when ALPHA is unset, but the reference only runs
    # when the default is needed, so it does not make BETA required.
    assert find_variable_references('echo "${ALPHA:-$BETA}" ${GAMMA:+$DELTA}') == []


def test_references_carry_line_numbers() -> None:
    code = 'echo one\necho "$ALPHA"\ncat <<EOF\nx\n${BETA}\nEOF\necho $ALPHA'
    assert find_variable_references(code) == [
        VariableReference("ALPHA", 2),
        VariableReference("BETA", 5),
        VariableReference("ALPHA", 7),
    ]


# --- Quoted here-document references and unterminated here-documents --------------


QUOTED_HEREDOC_CASES = [
    ("cat <<'EOF'\n$ALPHA ${BETA:-x}\nEOF", ["ALPHA", "BETA"]),
    ('cat <<"EOF"\n${ALPHA}\nEOF', ["ALPHA"]),
    ("cat <<\\EOF\n$ALPHA\nEOF", ["ALPHA"]),
    ("cat <<'EOF'\n\\$ALPHA $1 $?\nEOF", []),
    ("cat <<EOF\n$ALPHA\nEOF", []),
    ("echo '$ALPHA'", []),
]


@pytest.mark.parametrize(("code", "expected"), QUOTED_HEREDOC_CASES)
def test_quoted_heredoc_references_found(code: str, expected: list[str]) -> None:
    assert [r.name for r in find_quoted_heredoc_references(code)] == expected


def test_playbook_pragma_key_not_expanded() -> None:
    step = INCIDENT_STEPS[5]
    assert "QPC_DB_KEY" not in names(find_variable_references(step))
    assert find_quoted_heredoc_references(step) == [VariableReference("QPC_DB_KEY", 5)]


UNTERMINATED_CASES = [
    ("cat <<EOF > out.txt\nhello\nEOF > out.txt\n", ("EOF", 1)),
    ("echo start\ncat <<EOF\nhello\nEOF \n", ("EOF", 2)),
    ("cat <<'END'\nbody\n", ("END", 1)),
    ("cat <<EOF", ("EOF", 1)),
    ("cat <<A <<B\na\nA\nb\n", ("B", 1)),
    ("cat <<EOF\nhello\nEOF\n", None),
    ("cat <<EOF\nhello\nEOF", None),
    ("cat <<-EOF\n\thello\n\t\tEOF\n", None),
    ("cat <<EOF\nhello\n\tEOF\n", ("EOF", 1)),
    ("cat <<'EOF'\nline\\\nEOF\n", None),
    ("cat <<EOF\nline\\\nEOF\n", ("EOF", 1)),
    ("echo '<<EOF'\necho \"<<EOF\" # <<EOF\n", None),
    ("echo $(( 1 << 2 )); (( x = 1 << 3 ))\n", None),
    ("cat <<<EOF\n", None),
]


@pytest.mark.parametrize(("code", "expected"), UNTERMINATED_CASES)
def test_unterminated_heredoc_detection(
    code: str, expected: tuple[str, int] | None
) -> None:
    assert find_unterminated_heredoc(code) == expected


# --- find_placeholders ------------------------------------------------------------

PLACEHOLDER_CASES = [
    ("nc -uzv <server-ip> 7000", ["server-ip"]),
    ("ssh <user>@<host> 'ls <dir>'", ["user", "host", "dir"]),
    ("ssh web1 'sudo systemctl restart <service-name>'", ["service-name"]),
    ("echo 'a <one> b' '<two>'\"<three>\"'<four>'", ["one", "two", "three", "four"]),
    ("echo '<b>bold</b>'", []),
    ("echo 'open <unclosed>", ["unclosed"]),
    ("echo hi # '<in-comment>'", []),
    ("cat <<'EOF'\n'<quoted-body>'\nEOF", []),
    ("cat <<EOF\n'<body>'\nEOF", ["body"]),
    ("echo ${X:-'<bare>'} \"${X:-'<printed>'}\"", ["bare"]),
    ("echo \"`echo '<tick>'`\" $(echo '<dollar>')", ["tick", "dollar"]),
    ('curl "http://<host>:8080/<path.v2>"', ["host", "path.v2"]),
    ("cat <<EOF\n<NAME> is here\nEOF", ["NAME"]),
    ("cat <<'EOF'\n<html><p>x</p></html>\nEOF", []),
    ("cat <<EOF\n<b>bold</b>\nEOF", []),
    ("sort < input.txt > output.txt 2>&1", []),
    ("cat <(ls) <<<x", []),
    ("cat <<EOF\nbody\nEOF", []),
    ("cat <<-'EOF'\n\t<x>\n\tEOF\necho <after>", ["after"]),
    ("# ping <host>\necho hi # <trailing>", []),
    ("echo '<single>' $'<ansi>' \"<double>\"", ["single", "double"]),
    ("echo $(( a<b>c ))", []),
    ("echo ${X:-<fallback>}", ["fallback"]),
    ("echo `echo <tick>` $(echo <dollar>)", ["tick", "dollar"]),
    ("echo <a_1> <1bad> <-bad> <ok-> <a b>", ["a_1", "ok-"]),
    ("echo <x>\necho <y> <x>", ["x", "y"]),
    ("echo \\<escaped>", []),
    ('echo "$(case $1 in a) echo <inside>;; esac)" <after>', ["inside", "after"]),
]


@pytest.mark.parametrize(("code", "expected"), PLACEHOLDER_CASES)
def test_placeholders_found_in_order(code: str, expected: list[str]) -> None:
    assert [p.name for p in find_placeholders(code)] == expected


def test_placeholders_keep_first_line() -> None:
    code = "echo hi\nping <host>\n\necho <port> <host>"
    assert find_placeholders(code) == [Placeholder("host", 2), Placeholder("port", 4)]


def test_playbook_placeholders_found() -> None:
    found = [p.name for step in INCIDENT_STEPS for p in find_placeholders(step)]
    assert found == ["server-ip", "attacker-ip"]


# --- find_assignments -------------------------------------------------------------

ASSIGNMENT_CASES = [
    ("NAME=1", {"NAME"}),
    ("A=1 B=$(date) C+=x D[0]=y", {"A", "B", "C", "D"}),
    ("X=1 make", set()),
    ("export E1=1 E2; export E3", {"E1", "E2", "E3"}),
    ("local L; declare -a D1=(a b); typeset -i T; readonly R=1", {"L", "D1", "T", "R"}),
    ("declare -f myfunc", set()),
    ("read -r ONE TWO", {"ONE", "TWO"}),
    ('read -rp "Host: " HOST_NAME', {"HOST_NAME"}),
    ("read -t 5 -a ITEMS", {"ITEMS"}),
    ("read -r -d '' BLOB < file.txt", {"BLOB"}),
    ('while IFS= read -r line; do echo "$line"; done', {"line"}),
    (
        "for host in a b; do :; done; select choice in x y; do break; done",
        {"host", "choice"},
    ),
    ("mapfile -t LINES_ARR < f; readarray -n 3 ROWS", {"LINES_ARR", "ROWS"}),
    ("printf -v STAMP '%s' now; printf -vOTHER x", {"STAMP", "OTHER"}),
    ("while getopts 'ab:' opt; do :; done", {"opt"}),
    ("for ((n = 0; n < 3; n++)); do :; done; (( m += 1 ))", {"n", "m"}),
    ("let count=1 'total += 2'", {"count", "total"}),
    (': "${DEFAULTED:=value}"', {"DEFAULTED"}),
    ("if true; then INSIDE=1; fi", {"INSIDE"}),
    ("case $1 in PATTERN=x) CASE_SET=1;; esac", {"CASE_SET"}),
    ("echo X=1; echo 'Y=2' # Z=3", set()),
    ("cat <<EOF\nHEREDOC=1\nEOF", set()),
    ("NEW_TOKEN=$(openssl rand -base64 32)", {"NEW_TOKEN"}),
]


@pytest.mark.parametrize(("code", "expected"), ASSIGNMENT_CASES)
def test_assignments_found(code: str, expected: set[str]) -> None:
    assert find_assignments(code) == expected


# --- find_missing_values ----------------------------------------------------------


def test_playbook_missing_values_listed() -> None:
    assert find_missing_values(INCIDENT_STEPS, {}, {}) == [
        MissingValue("QPC_AUTH_TOKEN", "variable", 3, 2),
        MissingValue("QPC_DB_KEY", "variable", 4, 4),
        MissingValue("server-ip", "placeholder", 5, 10),
        MissingValue("attacker-ip", "placeholder", 7, 2),
    ]


def test_playbook_values_all_provided() -> None:
    provided = {"server-ip": "10.0.0.5", "attacker-ip": "192.0.2.9"}
    environment = {"QPC_AUTH_TOKEN": "t" * 16, "QPC_DB_KEY": "k"}
    assert find_missing_values(INCIDENT_STEPS, provided, environment) == []


def test_placeholder_ignores_environment() -> None:
    missing = find_missing_values(["ping <host>"], {}, {"host": "example"})
    assert missing == [MissingValue("host", "placeholder", 1, 1)]


def test_earlier_step_assignment_satisfies() -> None:
    steps = ["export REGION=eu", "echo $REGION", "echo $ZONE"]
    assert find_missing_values(steps, {}, {}) == [
        MissingValue("ZONE", "variable", 3, 1)
    ]


def test_same_step_order_matters() -> None:
    missing = find_missing_values(["echo $LATE\nLATE=1\necho $LATE"], {}, {})
    assert missing == [MissingValue("LATE", "variable", 1, 1)]


def test_self_referencing_assignment_missing() -> None:
    missing = find_missing_values(["COUNT=$((COUNT + 1))"], {}, {})
    assert missing == [MissingValue("COUNT", "variable", 1, 1)]


def test_missing_reported_once() -> None:
    steps = ["echo $GONE <gone>", "echo $GONE <gone>"]
    assert find_missing_values(steps, {}, {}) == [
        MissingValue("GONE", "variable", 1, 1),
        MissingValue("gone", "placeholder", 1, 1),
    ]


def test_builtins_and_defaults_not_missing() -> None:
    code = 'echo "$HOME $PWD $RANDOM $BASH_VERSION ${PORT:-8080}"; read; echo $REPLY'
    assert find_missing_values([code], {}, {}) == []


@pytest.mark.parametrize("name", ["HOME", "PWD", "OLDPWD", "PIPESTATUS", "OPTARG"])
def test_builtin_set_contains_name(name: str) -> None:
    assert name in BASH_BUILTIN_VARIABLES


# (steps, what is missing). After source, . or eval any variable may be set.
SOURCING_CASES = [
    (['source venv/bin/activate; echo "$VIRTUAL_ENV"'], []),
    (['. ./env.sh\necho "$APP_ENV"'], []),
    (['eval "$(ssh-agent)"', 'ssh-add; echo "$SSH_AUTH_SOCK"'], []),
    (["if . ./env.sh; then echo $FROM_ENV; fi"], []),
    (["CONF=1 builtin source env.sh; echo $FROM_ENV"], []),
    (
        ['echo "$BEFORE"; source env.sh; echo "$AFTER"'],
        [MissingValue("BEFORE", "variable", 1, 1)],
    ),
    (['source "$ENV_DIR/env.sh"'], [MissingValue("ENV_DIR", "variable", 1, 1)]),
    (
        ["source env.sh", "ping <host>"],
        [MissingValue("host", "placeholder", 2, 1)],
    ),
    (
        ["echo . source eval; ls ./source; echo $PLAIN"],
        [MissingValue("PLAIN", "variable", 1, 1)],
    ),
]


@pytest.mark.parametrize(("steps", "expected"), SOURCING_CASES)
def test_sourced_variables_not_missing(
    steps: list[str], expected: list[MissingValue]
) -> None:
    assert find_missing_values(steps, {}, {}) == expected


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("source ~/.profile", True),
        (". ./env.sh", True),
        ('eval "$(ssh-agent)"', True),
        ("echo source; cat .", False),
        ("# source env.sh", False),
    ],
)
def test_may_set_any_variable(code: str, expected: bool) -> None:
    assert may_set_any_variable(code) is expected


# --- substitute_placeholders against bash -----------------------------------------

TRICKY_VALUES = [
    "",
    "plain",
    "two words",
    "  padded  ",
    "it's",
    'say "hi"',
    "$(rm -rf /)",
    "`rm -rf /`",
    "${HOME}",
    "$HOME",
    "back\\slash",
    "trailing\\",
    "\\\\double",
    "\\$HOME",
    "line1\nline2",
    "tab\there",
    "semi;colon && amp | pipe > out < in",
    "*glob?[a]",
    "~tilde",
    "brace}close{open",
    "!bang",
    "#hash",
    "'",
    '"',
    "\\",
    "$",
    "-n",
    "unicode ünï €",
    "'\"'\"'",
    "EOF",
]

# (template, expected output with @V@ standing for the value). Each template
# puts the placeholder in a different quoting context.
SUBSTITUTION_TEMPLATES = [
    ("printf '%s' <v>", "@V@"),
    ("printf '%s' \"<v>\"", "@V@"),
    ("printf '%s' \"pre-<v>-post\"", "pre-@V@-post"),
    ("printf '%s' pre-<v>-post", "pre-@V@-post"),
    ("printf '%s|%s' <v> \"<v>\"", "@V@|@V@"),
    ("printf '%s' \"$(printf '%s' <v>)\"", "@V@"),
    ("printf '%s' \"$(printf '%s' \"<v>\")\"", "@V@"),
    ("x=`printf '%s' <v>`; printf '%s' \"$x\"", "@V@"),
    ("printf '%s' \"`printf '%s' <v>`\"", "@V@"),
    ("printf '%s' \"`printf '%s' \\\"<v>\\\"`\"", "@V@"),
    ("printf '%s' \"${UNSET_X:-<v>}\"", "@V@"),
    ("printf '%s' ${UNSET_X:-<v>}", "@V@"),
    ("cat <<END_OF_TEXT\n<v>\nEND_OF_TEXT", "@V@\n"),
    ("cat <<-END_OF_TEXT\n\t[<v>]\n\tEND_OF_TEXT", "[@V@]\n"),
    ("cat <<END_OF_TEXT\n${UNSET_X:-<v>}\nEND_OF_TEXT", "@V@\n"),
    ("cat <<END_OF_TEXT\n$(printf '%s' <v>)\nEND_OF_TEXT", "@V@\n"),
    ("printf '%s' <v> <<END_OF_TEXT\nbody\nEND_OF_TEXT", "@V@"),
    ("printf '%s' \"$(case x in x) printf '%s' <v>;; esac)\"", "@V@"),
    ("printf '%s' \"$(case x in (y) :;; (x) printf '%s' <v>;; esac)\"", "@V@"),
    ("cat <<< <v>", "@V@\n"),
    ('cat <<<"[<v>]"', "[@V@]\n"),
    ("printf '%s' '<v>'", "@V@"),
    ("printf '%s' 'pre <v> post'", "pre @V@ post"),
    ("printf '%s' '<v>''<v>'", "@V@@V@"),
    ("printf '%s' pre-'<v>'-\"<v>\"", "pre-@V@-@V@"),
    ("printf '%s' '$<v>'", "$@V@"),
    ("printf '%s' \"$(printf '%s' '<v>')\"", "@V@"),
    ("x=`printf '%s' '<v>'`; printf '%s' \"$x\"", "@V@"),
    ("printf '%s' \"`printf '%s' '<v>'`\"", "@V@"),
    ("printf '%s' ${UNSET_X:-'<v>'}", "@V@"),
    ("cat <<END_OF_TEXT\n$(printf '%s' '<v>')\nEND_OF_TEXT", "@V@\n"),
]


@pytest.fixture(scope="module")
def substituted_runs(
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[[str], dict[str, BashRun]]:
    """Return a function that runs a template with every tricky value in one bash.

    It maps each substituted code to its run, and runs each template once.
    """
    workdir = tmp_path_factory.mktemp("substitution")
    bin_dir = make_guarded_bin(workdir)
    runs: dict[str, dict[str, BashRun]] = {}

    def run_template(template: str) -> dict[str, BashRun]:
        if template not in runs:
            codes = []
            for value in TRICKY_VALUES:
                try:
                    codes.append(substitute_placeholders(template, {"v": value}))
                except VariableError:
                    continue  # the test for that value raises the same error
            results = run_in_subshells(codes, workdir, bin_dir)
            runs[template] = dict(zip(codes, results, strict=True))
        return runs[template]

    return run_template


@pytest.mark.parametrize("value", TRICKY_VALUES)
@pytest.mark.parametrize(("template", "expected"), SUBSTITUTION_TEMPLATES)
def test_substituted_value_printed_exactly(
    template: str,
    expected: str,
    value: str,
    substituted_runs: Callable[[str], dict[str, BashRun]],
) -> None:
    if value == "" and template == "printf '%s' pre-<v>-post":
        expected = "pre--post"
    code = substitute_placeholders(template, {"v": value})
    result = substituted_runs(template)[code]
    assert result.stdout == expected.replace("@V@", value), code
    assert result.returncode == 0, result.stderr
    assert not result.rm_ran


def test_substitution_leaves_comments_alone() -> None:
    code = "# ping <host>\nping <host> # <host>"
    assert substitute_placeholders(code, {"host": "a b"}) == (
        "# ping <host>\nping 'a b' # <host>"
    )


def test_substitution_skips_quoted_heredoc() -> None:
    code = "cat <<'EOF'\n<host>\nEOF\necho <host>"
    assert substitute_placeholders(code, {"host": "h"}) == (
        "cat <<'EOF'\n<host>\nEOF\necho h"
    )


def test_substitution_reopens_single_quotes() -> None:
    code = "ssh web1 'sudo systemctl restart <service-name>'"
    assert substitute_placeholders(code, {"service-name": "my app"}) == (
        "ssh web1 'sudo systemctl restart ''my app'''"
    )


def test_substitution_keeps_unknown_placeholders() -> None:
    assert substitute_placeholders("echo <a> <b>", {"a": "1"}) == "echo 1 <b>"


def test_substitution_rejects_heredoc_delimiter() -> None:
    code = "cat <<EOF\n<v>\nEOF"
    with pytest.raises(VariableError, match="delimiter 'EOF'"):
        substitute_placeholders(code, {"v": "x\nEOF\nrm -rf /"})


@pytest.mark.parametrize("template", ["echo $<v>", 'echo "$<v>"', "cat <<E\n$<v>\nE"])
def test_substitution_rejects_value_after_dollar(template: str) -> None:
    with pytest.raises(VariableError, match=re.escape("<v> follows a '$'")):
        substitute_placeholders(template, {"v": "(rm -rf /)"})


def test_substitution_allows_name_after_dollar() -> None:
    assert substitute_placeholders('echo "$<v>"', {"v": "HOME"}) == 'echo "$HOME"'


def test_substitution_rejects_nul_byte() -> None:
    with pytest.raises(VariableError, match="NUL"):
        substitute_placeholders("echo <v>", {"v": "a\0b"})


def test_playbook_substitution_runs_in_bash(tmp_path: Path, guarded_bin: Path) -> None:
    step = "printf '%s\\n' <server-ip> <attacker-ip>"
    code = substitute_placeholders(
        step, {"server-ip": "10.0.0.5", "attacker-ip": "a b"}
    )
    assert run_bash(code, tmp_path, guarded_bin).stdout == "10.0.0.5\na b\n"


# --- find_command_end against bash ----------------------------------------------

# Each code is one command over several lines and then "echo after". Compound
# commands, and reserved words where bash does not take them as such.
COMMAND_END_CASES = [
    "for i in 1 2; do\n  echo $i\ndone\necho after\n",
    "for i in 1 2\ndo echo $i\ndone\necho after\n",
    "select x in a b; do break\ndone </dev/null\necho after\n",
    "while false\ndo :\ndone\necho after\n",
    "until true; do :; done\necho after\n",
    "if true\nthen echo a\nelif false; then :\nelse :\nfi\necho after\n",
    "if true; then for i in 1; do\n:\ndone\nfi\necho after\n",
    "f() {\n  echo a\n}\necho after\n",
    "function g {\n  :\n}\necho after\n",
    "{ echo a\necho b; }\necho after\n",
    "case a in\na) if true; then\n:\nfi;;\nesac\necho after\n",
    "x=$(if true; then case a in a) echo;; esac; fi)\necho after\n",
    "! if true; then :\nfi\necho after\n",
    "time while false; do :\ndone\necho after\n",
    "(if true; then :\nfi)\necho after\n",
    "echo a |\nwhile read l; do :\ndone\necho after\n",
    "echo if done fi { }\necho after\n",
    "arr=(if for {)\necho after\n",
    "echo 'if\nfi'\necho after\n",
    "# if\necho after\n",
    "case x in\ndone) :;;\nesac\necho after\n",
]


def ask_bash_command_ends(codes: Sequence[str], workdir: Path) -> list[int | None]:
    """Return, per code, the length of its first run of lines that bash parses.

    bash parses each run of whole lines from the start under ``set -n``. A run
    that ends inside a command fails with an unexpected end of file.
    """
    prefixes = [
        [code[: match.end()] for match in re.finditer("\n", code)] for code in codes
    ]
    runs = run_in_subshells(
        ["set -n\n" + prefix for each in prefixes for prefix in each], workdir
    )
    ends: list[int | None] = []
    for each in prefixes:
        results, runs = runs[: len(each)], runs[len(each) :]
        complete = [
            len(prefix)
            for prefix, run in zip(each, results, strict=True)
            if not run.returncode
        ]
        ends.append(complete[0] if complete else None)
    return ends


def test_command_end_agrees_with_bash(tmp_path: Path) -> None:
    found = [find_command_end(code) for code in COMMAND_END_CASES]

    assert found == ask_bash_command_ends(COMMAND_END_CASES, tmp_path)
    assert None not in found


# --- Robustness and speed ---------------------------------------------------------

HARD_SNIPPET = """cat <<'EOF' <<-"X" <<Y | sed "s/a/$B/" # c <p>
'$Q' <lit>
EOF
\t${R:-<d>}
\tX
$(echo `echo $S` "${T#\\}}" $'\\'' $(( U << 2 ))) <h>\\
Y
for ((i=0;i<N;i++)); do read -r V <<< "$W"; done; echo "${A[@]}" '<no>'
"""


def test_every_prefix_scans_cleanly() -> None:
    for end in range(len(HARD_SNIPPET) + 1):
        prefix = HARD_SNIPPET[:end]
        find_placeholders(prefix)
        find_variable_references(prefix)
        find_quoted_heredoc_references(prefix)
        find_unterminated_heredoc(prefix)
        find_assignments(prefix)
        substitute_placeholders(prefix, {"p": "1", "d": "2", "h": "3"})


def test_random_input_scans_cleanly() -> None:
    alphabet = "ab$#{}()[]<>'\"`\\\n\t ;&|-=:?+!@*%/^,EOF0123456789"
    generator = random.Random(20240601)
    for _ in range(300):
        code = "".join(generator.choice(alphabet) for _ in range(200))
        find_placeholders(code)
        find_variable_references(code)
        find_unterminated_heredoc(code)
        find_assignments(code)


@pytest.mark.parametrize(
    "unit",
    ["$(", '"$(', "${X:-", "`", "<<EOF ", "$(( (", "'", "cat <<A\n"],
)
def test_deep_nesting_scans_cleanly(unit: str) -> None:
    code = unit * 20000
    find_variable_references(code)
    find_placeholders(code)


def _scan_seconds(code: str) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        find_variable_references(code)
        find_unterminated_heredoc(code)
        best = min(best, time.perf_counter() - started)
    return best


@pytest.mark.parametrize(
    "unit",
    [
        "cat <<E$N <<F$N\n",
        'echo "$A ${B:-x} $(c <d>) `e`" # f\n',
        "<<A " * 5 + "\n",
        "x\\\n",
        "$(",
        "x=$(",
    ],
)
def test_scan_time_grows_linearly(unit: str) -> None:
    small = _scan_seconds(unit * 2000)
    large = _scan_seconds(unit * 8000)
    # The input grows four times, so a quadratic scan would take about sixteen
    # times as long.
    assert large < small * 8 + 0.05


# --- parse_var_option -------------------------------------------------------------

VAR_OPTION_CASES = [
    ("NAME=value", ("NAME", "value")),
    ("server-ip=10.0.0.5", ("server-ip", "10.0.0.5")),
    ("<server-ip>=10.0.0.5", ("server-ip", "10.0.0.5")),
    ("EMPTY=", ("EMPTY", "")),
    ("URL=http://x/?a=b", ("URL", "http://x/?a=b")),
    ("_private=1", ("_private", "1")),
]


@pytest.mark.parametrize(("text", "expected"), VAR_OPTION_CASES)
def test_var_option_parsed(text: str, expected: tuple[str, str]) -> None:
    assert parse_var_option(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("NOEQUALS", "invalid --var starting with 'NOEQUALS': expected NAME=VALUE"),
        ("=value", "with '...': the part before '=' is not a variable"),
        ("1ABC=x", "with '1ABC...': the part before '=' is not a variable"),
        ("a b=x", "with 'a...': the part before '=' is not a variable"),
        # A secret typed with the wrong separator never reaches the message.
        ("TOKEN:s3cret-value", "with 'TOKEN...': expected NAME=VALUE"),
    ],
)
def test_var_option_rejected(text: str, message: str) -> None:
    with pytest.raises(VariableError, match=re.escape(message)):
        parse_var_option(text)


# --- load_env_file ----------------------------------------------------------------

ENV_FILE = """\
# deployment values
QPC_AUTH_TOKEN=abcdef0123456789

export REGION=eu-west-1
SINGLE='literal $HOME \\n # kept'
DOUBLE="say \\"hi\\"\\nnext \\\\ end"
UNQUOTED=value with spaces # trailing comment
HASH_INSIDE=a#b
EMPTY=
SPACED = padded
server-ip=10.0.0.5
QUOTED_COMMENT="x" # note
"""

ENV_EXPECTED = {
    "QPC_AUTH_TOKEN": "abcdef0123456789",
    "REGION": "eu-west-1",
    "SINGLE": "literal $HOME \\n # kept",
    "DOUBLE": 'say "hi"\nnext \\ end',
    "UNQUOTED": "value with spaces",
    "HASH_INSIDE": "a#b",
    "EMPTY": "",
    "SPACED": "padded",
    "server-ip": "10.0.0.5",
    "QUOTED_COMMENT": "x",
}


@pytest.mark.parametrize(("name", "value"), sorted(ENV_EXPECTED.items()))
def test_env_file_value_read(name: str, value: str, tmp_path: Path) -> None:
    path = tmp_path / "values.env"
    path.write_text(ENV_FILE, encoding="utf-8")
    assert load_env_file(str(path))[name] == value


def test_env_file_has_no_extras(tmp_path: Path) -> None:
    path = tmp_path / "values.env"
    path.write_text(ENV_FILE, encoding="utf-8")
    assert set(load_env_file(str(path))) == set(ENV_EXPECTED)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("GOOD=1\nno equals here\n", ":2: invalid line starting with 'no...'"),
        ("1BAD=x\n", ":1: invalid line starting with '1BAD...'"),
        ("DB_KEY s3cret-value\n", ":1: invalid line starting with 'DB_KEY...'"),
        ("A='open\n", ":1: unterminated single quote in the value of A"),
        ('B="open\n', ":1: unterminated double quote in the value of B"),
        ("C='x' y\n", ":1: unexpected text 'y' after the quoted value of C"),
    ],
)
def test_env_file_line_rejected(content: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.env"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(VariableError, match=re.escape(f"{path}{message}")):
        load_env_file(str(path))


def test_env_file_missing_rejected(tmp_path: Path) -> None:
    path = tmp_path / "absent.env"
    with pytest.raises(VariableError, match=re.escape(f"env file not found: {path}")):
        load_env_file(str(path))


def test_env_file_bom_ignored(tmp_path: Path) -> None:
    path = tmp_path / "bom.env"
    path.write_bytes(b"\xef\xbb\xbfFIRST=1\r\nSECOND=2\r\n")
    assert load_env_file(str(path)) == {"FIRST": "1", "SECOND": "2"}


# --- Secrets ----------------------------------------------------------------------

# The rules of is_secret_name, in its docstring's order.
SECRET_NAME_CASES = [
    # 1. A whole part, or its plural, at _ - . and camelCase boundaries.
    ("GITHUB_TOKEN", True),
    ("QPC_AUTH_TOKEN", True),
    ("NEW_TOKEN", True),
    ("accessToken", True),
    ("QPC_DB_KEY", True),
    ("SSH_KEY", True),
    ("API_KEY", True),
    ("apiKey", True),
    ("APIKey", True),
    ("SSHKey", True),
    ("apikey", True),
    ("PRIVATE_KEY", True),
    ("private.key", True),
    ("SECRET_KEY_BASE", True),
    ("client_secret", True),
    ("AWS_SECRET_ACCESS_KEY", True),
    ("db-password", True),
    ("DB_PASS", True),
    ("SMTP_PASS", True),
    ("GPG_PASSPHRASE", True),
    ("credentials", True),
    ("GOOGLE_CREDENTIALS", True),
    ("JWT", True),
    ("APP_JWT", True),
    ("AUTH", True),
    ("httpAuth", True),
    ("KEYBOARD_LAYOUT", False),
    ("MONKEY", False),
    ("PASSTHROUGH", False),
    ("PASSENGER_COUNT", False),
    ("AUTHOR", False),
    ("server-ip", False),
    # 2. PWD as one of several parts; bash's own PWD and OLDPWD are not secrets.
    ("MYSQL_PWD", True),
    ("PWD", False),
    ("OLDPWD", False),
    # 3. A word inside a part, unless a letter other than a final S follows.
    ("ACCESSTOKEN", True),
    ("PGPASSWORD", True),
    ("DBPASSWORD", True),
    ("ROOTPASSWD", True),
    ("APPSECRETS", True),
    ("MYCREDENTIALS", True),
    ("TOKEN2", True),
    ("MYAPIKEY", True),
    ("AWSSECRETKEY", True),
    ("TOKENIZER_PATH", False),
    ("SECRETARY", False),
    ("PASSWORDLESS_LOGIN", False),
]


@pytest.mark.parametrize(("name", "expected"), SECRET_NAME_CASES)
def test_secret_name_classified(name: str, expected: bool) -> None:
    assert is_secret_name(name) is expected


MASK_CASES = [
    ("token=abcd1234 again abcd1234", ["abcd1234"], "token=*** again ***"),
    ("key=abc", ["abc"], "key=abc"),
    ("secret-longer", ["secret", "secret-longer"], "***"),
    ("a.b*c a.b*c", ["a.b*c"], "*** ***"),
    ("nothing here", [], "nothing here"),
    ("multi\nline secret", ["line secret"], "multi\n***"),
]


@pytest.mark.parametrize(("text", "secrets", "expected"), MASK_CASES)
def test_secrets_masked_in_text(text: str, secrets: list[str], expected: str) -> None:
    assert mask_secrets(text, secrets) == expected


@pytest.mark.parametrize(("text", "secrets", "expected"), MASK_CASES)
def test_secrets_masked_in_bytes(text: str, secrets: list[str], expected: str) -> None:
    data = text.encode() + b"\xff"
    assert mask_secrets_bytes(data, secrets) == expected.encode() + b"\xff"


def test_secrets_masked_in_unicode() -> None:
    assert mask_secrets_bytes("pässwörd!".encode(), ["pässwörd"]) == b"***!"
