"""Targets: ``--target`` parsing, and sessions in a container and over ssh.

The container tests start ``debian:trixie-slim`` containers with the docker
CLI. The ssh tests log in to the sshd of the test server image (systemd's
ssh.service) as root, with a key made for the test, through its port
published on 127.0.0.1 only.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from runbook.cli import main
from runbook.errors import InvalidTarget, SessionStartError, UsageError
from runbook.session import BashSession
from runbook.targets import (
    ACCEPTED_FORMS,
    DockerTarget,
    LocalTarget,
    SandboxTarget,
    SshTarget,
    parse_target,
    remote_owner,
    remote_setup_line,
    remote_step_text,
    stale_remote_dirs,
)
from runbook.transcript import read_transcript

ROOT = Path(__file__).resolve().parent.parent
BASE_IMAGE = "debian:trixie-slim"
LABEL = "runbook.dev=1"
BASH_ARGS = ["bash", "--noprofile", "--norc", "--noediting", "-i"]


# --- parse_target -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("local", LocalTarget()),
        ("sandbox", SandboxTarget()),
        ("docker:web", DockerTarget("web")),
        ("docker:3f4e5d6c7b8a", DockerTarget("3f4e5d6c7b8a")),
        ("docker:my_app.v2-1", DockerTarget("my_app.v2-1")),
        ("ssh:db1", SshTarget(None, "db1")),
        ("ssh:ops@db1", SshTarget("ops", "db1")),
        ("ssh:db1.example.org:2222", SshTarget(None, "db1.example.org", 2222)),
        ("ssh:ops@10.0.0.5:22", SshTarget("ops", "10.0.0.5", 22)),
        ("ssh:[::1]", SshTarget(None, "::1")),
        ("ssh:ops@[::1]:2222", SshTarget("ops", "::1", 2222)),
        ("ssh:[fe80::1%eth0]:22", SshTarget(None, "fe80::1%eth0", 22)),
        ("ssh:deploy_bot@host-1:65535", SshTarget("deploy_bot", "host-1", 65535)),
    ],
)
def test_parse_target_accepts(text, expected):
    target = parse_target(text)
    assert target == expected
    assert target.describe() == text


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "unknown kind of target"),
        ("Local", "unknown kind of target"),
        ("docker", "unknown kind of target"),
        ("kubectl:pod-1", "unknown kind of target"),
        ("sandbox:qpc", "unknown kind of target"),
        ("docker:", "expected a container name or id"),
        ("docker:-it", "expected a container name or id"),
        ("docker:a b", "expected a container name or id"),
        ("docker:web/1", "expected a container name or id"),
        ("ssh", "unknown kind of target"),
        ("ssh:", "invalid host ''"),
        ("ssh:@db1", "invalid user name ''"),
        ("ssh:ops@", "invalid host ''"),
        ("ssh:-oProxyCommand=x", "invalid host '-oProxyCommand=x'"),
        ("ssh:-l@db1", "invalid user name '-l'"),
        ("ssh:ops@-db1", "invalid host '-db1'"),
        ("ssh:a@b@db1", "invalid host 'b@db1'"),
        ("ssh:db 1", "invalid host 'db 1'"),
        ("ssh:db1:", "port '' is not a number"),
        ("ssh:db1:0", "port '0' is not a number from 1 to 65535"),
        ("ssh:db1:65536", "port '65536' is not a number"),
        ("ssh:db1:22x", "port '22x' is not a number"),
        ("ssh:db1:-22", "port '-22' is not a number"),
        ("ssh:::1", "put an IPv6 address in brackets"),
        ("ssh:[::1", "an IPv6 address goes in brackets"),
        ("ssh:[db1]:22", "an IPv6 address goes in brackets"),
        ("ssh:[::1]x", "unexpected 'x' after the address"),
    ],
)
def test_parse_target_rejects(text, problem):
    with pytest.raises(InvalidTarget) as raised:
        parse_target(text)
    message = str(raised.value)
    assert isinstance(raised.value, UsageError)
    assert message.startswith(f"invalid target {text!r}: ")
    assert problem in message
    assert message.endswith(f"Accepted forms: {ACCEPTED_FORMS}")


# --- the commands a target builds ---------------------------------------------


def test_docker_shell_command():
    argv = DockerTarget("web").shell_command({"PS1": "", "TERM": "xterm"})
    assert argv == ["docker", "exec", "-it", "-e", "PS1=", "-e", "TERM=xterm",
                    "web", *BASH_ARGS]  # fmt: skip


def test_ssh_shell_command_quotes_environment():
    target = SshTarget("ops", "db1", 2222, "/keys/id", ("StrictHostKeyChecking=no",))
    prompt = "s=$?; printf '\\036RB%s\\037' \"$s\" >/dev/tty"
    argv = target.shell_command({"PS1": "", "PROMPT_COMMAND": prompt})
    assert argv[:4] == ["ssh", "-tt", "-e", "none"]
    assert argv[argv.index("-p") + 1] == "2222"
    assert argv[argv.index("-i") + 1] == "/keys/id"
    assert "BatchMode=yes" in argv
    assert "StrictHostKeyChecking=no" in argv
    assert argv[-3:-1] == ["--", "ops@db1"]
    remote = shlex.split(argv[-1])
    assert remote == ["exec", "env", "PS1=", f"PROMPT_COMMAND={prompt}", *BASH_ARGS]


def test_ssh_side_command_runs_sh():
    argv = SshTarget(None, "db1").side_command("kill -INT 42")
    assert argv[:2] == ["ssh", "-T"]
    assert "-p" not in argv
    assert argv[-2] == "db1"
    assert shlex.split(argv[-1]) == ["sh", "-c", "kill -INT 42"]


# --- the remote step protocol, run by a local bash ------------------------------


def _run_protocol(text: bytes, directory: Path) -> bytes:
    script = f"__runbook_dir={shlex.quote(str(directory))}\n".encode() + text
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-s"],
        input=script,
        capture_output=True,
        timeout=10,
        check=True,
    )
    return result.stdout


def test_remote_step_text_round_trip(tmp_path):
    code = "x='a b'\ncat <<'EOF'\n$x é \\ \"q\"\nEOF\nprintf '%s|' \"$x\""
    text = remote_step_text(code, "__RB_END_0123", read_terminal=False)
    lines = text.decode("ascii").splitlines()
    assert lines[0].startswith("base64 -d >|")
    assert lines[0].endswith('. "$__runbook_dir/step" </dev/null')
    assert lines[-1] == "__RB_END_0123"
    assert all(len(line) <= 76 for line in lines[1:])
    assert _run_protocol(text, tmp_path) == '$x é \\ "q"\na b|'.encode()


def test_remote_step_text_large_and_empty(tmp_path):
    payload = "".join(f"line {n} ÿ ' \" $ \\ `\n" for n in range(1000))
    code = f"cat <<'EOF' | sha256sum\n{payload}EOF"
    large = remote_step_text(code, "__RB_END_0123", read_terminal=False)
    empty = remote_step_text("", "__RB_END_0123", read_terminal=False)
    digest = hashlib.sha256(payload.encode()).hexdigest()
    assert len(large) > 10_000
    assert _run_protocol(large, tmp_path).split()[0].decode() == digest
    assert _run_protocol(empty, tmp_path) == b""


def test_remote_setup_line_makes_private_directory():
    line = remote_setup_line("abc")
    result = subprocess.run(
        ["bash", "--noprofile", "--norc", "-c", line],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    marker, pid, directory = result.stdout.split()
    try:
        assert marker == "RBINFOabc"
        assert pid.isdigit()
        assert os.stat(directory).st_mode & 0o777 == 0o700
        assert os.stat(Path(directory) / "step").st_mode & 0o777 == 0o600
        assert (Path(directory) / "shell.pid").read_text().strip() == pid
        assert Path(directory).name.startswith(f"runbook.{remote_owner()}.")
    finally:
        shutil.rmtree(directory)


def test_stale_remote_dirs_are_this_hosts_dead_runs(tmp_path):
    host = remote_owner().rsplit("-", 1)[0]
    dead = subprocess.Popen(["true"])
    dead.wait()
    own = f"/dev/shm/runbook.{host}-{os.getpid()}.aaaa"
    listing = "\n".join(
        [
            own,
            f"/dev/shm/runbook.{host}-{dead.pid}.bbbb",
            f"/tmp/runbook.other_host-{dead.pid}.cccc",
            f"/dev/shm/runbook.{host}-{os.getppid()}.dddd",
            "/dev/shm/runbook.XXXXXXXXXX",
        ]
    )
    assert stale_remote_dirs(listing, own=own) == [
        f"/dev/shm/runbook.{host}-{dead.pid}.bbbb"
    ]


# --- the CLI without Docker ------------------------------------------------------


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(main, list(args), catch_exceptions=False)

    return invoke


@pytest.fixture
def playbook(tmp_path) -> Path:
    path = tmp_path / "remote.md"
    path.write_text(
        "# Remote\n\n"
        "```bash\ncd /tmp && export COLOR=red\n```\n\n"
        '```bash\necho "in $PWD with $COLOR"; readlink /proc/self/fd/0\n```\n\n'
        "```bash\necho third-step\n```\n",
        encoding="utf-8",
    )
    return path


def test_cli_rejects_bad_target(cli, playbook):
    result = cli("run", str(playbook), "-s", "Remote", "--yes", "--target", "docker:")
    assert result.exit_code == 2
    assert "invalid target 'docker:'" in result.output
    assert ACCEPTED_FORMS in result.output


def test_cli_dry_run_checks_target(cli, playbook):
    result = cli(
        "run", str(playbook), "-s", "Remote", "--dry-run", "--target", "ssh:db1:99999"
    )
    assert result.exit_code == 2
    assert "port '99999' is not a number from 1 to 65535" in result.output


def test_cli_sandbox_without_scenario(cli, playbook):
    result = cli("run", str(playbook), "-s", "Remote", "--yes", "--target", "sandbox")
    assert result.exit_code == 2
    assert "no scenario in" in result.output
    assert "sections with a scenario: none" in result.output


def test_cli_help_and_readme_name_target(cli):
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    result = cli("run", "--help")
    assert "--target TARGET" in result.output
    assert "docker:CONTAINER" in result.output
    assert "`--target TARGET`" in readme


def test_cli_local_target_recorded(cli, playbook, tmp_path):
    transcript = tmp_path / "t.jsonl"
    result = cli(
        "run", str(playbook), "-s", "Remote", "--yes", "--target", "local",
        "--transcript", str(transcript),
    )  # fmt: skip
    start = next(iter(read_transcript(transcript)))
    assert result.exit_code == 0
    assert start["target"] == "local"


# --- Docker -------------------------------------------------------------------------


def docker(*args: str, timeout: float = 60, check: bool = True) -> str:
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout
    )
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed: {result.stderr}")
    return result.stdout.strip()


def start_container(*args: str) -> str:
    """Start a labelled container; the caller removes it."""
    return docker("run", "-d", "--label", LABEL, *args)


@pytest.fixture(scope="module")
def container(docker_engine) -> Iterator[str]:
    """A running debian container shared by the tests that leave it running."""
    container_id = start_container(BASE_IMAGE, "sleep", "infinity")
    try:
        yield container_id
    finally:
        docker("rm", "-f", container_id, check=False)


@pytest.fixture
def own_container(docker_engine) -> Iterator[str]:
    """A running debian container for one test, which may stop or remove it."""
    container_id = start_container(BASE_IMAGE, "sleep", "infinity")
    try:
        yield container_id
    finally:
        docker("rm", "-f", container_id, check=False)


@pytest.fixture
def in_docker(container) -> Iterator[BashSession]:
    session = BashSession(target=DockerTarget(container), interrupt_grace=1.0)
    session.start()
    try:
        yield session
    finally:
        session.close()


def text(data: bytes) -> str:
    return data.decode("utf-8", "replace").replace("\r\n", "\n")


@pytest.mark.docker
def test_docker_state_carries_between_steps(in_docker):
    first = in_docker.run("mkdir -p /tmp/w && cd /tmp/w\nexport COLOR=red\n")
    second = in_docker.run('greet() { echo "hi $1"; }')
    third = in_docker.run('pwd; echo "$COLOR"; greet there')
    assert first.exit_status == 0
    assert second.exit_status == 0
    assert text(third.output) == "/tmp/w\nred\nhi there\n"


@pytest.mark.docker
def test_docker_exit_status(in_docker):
    assert in_docker.run("false").exit_status == 1
    assert in_docker.run("(exit 42)").exit_status == 42
    assert in_docker.run("true").exit_status == 0


@pytest.mark.docker
def test_docker_large_step(in_docker):
    payload = "".join(
        f"{n:05d} ÿ ' \" $HOME \\ `x`\t" + "y" * 60 + "\n" for n in range(300)
    )
    code = f"cat >/tmp/big <<'EOF'\n{payload}EOF\nsha256sum </tmp/big"
    outcome = in_docker.run(code, timeout=30)
    assert len(code.encode()) > 10_000
    assert outcome.exit_status == 0
    assert (
        text(outcome.output).split()[0] == hashlib.sha256(payload.encode()).hexdigest()
    )


@pytest.mark.docker
def test_docker_stdin_is_dev_null(in_docker):
    read = in_docker.run("read -r NAME")
    cat = in_docker.run("cat; echo cat=$?")
    link = in_docker.run("readlink /proc/self/fd/0")
    assert read.exit_status == 1
    assert text(cat.output) == "cat=0\n"
    assert text(link.output) == "/dev/null\n"


@pytest.mark.docker
def test_docker_step_file_emptied_and_removed(container):
    session = BashSession(target=DockerTarget(container))
    session.start()
    directory = session._remote_dir
    session.run("export TOKEN=abc123secret")
    left = docker("exec", container, "cat", f"{directory}/step")
    mode = docker("exec", container, "stat", "-c", "%a", directory)
    session.close()
    listing = docker("exec", container, "ls", "-A", "/dev/shm")
    assert directory.startswith("/dev/shm/runbook.")
    assert left == ""
    assert mode == "700"
    assert directory.rsplit("/", 1)[1] not in listing


@pytest.mark.docker
def test_docker_timeout_interrupts_sleep(in_docker):
    in_docker.run("export KEEP=yes")
    started = time.monotonic()
    outcome = in_docker.run("sleep 60\necho DANGER-after-timeout", timeout=1)
    elapsed = time.monotonic() - started
    after = in_docker.run('echo "$KEEP"')
    assert outcome.timed_out
    assert not outcome.killed
    assert elapsed < 5
    assert b"DANGER" not in outcome.output
    assert after.output == b"yes\r\n"


@pytest.mark.docker
def test_docker_handled_interrupt_abandons_rest(in_docker):
    code = (
        "bash -c 'trap \"echo handled; exit 0\" INT; sleep 30'\n"
        "echo DANGER-after-handler\n"
    )
    outcome = in_docker.run(code, timeout=1)
    assert outcome.timed_out
    assert b"handled" in outcome.output
    assert b"DANGER" not in outcome.output
    assert in_docker.run("echo next").output == b"next\r\n"


@pytest.mark.docker
def test_docker_ignored_interrupt_is_killed(container):
    with BashSession(target=DockerTarget(container), interrupt_grace=0.5) as session:
        started = time.monotonic()
        outcome = session.run(
            "bash -c 'trap \"\" INT; sleep 60'\necho DANGER", timeout=1
        )
        elapsed = time.monotonic() - started
        after = session.run("echo ok")
    assert outcome.timed_out
    assert outcome.killed
    assert outcome.exit_status is None
    assert b"DANGER" not in outcome.output
    assert elapsed < 10
    assert after.output == b"ok\r\n"


@pytest.mark.docker
def test_docker_busy_shell_interrupted(in_docker):
    outcome = in_docker.run("while :; do :; done", timeout=1)
    assert outcome.timed_out
    assert in_docker.run("echo ok").output == b"ok\r\n"


@pytest.mark.docker
def test_docker_terminal_input_and_echo(in_docker):
    reader, writer = os.pipe()
    # After the step has turned the remote echo on.
    threading.Timer(0.5, os.write, (writer, b"typed answer\n")).start()
    try:
        outcome = in_docker.run(
            'read -r NAME; echo "got $NAME"',
            timeout=10,
            stdin_from_terminal=True,
            input_fd=reader,
        )
    finally:
        time.sleep(0.6)
        os.close(reader)
        os.close(writer)
    after = in_docker.run("echo quiet")
    assert outcome.exit_status == 0
    assert text(outcome.output) == "typed answer\ngot typed answer\n"
    assert after.output == b"quiet\r\n"


@pytest.mark.docker
def test_docker_forwarded_ctrl_c_abandons_rest(in_docker):
    reader, writer = os.pipe()
    threading.Timer(0.5, os.write, (writer, b"\x03")).start()
    code = (
        "bash -c 'trap \"echo handled; exit 0\" INT; sleep 30'\n"
        "echo DANGER-after-ctrl-c\n"
    )
    try:
        outcome = in_docker.run(
            code, timeout=10, stdin_from_terminal=True, input_fd=reader
        )
    finally:
        time.sleep(0.6)
        os.close(reader)
        os.close(writer)
    assert outcome.interrupted
    assert not outcome.timed_out
    assert b"handled" in outcome.output
    assert b"DANGER" not in outcome.output


@pytest.mark.docker
def test_docker_missing_container_error(docker_engine):
    session = BashSession(target=DockerTarget("runbook-test-no-such-container"))
    with pytest.raises(SessionStartError) as raised:
        session.start()
    session.close()
    message = str(raised.value)
    assert message.startswith(
        "cannot start a shell on docker:runbook-test-no-such-container: "
    )
    assert "not found; 'docker ps' lists running containers" in message


@pytest.mark.docker
def test_docker_stopped_container_error(docker_engine):
    container_id = docker("create", "--label", LABEL, BASE_IMAGE, "true")
    try:
        session = BashSession(target=DockerTarget(container_id))
        with pytest.raises(SessionStartError) as raised:
            session.start()
        session.close()
    finally:
        docker("rm", "-f", container_id, check=False)
    assert "is not running" in str(raised.value)
    assert f"docker start {container_id}" in str(raised.value)


@pytest.mark.docker
def test_cli_docker_run_records_target(cli, playbook, container, tmp_path):
    transcript = tmp_path / "t.jsonl"
    result = cli(
        "run", str(playbook), "-s", "Remote", "--yes",
        "--target", f"docker:{container}", "--transcript", str(transcript),
    )  # fmt: skip
    entries = list(read_transcript(transcript))
    assert result.exit_code == 0
    assert "in /tmp with red\n/dev/null" in result.output
    assert entries[0]["target"] == f"docker:{container}"
    assert entries[-1]["type"] == "end"


@pytest.mark.docker
def test_cli_container_removed_mid_step(cli, own_container, tmp_path):
    path = tmp_path / "removed.md"
    path.write_text(
        "# Removed\n\n```bash\necho first-step\n```\n\n"
        "```bash\necho slow-started; sleep 60\n```\n\n"
        '```bash\necho "third-$((1 + 1))"\n```\n',
        encoding="utf-8",
    )
    transcript = tmp_path / "t.jsonl"
    removal = threading.Timer(2.0, docker, ("rm", "-f", own_container))

    removal.start()
    try:
        result = cli(
            "run", str(path), "-s", "Removed", "--yes",
            "--target", f"docker:{own_container}", "--transcript", str(transcript),
        )  # fmt: skip
    finally:
        removal.join()

    entries = list(read_transcript(transcript))
    steps = [e for e in entries if e["type"] == "step"]
    end = entries[-1]
    assert result.exit_code == 1
    assert f"the shell on docker:{own_container} exited" in result.output
    assert "no longer responds" in result.output
    assert "third-2" not in result.output
    assert steps[1]["session_ended"] is True
    assert steps[1]["output"].startswith("slow-started")
    assert entries[-2]["type"] == "decision"
    assert entries[-2]["step"] == 3
    assert entries[-2]["decision"] == "not run"
    assert end["type"] == "end"
    assert end["exit_code"] == 1
    assert "during step 2" in end["stopped"]


@pytest.mark.docker
def test_cli_missing_container_writes_end(cli, playbook, tmp_path):
    transcript = tmp_path / "t.jsonl"
    result = cli(
        "run", str(playbook), "-s", "Remote", "--yes",
        "--target", "docker:runbook-test-absent", "--transcript", str(transcript),
    )  # fmt: skip
    entries = list(read_transcript(transcript))
    assert result.exit_code == 1
    assert "cannot start a shell on docker:runbook-test-absent" in result.output
    assert "Traceback" not in result.output
    assert [e["type"] for e in entries] == ["start", *["decision"] * 3, "end"]
    assert "'docker ps'" in entries[-1]["stopped"]


# --- ssh ----------------------------------------------------------------------------

SSH_OPTIONS = ("StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null")


@dataclass(frozen=True)
class SshServer:
    container: str
    port: int
    user: str
    key: str
    other_key: str

    def target(self, key: str | None = None, port: int | None = None) -> SshTarget:
        return SshTarget(
            self.user, "127.0.0.1", port or self.port, key or self.key, SSH_OPTIONS
        )


@pytest.fixture(scope="session")
def sshd_image(testserver_image: str) -> str:
    """The image whose sshd the ssh tests log in to: the test server's."""
    return testserver_image


