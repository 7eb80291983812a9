"""Terminal interaction: shows steps, asks for decisions, prints the summary.

``TerminalPrompter`` asks the operator; with ``assume_yes`` it decides by
policy (run everything) and only reports. On a terminal the code is
syntax-highlighted and colours follow ``NO_COLOR``; elsewhere output is plain
text written without rich, so CI logs stay readable and ``--yes`` runs do not
pay for rendering.
"""

from __future__ import annotations

import getpass
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import IO, Any

from .errors import EditorError, EndOfInput
from .plan import (
    Plan,
    PlannedStep,
    unexpanded_references,
    unused_values,
    variant_steps,
)
from .records import Decision, RunResult, StepRecord
from .session import StepOutcome

log = logging.getLogger(__name__)

_BEFORE_CHOICES = {
    "r": Decision.RUN,
    "run": Decision.RUN,
    "s": Decision.SKIP,
    "skip": Decision.SKIP,
    "e": Decision.EDIT,
    "edit": Decision.EDIT,
    "a": Decision.ALL,
    "all": Decision.ALL,
    "q": Decision.QUIT,
    "quit": Decision.QUIT,
}
_FAILURE_CHOICES = {
    "r": Decision.RETRY,
    "retry": Decision.RETRY,
    "s": Decision.SKIP,
    "skip": Decision.SKIP,
    "e": Decision.EDIT,
    "edit": Decision.EDIT,
    "q": Decision.QUIT,
    "quit": Decision.QUIT,
}
_ENDED_CHOICES = {
    "n": Decision.RESTART,
    "new": Decision.RESTART,
    "q": Decision.QUIT,
    "quit": Decision.QUIT,
}


