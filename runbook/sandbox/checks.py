"""Post-conditions of sandbox scenarios: what must hold after a section ran.

Each check reads the server the way an operator would (systemd, /health, a
QUIC client, the database through qpc-admin) and returns a ``CheckResult``.
A check never raises: a failure to look becomes a failed check with the
reason.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .container import DATA_DIR, ENV_FILE, ServerContainer
from .docker import DockerError, docker
from .faults import (
    LEAK_DIR,
    PROOF_TIMEOUT,
    FaultNotEffective,
    client_command,
    file_fingerprint,
    served_fingerprint,
)
from .scenarios import PostCondition

if TYPE_CHECKING:
    from .run import Sandbox


@dataclass
class CheckResult:
    name: str
    passed: bool
    detail: str
    #: True when the check did not apply to this run (its step did not run).
    skipped: bool = False


def check_post_conditions(sandbox: Sandbox) -> list[CheckResult]:
    return [
        _check(sandbox, condition) for condition in sandbox.scenario.post_conditions
    ]


def _check(sandbox: Sandbox, condition: PostCondition) -> CheckResult:
    server = sandbox.server
    name = condition.describe()
    try:
        if condition.kind == "service_active":
            return _check_active(server, name)
        if condition.kind == "client_roundtrip":
            return _check_roundtrip(server, name)
        if condition.kind == "command":
            run = str(condition.arguments["run"])
            status, output = server.exec(run, check=False)
            detail = f"'{run}' exited with status {status}"
            if status != 0 and output.strip():
                detail += ": " + _tail(output.strip())
            return CheckResult(name, status == 0, detail)
        rotation = KEY_ROTATION_CHECKS.get(condition.kind)
        if rotation is not None:
            return rotation(sandbox, name)
        stats = server.admin_json("stats")
        if condition.kind == "expired_messages_gone":
            expired = int(str(stats["expired"]))
            return CheckResult(name, expired == 0, f"{expired} expired messages left")
        if condition.kind == "unexpired_messages_kept":
            before, after = sandbox.baseline, stats
            kept = (
                before["unexpired_ids_sha256"] == after["unexpired_ids_sha256"]
                and before["unexpired"] == after["unexpired"]
            )
            detail = (
                f"{after['unexpired']} unexpired now, "
                f"{before['unexpired']} before the run"
            )
            return CheckResult(name, kept, detail)
        if condition.kind == "metric":
            value = server.metric(str(condition.arguments["name"]))
            if value is None:
                return CheckResult(name, False, "the metric is not in /metrics")
            low = condition.arguments.get("min")
            high = condition.arguments.get("max")
            passed = (low is None or value >= low) and (high is None or value <= high)
            return CheckResult(name, passed, f"value {value:g}")
    except (DockerError, OSError, ValueError, KeyError) as error:
        return CheckResult(name, False, f"check failed: {error}")
    raise AssertionError(condition.kind)


def _check_active(server: ServerContainer, name: str) -> CheckResult:
    deadline = time.monotonic() + PROOF_TIMEOUT
    state, health = "", 0
    while time.monotonic() < deadline:
        state = server.unit_state()
        try:
            health, _ = server.http_get("/health", timeout=1.0)
        except OSError:
            health = 0
        if state == "active" and health == 200:
            return CheckResult(name, True, "qpc-server active, /health 200")
        time.sleep(0.3)
    return CheckResult(
        name, False, f"qpc-server {state or 'unknown'}, /health {health or 'no answer'}"
    )


def _check_roundtrip(server: ServerContainer, name: str) -> CheckResult:
    # Above the server's inline limit (1 KiB), so the payload goes to a blob
    # file: a full data volume fails this even when SQLite's WAL has room.
    payload = f"sandbox-check-{time.time_ns()}-" + "x" * 4096
    status, output = client_command(
        server, f"enqueue --to sandbox-check --ttl 600 --payload {payload}"
    )
    if status != 0:
        return CheckResult(name, False, f"enqueue failed: {_tail(output)}")
    status, output = client_command(server, "fetch --for sandbox-check")
    if status != 0 or payload not in _fetched_payloads(output):
        return CheckResult(
            name, False, f"fetch did not return the message: {_tail(output)}"
        )
    return CheckResult(name, True, "a 4 KiB message went through enqueue and fetch")


def _fetched_payloads(output: str) -> str:
    import base64

    try:
        reply = json.loads(output.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return ""
    texts = []
    for message in reply.get("messages", []):
        try:
            texts.append(base64.b64decode(message.get("payload_b64", "")).decode())
        except (ValueError, UnicodeDecodeError):
            continue
    return "\n".join(texts)


def _tail(text: str, size: int = 300) -> str:
    text = text.strip()
    return text if len(text) <= size else "…" + text[-size:]


# --- key rotation ---------------------------------------------------------------
#
# Secrets never reach argv: an old secret goes to the container on standard
# input, and the current ones are read from the server's env file there.

CLIENT = "qpc-client --server 127.0.0.1:7000 --insecure"


def _exec_with_secret(
    server: ServerContainer, secret: str, command: str
) -> tuple[int, str]:
    """Run bash -c COMMAND in the container with SECRET as stdin's first line."""
    result = docker(
        "exec", "-i", server.id, "bash", "-c", command, check=False,
        input=secret + "\n",
    )  # fmt: skip
    return result.returncode, result.stdout + result.stderr


def _setting(name: str) -> str:
    """Return shell code that prints a setting of the server's env file."""
    return f"$(sed -n 's/^{name}=//p' {ENV_FILE} | tail -n 1)"


