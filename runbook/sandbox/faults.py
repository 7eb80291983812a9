"""Faults for the test server: one name, one way to inject it, one proof.

Each fault has the container options it needs from the start, such as a
small tmpfs for the data directory, a memory limit or server settings. It is
injected by running ``qpc-fault NAME`` inside the container. Its proof waits
until the fault shows where an operator would see it: the journal, systemd's
unit state, /metrics or df. ``Fault.apply`` does both and returns the
evidence, and raises FaultNotEffective when the fault did not take effect.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ..errors import RunbookError
from .container import DATA_DIR, ENV_FILE, ContainerOptions, ServerContainer

#: Seconds a proof waits for the fault to show.
PROOF_TIMEOUT = 30.0


class FaultNotEffective(RunbookError):
    """An injected fault did not show the effect it is supposed to have."""


class UnknownFault(RunbookError):
    """No fault has that name."""


Proof = Callable[[ServerContainer, str], str]


@dataclass(frozen=True)
class Fault:
    name: str
    summary: str
    prove: Proof
    options: ContainerOptions = field(default_factory=ContainerOptions)
    #: Extra arguments for ``qpc-fault NAME``.
    arguments: tuple[str, ...] = ()

    def apply(self, server: ServerContainer) -> str:
        """Inject the fault and return the evidence that it took effect."""
        cursor = journal_cursor(server)
        server.exec(" ".join(["qpc-fault", self.name, *self.arguments]), timeout=300)
        return self.prove(server, cursor)


def journal_cursor(server: ServerContainer) -> str:
    """Return the journal's current cursor, to read only what comes after it."""
    _, output = server.exec("journalctl --show-cursor -n 0 --no-pager", check=False)
    match = re.search(r"-- cursor: (\S+)", output)
    return match.group(1) if match else ""


def journal_since(
    server: ServerContainer, cursor: str, unit: str = "qpc-server"
) -> str:
    after = f"--after-cursor='{cursor}'" if cursor else ""
    _, output = server.exec(
        f"journalctl --no-pager -o cat -u {unit} {after}", check=False
    )
    return output


def wait_for_log(server: ServerContainer, cursor: str, pattern: str) -> str:
    """Wait until the server's journal has a line matching ``pattern``; return it."""
    regex = re.compile(pattern)
    deadline = time.monotonic() + PROOF_TIMEOUT
    while True:
        for line in journal_since(server, cursor).splitlines():
            if regex.search(line):
                return line.strip()
        if time.monotonic() >= deadline:
            raise FaultNotEffective(
                f"no journal line matching {pattern!r} within {PROOF_TIMEOUT:.0f} s; "
                f"the journal ends with:\n{server.journal(lines=15)}"
            )
        time.sleep(0.2)


def wait_for(
    description: str, check: Callable[[], str | None], timeout: float = PROOF_TIMEOUT
) -> str:
    """Poll ``check`` until it returns evidence (a non-empty string)."""
    deadline = time.monotonic() + timeout
    last: str | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    raise FaultNotEffective(f"{description} within {timeout:.0f} s")


def _log_and_down(pattern: str) -> Proof:
    def prove(server: ServerContainer, cursor: str) -> str:
        line = wait_for_log(server, cursor, pattern)
        state = server.unit_state()
        if state == "active":
            # The unit is restarting; it must not stay up.
            time.sleep(0.5)
            state = server.unit_state()
        if state == "active" and _health_ok(server):
            raise FaultNotEffective(f"qpc-server is still serving after: {line}")
        return f"journal: {line}; unit {state}"

    return prove


def _health_ok(server: ServerContainer) -> bool:
    try:
        status, _ = server.http_get("/health", timeout=1.0)
    except OSError:
        return False
    return status == 200


def _prove_disk_full(server: ServerContainer, cursor: str) -> str:
    _, df = server.exec(f"df --output=avail,pcent -B1 {DATA_DIR} | tail -n 1")
    available, percent = df.split()
    if int(available) > 256 * 1024:
        raise FaultNotEffective(
            f"{DATA_DIR} still has {available} bytes free ({percent})"
        )
    status, output = client_command(server, "enqueue --to probe --size 8192")
    if status == 0:
        raise FaultNotEffective(
            f"an 8 KiB enqueue succeeded on the full disk: {output}"
        )
    line = wait_for_log(server, cursor, r"No space left on device|disk is full")
    return f"df: {available} bytes free ({percent}); journal: {line}"


