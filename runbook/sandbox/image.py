"""Build the test server image, bootstrapping its base image when no registry has it.

The image is tagged ``runbook-testserver:<hash>``, where the hash covers the
Dockerfile, every file in the build context, the wheel list and the base
image's id. A later build with the same inputs finds the tag and returns at
once, so only the first sandbox run pays for the build.

The Dockerfile starts ``FROM debian:trixie-slim`` as it would anywhere. When that
image is missing and cannot be pulled (no registry reachable), it is made from
Debian's packages with ``mmdebstrap`` and imported under that name.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .docker import DockerError, docker, docker_text, require_engine
from .layout import SandboxLayout

log = logging.getLogger(__name__)

BASE_IMAGE = "debian:trixie-slim"
BASE_SUITE = "trixie"
IMAGE_REPOSITORY = "runbook-testserver"
#: Label on the image that records the hash it was built from.
HASH_LABEL = "org.runbook.testserver.hash"
#: Debian mirror for the bootstrap; RUNBOOK_DEBIAN_MIRROR overrides it.
DEFAULT_MIRROR = "http://deb.debian.org/debian"
#: Set to 1 where no registry is reachable, to bootstrap without trying a pull.
NO_PULL_VARIABLE = "RUNBOOK_NO_PULL"
#: Seconds a pull may take before the bootstrap is tried instead.
PULL_TIMEOUT = 120.0
#: Paths a "slim" Debian image leaves out (documentation and translations).
_SLIM_EXCLUDES = (
    "/usr/share/doc/*",
    "/usr/share/man/*",
    "/usr/share/info/*",
    "/usr/share/locale/*",
    "/usr/share/lintian/*",
)
_INCLUDE_AGAIN = ("/usr/share/doc/*/copyright", "/usr/share/locale/locale.alias")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BuiltImage:
    tag: str
    #: True when this call built it, False when the cached tag was used.
    built: bool
    seconds: float


def ensure_image(
    layout: SandboxLayout, progress: Progress | None = None, rebuild: bool = False
) -> BuiltImage:
    """Return the test server image for ``layout``, building it when needed."""
    say = progress or (lambda _message: None)
    started = time.monotonic()
    require_engine()
    base_id = ensure_base_image(say)
    fetch_wheels(layout, say)
    digest = context_hash(layout, base_id)
    tag = f"{IMAGE_REPOSITORY}:{digest[:16]}"
    if not rebuild and image_exists(tag):
        log.debug("test server image %s is cached", tag)
        return BuiltImage(tag, built=False, seconds=time.monotonic() - started)
    say(f"building {tag} from {layout.dockerfile.name} (first run only)")
    _build(layout, tag, digest, say, no_cache=rebuild)
    say(f"built {tag} in {time.monotonic() - started:.0f} s")
    return BuiltImage(tag, built=True, seconds=time.monotonic() - started)


def image_exists(name: str) -> bool:
    result = docker("image", "inspect", "--format", "{{.Id}}", name, check=False)
    return result.returncode == 0


def ensure_base_image(say: Progress) -> str:
    """Return the id of BASE_IMAGE: present, pulled, or bootstrapped."""
    if not image_exists(BASE_IMAGE):
        if os.environ.get(NO_PULL_VARIABLE) == "1":
            say(f"{BASE_IMAGE} is not here and {NO_PULL_VARIABLE}=1; bootstrapping it")
            bootstrap_base_image(say)
        else:
            say(f"{BASE_IMAGE} is not here; trying to pull it")
            pulled = docker("pull", BASE_IMAGE, check=False, timeout=PULL_TIMEOUT)
            if pulled.returncode != 0:
                lines = (pulled.stderr or "").strip().splitlines()
                say(f"pull failed ({(lines or ['no answer'])[-1]}); bootstrapping it")
                bootstrap_base_image(say)
    return docker_text("image", "inspect", "--format", "{{.Id}}", BASE_IMAGE)


def bootstrap_base_image(say: Progress) -> None:
    """Make BASE_IMAGE from Debian packages with mmdebstrap and import it."""
    mmdebstrap = shutil.which("mmdebstrap")
    if mmdebstrap is None:
        raise DockerError(
            f"{BASE_IMAGE} is missing, cannot be pulled, and mmdebstrap is not "
            "installed to make it; install it with: apt-get install mmdebstrap "
            "(scripts/setup does)"
        )
    mirror = os.environ.get("RUNBOOK_DEBIAN_MIRROR", DEFAULT_MIRROR)
    command = [mmdebstrap, "--variant=minbase", "--format=tar", "--quiet"]
    if os.geteuid() != 0:
        command.append("--mode=unshare")
    for pattern in _SLIM_EXCLUDES:
        command.append(f"--dpkgopt=path-exclude={pattern}")
    for pattern in _INCLUDE_AGAIN:
        command.append(f"--dpkgopt=path-include={pattern}")
    command += [BASE_SUITE, "-", mirror]
    say(f"mmdebstrap {BASE_SUITE} from {mirror}")
    started = time.monotonic()
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as bootstrap:
        assert bootstrap.stdout is not None
        imported = subprocess.run(
            ["docker", "import", "--change", 'CMD ["bash"]', "-", BASE_IMAGE],
            stdin=bootstrap.stdout,
            capture_output=True,
            text=True,
            check=False,
        )
        bootstrap.stdout.close()
        assert bootstrap.stderr is not None
        errors = bootstrap.stderr.read().decode("utf-8", "replace")
        status = bootstrap.wait()
    if status != 0:
        raise DockerError(
            f"mmdebstrap {BASE_SUITE} failed (exit status {status}): "
            f"{_last_lines(errors)}; check that {mirror} is reachable, or set "
            "RUNBOOK_DEBIAN_MIRROR to a Debian mirror you can reach"
        )
    if imported.returncode != 0:
        raise DockerError(
            f"docker import of the {BASE_SUITE} bootstrap failed: "
            f"{_last_lines(imported.stderr)}"
        )
    say(f"tagged {BASE_IMAGE} in {time.monotonic() - started:.0f} s")


def fetch_wheels(layout: SandboxLayout, say: Progress) -> list[Path]:
    """Download the wheels in wheels.txt for the image's Python, when missing."""
    wanted = _wheel_requirements(layout.wheel_list)
    target = layout.wheel_dir
    target.mkdir(parents=True, exist_ok=True)
    present = [path for path in target.glob("*.whl")]
    missing = [
        requirement
        for requirement in wanted
        if not any(_wheel_matches(path.name, requirement) for path in present)
    ]
    if missing:
        say(f"fetching wheels for the image: {', '.join(missing)}")
        machine = platform.machine() or "x86_64"
        command = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            layout.image_python,
            "--platform",
            f"manylinux2014_{machine}",
            "--platform",
            f"manylinux_2_17_{machine}",
            "--platform",
            f"manylinux_2_28_{machine}",
            "--dest",
            str(target),
            *missing,
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise DockerError(
                f"pip could not fetch {', '.join(missing)} for the image: "
                f"{_last_lines(result.stderr)}"
            )
    return sorted(target.glob("*.whl"))


