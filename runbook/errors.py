"""Exception types, one per condition.

Every error carries the value that caused it and says how to fix it, because the
CLI prints ``str(error)`` as the whole message. ``UsageError`` subclasses map to
exit status 2 (the request cannot be carried out as given); the rest map to 1.
"""

from __future__ import annotations

from collections.abc import Sequence


class RunbookError(Exception):
    """Base class for every error that runbook reports to the operator."""


class UsageError(RunbookError):
    """The request cannot be carried out as given; the CLI exits with status 2."""


# --- Reading and parsing playbooks -------------------------------------------


class PlaybookError(UsageError):
    """A playbook file cannot be read or parsed."""

    def __init__(self, path: str, message: str, line: int | None = None) -> None:
        self.path = path
        self.line = line
        location = f"{path}:{line}" if line is not None else path
        super().__init__(f"{location}: {message}")


class PlaybookNotFound(PlaybookError):
    """The playbook path does not exist or is not a file."""

    def __init__(self, path: str) -> None:
        super().__init__(path, "playbook not found; check the path")


class PlaybookDecodeError(PlaybookError):
    """The playbook file is not valid UTF-8."""


class AttributeSyntaxError(PlaybookError):
    """A fence info string or runbook comment has malformed or unknown attributes."""


# --- Selecting sections and steps ---------------------------------------------


class SectionNotFound(UsageError):
    """No section matches the requested name."""

    def __init__(self, query: str, suggestions: Sequence[str] = ()) -> None:
        self.query = query
        self.suggestions = tuple(suggestions)
        message = f"section not found: {query!r}"
        if self.suggestions:
            listed = ", ".join(repr(s) for s in self.suggestions)
            message += f"; closest titles: {listed}"
        message += " (run 'runbook list FILE' to see every section)"
        super().__init__(message)


class AmbiguousSection(UsageError):
    """More than one section matches the requested name.

    ``candidates`` contains every match. The message lists the first
    ``MAX_LISTED`` of them and counts the rest.
    """

    MAX_LISTED = 10

    def __init__(self, query: str, candidates: Sequence[str]) -> None:
        self.query = query
        self.candidates = tuple(candidates)
        listed = "\n".join(f"  {c}" for c in self.candidates[: self.MAX_LISTED])
        unlisted = len(self.candidates) - self.MAX_LISTED
        if unlisted > 0:
            listed += f"\n  ... and {unlisted} more"
        super().__init__(
            f"section name {query!r} is ambiguous; it matches:\n{listed}\n"
            "Pass a heading path such as 'Parent/Child' or the section's slug."
        )


class SectionRequired(UsageError):
    """``runbook run`` needs ``--section`` for a playbook with sections."""


class NoRunnableSteps(UsageError):
    """The selected playbook or section contains no shell steps."""


class DestructiveStepsNeedConsent(UsageError):
    """``--yes`` would run steps marked ``confirm`` without ``--allow-destructive``."""


class StepSelectionError(UsageError):
    """``--step`` or ``--from`` names a step number that does not exist."""


class DeploymentRequired(UsageError):
    """Steps are marked for some deployments (``when``) and no deployment was given."""


class UnknownDeployment(UsageError):
    """``--deployment`` names a deployment that the front matter does not declare."""


# --- Variables ----------------------------------------------------------------


class VariableError(UsageError):
    """A ``--var`` option or an env file entry is malformed."""


class MissingValues(UsageError):
    """Placeholders or variables have no value and none can be asked for."""

    def __init__(self, names: Sequence[str], details: Sequence[str] = ()) -> None:
        self.names = tuple(names)
        lines = "\n".join(f"  {d}" for d in details) if details else ""
        message = "missing values for: " + ", ".join(self.names)
        if lines:
            message += "\n" + lines
        message += "\nSupply them with --var NAME=VALUE or --env-file FILE."
        super().__init__(message)


class InvalidTarget(UsageError):
    """A ``--target`` value is not one of the accepted forms."""


# --- Shell sessions -------------------------------------------------------------


class SessionError(RunbookError):
    """The shell session could not be started or stopped responding."""


class SessionStartError(SessionError):
    """The shell did not start or did not show its prompt in time."""


class SessionEnded(SessionError):
    """The shell exited; later steps cannot run in the same session."""


class EndOfInput(KeyboardInterrupt):
    """No answer can be read at a prompt: stdin ended or the terminal is gone.

    It stops the run the way Ctrl-C at a prompt does.
    """


class EditorError(RunbookError):
    """The editor for the edit decision could not be started."""


class TranscriptError(RunbookError):
    """The transcript file cannot be written or read."""


class TranscriptPathError(UsageError):
    """The transcript file cannot be created where ``--transcript`` points."""