class TerminalPrompter:
    """Prompts on the operator's terminal (or stdin/stdout when they are pipes)."""

    def __init__(
        self,
        total_steps: int,
        assume_yes: bool = False,
        stdout: IO[str] | None = None,
        stdin: IO[str] | None = None,
        editor: Callable[[str], str | None] | None = None,
    ) -> None:
        self.total_steps = total_steps
        self.assume_yes = assume_yes
        self.stdout = stdout or sys.stdout
        self.stdin = stdin or sys.stdin
        self.editor = editor or _edit_with_editor
        interactive_terminal = not assume_yes and _isatty(self.stdin)
        self.input_fd: int | None = (
            self.stdin.fileno() if interactive_terminal else None
        )
        self.steps_read_terminal = interactive_terminal
        #: The deployment the run is for, shown with steps that have ``when``.
        self.deployment: str | None = None
        self._out = getattr(self.stdout, "buffer", None)
        self._output_lost = False
        self._terminal = _isatty(self.stdout)
        self._console: Any = None
        if self._terminal:
            from rich.console import Console

            self._console = Console(file=self.stdout, highlight=False, soft_wrap=True)

    def say(self, text: str = "", style: str | None = None, end: str = "\n") -> None:
        """Print one line: styled on a terminal, plain text elsewhere."""
        if self._output_lost:
            return
        try:
            if self._console is not None:
                self._console.print(text, style=style, end=end, markup=False)
            else:
                # Flushed before every prompt and step, not per line.
                self.stdout.write(text + end)
        except OSError:
            self._lose_output()

    def _print_rich(self, renderable: Any) -> None:
        if self._output_lost:
            return
        try:
            self._console.print(renderable)
        except OSError:
            self._lose_output()

    def flush(self) -> None:
        if self._output_lost:
            return
        try:
            self.stdout.flush()
        except OSError:
            self._lose_output()

    def _lose_output(self) -> None:
        """Stop writing: the terminal is gone (EIO) or the pipe is closed."""
        self._output_lost = True
        log.warning("output to the terminal failed; the run goes on without it")

    # --- before a step ------------------------------------------------------------

    def before_step(self, planned: PlannedStep, position: int, code: str) -> Decision:
        self.show_step(planned, code)
        return self._choose(
            "[r]un, [s]kip, [e]dit, run [a]ll remaining, [q]uit?", _BEFORE_CHOICES
        )

    def show_step(self, planned: PlannedStep, code: str) -> None:
        step = planned.step
        where = " › ".join(step.heading_path)
        self.say()
        if self._console is not None:
            from rich.text import Text

            header = Text(f"Step {planned.number}/{self.total_steps}", "bold cyan")
            header.append(f"  {where}", style="bold")
            header.append(f"  (line {step.start_line})", style="dim")
            self._print_rich(header)
        else:
            self.say(
                f"Step {planned.number}/{self.total_steps}  {where}"
                f"  (line {step.start_line})"
            )
        if step.deployments and self.deployment is not None:
            self.say(f"variant: {self.deployment} (when={','.join(step.deployments)})")
        if step.runs_locally:
            self.say("runs on: this machine (target=local)", style="yellow")
        if step.description:
            self.say(step.description, style="italic")
        self.print_code(code)

    def print_code(self, code: str) -> None:
        if self._console is not None and not self._console.no_color:
            from rich.syntax import Syntax

            self._print_rich(
                Syntax(code.rstrip("\n"), "bash", theme="ansi_dark", word_wrap=True)
            )
        else:
            body = "".join(f"    {line}\n" for line in code.rstrip("\n").splitlines())
            self.say(body, end="")

    def edit(self, code: str) -> str | None:
        try:
            edited = self.editor(code)
        except EditorError as error:
            self.say(f"Cannot edit the step: {error}")
            return None
        if edited is None or not edited.strip():
            self.say("No changes saved; the step was not changed.")
            return None
        self.say("Edited step:")
        self.print_code(edited)
        return edited

    def ask_value(self, name: str, kind: str, secret: bool) -> str | None:
        """Ask until a placeholder gets a value; a variable may stay unset."""
        if kind == "placeholder":
            prompt = f"Value for <{name}> (placeholder; required): "
        else:
            prompt = f"Value for ${name} (variable; empty leaves it unset): "
        while True:
            if secret and _isatty(self.stdin):
                self.flush()
                try:
                    value = getpass.getpass(prompt)
                except EOFError as error:
                    raise EndOfInput("the input ended at a prompt") from error
            else:
                self.say(prompt, end="")
                value = self._read_line(echo_as="***" if secret else None)
            if value or kind != "placeholder":
                return value or None
            self.say(
                f"<{name}> needs a value: an empty one would leave the literal "
                "text in the command."
            )

    # --- while a step runs --------------------------------------------------------

    def warn(self, text: str) -> None:
        self.say(f"warning: {text}", style="yellow")

    def run_started(self, plan: Plan) -> None:
        self.deployment = plan.deployment
        if plan.deployment is not None and variant_steps(plan):
            self.say(
                f"Deployment: {plan.deployment}; steps for other deployments "
                "are skipped."
            )
        for warning in plan.playbook.warnings:
            self.say(
                f"{plan.playbook.path}:{warning.line}: warning: {warning.message}",
                style="yellow",
            )
        for message in unexpanded_references(plan):
            self.warn(message)
        for name in unused_values(plan):
            self.warn(
                f"value {name!r} is not used by any selected step; check its spelling"
            )

    def choose_deployment(self, choices: Sequence[str], plan: Plan) -> str | None:
        """Ask until the reply names one of ``choices``, in any case, or is ``q``.

        Returns the chosen name as ``choices`` spells it, or None for ``q``
        (quit). The choice is kept for show_step.
        """
        variants = variant_steps(plan)
        by_folded = {choice.casefold(): choice for choice in choices}
        self.say(
            f"{len(variants)} step(s) of this section are for some deployments "
            f"only: {', '.join(choices)}."
        )
        while True:
            self.say("Which deployment is this ([q]uit)? ", end="", style="bold")
            answer = self._read_line().strip()
            chosen = answer if answer in choices else by_folded.get(answer.casefold())
            if chosen is not None:
                self.deployment = chosen
                self.say(f"Deployment: {chosen}; steps for others are skipped.")
                return chosen
            if answer.lower() in ("q", "quit"):
                return None
            self.say(
                f"Invalid deployment {answer!r}; type one of: {', '.join(choices)}, "
                "or q to quit"
            )

    def step_skipped(self, planned: PlannedStep, reason: str) -> None:
        self.say(f"Step {planned.number} skipped: {reason}", style="dim")

    def step_started(self, planned: PlannedStep, code: str, announce: bool) -> None:
        if announce:
            self.show_step(planned, code)
        self.flush()

    def step_output(self, data: bytes) -> None:
        if not data:
            return
        if self._output_lost:
            return
        if not self._terminal:
            data = data.replace(b"\r\n", b"\n")
        try:
            if self._out is not None:
                self._out.write(data)
                self._out.flush()
            else:
                self.stdout.write(data.decode("utf-8", "replace"))
        except OSError:
            self._lose_output()

    def step_finished(self, planned: PlannedStep, outcome: StepOutcome) -> None:
        record = StepRecord(planned, "run", outcome=outcome)
        if outcome.output and not outcome.output.endswith(b"\n"):
            self.say()
        seconds = f"{outcome.duration:.2f} s"
        if outcome.succeeded:
            self.say(f"Step {planned.number} succeeded ({seconds})", style="green")
        else:
            self.say(
                f"Step {planned.number} failed: {record.status_text} ({seconds})",
                style="bold red",
            )
        if outcome.output_diff is not None:
            self.say("The output did not match the expected output:")
            self.print_diff(outcome.output_diff)

    def print_diff(self, diff: str) -> None:
        """Print a unified diff, coloured on a terminal."""
        styles = {"-": "red", "+": "green", "@": "cyan"}
        for line in diff.splitlines():
            if line.startswith(("---", "+++")):
                self.say(line, style="bold")
            else:
                self.say(line, style=styles.get(line[:1]))

    def confirm(self, planned: PlannedStep, code: str, show: bool) -> bool:
        if show:
            self.show_step(planned, code)
        word = planned.step.name or "run"
        self.say(
            f"Step {planned.number} is marked confirm: it may change or destroy data.",
            style="bold yellow",
        )
        self.say(f"Type {word!r} to run it, anything else to skip it: ", end="")
        answer = self._read_line().strip()
        if answer == word:
            return True
        self.say(f"Not confirmed; step {planned.number} skipped.")
        return False

    # --- after a failure ----------------------------------------------------------

    def after_failure(self, planned: PlannedStep, outcome: StepOutcome) -> Decision:
        return self._choose("[r]etry, [s]kip, [e]dit, [q]uit?", _FAILURE_CHOICES)

    def after_session_ended(
        self, planned: PlannedStep, outcome: StepOutcome
    ) -> Decision:
        if outcome.exit_status is None:
            what = "The shell stopped responding and was closed"
        else:
            what = f"The shell exited (status {outcome.exit_status})"
        self.say(
            f"{what} during step {planned.number}. Variables, functions and the "
            "working directory of earlier steps are gone.",
            style="bold red",
        )
        return self._choose(
            "start a [n]ew shell and go on with the next step, or [q]uit?",
            _ENDED_CHOICES,
        )

    # --- the end --------------------------------------------------------------------

    def finished(self, result: RunResult) -> None:
        self.say()
        if self._console is not None:
            self._print_rich(_summary_table(result.records))
        else:
            for line in summary_lines(result.records):
                self.say(line)
        if result.stopped:
            self.say(f"Stopped: {result.stopped}")
        if result.transcript_path and result.transcript_failed:
            self.say(
                f"Transcript: {result.transcript_path} (incomplete: a write failed)"
            )
        elif result.transcript_path:
            self.say(f"Transcript: {result.transcript_path}")
        self.flush()

    # --- input ------------------------------------------------------------------------

    def _choose(self, question: str, choices: dict[str, Decision]) -> Decision:
        while True:
            self.say(question + " ", end="", style="bold")
            answer = self._read_line().strip().lower()
            if answer in choices:
                return choices[answer]
            self.say(f"Invalid answer {answer!r}; type one of the letters in brackets.")

    def _read_line(self, echo_as: str | None = None) -> str:
        """Read one answer; when stdin is not a terminal, echo it for the log."""
        self.flush()
        try:
            line = self.stdin.readline()
        except OSError as error:
            raise EndOfInput(
                f"reading from the terminal failed: {error.strerror}"
            ) from error
        if not line:
            self.say()
            raise EndOfInput("the input ended at a prompt")
        answer = line.rstrip("\r\n")
        if not _isatty(self.stdin):
            shown = echo_as if echo_as is not None and answer else answer
            self.say(shown)
        return answer


