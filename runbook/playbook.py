"""Playbook parser: Markdown to sections (the heading tree) and steps.

``parse_playbook`` walks the block tokens of markdown-it-py (CommonMark with
tables) once, after collecting the heading titles for slugs. Headings open
sections, fenced blocks in a shell language become steps, other code blocks
become the section's context, and the paragraphs before a block become its
description. An ``output`` or ``text`` block right after a step (nothing but
blank lines between them) is that step's expected output. Problems that do
not stop parsing, such as an unclosed fence, are returned as
``Playbook.warnings``.

The model classes live in ``runbook.model``, section lookup in
``runbook.lookup`` and slugs in ``runbook.slugs``; this module re-exports their
public names.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.token import Token

from runbook.attributes import (
    DEPLOYMENT_NAME,
    INHERITED_ATTRIBUTES,
    parse_comment_annotations,
    parse_info_attributes,
    split_info_string,
)
from runbook.errors import AttributeSyntaxError, PlaybookError
from runbook.expected import ExpectedOutputError, compile_expected
from runbook.lookup import describe_section, find_section
from runbook.model import (
    SHELL_LANGUAGES,
    CodeBlock,
    ParseWarning,
    Playbook,
    Section,
    Step,
)
from runbook.shell_blocks import (
    bash_prompt_warnings,
    comment_lines,
    console_prompt_warnings,
    split_console,
)
from runbook.slugs import slugify, unique_slugs
from runbook.source import normalize_newlines, read_playbook_text, split_front_matter

__all__ = [
    "OUTPUT_LANGUAGES",
    "SHELL_LANGUAGES",
    "CodeBlock",
    "ParseWarning",
    "Playbook",
    "Section",
    "Step",
    "describe_section",
    "find_section",
    "load_playbook",
    "parse_playbook",
    "slugify",
    "unique_slugs",
]

logger = logging.getLogger(__name__)

#: Fence languages of a block that is a step's expected output when it
#: directly follows the step.
OUTPUT_LANGUAGES = frozenset({"output", "text"})


def parse_playbook(text: str, path: str = "<string>") -> Playbook:
    """Parse Markdown text into a Playbook.

    ``path`` names the playbook in titles and error messages. Raises
    PlaybookError for invalid front matter and AttributeSyntaxError for
    malformed attributes.
    """
    text = normalize_newlines(text)
    front_matter, body = split_front_matter(text, path)
    deployments = declared_deployments(front_matter, path, text)
    tokens = _markdown().parse(body)

    builder = _Builder(path, _count_lines(body), deployments)
    builder.feed(tokens)
    root, warnings = builder.finish()
    logger.debug("parsed %s: %d tokens, %d warnings", path, len(tokens), len(warnings))
    return Playbook(path, root, front_matter, warnings)


def load_playbook(path: str) -> Playbook:
    """Read and parse a playbook file (UTF-8, optional BOM, any line endings).

    Raises PlaybookNotFound, PlaybookDecodeError or the errors of
    ``parse_playbook``.
    """
    return parse_playbook(read_playbook_text(path), path)


def declared_deployments(
    front_matter: Mapping[str, Any], path: str, text: str = ""
) -> tuple[str, ...] | None:
    """Return the front matter's ``deployments`` list, or None when it has none.

    Raises PlaybookError, with the line of the key when ``text`` shows it,
    unless the value is a list of deployment names.
    """
    if "deployments" not in front_matter:
        return None
    value = front_matter["deployments"]
    names = value if isinstance(value, list) else None
    if names is None or not all(
        isinstance(name, str) and DEPLOYMENT_NAME.fullmatch(name) for name in names
    ):
        key = re.search(r"^deployments\s*[:=]", text, re.MULTILINE)
        line = text.count("\n", 0, key.start()) + 1 if key else 1
        raise PlaybookError(
            path,
            f"front matter deployments must be a list of names (letters, digits, "
            f"'.', '_' and '-'), as in deployments: [systemd, compose]; got {value!r}",
            line,
        )
    return tuple(dict.fromkeys(names))


@functools.cache
def _markdown() -> MarkdownIt:
    return MarkdownIt("commonmark").enable("table")


def _count_lines(text: str) -> int:
    return text.count("\n") + (1 if text and not text.endswith("\n") else 0)


# --- Token walk ------------------------------------------------------------------


@dataclass(eq=False, slots=True)
class _Draft:
    """A section whose heading has been read but whose end has not."""

    level: int
    title: str
    slug: str
    path: tuple[str, ...]
    start_line: int
    steps: list[Step] = field(default_factory=list)
    children: list[Section] | None = None
    context: list[CodeBlock] | None = None
    attributes: dict[str, Any] = field(default_factory=dict)

    def freeze(self, end_line: int) -> Section:
        return Section(
            level=self.level,
            title=self.title,
            slug=self.slug,
            path=self.path,
            start_line=self.start_line,
            end_line=end_line,
            steps=tuple(self.steps),
            children=tuple(self.children or ()),
            context=tuple(self.context or ()),
            attributes=self.attributes,
        )


class _Builder:
    """Section tree under construction from block tokens.

    Each section is frozen as soon as the next heading of its level or above
    ends it, so that drafts do not outlive their part of the token stream.
    """

    def __init__(
        self, path: str, line_count: int, deployments: tuple[str, ...] | None = None
    ) -> None:
        self.path = path
        self.line_count = line_count
        #: The front matter's deployment names; None accepts any name in ``when``.
        self.deployments = deployments
        #: The step just added, while no other block has followed it, so that
        #: an output block can still attach to it.
        self.last_step: Step | None = None
        title = os.path.basename(path) or path
        self.root = _Draft(0, title, slugify(title), (), 1)
        self.stack = [self.root]
        self.warnings: list[ParseWarning] = []
        self.titles: Iterator[str] = iter(())
        self.slugs: Iterator[str] = iter(())
        # Inline tokens of the paragraphs since the last code block or heading.
        self.prose: list[Token] = []
        # True until a block other than an HTML comment follows the heading.
        self.takes_annotations = True

    def feed(self, tokens: Sequence[Token]) -> None:
        # Slugs need every title first: a later "Setup 1" reserves setup-1.
        titles = [
            _plain_text(tokens[index + 1].children or []).strip()
            for index, token in enumerate(tokens)
            if token.type == "heading_open"
        ]
        self.titles = iter(titles)
        self.slugs = iter(unique_slugs(titles))

        index = 0
        while index < len(tokens):
            token = tokens[index]
            kind = token.type
            if kind != "fence":
                self.last_step = None
            if kind == "heading_open":
                self.open_section(token)
                index += 3
                continue

            if kind == "html_block":
                self.add_html(token)
            else:
                self.takes_annotations = False

            if kind == "paragraph_open":
                self.add_paragraph(token, tokens[index + 1])
                index += 2
            elif kind == "fence":
                self.add_fence(token)
            elif kind == "code_block":
                self.add_indented_code(token)
            index += 1

    def finish(self) -> tuple[Section, tuple[ParseWarning, ...]]:
        last_line = max(self.line_count, 1)
        self.close_sections(1, last_line)
        warnings = sorted(self.warnings, key=lambda warning: warning.line)
        return self.root.freeze(last_line), tuple(warnings)

    def close_sections(self, level: int, end_line: int) -> None:
        """Freeze the open sections of ``level`` or below, ending at ``end_line``."""
        while self.stack[-1].level >= level:
            section = self.stack.pop().freeze(end_line)
            parent = self.stack[-1]
            if parent.children is None:
                parent.children = []
            parent.children.append(section)

    def warn(self, line: int, message: str) -> None:
        self.warnings.append(ParseWarning(line, message))

    # --- One method per block kind ---

    def open_section(self, heading: Token) -> None:
        start, _ = _lines(heading)
        level = int(heading.tag[1:])
        self.close_sections(level, start - 1)

        title = next(self.titles)
        path = (*self.stack[-1].path, title)
        self.stack.append(_Draft(level, title, next(self.slugs), path, start))
        self.prose.clear()
        self.takes_annotations = True

    def add_paragraph(self, paragraph: Token, inline: Token) -> None:
        self.prose.append(inline)
        if "```" in inline.content or "~~~" in inline.content:
            self.check_backtick_info(paragraph, inline)

    def check_backtick_info(self, paragraph: Token, inline: Token) -> None:
        """Warn about lines that look like backtick fences but are paragraph text.

        CommonMark does not allow a backtick in the info string of a backtick
        fence, so ```` ```bash `x` ```` starts a paragraph instead of a block.
        """
        # A line such as "```ls``` lists files" is an intended code span.
        span_markers = {
            child.markup
            for child in inline.children or []
            if child.type == "code_inline"
        }
        first_line, _ = _lines(paragraph)
        swallowed = False
        for offset, line in enumerate(inline.content.split("\n")):
            text = line.lstrip()
            run = len(text) - len(text.lstrip("`"))
            fence_like = text.startswith("~~~") or (run >= 3 and "`" not in text[run:])
            if offset and fence_like:
                # A fence line after the first line of a paragraph is text
                # (or a multi-line code span); warn once per paragraph.
                if not swallowed:
                    self.warn(first_line + offset, _FENCE_IN_PARAGRAPH)
                swallowed = True
                continue
            if run < 3 or "`" not in text[run:] or "`" * run in span_markers:
                continue
            self.warn(
                first_line + offset,
                "line is not a code fence because its info string contains a "
                "backtick. The lines after it are text, not a step, and the next "
                "line of backticks opens a new block. Remove the backtick or use "
                "a ~~~ fence",
            )

    def add_fence(self, token: Token) -> None:
        start, end = _lines(token)
        if not _fence_is_closed(token):
            where = f"line {end}"
            if end >= self.line_count:
                where = f"the end of the file (line {end})"
            self.warn(
                start,
                f"code fence is not closed, so its block runs to {where}; "
                f"add a closing {token.markup} line after its last line",
            )

        language, rest = split_info_string(token.info)
        language = language.lower()
        previous_step, self.last_step = self.last_step, None
        if language in OUTPUT_LANGUAGES:
            self.add_output(token, language, rest, previous_step)
            return
        if language not in SHELL_LANGUAGES:
            if not language and rest.startswith("{"):
                self.warn(
                    start,
                    "code fence has attributes but no language, so it is not a "
                    "step; write the language first, as in ```bash {name=x}",
                )
            self.add_context(CodeBlock(language, token.content, start, end))
            return

        try:
            attributes = parse_info_attributes(rest, language=language)
        except ValueError as error:
            raise AttributeSyntaxError(self.path, str(error), start) from None
        self.check_deployments(attributes, start, "fence info string")
        self.add_step(token.content, language, start, end, attributes)

    def add_output(
        self, token: Token, language: str, rest: str, step: Step | None
    ) -> None:
        """Attach an output block to the step right before it, or keep it as context."""
        start, end = _lines(token)
        try:
            attributes = parse_info_attributes(rest, output=True, language=language)
        except ValueError as error:
            raise AttributeSyntaxError(self.path, str(error), start) from None
        if step is not None and step.expected_output is not None:
            self.warn(
                start,
                f"{language} block is not the expected output of the console "
                f"block on line {step.start_line}, which already shows its "
                "output; remove one of the two",
            )
            step = None
        if attributes.get("regex"):
            try:
                compile_expected(token.content, regex=True)
            except ExpectedOutputError as error:
                raise AttributeSyntaxError(
                    self.path, str(error), start + error.line
                ) from None
        if step is None:
            self.add_context(CodeBlock(language, token.content, start, end))
            return
        steps = self.stack[-1].steps
        steps[-1] = dataclasses.replace(
            step,
            expected_output=token.content,
            output_line=start,
            output_regex=bool(attributes.get("regex")),
        )

    def check_deployments(
        self, attributes: Mapping[str, Any], line: int, where: str
    ) -> None:
        """Reject a ``when`` name that the front matter's deployments lack."""
        declared = self.deployments
        if declared is None or "when" not in attributes:
            return
        unknown = [name for name in attributes["when"] if name not in declared]
        if unknown:
            names = ", ".join(repr(name) for name in unknown)
            if declared:
                listed = f"declared deployments: {', '.join(declared)}"
            else:
                listed = "no deployments are declared (deployments: [])"
            raise AttributeSyntaxError(
                self.path,
                f"when in the {where} names {names}, which the front matter "
                f"does not declare; {listed}. "
                "Fix the name, or add it to deployments: in the front matter",
                line,
            )

    def inherited_attributes(self) -> dict[str, Any]:
        """Return the attributes the open sections pass on; deeper sections win."""
        inherited: dict[str, Any] = {}
        for draft in self.stack:
            for key, value in draft.attributes.items():
                if key in INHERITED_ATTRIBUTES:
                    inherited[key] = value
        return inherited

    def add_step(
        self,
        code: str,
        language: str,
        start: int,
        end: int,
        attributes: dict[str, Any],
    ) -> None:
        section = self.stack[-1]
        expected_output = None
        output_line = None
        if language == "console":
            found = console_prompt_warnings(code)
            code, console_output = split_console(code)
            if console_output:
                expected_output, output_line = console_output, start
        else:
            found = bash_prompt_warnings(code)
        for offset, message in found:
            self.warn(start + offset, message)

        if not code.strip():
            problem = "console block has no '$ ' command lines"
            if language != "console":
                problem = "shell block is empty"
            self.warn(start, f"{problem}, so its step runs nothing")

        description = "\n\n".join(
            _plain_text(inline.children or [], "\n").strip() for inline in self.prose
        )
        self.prose.clear()
        inherited = self.inherited_attributes()
        step = Step(
            code=code,
            language=language,
            start_line=start,
            end_line=end,
            heading_path=section.path,
            description=description,
            comments=comment_lines(code),
            attributes={**inherited, **attributes} if inherited else attributes,
            expected_output=expected_output,
            own_attributes=attributes,
            output_line=output_line,
        )
        section.steps.append(step)
        self.last_step = step

    def add_indented_code(self, token: Token) -> None:
        start, end = _lines(token)
        first_line = token.content.lstrip().split("\n", 1)[0]
        if first_line.startswith(("```", "~~~")):
            self.warn(
                start,
                "code fence is indented four or more spaces past the text around "
                "it, so it is an indented code block and not a step; indent it "
                "to line up with that text",
            )
        self.add_context(CodeBlock("", token.content, start, end))

    def add_context(self, block: CodeBlock) -> None:
        section = self.stack[-1]
        if section.context is None:
            section.context = []
        section.context.append(block)
        self.prose.clear()

    def check_fence_in_html(self, token: Token, start: int) -> None:
        """Warn about fence lines swallowed by an HTML block such as <details>.

        Fences inside HTML comments are left alone: hiding them is the point.
        """
        for offset, line in enumerate(token.content.split("\n")):
            if line.lstrip().startswith(("```", "~~~")):
                self.warn(start + offset, _FENCE_IN_HTML)

    def add_html(self, token: Token) -> None:
        start, _ = _lines(token)
        try:
            attributes = parse_comment_annotations(token.content)
        except ValueError as error:
            raise AttributeSyntaxError(self.path, str(error), start) from None

        if attributes is None:
            if not token.content.lstrip().startswith("<!--"):
                self.takes_annotations = False
                self.check_fence_in_html(token, start)
            return

        if not self.takes_annotations:
            self.warn(
                start,
                "runbook comment is ignored because it is not directly under a "
                "heading; move it to the lines right after the section's heading",
            )
            return
        if "name" in attributes:
            raise AttributeSyntaxError(
                self.path,
                "name cannot go in a section's runbook comment, because a name "
                "belongs to one step; put it in that step's fence info "
                f"string, as in bash {{name={attributes['name']}}}",
                start,
            )
        self.check_deployments(attributes, start, "runbook comment")
        self.stack[-1].attributes.update(attributes)


