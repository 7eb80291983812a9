"""Transcripts: one JSON Lines record per event of a run, written as it happens.

Each record is a JSON object on its own line with at least ``type`` and
``time`` (UTC, ISO 8601). Types: ``start``, ``decision``, ``step``, ``end``.
Every record is flushed to the file before the run goes on, so a run that is
killed keeps everything up to that moment. Secret values are replaced with
``***`` before a record is written.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from .errors import TranscriptError, TranscriptPathError
from .variables import MIN_SECRET_LENGTH, mask_secrets, mask_secrets_bytes

MASK = "***"

log = logging.getLogger(__name__)


def default_transcript_dir() -> Path:
    """Return ``$XDG_STATE_HOME/runbook/transcripts``.

    ``XDG_STATE_HOME`` defaults to ``~/.local/state``.
    """
    state = os.environ.get("XDG_STATE_HOME", "")
    if not os.path.isabs(state):
        # The XDG Base Directory specification requires ignoring a relative path.
        state = os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(state) / "runbook" / "transcripts"


def default_transcript_path(section_slug: str) -> Path:
    """Return a new transcript path named after the time and the section."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", section_slug).strip("-") or "run"
    return default_transcript_dir() / f"{stamp}-{slug}-{os.getpid()}.jsonl"


class Masker:
    """The secret values of a run, and their replacement in text and bytes.

    Values shorter than ``variables.MIN_SECRET_LENGTH`` are ignored because
    masking them would hide common words.
    """

    def __init__(self, secret_values: Iterable[str] = ()) -> None:
        self._values: list[str] = []
        self.add(secret_values)

    def add(self, secret_values: Iterable[str]) -> None:
        for value in secret_values:
            if len(value) >= MIN_SECRET_LENGTH and value not in self._values:
                self._values.append(value)
        self._values.sort(key=len, reverse=True)

    @property
    def longest(self) -> int:
        """Length in bytes of the longest secret, 0 when there is none."""
        return len(self._values[0].encode()) if self._values else 0

    def text(self, value: str) -> str:
        return mask_secrets(value, self._values)

    def data(self, value: bytes) -> bytes:
        return mask_secrets_bytes(value, self._values)

    def any(self, value: Any) -> Any:
        """Mask every string inside a JSON-like value."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {key: self.any(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.any(item) for item in value]
        return value


class StreamMasker:
    """Masks secrets in output that arrives in chunks.

    A secret may be split across two chunks, so the last bytes of each chunk
    are held back until the next one (or ``flush``) shows how they continue.
    """

    def __init__(self, masker: Masker) -> None:
        self.masker = masker
        self._held = b""

    def feed(self, data: bytes) -> bytes:
        """Return what can be shown of the output so far.

        Empty ``data`` is an idle tick (the step printed nothing for a moment):
        held-back bytes are released, so a prompt without a newline appears.
        """
        if not data:
            return self.flush()
        longest = self.masker.longest
        if not longest:
            return data
        masked = self.masker.data(self._held + data)
        keep = min(longest - 1, len(masked))
        self._held = masked[len(masked) - keep :] if keep else b""
        return masked[: len(masked) - keep]

    def flush(self) -> bytes:
        held, self._held = self._held, b""
        return self.masker.data(held)


def output_fields(output: bytes, masker: Masker) -> dict[str, str]:
    """Return the readable output, plus the raw bytes in base64 when not UTF-8."""
    raw = masker.data(output)
    try:
        return {"output": raw.decode("utf-8")}
    except UnicodeDecodeError:
        return {
            "output": raw.decode("utf-8", "replace"),
            "output_base64": base64.b64encode(raw).decode("ascii"),
        }


class Transcript:
    """An append-only JSON Lines file for one run."""

    def __init__(self, path: str | os.PathLike[str], masker: Masker | None = None):
        self.path = Path(path)
        self.masker = masker or Masker()
        self._file: IO[str] | None = None
        #: Random id in every record, to distinguish runs that append to one file.
        self.run_id = secrets.token_hex(6)
        #: The first write error; later records are not written.
        self.error: OSError | None = None
        #: Called once with a message when a write fails.
        self.on_error: Callable[[str], None] | None = None

    def disable(self, error: OSError) -> None:
        """Drop every record from now on, because the file cannot be written."""
        self.error = error

    def open(self, create_parents: bool = False) -> None:
        """Open for appending; the file is readable by its owner only.

        ``create_parents`` makes missing directories, for the default location;
        a path the operator named must be in a directory that exists.
        """
        try:
            if create_parents:
                self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            self._file = open(fd, "a", encoding="utf-8")  # noqa: SIM115
        except OSError as error:
            raise TranscriptPathError(
                f"cannot write transcript {str(self.path)!r}: {error.strerror}; "
                "pass --transcript PATH with a writable location"
            ) from error

    def write(self, record_type: str, **fields: Any) -> None:
        """Append one record and flush it to the operating system.

        A write that fails (disk full, file too large) does not stop the run:
        it is reported once through ``on_error`` and later records are
        dropped, because a half-written line would make the rest unreadable.
        """
        if self.error is not None:
            return
        if self._file is None:
            raise TranscriptError(f"transcript {str(self.path)!r} is not open")
        record = {
            "type": record_type,
            "time": _now(),
            "run": self.run_id,
            **self.masker.any(fields),
        }
        try:
            self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
            self._file.flush()
        except OSError as error:
            self.error = error
            message = (
                f"cannot append to transcript {str(self.path)!r}: {error.strerror}; "
                "the run goes on, and later records are not written"
            )
            log.error("%s", message)
            if self.on_error is not None:
                self.on_error(message)

    def close(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None

    def __enter__(self) -> Transcript:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def read_transcript(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Yield the records of a transcript; a torn last line is skipped."""
    try:
        handle = open(path, encoding="utf-8")  # noqa: SIM115
    except OSError as error:
        raise TranscriptError(
            f"cannot read transcript {str(path)!r}: {error.strerror}"
        ) from error
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as error:
                if not line.endswith("\n"):
                    return  # the run died while writing its last record
                raise TranscriptError(
                    f"{path}:{number}: invalid JSON in transcript: {error.msg}"
                ) from error


def _now() -> str:
    now = time.time()
    return datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds")
