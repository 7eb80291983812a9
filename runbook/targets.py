"""Targets for the session's bash: this machine, a Docker container, an ssh host.

A target builds the argv that starts ``bash --noprofile --norc --noediting -i``
on a pseudo-terminal there, runs short side commands next to that shell (to
signal it), and turns a failed start into a message that names the fix.

Remote shells cannot read a step file written on this machine, so the session
sends each step through the terminal instead. The shell text for that protocol
(the setup line, the step line, the signal scripts) is built here, next to the
targets that need it.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import shlex
import shutil
import socket
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .errors import InvalidTarget
from .workdir import process_exists

log = logging.getLogger(__name__)

ACCEPTED_FORMS = "local, docker:CONTAINER, ssh:[USER@]HOST[:PORT], sandbox"
BASH_ARGS = ("--noprofile", "--norc", "--noediting", "-i")
#: Seconds to wait for a local shell's first prompt.
START_TIMEOUT = 10.0
#: Seconds a side command (a signal sent through docker exec or ssh) may take.
SIDE_COMMAND_TIMEOUT = 10.0
#: Seconds ssh may take to connect, before the session's own start timeout.
SSH_CONNECT_TIMEOUT = 10

# Docker's rule for container names; container ids are hex, which it accepts.
_CONTAINER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_HOST_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_IPV6 = re.compile(r"[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(%[A-Za-z0-9_.-]+)?")
_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


class Target(ABC):
    """The machine or container that runs the session's bash."""

    #: True for this machine: the session writes step files and sends signals
    #: itself.
    is_local = False
    #: Seconds to wait for the shell's first prompt.
    start_timeout = START_TIMEOUT

    @abstractmethod
    def describe(self) -> str:
        """Return the target as ``--target`` takes it, for messages and records."""

    @abstractmethod
    def shell_command(self, environment: Mapping[str, str]) -> list[str]:
        """Return the argv that starts an interactive bash with ``environment``.

        A local target returns bash's own argv; the session puts
        ``environment`` in the process environment instead.
        """

    def side_command(self, script: str) -> list[str]:
        """Return the argv that runs the POSIX sh ``script`` on the target."""
        raise NotImplementedError(f"{self.describe()} has no side commands")

    def run_side_command(
        self,
        script: str,
        environment: Mapping[str, str] | None = None,
        timeout: float = SIDE_COMMAND_TIMEOUT,
    ) -> str | None:
        """Run ``script`` on the target; return its stdout, or None if it failed."""
        argv = self.side_command(script)
        try:
            completed = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
                env=None if environment is None else dict(environment),
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            log.debug("side command on %s failed: %s", self.describe(), error)
            return None
        if completed.returncode != 0:
            log.debug(
                "side command on %s exited with status %d: %s",
                self.describe(),
                completed.returncode,
                completed.stderr.decode("utf-8", "replace").strip(),
            )
            return None
        return completed.stdout.decode("utf-8", "replace")

    def explain_start_failure(self, output: str) -> str:
        """Return the likely cause and the fix for a shell that did not start.

        ``output`` is what the client printed before it exited.
        """
        return "check that the target is reachable"

    def __str__(self) -> str:
        return self.describe()


@dataclass(frozen=True)
class LocalTarget(Target):
    """A bash on this machine, with the caller's environment."""

    is_local = True

    def describe(self) -> str:
        return "local"

    def shell_command(self, environment: Mapping[str, str]) -> list[str]:
        return [shutil.which("bash") or "/bin/bash", *BASH_ARGS]


@dataclass(frozen=True)
class DockerTarget(Target):
    """A bash started with ``docker exec`` in a running container."""

    container: str

    def describe(self) -> str:
        return f"docker:{self.container}"

    def shell_command(self, environment: Mapping[str, str]) -> list[str]:
        argv = ["docker", "exec", "-it"]
        for name, value in environment.items():
            argv += ["-e", f"{name}={value}"]
        return [*argv, self.container, "bash", *BASH_ARGS]

    def side_command(self, script: str) -> list[str]:
        return ["docker", "exec", self.container, "sh", "-c", script]

    def explain_start_failure(self, output: str) -> str:
        name = self.container
        if "No such container" in output:
            return f"container {name!r} not found; 'docker ps' lists running containers"
        if "is not running" in output:
            return (
                f"container {name!r} is not running; start it with "
                f"'docker start {name}' or see 'docker ps -a'"
            )
        if "executable file not found" in output:
            return f"container {name!r} has no bash; install bash in its image"
        if "permission denied" in output.lower() and "docker" in output.lower():
            return "cannot reach the Docker daemon; check that 'docker ps' works"
        if "Cannot connect to the Docker daemon" in output:
            return "the Docker daemon is not running; check that 'docker ps' works"
        return f"check the container with 'docker exec -it {name} bash'"