def context_hash(layout: SandboxLayout, base_id: str) -> str:
    """Hash everything the build reads, so that any change makes a new tag."""
    digest = hashlib.sha256()
    digest.update(base_id.encode())
    for path in _context_files(layout):
        relative = path.relative_to(layout.root).as_posix()
        digest.update(b"\0" + relative.encode() + b"\0")
        if path.suffix == ".whl":
            continue  # named by version in wheels.txt; contents are pip's business
        digest.update(path.read_bytes())
        digest.update(b"x" if os.access(path, os.X_OK) else b"-")
    return digest.hexdigest()


def _context_files(layout: SandboxLayout) -> Iterator[Path]:
    yield layout.dockerfile
    for directory in layout.context_dirs:
        for path in sorted(directory.rglob("*")):
            parts = set(path.relative_to(layout.root).parts)
            if path.is_dir() or parts & {"__pycache__", "build"}:
                continue
            if any(part.endswith(".egg-info") for part in parts):
                continue
            yield path


_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")


def _build(
    layout: SandboxLayout, tag: str, digest: str, say: Progress, no_cache: bool
) -> None:
    command = [
        "docker",
        "build",
        *(["--no-cache"] if no_cache else []),
        "--file",
        str(layout.dockerfile),
        "--tag",
        tag,
        "--label",
        f"{HASH_LABEL}={digest}",
        str(layout.root),
    ]
    env = dict(os.environ, DOCKER_BUILDKIT="0")
    started = time.monotonic()
    tail: list[str] = []
    with subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        env=env,
    ) as build:
        assert build.stdout is not None
        for line in build.stdout:
            line = line.rstrip("\n")
            tail = (tail + [line])[-30:]
            log.debug("docker build: %s", line)
            step = _STEP.match(line)
            if step:
                number, total, what = step.groups()
                elapsed = time.monotonic() - started
                say(f"  stage {number}/{total} at {elapsed:4.0f} s: {_short(what)}")
        status = build.wait()
    if status != 0:
        raise DockerError(
            f"docker build of {layout.dockerfile.name} failed (exit status "
            f"{status}); its last lines:\n" + "\n".join(tail)
        )


def _wheel_requirements(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]


def _wheel_matches(filename: str, requirement: str) -> bool:
    name, _, version = requirement.partition("==")
    prefix = name.replace("-", "_").lower() + "-" + (version or "")
    return filename.lower().startswith(prefix)


def _short(text: str, width: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _last_lines(text: str, count: int = 3) -> str:
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return " / ".join(lines[-count:]) or "no output"


def remove_old_images(keep: str | None = None) -> list[str]:
    """Remove test server images other than ``keep``; return the removed tags."""
    listing = docker(
        "images", "--format", "{{.Repository}}:{{.Tag}}", IMAGE_REPOSITORY, check=False
    )
    removed = []
    for tag in listing.stdout.split():
        if tag == keep or tag.endswith(":<none>"):
            continue
        result = docker("image", "rm", tag, check=False)
        if result.returncode == 0:
            removed.append(tag)
    return removed
