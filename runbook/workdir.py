"""The private directories that hold step files, and their cleanup."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile

log = logging.getLogger(__name__)

WORKDIR_PREFIX = "runbook."


def workdir_base() -> str:
    """Return /dev/shm when writable, else the temporary directory.

    Step files may hold secrets, and in /dev/shm (a tmpfs on Linux) they never
    reach a disk; writing there is also faster.
    """
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK):
        return shm
    return tempfile.gettempdir()


def remove_stale_workdirs(base: str) -> None:
    """Remove step directories left by runbook processes that no longer exist.

    A run killed with SIGKILL cannot clean up, and its step file may hold
    secrets. Directory names carry the owning process id.
    """
    try:
        names = os.listdir(base)
    except OSError:
        return
    for name in names:
        if not name.startswith(WORKDIR_PREFIX):
            continue
        owner = name[len(WORKDIR_PREFIX) :].split(".", 1)[0]
        if not owner.isdigit() or process_exists(int(owner)):
            continue
        path = os.path.join(base, name)
        if os.path.isdir(path) and os.stat(path).st_uid == os.getuid():
            shutil.rmtree(path, ignore_errors=True)
            log.info("removed %s, left by a runbook process that ended", path)


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