@pytest.fixture(scope="session")
def ssh_keys(tmp_path_factory) -> tuple[str, str]:
    """An authorized key and a key the server does not know."""
    directory = tmp_path_factory.mktemp("ssh-keys")
    paths = []
    for name in ("authorized", "unknown"):
        path = directory / name
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
            check=True,
            timeout=30,
        )
        paths.append(str(path))
    return paths[0], paths[1]


def start_sshd(image: str, keys: tuple[str, str]) -> SshServer:
    from runbook.sandbox.container import ContainerOptions, ServerContainer

    public = Path(keys[0] + ".pub").read_text().strip()
    container = ServerContainer(
        image,
        ROOT / "fixtures" / "image" / "qpc-server.env",
        ContainerOptions(wait_ready=False),
        ssh_public_key=public,
    )
    container.start()
    try:
        server = SshServer(container.id, container.ports[22], "root", keys[0], keys[1])
        wait_for_sshd(server)
    except BaseException:
        container.stop()
        raise
    return server


def wait_for_sshd(server: SshServer, timeout: float = 30) -> None:
    argv = server.target().side_command("true")
    deadline = time.monotonic() + timeout
    while True:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if result.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"sshd did not accept the key: {result.stderr}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def ssh_server(sshd_image, ssh_keys) -> Iterator[SshServer]:
    server = start_sshd(sshd_image, ssh_keys)
    try:
        yield server
    finally:
        docker("rm", "-f", server.container, check=False)