def _prove_unit_killed(server: ServerContainer, cursor: str) -> str:
    def killed() -> str | None:
        state = server.unit_state()
        _, result = server.exec(
            "systemctl show -p Result -p ExecMainCode -p ExecMainStatus qpc-server",
            check=False,
        )
        if state != "active" and "ExecMainStatus=9" in result:
            return f"unit {state}; " + " ".join(result.split())
        return None

    return wait_for("qpc-server was not killed", killed)


def _prove_oom(server: ServerContainer, cursor: str) -> str:
    killed = _prove_unit_killed(server, cursor)
    _, report = server.exec("qpc-fault memory", check=False)
    report = report.strip()
    memory: dict[str, str] = {}
    for item in report.split():
        key, _, value = item.partition("=")
        memory[key] = value
    limit = memory.get("limit", "")
    if not limit.isdigit():
        raise FaultNotEffective(f"the container has no memory limit: {report}")
    # A SIGKILL from anything else leaves the peak below the limit, because
    # nothing else in the container comes near it. cgroup v2 also counts the
    # kill, but v1 counts it only in the victim's cgroup, which systemd removes.
    peak = memory.get("peak", "")
    oom_kills = memory.get("oom_kills", "")
    at_limit = peak.isdigit() and int(peak) >= int(limit) - (1 << 20)
    if not at_limit and not (oom_kills.isdigit() and int(oom_kills) > 0):
        raise FaultNotEffective(
            f"qpc-server was killed, but memory use never reached the limit: {report}"
        )
    return f"{killed}; memory {report}"


def _prove_hung(server: ServerContainer, cursor: str) -> str:
    def stopped() -> str | None:
        _, stat = server.exec(
            'ps -o stat= -p "$(systemctl show -p MainPID --value qpc-server)"',
            check=False,
        )
        if stat.strip().startswith("T") and not _health_ok(server):
            return f"process state {stat.strip()}; /health does not answer"
        return None

    return wait_for("qpc-server is not stopped", stopped)


def _prove_flood(server: ServerContainer, cursor: str) -> str:
    line = wait_for_log(server, cursor, r"connection rate limit exceeded")
    hits = server.metric("rate_limit_hit_total")
    if not hits:
        raise FaultNotEffective("rate_limit_hit_total is 0 after the flood")
    return f"rate_limit_hit_total {hits:.0f}; journal: {line}"


def _prove_cert_expiring(server: ServerContainer, cursor: str) -> str:
    line = wait_for_log(server, cursor, r"TLS certificate expires within 30 days")
    return f"journal: {line}"


def _prove_large_queue(server: ServerContainer, cursor: str) -> str:
    stats = server.admin_json("stats")
    expired = int(str(stats["expired"]))
    if expired < 1000:
        raise FaultNotEffective(f"only {expired} expired messages in the queue")

    def gauge() -> str | None:
        depth = server.metric("delivery_queue_depth")
        if depth is not None and depth >= expired:
            return f"delivery_queue_depth {depth:.0f}, {expired} of them expired"
        return None

    return wait_for("delivery_queue_depth did not show the queue", gauge)


#: Where the key-compromise faults keep the attacker's copies (root only).
LEAK_DIR = "/var/lib/qpc-faults/leaked"


def _prove_token_leaked(server: ServerContainer, cursor: str) -> str:
    line = wait_for_log(server, cursor, r"auth_login_success user=intruder\b")
    return f"journal: {line}"


def served_fingerprint(server: ServerContainer) -> str:
    """Return the SHA-256 fingerprint of the certificate qpc-server presents."""
    status, output = server.exec(
        "qpc-client --server 127.0.0.1:7000 --insecure fingerprint", check=False
    )
    match = re.search(r'"sha256": "([0-9A-F:]{95})"', output)
    if status != 0 or match is None:
        raise FaultNotEffective(f"qpc-client fingerprint failed: {output.strip()}")
    return match.group(1)


def file_fingerprint(server: ServerContainer, path: str) -> str:
    """Return the SHA-256 fingerprint of a DER certificate file in the container.

    ``path`` is expanded by the container's shell inside double quotes, so it
    may be a command substitution such as checks._setting returns.
    """
    _, output = server.exec(
        f'openssl x509 -inform DER -in "{path}" -noout -fingerprint -sha256'
    )
    return output.strip().rpartition("=")[2]


def _prove_tls_key_leaked(server: ServerContainer, cursor: str) -> str:
    leaked = file_fingerprint(server, f"{LEAK_DIR}/server-cert.der")
    served = served_fingerprint(server)
    if served != leaked:
        raise FaultNotEffective(
            f"the server presents {served}, not the leaked certificate {leaked}"
        )
    return f"the server presents the leaked certificate, SHA-256 {served}"