_FENCE_IN_PARAGRAPH = (
    "line looks like a code fence but continues the paragraph above it, so it "
    "is text, not a step; put a blank line before it"
)
_FENCE_IN_HTML = (
    "line looks like a code fence but is inside an HTML block, so it is not a "
    "step; put a blank line between the HTML and the fence"
)


def _lines(token: Token) -> tuple[int, int]:
    """Return the 1-based first and last source line of a block token."""
    assert token.map is not None, f"block token {token.type} has no line map"
    return token.map[0] + 1, token.map[1]


def _fence_is_closed(token: Token) -> bool:
    """Check whether a fence has a closing line.

    markdown-it-py (4.3 checked) ends an unclosed fence at the end of its
    container (the file, list item or blockquote) without saying so. A closed
    fence spans its content lines plus the opening and closing fence lines.
    """
    assert token.map is not None
    content = token.content
    content_lines = content.count("\n")
    if content and not content.endswith("\n"):
        content_lines += 1
    return token.map[1] - token.map[0] == content_lines + 2


def _plain_text(children: Sequence[Token], line_break: str = " ") -> str:
    """Render inline tokens as plain text.

    Emphasis and link markup are dropped, inline code and link texts kept,
    images give their alternative text, and inline HTML is removed. Soft line
    breaks become spaces and hard ones ``line_break``.
    """
    parts: list[str] = []
    for child in children:
        kind = child.type
        if kind in ("text", "code_inline", "text_special"):
            parts.append(child.content)
        elif kind == "softbreak":
            parts.append(" ")
        elif kind == "hardbreak":
            parts.append(line_break)
        elif kind == "image":
            parts.append(_plain_text(child.children or [], line_break))
    return "".join(parts)