def summary_lines(records: Sequence[StepRecord]) -> list[str]:
    """Return the summary table as plain text lines."""
    rows = [("step", "decision", "exit status", "duration", "command")]
    for record in records:
        duration = "-" if record.duration is None else f"{record.duration:.3f} s"
        rows.append(
            (
                str(record.planned.number),
                record.decision,
                record.status_text,
                duration,
                _shorten(record.planned.label, 50),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(
            cell.ljust(width) for cell, width in zip(row, widths, strict=True)
        ).rstrip()
        for row in rows
    ]


def _summary_table(records: Sequence[StepRecord]) -> Any:
    from rich.table import Table
    from rich.text import Text

    table = Table(title="Summary", title_justify="left")
    for column in ("step", "decision", "exit status", "duration", "command"):
        table.add_column(column, overflow="fold")
    for record in records:
        duration = "-" if record.duration is None else f"{record.duration:.3f} s"
        style = "red" if record.failed else None
        # Text cells: commands are shown as written, never read as rich markup.
        table.add_row(
            Text(str(record.planned.number)),
            Text(record.decision),
            Text(record.status_text),
            Text(duration),
            Text(_shorten(record.planned.label, 50)),
            style=style,
        )
    return table


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _isatty(stream: IO[str]) -> bool:
    try:
        return os.isatty(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return False


def _edit_with_editor(code: str) -> str | None:
    """Open ``$VISUAL`` or ``$EDITOR`` on the code; None when nothing was saved."""
    import click

    try:
        return click.edit(code, extension=".sh", require_save=True)
    except click.ClickException as error:
        raise EditorError(
            f"{error.format_message()}; set $EDITOR to an editor command"
        ) from error
