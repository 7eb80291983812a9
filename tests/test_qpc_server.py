"""The quicprochat test server, client and admin tool, run for real on the host.

Each server is a ``python -m quicprochat.server`` subprocess on 127.0.0.1
with ports chosen by the kernel (read back from its log), a temporary data
directory, real aioquic and a real SQLCipher database.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

SERVER_SOURCE = Path(__file__).resolve().parent.parent / "fixtures" / "server"
# Import the package from the source tree even when it is not pip-installed.
sys.path.insert(0, str(SERVER_SOURCE))

import sqlcipher3  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from quicprochat.client import (  # noqa: E402
    CannotConnect,
    Client,
    ConnectionClosed,
    RequestRejected,
)
from quicprochat.storage import BlobStore, Storage  # noqa: E402
from quicprochat.tlscert import make_self_signed  # noqa: E402

DB_KEY = "test-db-key"
TOKEN = "test-token-0123456789"
START_TIMEOUT = 15.0


class ServerProcess:
    """A qpc-server subprocess whose stderr lines are collected by a thread."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "quicprochat.server"],
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._collect, daemon=True)
        self._reader.start()
        self.quic_port = 0
        self.metrics_port = 0

    def _collect(self) -> None:
        assert self.process.stderr is not None
        with self.process.stderr:
            for line in self.process.stderr:
                with self._changed:
                    self.lines.append(line.rstrip("\n"))
                    self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def log(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def wait_for_log(self, text: str, timeout: float = 10.0) -> str:
        """Return the first log line containing text, waiting up to timeout."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines:
                    if text in line:
                        return line
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._reader.is_alive():
                    raise AssertionError(
                        f"no log line with {text!r} within {timeout} s; log:\n"
                        + "\n".join(self.lines)
                    )
                self._changed.wait(remaining)

    def wait_ready(self) -> ServerProcess:
        udp = self.wait_for_log("listening on udp ", START_TIMEOUT)
        http = self.wait_for_log("metrics on http://", START_TIMEOUT)
        self.quic_port = int(udp.rsplit(":", 1)[1])
        self.metrics_port = int(http.rsplit(":", 1)[1].split("/")[0])
        return self

    def wait_exit(self, timeout: float = START_TIMEOUT) -> int:
        status = self.process.wait(timeout)
        self._reader.join(timeout=5)
        return status

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.wait_exit(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.wait_exit(5)

    def client(self, user: str = "alice", **options: object) -> Client:
        settings: dict = {"token": TOKEN, "user": user, "insecure": True}
        settings.update(options)
        return Client("127.0.0.1", self.quic_port, timeout=5.0, **settings)

    def http_get(self, path: str) -> tuple[int, str]:
        url = f"http://127.0.0.1:{self.metrics_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, exc.read().decode()

    def metrics(self) -> dict[str, float]:
        status, text = self.http_get("/metrics")
        assert status == 200
        return {
            sample.name: sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }


def server_env(workdir: Path, **overrides: str | None) -> dict[str, str]:
    """The environment for a server in workdir: no inherited QPC_* variable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QPC_")}
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(SERVER_SOURCE), os.environ.get("PYTHONPATH")])
    )
    env.update(
        QPC_LISTEN="127.0.0.1:0",
        QPC_METRICS_LISTEN="127.0.0.1:0",
        QPC_DB_KEY=DB_KEY,
        QPC_AUTH_TOKEN=TOKEN,
    )
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


ServerFactory = Callable[..., ServerProcess]