@pytest.fixture
def own_ssh_server(sshd_image, ssh_keys) -> Iterator[SshServer]:
    server = start_sshd(sshd_image, ssh_keys)
    try:
        yield server
    finally:
        docker("rm", "-f", server.container, check=False)


def free_local_port() -> int:
    """Return a loopback port that nothing listens on (just released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.docker
def test_ssh_runs_steps_with_state(ssh_server):
    with BashSession(target=ssh_server.target()) as session:
        first = session.run('cd /tmp && export COLOR=blue\nf() { echo "f:$1"; }')
        second = session.run('whoami; pwd; echo "$COLOR"; f x')
        failed = session.run("(exit 7)")
        stdin = session.run("readlink /proc/self/fd/0")
        directory = session._remote_dir
    listing = docker("exec", ssh_server.container, "ls", "-A", "/dev/shm")
    assert first.exit_status == 0
    assert text(second.output) == "root\n/tmp\nblue\nf:x\n"
    assert failed.exit_status == 7
    assert text(stdin.output) == "/dev/null\n"
    assert directory.rsplit("/", 1)[1] not in listing


@pytest.mark.docker
def test_ssh_timeout_interrupts(ssh_server):
    with BashSession(target=ssh_server.target(), interrupt_grace=1.0) as session:
        outcome = session.run("sleep 60\necho DANGER", timeout=1)
        after = session.run("echo ok")
    assert outcome.timed_out
    assert not outcome.killed
    assert b"DANGER" not in outcome.output
    assert after.output == b"ok\r\n"


@pytest.mark.docker
def test_ssh_refused_port_error(ssh_server):
    port = free_local_port()
    session = BashSession(target=ssh_server.target(port=port))
    with pytest.raises(SessionStartError) as raised:
        session.start()
    session.close()
    message = str(raised.value)
    assert message.startswith(f"cannot start a shell on ssh:root@127.0.0.1:{port}: ")
    assert "127.0.0.1 refused the connection; is sshd listening?" in message
    assert f"'ssh -o BatchMode=yes -p {port} root@127.0.0.1 true'" in message


@pytest.mark.docker
def test_ssh_rejected_key_error(ssh_server):
    session = BashSession(target=ssh_server.target(key=ssh_server.other_key))
    with pytest.raises(SessionStartError) as raised:
        session.start()
    session.close()
    message = str(raised.value)
    assert "authentication failed" in message
    assert "Permission denied (publickey" in message


@pytest.mark.docker
def test_ssh_sshd_killed_mid_step(own_ssh_server):
    # The listener first, so that no sshd accepts the probe after the session ends.
    kill_sshd = (
        "systemctl mask --runtime --now ssh.service >/dev/null 2>&1; "
        "for name in 'sshd' 'sshd*'; do for p in /proc/[0-9]*; do "
        'case $(cat $p/comm 2>/dev/null) in $name) kill -9 "${p#/proc/}";; esac; '
        "done; done"
    )
    killer = threading.Timer(
        1.0, docker, ("exec", own_ssh_server.container, "sh", "-c", kill_sshd)
    )
    with BashSession(target=own_ssh_server.target()) as session:
        killer.start()
        started = time.monotonic()
        outcome = session.run("echo before; sleep 60", timeout=30)
        elapsed = time.monotonic() - started
        killer.join()
        lost = session.target_lost
    assert outcome.session_ended
    assert outcome.output.startswith(b"before")
    assert elapsed < 15
    assert lost


@pytest.mark.docker
def test_remote_target_ignores_host_variables(cli, container, tmp_path, monkeypatch):
    monkeypatch.setenv("RB_ONLY_ON_THIS_HOST", "host-value")
    path = tmp_path / "env.md"
    path.write_text('# Env\n\n```bash\necho "value: $RB_ONLY_ON_THIS_HOST"\n```\n')
    remote = cli(
        "run", str(path), "-s", "Env", "--yes", "--target", f"docker:{container}"
    )
    local = cli("run", str(path), "-s", "Env", "--yes")
    assert remote.exit_code == 2
    assert "missing values for: RB_ONLY_ON_THIS_HOST" in remote.output
    assert local.exit_code == 0
    assert "value: host-value" in local.output


@pytest.mark.docker
def test_remote_session_ends_stale_shells(own_container, tmp_path):
    path = tmp_path / "slow.md"
    path.write_text("# Slow\n\n```bash\nsleep 300\n```\n")
    killed = subprocess.Popen(
        ["runbook", "run", str(path), "-s", "Slow", "--yes",
         "--target", f"docker:{own_container}",
         "--transcript", str(tmp_path / "t.jsonl")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while "sleep 300" not in docker("top", own_container):
        assert time.monotonic() < deadline, "the step never started"
        time.sleep(0.2)
    stale = docker("exec", own_container, "sh", "-c", "ls -d /dev/shm/runbook.*")
    killed.kill()
    killed.wait()
    with BashSession(target=DockerTarget(own_container)) as session:
        session.run("true")
        left = docker(
            "exec", own_container, "sh", "-c", "ls -d /dev/shm/runbook.* || true"
        )
    assert stale not in left
    deadline = time.monotonic() + 10
    while "sleep 300" in docker("top", own_container):
        assert time.monotonic() < deadline, "the killed run's step still runs"
        time.sleep(0.2)