def _prove_db_key_leaked(server: ServerContainer, cursor: str) -> str:
    # The stolen key goes to sqlcipher on stdin, never in argv.
    status, output = server.exec(
        f'{{ printf "PRAGMA key = \'%s\';\\n" "$(cat {LEAK_DIR}/db-key)"; '
        "echo 'SELECT count(*) FROM users;'; } "
        f"| sqlcipher -readonly {DATA_DIR}/qpc.db",
        check=False,
    )
    counts = output.split()
    if status != 0 or not counts or not counts[-1].isdigit() or counts[-1] == "0":
        raise FaultNotEffective(f"the leaked key does not open qpc.db: {output}")
    return f"the leaked key opens qpc.db ({counts[-1]} users)"


def _prove_opaque_setup_leaked(server: ServerContainer, cursor: str) -> str:
    line = wait_for_log(server, cursor, r"auth_login_success user=alice .*opaque")
    status, output = server.exec(
        f"cmp {LEAK_DIR}/opaque-server-setup.bin {DATA_DIR}/opaque-server-setup.bin",
        check=False,
    )
    if status != 0:
        raise FaultNotEffective(f"the leaked ServerSetup differs: {output.strip()}")
    return f"ServerSetup copied to {LEAK_DIR}; journal: {line}"


def client_command(server: ServerContainer, arguments: str) -> tuple[int, str]:
    """Run qpc-client inside the container with the server's token (not in argv)."""
    return server.exec(
        f"set -a; . {ENV_FILE}; set +a; "
        f"qpc-client --server 127.0.0.1:7000 --insecure {arguments}",
        check=False,
    )


FAULTS: Mapping[str, Fault] = {
    fault.name: fault
    for fault in (
        Fault(
            "disk-full",
            "data directory on a 48 MiB tmpfs, filled with expired messages",
            _prove_disk_full,
            ContainerOptions(
                data_tmpfs_size="48m", server_env={"QPC_CLEANUP_INTERVAL_SECS": "0"}
            ),
        ),
        Fault(
            "tls-missing",
            "production mode with the TLS certificate and key removed",
            _log_and_down(r"TLS cert or key missing"),
        ),
        Fault(
            "weak-token",
            "production mode with an auth token shorter than 16 characters",
            _log_and_down(r"production forbids"),
        ),
        Fault(
            "db-locked",
            "another process holds an exclusive lock on the database",
            _log_and_down(r"database is locked"),
        ),
        Fault(
            "db-corrupt",
            "the database's first pages overwritten with random bytes",
            _log_and_down(r"database unreadable"),
        ),
        Fault(
            "port-in-use",
            "another process listens on UDP port 7000",
            _log_and_down(r"cannot listen on udp"),
        ),
        Fault(
            "process-killed",
            "the server process killed with SIGKILL, no automatic restart",
            _prove_unit_killed,
        ),
        Fault(
            "process-hung",
            "the server process stopped with SIGSTOP: running but not answering",
            _prove_hung,
        ),
        Fault(
            "oom",
            "the server killed by the kernel's OOM killer (container memory limit)",
            _prove_oom,
            ContainerOptions(memory_limit="256m"),
        ),
        Fault(
            "connection-flood",
            "a bounded flood of QUIC connections from one address",
            _prove_flood,
            ContainerOptions(server_env={"QPC_RATE_LIMIT_PER_MIN": "60"}),
        ),
        Fault(
            "cert-expiring",
            "a TLS certificate that expires in 10 days",
            _prove_cert_expiring,
        ),
        Fault(
            "large-queue",
            "20,000 expired and 500 live messages, cleanup task off",
            _prove_large_queue,
            ContainerOptions(server_env={"QPC_CLEANUP_INTERVAL_SECS": "0"}),
        ),
        Fault(
            "token-leaked",
            "an attacker logs in as intruder with a stolen copy of the auth token",
            _prove_token_leaked,
        ),
        Fault(
            "tls-key-leaked",
            "a stolen copy of the TLS certificate and private key",
            _prove_tls_key_leaked,
        ),
        Fault(
            "db-key-leaked",
            "users, key packages and messages, and a stolen copy of QPC_DB_KEY",
            _prove_db_key_leaked,
        ),
        Fault(
            "opaque-setup-leaked",
            "user alice registered with OPAQUE, and a stolen copy of the ServerSetup",
            _prove_opaque_setup_leaked,
        ),
    )
}


def get_fault(name: str) -> Fault:
    try:
        return FAULTS[name]
    except KeyError:
        raise UnknownFault(
            f"unknown fault {name!r}; known faults: {', '.join(sorted(FAULTS))}"
        ) from None
