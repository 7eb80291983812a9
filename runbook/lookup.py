"""Find one section of a playbook by title, slug or heading path."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from runbook.errors import AmbiguousSection, SectionNotFound

if TYPE_CHECKING:
    from runbook.model import Section

_Rule = Callable[["Section"], bool]


def find_section(sections: Sequence[Section], query: str) -> Section:
    """Return the one section in ``sections`` that ``query`` names.

    The rules are tried in order: exact title, case-insensitive title, slug,
    heading path, case-insensitive suffix of the title, then case-insensitive
    substring of the title. The first rule that matches exactly one section
    wins. A rule that matches several raises AmbiguousSection, and no match
    raises SectionNotFound with up to three of the closest titles.

    A heading path such as ``Parent/Child`` matches the end of a section's
    path, segment by segment, first by exact and then by case-insensitive
    title. A leading ``/`` anchors it at the top level. A title that contains
    ``/`` can be found by title, by substring and as part of a path.
    """
    text = query.strip()
    if not text:
        raise SectionNotFound(query)

    for rule in _rules(text):
        matches = [section for section in sections if rule(section)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise AmbiguousSection(query, [describe_section(s) for s in matches])

    raise SectionNotFound(query, _closest_titles(sections, text))


def describe_section(section: Section) -> str:
    """Return the section's heading path joined with " / ", and its line."""
    return f"{' / '.join(section.path)} (line {section.start_line})"


def _rules(text: str) -> list[_Rule]:
    folded = text.casefold()
    lowered = text.lower()
    rules: list[_Rule] = [
        lambda s: s.title == text,
        lambda s: s.title.casefold() == folded,
        lambda s: s.slug == lowered,
    ]

    if "/" in text:
        anchored = text.startswith("/")
        segments = _split_path(text)
        folded_segments = [segment.casefold() for segment in segments]
        if all(segments):
            rules.append(lambda s: _path_matches(s, segments, anchored, str))
            rules.append(
                lambda s: _path_matches(s, folded_segments, anchored, str.casefold)
            )

    rules.append(lambda s: s.title.casefold().endswith(folded))
    rules.append(lambda s: folded in s.title.casefold())
    return rules


def _split_path(text: str) -> list[str]:
    return [segment.strip() for segment in text.strip("/").split("/")]


def _path_matches(
    section: Section,
    segments: list[str],
    anchored: bool,
    normalize: Callable[[str], str],
) -> bool:
    """Check whether ``segments`` spell the end of the section's heading path.

    A title that contains ``/`` ("Node Down / Unresponsive") spans several
    segments, so titles are split the same way and the match must start at the
    first segment of a title.
    """
    flat: list[str] = []
    title_starts: set[int] = set()
    for title in section.path:
        title_starts.add(len(flat))
        flat.extend(normalize(part) for part in _split_path(title))

    start = len(flat) - len(segments)
    if start < 0 or start not in title_starts:
        return False
    if anchored and start != 0:
        return False
    return flat[start:] == segments


def _closest_titles(sections: Sequence[Section], text: str) -> list[str]:
    by_folded: dict[str, str] = {}
    for section in sections:
        by_folded.setdefault(section.title.casefold(), section.title)

    close = difflib.get_close_matches(text.casefold(), by_folded, n=3, cutoff=0.5)
    return [by_folded[folded] for folded in close]