@pytest.fixture
def run_server(tmp_path: Path) -> Iterator[ServerFactory]:
    """Start servers in tmp_path (waiting until they listen, unless wait=False)."""
    started: list[ServerProcess] = []

    def start(wait: bool = True, **overrides: str | None) -> ServerProcess:
        server = ServerProcess(tmp_path, server_env(tmp_path, **overrides))
        started.append(server)
        return server.wait_ready() if wait else server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the request tests: fast cleanup, 1 KiB inline limit."""
    workdir = tmp_path_factory.mktemp("shared")
    env = server_env(
        workdir, QPC_CLEANUP_INTERVAL_SECS="0.3", QPC_INLINE_PAYLOAD_MAX="1024"
    )
    server = ServerProcess(workdir, env)
    try:
        yield server.wait_ready()
    finally:
        server.stop()


@pytest.fixture
def alice(shared_server: ServerProcess) -> Iterator[Client]:
    with shared_server.client("alice") as client:
        yield client


def wait_until(
    predicate: Callable[[], object], timeout: float, description: str
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout} s waiting for {description}"
            )
        time.sleep(0.05)


def write_certificate(directory: Path, days: int, start_days_ago: int = 0) -> None:
    """Write data/server-cert.der and server-key.der valid for the given days."""
    directory.mkdir(parents=True, exist_ok=True)
    start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(
        days=start_days_ago
    )
    cert_der, key_der = make_self_signed(days=days, not_before=start)
    (directory / "server-cert.der").write_bytes(cert_der)
    (directory / "server-key.der").write_bytes(key_der)


def decode(message: dict) -> bytes:
    return base64.b64decode(message["payload_b64"])


# Start-up and configuration


def test_dev_mode_generates_certificate(run_server, tmp_path):
    server = run_server(QPC_DB_KEY=None, QPC_AUTH_TOKEN=None)
    cert_path = tmp_path / "data" / "server-cert.der"
    key_path = tmp_path / "data" / "server-key.der"
    certificate = x509.load_der_x509_certificate(cert_path.read_bytes())
    names = certificate.extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    ).value
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert "generated a self-signed TLS certificate" in server.log
    assert "QPC_DB_KEY is not set" in server.log
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert certificate.subject.rfc4514_string() == "CN=qpc-server"
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == [
        "127.0.0.1"
    ]
    assert 365 <= lifetime.days <= 366
    assert (tmp_path / "data" / "blobs").is_dir()
    with server.client(insecure=False, cafile=cert_path, token="devtoken") as client:
        assert client.ping() == {"ok": True}
        client.login()


def test_client_rejects_unknown_certificate(shared_server):
    client = shared_server.client(insecure=False)
    with client, pytest.raises(CannotConnect, match="TLS handshake .* failed"):
        client.ping()


PRODUCTION_STARTUP_ERRORS = {
    "tls missing": ({}, "TLS cert or key missing: data/server-cert.der"),
    "short token": (
        {"QPC_AUTH_TOKEN": "short-secret"},
        "production forbids an auth token shorter than 16 characters",
    ),
    "default token": (
        {"QPC_AUTH_TOKEN": "devtoken"},
        "production forbids the default auth token devtoken",
    ),
    "unset token": (
        {"QPC_AUTH_TOKEN": None},
        "production forbids the default auth token devtoken",
    ),
    "no db key": (
        {"QPC_DB_KEY": None},
        "production forbids running without QPC_DB_KEY",
    ),
}


@pytest.mark.parametrize("case", PRODUCTION_STARTUP_ERRORS, ids=str)
def test_production_rejects_setting(run_server, tmp_path, case):
    overrides, expected = PRODUCTION_STARTUP_ERRORS[case]
    if case != "tls missing":
        write_certificate(tmp_path / "data", days=365)
    server = run_server(wait=False, QPC_PRODUCTION="true", **overrides)
    status = server.wait_exit()
    assert status == 2, server.log
    assert f"ERROR {expected}" in server.log
    assert "listening on udp" not in server.log
    assert "short-secret" not in server.log
    assert DB_KEY not in server.log


def test_invalid_setting_names_variable(run_server):
    server = run_server(wait=False, QPC_RATE_LIMIT_PER_MIN="many")
    assert server.wait_exit() == 2
    assert (
        "ERROR invalid QPC_RATE_LIMIT_PER_MIN='many': expected a whole number >= 0"
        in server.log
    )


def test_certificate_expiring_warning(run_server, tmp_path):
    write_certificate(tmp_path / "data", days=10)
    server = run_server()
    line = server.wait_for_log("TLS certificate expires within 30 days")
    assert line.startswith("WARNING TLS certificate expires within 30 days (notAfter ")
    with server.client() as client:
        assert client.ping() == {"ok": True}


def test_expired_certificate_dev_and_production(run_server, tmp_path):
    write_certificate(tmp_path / "data", days=1, start_days_ago=3)
    dev = run_server()
    assert "ERROR TLS certificate expired (notAfter " in dev.log
    assert dev.stop() == 0
    production = run_server(wait=False, QPC_PRODUCTION="1")
    assert production.wait_exit() == 2
    assert "ERROR production forbids an expired TLS certificate" in production.log


def test_port_in_use(run_server):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        server = run_server(wait=False, QPC_LISTEN=f"127.0.0.1:{port}")
        status = server.wait_exit()
    assert status == 1
    assert (
        f"ERROR cannot listen on udp 127.0.0.1:{port}: [Errno 98] Address already "
        "in use" in server.log
    )


def test_sigterm_exits_cleanly(run_server):
    server = run_server()
    with server.client() as client:
        client.login()
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        status = server.wait_exit(5)
        elapsed = time.monotonic() - started
        with pytest.raises((ConnectionClosed, CannotConnect)):
            client.ping()
    lines = server.lines
    assert status == 0
    assert elapsed < 2.0
    assert lines[-2] == "INFO shutting down signal=SIGTERM"
    assert lines[-1] == "INFO stopped"


# Database


def test_database_needs_key(run_server, tmp_path):
    server = run_server()
    with server.client() as client:
        client.enqueue("bob", b"secret payload")
    assert server.stop() == 0
    db_path = tmp_path / "data" / "qpc.db"

    plain = sqlite3.connect(db_path)
    try:
        with pytest.raises(sqlite3.DatabaseError, match="file is not a database"):
            plain.execute("SELECT count(*) FROM sqlite_master").fetchall()
    finally:
        plain.close()
    assert b"secret payload" not in db_path.read_bytes()

    wrong_key = run_server(wait=False, QPC_DB_KEY="another-key")
    assert wrong_key.wait_exit() == 1
    assert (
        "ERROR database unreadable (corrupt or wrong key): data/qpc.db" in wrong_key.log
    )
    assert "another-key" not in wrong_key.log

    keyed = sqlcipher3.connect(str(db_path))
    try:
        keyed.execute(f"PRAGMA key = '{DB_KEY}'")
        rows = keyed.execute("SELECT recipient, payload FROM delivery_queue").fetchall()
        mode = keyed.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        keyed.close()
    assert rows == [("bob", b"secret payload")]
    assert mode == "wal"


def test_corrupt_database_file(run_server, tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "qpc.db").write_bytes(os.urandom(8192))
    server = run_server(wait=False)
    assert server.wait_exit() == 1
    assert "ERROR database unreadable (corrupt or wrong key): data/qpc.db" in server.log


def test_locked_database_at_start(run_server, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    blobs = BlobStore(data / "blobs")
    holder = Storage.open(data / "qpc.db", DB_KEY, blobs, 1024)
    try:
        holder.connection.execute("BEGIN IMMEDIATE")
        server = run_server(wait=False)
        # The server waits for the busy timeout (5 s) before giving up.
        status = server.wait_exit(timeout=20)
    finally:
        holder.close()
    assert status == 1
    assert "ERROR database is locked: data/qpc.db" in server.log


# Requests


def test_ping_needs_no_login(shared_server):
    with shared_server.client(token=None) as client:
        assert client.ping() == {"ok": True}
        with pytest.raises(RequestRejected, match="not logged in"):
            client.request({"op": "fetch", "for": "alice"})


def test_login_metrics(shared_server, alice):
    before = shared_server.metrics()
    alice.login()
    mallory = shared_server.client("mallory", token="wrong-token")
    with mallory, pytest.raises(RequestRejected, match="bad token") as rejected:
        mallory.login()
    after = shared_server.metrics()
    assert rejected.value.reply == {"ok": False, "error": "bad token"}
    assert after["auth_login_success_total"] == before["auth_login_success_total"] + 1
    assert after["auth_login_failure_total"] == before["auth_login_failure_total"] + 1
    assert "INFO auth_login_success user=alice" in shared_server.log
    assert "WARNING auth_login_failure ip=127.0.0.1" in shared_server.log
    assert "wrong-token" not in shared_server.log
    assert TOKEN not in shared_server.log


def test_enqueue_fetch_and_peek(shared_server, alice):
    first = alice.enqueue("bob", b"first")
    second = alice.enqueue("bob", b"second", ttl_secs=3600)
    assert shared_server.metrics()["delivery_queue_depth"] >= 2

    peeked = alice.fetch("bob", peek=True)
    fetched = alice.fetch("bob")
    after = alice.fetch("bob")

    assert [m["id"] for m in peeked] == [first, second]
    assert [decode(m) for m in peeked] == [b"first", b"second"]
    assert peeked[0]["expires_at"] is None
    assert peeked[1]["expires_at"] >= int(time.time()) + 3590
    assert fetched == peeked
    assert after == []


def test_fetch_limit(shared_server, alice):
    ids = [alice.enqueue("carol", f"m{i}".encode()) for i in range(3)]
    assert [m["id"] for m in alice.fetch("carol", limit=2)] == ids[:2]
    assert [m["id"] for m in alice.fetch("carol", limit=2)] == ids[2:]


def test_invalid_requests_get_errors(shared_server, alice):
    alice.login()
    cases = [
        ({"op": "nope"}, "unknown op 'nope'"),
        ({"op": "enqueue", "to": "bob", "payload_b64": "!!"}, "invalid base64"),
        (
            {"op": "enqueue", "to": "bob", "payload_b64": "", "ttl_secs": -1},
            "ttl_secs must be a whole number > 0",
        ),
        ({"op": "fetch", "for": "bob", "limit": 0}, "limit must be between 1"),
        ({"op": "fetch"}, "for must be a non-empty string"),
    ]
    for request, expected in cases:
        with pytest.raises(RequestRejected, match=expected):
            alice.request(request)
    assert alice.ping() == {"ok": True}


def test_ttl_expiry_and_cleanup(shared_server, alice):
    blobs = shared_server.data_dir / "blobs"
    before = shared_server.metrics()["expired_messages_deleted_total"]
    alice.enqueue("dave", b"short-lived", ttl_secs=1)
    alice.enqueue("dave", os.urandom(4096), ttl_secs=1)
    long_lived = alice.enqueue("dave", b"long-lived", ttl_secs=3600)
    blob_files = set(blobs.iterdir())
    assert len(blob_files) >= 1
    assert len(alice.fetch("dave", peek=True)) == 3

    wait_until(
        lambda: len(alice.fetch("dave", peek=True)) == 1, 5, "two messages to expire"
    )
    shared_server.wait_for_log("cleanup removed ", timeout=5)
    wait_until(
        lambda: shared_server.metrics()["expired_messages_deleted_total"] >= before + 2,
        5,
        "the cleanup metric",
    )

    assert [m["id"] for m in alice.fetch("dave")] == [long_lived]
    assert not blob_files & set(blobs.iterdir())
    assert "INFO cleanup removed" in shared_server.log


def test_blob_upload_and_large_payload(shared_server, alice):
    data = os.urandom(200_000)
    blob_id = alice.upload_blob(data)
    assert len(blob_id) == 32
    assert (shared_server.data_dir / "blobs" / blob_id).read_bytes() == data

    big = os.urandom(50_000)
    alice.enqueue("erin", big)
    files_with_big = [
        p for p in (shared_server.data_dir / "blobs").iterdir() if p.read_bytes() == big
    ]
    assert len(files_with_big) == 1
    assert [decode(m) for m in alice.fetch("erin")] == [big]
    assert not files_with_big[0].exists()


def test_publish_key_package(shared_server, alice):
    package_id = alice.publish_key_package(b"\x01key-package")
    assert package_id >= 1


def test_health_and_unknown_path(shared_server):
    assert shared_server.http_get("/health") == (200, '{"status":"ok"}\n')
    assert shared_server.http_get("/nothing")[0] == 404


# Rate limit


def test_connection_rate_limit(run_server):
    server = run_server(QPC_RATE_LIMIT_PER_MIN="5")
    flood = subprocess.run(
        [
            sys.executable,
            "-m",
            "quicprochat.client_cli",
            "--server",
            f"127.0.0.1:{server.quic_port}",
            "--insecure",
            "flood",
            "--connections",
            "12",
            "--max-seconds",
            "10",
        ],
        env=server_env(server.workdir),
        capture_output=True,
        text=True,
        timeout=30,
    )

    summary = json.loads(flood.stdout)
    assert flood.returncode == 0, flood.stderr
    assert summary["attempted"] == 12
    assert summary["accepted"] == 5
    assert summary["refused"] == 7
    assert server.metrics()["rate_limit_hit_total"] == 7

    line = server.wait_for_log("connection rate limit exceeded")
    assert line.startswith("WARNING connection rate limit exceeded ip=127.0.0.1")

    client = server.client()
    with client, pytest.raises(ConnectionClosed, match="rate limit") as closed:
        client.ping()
    assert closed.value.rate_limited


def test_redacted_logs(run_server):
    server = run_server(QPC_REDACT_LOGS="true", QPC_RATE_LIMIT_PER_MIN="1")
    with server.client("zoe") as client:
        client.login()
    with server.client("zoe") as client, pytest.raises(ConnectionClosed):
        client.ping()
    refused = server.wait_for_log("connection rate limit exceeded")
    assert "INFO auth_login_success user=[redacted] ip=[redacted]" in server.log
    assert "ip=[redacted]" in refused
    assert "zoe" not in server.log
    assert "ip=127.0.0.1" not in server.log


# qpc-admin


def run_admin(
    workdir: Path, *args: str, **env: str | None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "quicprochat.admin", *args],
        cwd=workdir,
        env=server_env(workdir, **env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_admin_seed_and_stats(run_server, tmp_path):
    settings = {"QPC_CLEANUP_INTERVAL_SECS": "0", "QPC_INLINE_PAYLOAD_MAX": "100"}
    server = run_server(**settings)
    seeded = run_admin(tmp_path, "seed", "--expired", "3", "--unexpired", "4")
    big = run_admin(
        tmp_path,
        *("seed", "--expired", "1", "--unexpired", "1", "--payload-size", "500"),
        **settings,
    )
    stats = run_admin(tmp_path, "stats")
    unexpired = run_admin(tmp_path, "ids", "--unexpired")
    expired = run_admin(tmp_path, "ids", "--expired")
    integrity = run_admin(tmp_path, "integrity")

    assert seeded.returncode == 0, seeded.stderr
    assert big.returncode == 0, big.stderr
    assert json.loads(big.stdout)["blob_files"] == 2
    result = json.loads(stats.stdout)
    unexpired_ids = unexpired.stdout.split()
    assert result["total"] == 9
    assert result["expired"] == 4
    assert result["unexpired"] == 5
    assert result["blobs"] == 2
    assert result["blob_bytes"] == 1000
    assert result["db_bytes"] > 0
    assert len(unexpired_ids) == 5
    assert len(expired.stdout.split()) == 4
    expected_hash = hashlib.sha256(",".join(unexpired_ids).encode()).hexdigest()
    assert result["unexpired_ids_sha256"] == expected_hash
    assert integrity.stdout.strip() == "ok"
    assert integrity.returncode == 0
    # The running server counts and returns rows that another process wrote.
    assert server.metrics()["delivery_queue_depth"] == 9
    with server.client() as client:
        assert len(client.fetch("seeded", peek=True)) == 5


def test_admin_env_file_and_wrong_key(tmp_path):
    env_file = tmp_path / "qpc-server.env"
    env_file.write_text(f"# test\nexport QPC_DB_KEY='{DB_KEY}'\nQPC_DATA_DIR=data\n")
    seeded = run_admin(tmp_path, "seed", "--expired", "1", "--unexpired", "0")
    from_file = run_admin(
        tmp_path, "--env-file", str(env_file), "stats", QPC_DB_KEY=None
    )
    wrong = run_admin(tmp_path, "stats", QPC_DB_KEY="wrong")
    assert seeded.returncode == 0, seeded.stderr
    assert json.loads(from_file.stdout)["total"] == 1
    assert wrong.returncode == 1
    assert "database unreadable (corrupt or wrong key)" in wrong.stderr


def test_admin_integrity_detects_corruption(tmp_path):
    seeded = run_admin(
        tmp_path,
        "seed",
        "--expired",
        "0",
        "--unexpired",
        "200",
        "--payload-size",
        "900",
    )
    db_path = tmp_path / "data" / "qpc.db"
    size = db_path.stat().st_size
    assert seeded.returncode == 0, seeded.stderr
    assert size > 20 * 4096
    with open(db_path, "r+b") as database:
        database.seek(size // 2)
        database.write(os.urandom(4096))

    integrity = run_admin(tmp_path, "integrity")

    assert integrity.returncode == 1
    assert "integrity check failed:" in integrity.stderr
    assert "the database is damaged" in integrity.stderr


# OPAQUE registration and login


def run_client_cli(
    server: ServerProcess, stdin: str, *args: str
) -> subprocess.CompletedProcess[str]:
    """Run qpc-client as a process, with the password on standard input."""
    env = server_env(server.workdir, QPC_AUTH_TOKEN=None)
    return subprocess.run(
        [sys.executable, "-m", "quicprochat.client_cli"]
        + ["--server", f"127.0.0.1:{server.quic_port}", "--insecure", *args],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_opaque_setup_is_made_once_private(run_server, tmp_path):
    server = run_server()
    setup = server.data_dir / "opaque-server-setup.bin"
    created = server.wait_for_log("generated a new OPAQUE ServerSetup", 5)
    assert stat.S_IMODE(setup.stat().st_mode) == 0o600
    first = setup.read_bytes()
    server.stop()
    again = run_server()
    assert setup.read_bytes() == first
    loaded = again.wait_for_log("OPAQUE ServerSetup loaded", 5)
    assert loaded.split("setup=")[1] == created.split("setup=")[1].split()[0]


def test_opaque_register_and_login(shared_server):
    password = "correct horse battery staple"
    with shared_server.client(token=None) as client:
        client.register("olivia", password)
        with pytest.raises(RequestRejected, match="already registered"):
            client.register("olivia", "another password")
    before = shared_server.metrics()
    with shared_server.client(token=None) as client:
        client.login_with_password("olivia", password)
        assert client.enqueue("olivia", b"after opaque login", ttl_secs=60)
    with shared_server.client(token=None) as client:
        with pytest.raises(RequestRejected, match="wrong password"):
            client.login_with_password("olivia", "wrong password")
        with pytest.raises(RequestRejected, match="not registered"):
            client.login_with_password("nobody", password)
    after = shared_server.metrics()
    assert after["auth_login_success_total"] == before["auth_login_success_total"] + 1
    assert after["auth_login_failure_total"] == before["auth_login_failure_total"] + 2
    log = shared_server.log
    assert "INFO auth_login_success user=olivia ip=127.0.0.1 method=opaque" in log
    assert (
        "auth_login_failure ip=127.0.0.1 user=olivia method=opaque reason=password"
        in log
    )
    assert password not in log


def test_opaque_needs_the_finish_after_the_start(shared_server):
    with shared_server.client(token=None) as client:
        with pytest.raises(RequestRejected, match="login_finish without login_start"):
            client.request({"op": "login_finish", "finalization_b64": ""})
        with pytest.raises(RequestRejected, match="not logged in"):
            client.request({"op": "fetch", "for": "olivia"})


def test_opaque_stale_registration_after_rotation(run_server):
    server = run_server()
    with server.client(token=None) as client:
        client.register("rita", "first password")
    server.stop()
    (server.data_dir / "opaque-server-setup.bin").unlink()

    rotated = run_server()
    rotated.wait_for_log("1 users registered under a previous OPAQUE ServerSetup", 5)
    with rotated.client(token=None) as client:
        with pytest.raises(RequestRejected, match="previous OPAQUE ServerSetup"):
            client.login_with_password("rita", "first password")
        client.register("rita", "second password")
    with rotated.client(token=None) as client:
        client.login_with_password("rita", "second password")
    assert "reason=stale_registration" in rotated.log
    assert "user=rita" in rotated.log and "replaced_stale=true" in rotated.log


def test_unreadable_opaque_setup_stops_the_server(run_server, tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "opaque-server-setup.bin").write_bytes(b"not a setup")
    server = run_server(wait=False)
    assert server.wait_exit() == 2
    assert "OPAQUE ServerSetup unreadable" in server.log


def test_cli_register_and_login_read_the_password_from_stdin(shared_server):
    password = "stdin-only-password-42"
    registered = run_client_cli(
        shared_server, password + "\n", "register", "--user", "sam", "--password-stdin"
    )
    assert registered.returncode == 0, registered.stderr
    assert json.loads(registered.stdout) == {
        "ok": True,
        "user": "sam",
        "registered": True,
    }
    login = run_client_cli(
        shared_server, password + "\n", "login", "--user", "sam", "--password-stdin"
    )
    assert login.returncode == 0, login.stderr
    assert json.loads(login.stdout)["method"] == "opaque"
    wrong = run_client_cli(
        shared_server, "nope\n", "login", "--user", "sam", "--password-stdin"
    )
    assert wrong.returncode == 1
    empty = run_client_cli(
        shared_server, "", "register", "--user", "x", "--password-stdin"
    )
    assert empty.returncode == 2
    assert "empty password" in empty.stderr


def test_cli_fingerprint_matches_the_certificate_file(shared_server):
    result = run_client_cli(shared_server, "", "fingerprint")
    assert result.returncode == 0, result.stderr
    certificate = x509.load_der_x509_certificate(
        (shared_server.data_dir / "server-cert.der").read_bytes()
    )
    expected = ":".join(
        f"{byte:02X}"
        for byte in hashlib.sha256(
            certificate.public_bytes(serialization.Encoding.DER)
        ).digest()
    )
    assert json.loads(result.stdout)["sha256"] == expected
