"""Find the files the sandbox builds from: Dockerfile.testserver and fixtures/."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .docker import DockerError

DOCKERFILE = "Dockerfile.testserver"
#: Set to a runbook source checkout to use its test server files.
ROOT_VARIABLE = "RUNBOOK_SANDBOX_ROOT"


@dataclass(frozen=True)
class SandboxLayout:
    root: Path

    @property
    def dockerfile(self) -> Path:
        return self.root / DOCKERFILE

    @property
    def fixtures(self) -> Path:
        return self.root / "fixtures"

    @property
    def context_dirs(self) -> tuple[Path, ...]:
        return (self.fixtures / "image", self.fixtures / "server")

    @property
    def wheel_list(self) -> Path:
        return self.fixtures / "image" / "wheels.txt"

    @property
    def wheel_dir(self) -> Path:
        return self.fixtures / "image" / "wheels"

    @property
    def scenario_dir(self) -> Path:
        return self.fixtures / "scenarios"

    @property
    def image_python(self) -> str:
        """The Python version of the image's Debian release (trixie: 3.13)."""
        return "3.13"


def find_layout(start: Path | None = None) -> SandboxLayout:
    """Locate the checkout that contains Dockerfile.testserver.

    Looks at $RUNBOOK_SANDBOX_ROOT, then upwards from ``start`` (the playbook's
    directory), the working directory and the installed package.
    """
    override = os.environ.get(ROOT_VARIABLE)
    if override:
        root = Path(override).expanduser()
        if not (root / DOCKERFILE).is_file():
            raise DockerError(
                f"{ROOT_VARIABLE}={override} has no {DOCKERFILE}; point it at a "
                "runbook source checkout"
            )
        return SandboxLayout(root.resolve())
    starts = [Path.cwd(), Path(__file__).resolve().parent]
    if start is not None:
        starts.insert(0, start.resolve())
    for first in starts:
        for directory in (first, *first.parents):
            if (directory / DOCKERFILE).is_file() and (directory / "fixtures").is_dir():
                return SandboxLayout(directory)
    raise DockerError(
        f"--target sandbox builds the test server from {DOCKERFILE} and fixtures/ "
        "of a runbook source checkout, and none was found above the playbook, the "
        f"working directory or the installed package; set {ROOT_VARIABLE} to a "
        "checkout"
    )