@dataclass(frozen=True)
class SshTarget(Target):
    """A bash on another host through ``ssh -tt``, which must log in without prompts.

    ``options`` are ``-o`` values (``StrictHostKeyChecking=no``). BatchMode is
    always on, so a key (from ssh-agent, ``identity_file`` or ``~/.ssh/config``)
    must log in without a password or passphrase prompt.
    """

    user: str | None
    host: str
    port: int | None = None
    identity_file: str | None = None
    options: Sequence[str] = ()

    start_timeout = 20.0

    def describe(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port is not None else ""
        return f"ssh:{user}{host}{port}"

    def shell_command(self, environment: Mapping[str, str]) -> list[str]:
        # ssh passes one string to the remote login shell, which parses it.
        # NOTE: the quoting assumes a POSIX login shell (sh, bash, dash, zsh).
        assignments = [f"{name}={value}" for name, value in environment.items()]
        remote = shlex.join(["exec", "env", *assignments, "bash", *BASH_ARGS])
        # -e none: "~." typed at the start of a line must reach the step,
        # not close the connection.
        return [*self._ssh_argv("-tt", "-e", "none"), remote]

    def side_command(self, script: str) -> list[str]:
        return [*self._ssh_argv("-T"), shlex.join(["sh", "-c", script])]

    def _ssh_argv(self, *extra: str) -> list[str]:
        argv = ["ssh", *extra, "-o", "BatchMode=yes", "-o", "LogLevel=ERROR"]
        argv += ["-o", f"ConnectTimeout={SSH_CONNECT_TIMEOUT}"]
        if self.port is not None:
            argv += ["-p", str(self.port)]
        if self.identity_file is not None:
            argv += ["-i", self.identity_file, "-o", "IdentitiesOnly=yes"]
        for option in self.options:
            argv += ["-o", option]
        destination = f"{self.user}@{self.host}" if self.user else self.host
        # "--" ends the options, so the destination is never read as one.
        return [*argv, "--", destination]

    def _test_command(self, batch: bool = True) -> str:
        options = " -o BatchMode=yes" if batch else ""
        if self.port is not None:
            options += f" -p {self.port}"
        destination = f"{self.user}@{self.host}" if self.user else self.host
        return f"'ssh{options} {destination} true'"

    def explain_start_failure(self, output: str) -> str:
        test = self._test_command()
        host = self.host
        if "Could not resolve hostname" in output:
            return f"host {host!r} cannot be resolved; check the name, then {test}"
        if "Connection refused" in output:
            return f"{host} refused the connection; is sshd listening? Test: {test}"
        if "timed out" in output or "No route to host" in output:
            return f"{host} did not respond; check the address and port, then {test}"
        if "Permission denied" in output:
            return (
                "authentication failed. runbook cannot answer password or "
                "passphrase prompts (BatchMode), so load a key into ssh-agent or "
                f"set IdentityFile in ~/.ssh/config; test with {test}"
            )
        if "Host key verification failed" in output:
            return (
                f"the host key of {host} is unknown or has changed; connect once "
                f"with {self._test_command(batch=False)} to check and accept it"
            )
        if "bash" in output and "not found" in output:
            return f"{host} has no bash on the login PATH; install bash there"
        return f"test the connection with {test}"


@dataclass(frozen=True)
class SandboxTarget(Target):
    """``--target sandbox``: a container that the sandbox starts for the run.

    It only marks the request: ``commands.run`` hands it to
    ``runbook.sandbox.run``, which starts the container and runs the steps in
    a DockerTarget for it.
    """

    def describe(self) -> str:
        return "sandbox"

    def shell_command(self, environment: Mapping[str, str]) -> list[str]:
        raise NotImplementedError("the sandbox runs its steps in a DockerTarget")


#: Variables a remote login shell has, whatever this machine's environment contains.
REMOTE_ENVIRONMENT = ("HOME", "PATH", "USER", "LOGNAME", "SHELL", "TERM", "LANG")


def target_environment(
    target: Target, environment: Mapping[str, str]
) -> dict[str, str]:
    """Return the environment a target's shell starts with, as far as it is known.

    A remote shell does not inherit this machine's environment, so a variable
    set here must not count as supplied there: only the names every login
    shell has are assumed (with unknown, empty values).
    """
    if isinstance(target, LocalTarget):
        return dict(environment)
    return dict.fromkeys(REMOTE_ENVIRONMENT, "")


def parse_target(text: str) -> Target:
    """Parse a ``--target`` value; raise InvalidTarget naming the accepted forms."""
    if text == "local":
        return LocalTarget()
    if text == "sandbox":
        # The sandbox package starts the container and hands over a
        # DockerTarget; the placeholder only records the request.
        return SandboxTarget()
    kind, colon, rest = text.partition(":")
    if colon and kind == "docker":
        if not _CONTAINER.fullmatch(rest):
            raise _invalid(text, "expected a container name or id after 'docker:'")
        return DockerTarget(rest)
    if colon and kind == "ssh":
        return _parse_ssh(text, rest)
    raise _invalid(text, "unknown kind of target")


def _parse_ssh(text: str, rest: str) -> SshTarget:
    user: str | None = None
    if "@" in rest:
        user, _, rest = rest.partition("@")
        if not _USER.fullmatch(user):
            raise _invalid(text, f"invalid user name {user!r} before '@'")
    host, port = _split_port(text, rest)
    if not (_HOST_NAME.fullmatch(host) or _IPV6.fullmatch(host)):
        raise _invalid(text, f"invalid host {host!r}")
    return SshTarget(user=user, host=host, port=port)


def _split_port(text: str, rest: str) -> tuple[str, int | None]:
    """Split ``HOST[:PORT]`` or ``[IPV6][:PORT]`` into the host and the port."""
    if rest.startswith("["):
        host, bracket, after = rest[1:].partition("]")
        if not bracket or not _IPV6.fullmatch(host):
            raise _invalid(text, "an IPv6 address goes in brackets: [::1]:2222")
        if not after:
            return host, None
        if not after.startswith(":"):
            raise _invalid(text, f"unexpected {after!r} after the address")
        return host, _port(text, after[1:])
    if rest.count(":") > 1:
        raise _invalid(text, "put an IPv6 address in brackets: ssh:[::1]:2222")
    host, colon, port = rest.partition(":")
    return host, _port(text, port) if colon else None


def _port(text: str, value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise _invalid(text, f"port {value!r} is not a number from 1 to 65535")
    return int(value)


def _invalid(text: str, problem: str) -> InvalidTarget:
    return InvalidTarget(
        f"invalid target {text!r}: {problem}. Accepted forms: {ACCEPTED_FORMS}"
    )


# --- The remote shell protocol -------------------------------------------------

#: Shell variable holding the remote step directory; read-only once set.
REMOTE_DIR_VARIABLE = "__runbook_dir"


def remote_owner() -> str:
    """Return ``HOST-PID`` of this runbook, as it appears in remote directory names."""
    host = re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "host"
    return f"{host}-{os.getpid()}"


def remote_setup_line(nonce: str, owner: str | None = None) -> str:
    """Return the line that makes the remote step directory and reports it.

    The shell prints ``RBINFO<nonce> PID DIR``. The directory is under
    /dev/shm when that is writable, so step files stay off disk there too.
    Its name carries ``owner`` (this host and process), and ``shell.pid`` in
    it contains the remote shell's pid, so that a later run can end the shell
    and remove the directory of a runbook that was killed.
    """
    var = REMOTE_DIR_VARIABLE
    template = f"runbook.{owner or remote_owner()}.XXXXXXXXXX"
    make = (
        f"{{ [ -d /dev/shm ] && [ -w /dev/shm ] && "
        f"mktemp -d /dev/shm/{template} 2>/dev/null; }} || mktemp -d -t {template}"
    )
    step = f'"${var}/step"'
    return (
        f"{var}=$({make}) && readonly {var} && : >|{step} && chmod 600 {step} && "
        f'echo "$$" >"${var}/shell.pid" && '
        f'printf \'RBINFO{nonce} %s %s\\n\' "$$" "${var}"'
    )


#: Lists the step directories of every runbook on a target.
LIST_REMOTE_DIRS_SCRIPT = (
    'for d in /dev/shm/runbook.* "${TMPDIR:-/tmp}"/runbook.*; do '
    '[ -d "$d" ] && echo "$d"; done; true'
)


def stale_remote_dirs(listing: str, own: str) -> list[str]:
    """Return the directories in ``listing`` whose runbook on this host is gone."""
    host = remote_owner().rsplit("-", 1)[0]
    stale = []
    for path in listing.split():
        name = path.rsplit("/", 1)[-1]
        match = re.fullmatch(r"runbook\.(.+)-(\d+)\.[A-Za-z0-9]+", name)
        if path == own or match is None or match.group(1) != host:
            continue
        if not process_exists(int(match.group(2))):
            stale.append(path)
    return stale


def end_stale_script(path: str) -> str:
    """Return sh that ends the shell recorded in ``path`` and removes ``path``."""
    # The shell leads the session that docker exec or sshd made for it, and
    # its step's jobs run in other process groups of that session: every
    # process of the session gets SIGHUP, as when a terminal hangs up.
    quoted = shlex.quote(path)
    return (
        f"p=$(cat {quoted}/shell.pid 2>/dev/null); "
        'if [ -n "$p" ]; then for f in /proc/[0-9]*/stat; do '
        'read -r l <"$f" 2>/dev/null || continue; r=${l##*) }; set -- $r; '
        'if [ "$4" = "$p" ]; then q=${f#/proc/}; kill -s HUP "${q%/stat}"; fi; '
        "done 2>/dev/null; fi; "
        f"rm -rf -- {quoted}"
    )


def remote_prompt_cleanup() -> str:
    """Return the PROMPT_COMMAND part that empties the step file at each prompt.

    The list ends in ``|| :``, so its status is 0 and ``set -e`` in a step
    does not end the shell over it.
    """
    var = REMOTE_DIR_VARIABLE
    return f'[ -z "${{{var}-}}" ] || : 2>/dev/null >|"${var}/step" || :; '


def remote_step_text(code: str, terminator: str, read_terminal: bool) -> bytes:
    """Return the bytes that write the step to the remote file and source it.

    One command line (so bash prints one prompt when the step ends), then the
    step's text in base64, then the heredoc's terminator. The base64 lines
    stay far below the 4095-byte line limit of a terminal in canonical mode.
    Steps that read the terminal turn its echo on for themselves; the session
    turns it off again.
    """
    var = REMOTE_DIR_VARIABLE
    data = code.encode("utf-8", "surrogateescape")
    if data and not data.endswith(b"\n"):
        data += b"\n"
    # encodebytes breaks its output into lines of 76 characters.
    encoded = base64.encodebytes(data).decode("ascii")
    source = f'. "${var}/step"'
    if read_terminal:
        source = f"{{ stty echo 2>/dev/null; {source}; }}"
    else:
        source += " </dev/null"
    head = f"base64 -d >|\"${var}/step\" <<'{terminator}' && {source}"
    return f"{head}\n{encoded}{terminator}\n".encode("ascii")


def _foreground_group_script(pid: int) -> str:
    """Return sh that sets ``g`` to the foreground group of ``pid``'s terminal.

    /proc first (Linux, and containers without procps), then ps.
    """
    return (
        f"p={pid}; g=; "
        f'if [ -r /proc/$p/stat ]; then s=$(cat /proc/$p/stat); s=${{s##*") "}}; '
        "set -- $s; g=$6; "
        "else g=$(ps -o tpgid= -p $p); fi; g=$(echo $g); "
    )


def interrupt_script(pid: int) -> str:
    """Return sh that sends SIGINT to the shell ``pid`` while a job runs.

    At the prompt the shell is the terminal's foreground group, so the Ctrl-C
    sent through the terminal reaches it anyway. A second SIGINT there would
    make it print an extra prompt.
    """
    return _foreground_group_script(pid) + (
        '[ -n "$g" ] && [ "$g" != "$p" ] && kill -INT "$p"; :'
    )


def kill_foreground_script(pid: int) -> str:
    """Return sh that kills the foreground group of ``pid``'s terminal.

    It prints ``killed``, or ``shell`` when that group is the shell itself.
    """
    return _foreground_group_script(pid) + (
        'if [ -n "$g" ] && [ "$g" -gt 0 ] && [ "$g" != "$p" ]; '
        'then kill -s KILL -- "-$g" && echo killed; else echo shell; fi'
    )


def remove_dir_script(path: str) -> str:
    """Return sh that removes the remote step directory ``path``."""
    return shlex.join(["rm", "-rf", "--", path])