def _old_token_rejected(sandbox: Sandbox, name: str) -> CheckResult:
    status, output = _exec_with_secret(
        sandbox.server,
        sandbox.server.auth_token,
        f"read -r QPC_AUTH_TOKEN && export QPC_AUTH_TOKEN && "
        f"{CLIENT} --user sandbox-check login",
    )
    rejected = status == 1 and "bad token" in output
    detail = (
        "the token from before the run is rejected"
        if rejected
        else (f"login with the old token: exit status {status}: {_tail(output)}")
    )
    return CheckResult(name, rejected, detail)


def _new_token_accepted(sandbox: Sandbox, name: str) -> CheckResult:
    server = sandbox.server
    status, output = _exec_with_secret(
        server,
        server.auth_token,
        f'read -r old && [ "{_setting("QPC_AUTH_TOKEN")}" != "$old" ]',
    )
    if status != 0:
        return CheckResult(name, False, f"{ENV_FILE} still has the old token")
    status, output = client_command(server, "--user sandbox-check login")
    if status != 0:
        return CheckResult(
            name, False, f"login with the token in {ENV_FILE} failed: {_tail(output)}"
        )
    return CheckResult(name, True, f"the new token in {ENV_FILE} logs in")


def _certificate_rotated(sandbox: Sandbox, name: str) -> CheckResult:
    server = sandbox.server
    try:
        served = served_fingerprint(server)
    except FaultNotEffective as error:
        return CheckResult(name, False, str(error))
    status, _ = server.exec(f"test -f {LEAK_DIR}/server-cert.der", check=False)
    if status != 0:
        return CheckResult(
            name, False, "no copy of the old certificate: use the tls-key-leaked fault"
        )
    old = file_fingerprint(server, f"{LEAK_DIR}/server-cert.der")
    cert = _setting("QPC_TLS_CERT")
    on_disk = file_fingerprint(server, cert)
    if served == old:
        return CheckResult(name, False, f"the server still presents {old}")
    if served != on_disk:
        return CheckResult(
            name, False, f"the server presents {served}, but {cert} is {on_disk}"
        )
    status, output = server.exec(
        f'qpc-client --server localhost:7000 --cafile "{cert}" ping', check=False
    )
    if status != 0:
        return CheckResult(
            name, False, f"a client that trusts {cert} fails: {_tail(output)}"
        )
    return CheckResult(name, True, f"the server presents the new certificate {served}")


def _database_rekeyed(sandbox: Sandbox, name: str) -> CheckResult:
    server = sandbox.server
    status, output = _exec_with_secret(
        server,
        server.db_key,
        'read -r key && { printf "PRAGMA key = \'%s\';\\n" "$key"; '
        "echo 'SELECT count(*) FROM sqlite_master;'; } "
        f'| sqlcipher -readonly "{_setting("QPC_DB_PATH")}"',
    )
    if status == 0 and "file is not a database" not in output:
        return CheckResult(name, False, "the database still opens with the old key")
    stats = server.admin_json("stats")
    fields = ("users", "key_packages", "total", "all_ids_sha256")
    changed = [key for key in fields if stats.get(key) != sandbox.baseline.get(key)]
    counts = (
        f"{stats['users']} users, {stats['key_packages']} key packages, "
        f"{stats['total']} messages"
    )
    if changed:
        before = ", ".join(f"{key} {sandbox.baseline.get(key)}" for key in changed)
        return CheckResult(
            name, False, f"rows changed: now {counts}; before the run {before}"
        )
    return CheckResult(
        name, True, f"opens with the new key only; {counts}, ids unchanged"
    )


def _opaque_rotated(sandbox: Sandbox, name: str) -> CheckResult:
    server = sandbox.server
    password = "/var/lib/qpc-faults/opaque-password-alice"
    setup = _setting("QPC_OPAQUE_SETUP")
    status, _ = server.exec(f"test -f {password}", check=False)
    if status != 0:
        return CheckResult(
            name, False, "no user registered before the run: use opaque-setup-leaked"
        )
    status, output = server.exec(
        f"{CLIENT} login --user alice --password-stdin < {password}", check=False
    )
    if status != 1:
        return CheckResult(
            name, False, f"alice's old registration still logs in: {_tail(output)}"
        )
    status, _ = server.exec(
        f'f="{setup}"; f=${{f:-{DATA_DIR}/opaque-server-setup.bin}}; '
        f'! cmp -s "$f" {LEAK_DIR}/opaque-server-setup.bin '
        '&& [ "$(stat -c %a:%U "$f")" = 600:qpc ]',
        check=False,
    )
    if status != 0:
        return CheckResult(
            name, False, "the ServerSetup is the old one, or not mode 0600 owned by qpc"
        )
    status, output = server.exec(
        "p=$(mktemp) && openssl rand -hex 16 > $p && "
        f"{CLIENT} register --user alice --password-stdin < $p && "
        f"{CLIENT} login --user alice --password-stdin < $p; s=$?; rm -f $p; exit $s",
        check=False,
    )
    if status != 0:
        return CheckResult(
            name, False, f"re-registration or login failed: {_tail(output)}"
        )
    return CheckResult(
        name,
        True,
        "alice's old registration is refused; she registered again and logged in",
    )


KEY_ROTATION_CHECKS: dict[str, Callable[[Sandbox, str], CheckResult]] = {
    "old_token_rejected": _old_token_rejected,
    "new_token_accepted": _new_token_accepted,
    "certificate_rotated": _certificate_rotated,
    "database_rekeyed": _database_rekeyed,
    "opaque_rotated": _opaque_rotated,
}
