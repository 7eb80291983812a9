"""Playbook model: frozen dataclasses that keep source line numbers.

``runbook.playbook`` builds these from Markdown and re-exports them, so other
modules import them from there.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from runbook.lookup import find_section

#: Fence languages whose blocks are steps.
SHELL_LANGUAGES = frozenset({"bash", "sh", "shell", "zsh", "console"})


@dataclass(frozen=True, slots=True)
class ParseWarning:
    """A problem that does not stop parsing, such as an unclosed fence."""

    line: int
    message: str


@dataclass(frozen=True, slots=True)
class CodeBlock:
    """A fenced or indented block that is not a step, kept as context.

    ``language`` is empty for indented blocks and fences without one.
    """

    language: str
    code: str
    start_line: int
    end_line: int


@dataclass(frozen=True, slots=True)
class Step:
    """One fenced shell block and the prose around it.

    ``start_line`` is the 1-based line of the opening fence, ``end_line`` the
    1-based line of the closing fence (or the last line for an unclosed fence).
    For ``console`` blocks ``code`` holds only the ``$ `` commands (prompt
    removed) and ``expected_output`` the other lines (None when there are
    none). Otherwise ``expected_output`` is the text of an ``output`` or
    ``text`` block that directly follows the step, starting on
    ``output_line``; ``output_regex`` is set by its ``regex`` attribute.
    ``description`` is the plain text of the paragraphs between the previous
    code block or heading and this block, separated by blank lines.
    ``comments`` are the full-line ``#`` comments of ``code``, whitespace
    stripped, without a shebang or heredoc lines.

    ``own_attributes`` come from the info string; ``exit`` is stored as
    ``expect``. ``attributes`` are the ones in effect: the runbook comments
    of the sections above the step (deeper sections win), overridden by the
    step's own.
    """

    code: str
    language: str
    start_line: int
    end_line: int
    heading_path: tuple[str, ...]
    description: str = ""
    comments: tuple[str, ...] = ()
    attributes: Mapping[str, Any] = field(default_factory=dict)
    expected_output: str | None = None
    own_attributes: Mapping[str, Any] = field(default_factory=dict)
    output_line: int | None = None
    output_regex: bool = False

    @property
    def name(self) -> str | None:
        value = self.attributes.get("name")
        return str(value) if value is not None else None

    @property
    def accepted_statuses(self) -> frozenset[int] | None:
        """The exit statuses that count as success; None when any status does."""
        expect = self.attributes.get("expect", 0)
        if expect == "any":
            return None
        if isinstance(expect, tuple):
            return frozenset(expect)
        return frozenset((int(expect),))

    @property
    def deployments(self) -> tuple[str, ...]:
        """The deployments the step is for (its ``when``); empty for every one."""
        return tuple(self.attributes.get("when", ()))

    @property
    def runs_locally(self) -> bool:
        """Whether the step runs in a shell on this machine (``target=local``)."""
        return self.attributes.get("target") == "local"


@dataclass(frozen=True, slots=True)
class Section:
    """A heading and everything under it up to the next heading of its level or above.

    ``path`` is the titles from the top-level ancestor down to this section.
    ``steps`` are the section's own steps; ``all_steps()`` adds those of its
    subsections in document order. The root section of a playbook has level 0,
    the file name as title, and holds the blocks before the first heading.
    ``attributes`` come from ``<!-- runbook: ... -->`` comments placed directly
    under the heading (or at the top of the file, for the root); when several
    comments set one key, the last one wins.
    """

    level: int
    title: str
    slug: str
    path: tuple[str, ...]
    start_line: int
    end_line: int
    steps: tuple[Step, ...] = ()
    children: tuple[Section, ...] = ()
    context: tuple[CodeBlock, ...] = ()
    attributes: Mapping[str, Any] = field(default_factory=dict)

    def all_steps(self) -> tuple[Step, ...]:
        collected: list[Step] = []
        for section in self.walk():
            collected.extend(section.steps)
        return tuple(collected)

    def walk(self) -> Iterator[Section]:
        """Yield this section and its descendants in document order."""
        yield self
        for child in self.children:
            yield from child.walk()


@dataclass(frozen=True, slots=True)
class Playbook:
    """A parsed playbook file."""

    path: str
    root: Section
    front_matter: Mapping[str, Any] = field(default_factory=dict)
    warnings: tuple[ParseWarning, ...] = ()

    @property
    def title(self) -> str:
        for section in self.root.children:
            return section.title
        return self.root.title

    def sections(self) -> Iterator[Section]:
        """Yield every section below the root in document order."""
        for child in self.root.children:
            yield from child.walk()

    def find_section(self, query: str) -> Section:
        """Return the one section that ``query`` names.

        See ``runbook.lookup.find_section`` for the matching rules.
        Raises SectionNotFound or AmbiguousSection.
        """
        return find_section(tuple(self.sections()), query)
