"""Find one section of a playbook by title, slug or heading path."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from runbook.errors import AmbiguousSection, SectionNotFound

if TYPE_CHECKING:
    from runbook.model import Section

_Rule = Callable[["Section"], bool]


def find_section(sections: Sequence[Section], query: str) -> Section:
    """Return the one section in ``sections`` that ``query`` names.

    The rules are tried in order: exact title, case-insensitive title, slug,
    then case-insensitive substring of the title. The first rule that matches
    exactly one section wins. A rule that matches several raises
    AmbiguousSection, and no match raises SectionNotFound with up to three of
    the closest titles. There is no separate suffix rule: "failover" must not
    silently pick "Database failover" when "Database failover rollback"
    contains it too.

    A query with ``/`` that is not a title or slug is a heading path such as
    ``Storage Full/Recovery``, tried before the substring rule.
    Each segment is matched by the same rules. The first segment is looked up
    among all sections, or among top-level sections after a leading ``/``.
    Each later segment is looked up among the children of the section that
    the previous segment matched, and among all its descendants when no child
    leads to a match. When a segment matches several sections, only those
    below which the rest of the path matches are kept, so AmbiguousSection
    lists the sections that the whole path matches. A title that contains
    ``/`` ("Node Down / Unresponsive") may span several segments, and the
    longer title is tried first.
    """
    text = query.strip()
    if not text:
        raise SectionNotFound(query)

    rules = _rules(text, _title)
    whole_title_rules, partial_title_rules = rules[:3], rules[3:]
    found = _match_one(sections, whole_title_rules, query)
    if found is None and "/" in text:
        matches = _PathLookup(sections, text).matches()
        if len(matches) > 1:
            raise AmbiguousSection(query, [describe_section(s) for s in matches])
        found = matches[0] if matches else None
    if found is None:
        found = _match_one(sections, partial_title_rules, query)
    if found is None:
        raise SectionNotFound(query, _closest_titles(sections, text))
    return found


def describe_section(section: Section) -> str:
    """Return the section's heading path joined with " / ", its line and slug."""
    return f"{' / '.join(section.path)} (line {section.start_line}, #{section.slug})"


def _title(section: Section) -> str:
    return section.title


def _spaced_title(section: Section) -> str:
    """Return the title with one space on each side of every ``/``."""
    return " / ".join(part.strip() for part in section.title.split("/"))


def _rules(text: str, title: Callable[[Section], str]) -> list[_Rule]:
    """Return the four rules, from exact title to substring, on ``title(section)``.

    The first three compare the whole title or the slug, the last a part.
    """
    folded = text.casefold()
    lowered = text.lower()
    return [
        lambda s: title(s) == text,
        lambda s: title(s).casefold() == folded,
        lambda s: s.slug == lowered,
        lambda s: folded in title(s).casefold(),
    ]


def _match_one(
    sections: Sequence[Section], rules: list[_Rule], query: str
) -> Section | None:
    """Return the section that the first rule with a match matches, or None."""
    for rule in rules:
        matches = [section for section in sections if rule(section)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise AmbiguousSection(query, [describe_section(s) for s in matches])
    return None


class _PathLookup:
    """Match a heading path such as ``Storage Full/Recovery`` segment by segment."""

    def __init__(self, sections: Sequence[Section], text: str) -> None:
        self.segments = [segment.strip() for segment in text.strip("/").split("/")]
        if text.startswith("/"):
            self.first_candidates = [s for s in sections if len(s.path) == 1]
        else:
            self.first_candidates = list(sections)
        # A title with n slashes spans at most n + 1 segments, so no path
        # longer than the deepest heading path times that can match.
        self.widest = 1 + max((s.title.count("/") for s in sections), default=0)
        deepest = max((len(s.path) for s in sections), default=0)
        self.longest = deepest * self.widest
        self.memo: dict[tuple[int, int], list[Section]] = {}

    def matches(self) -> list[Section]:
        """Return every section that the whole path matches by the first rules."""
        if not all(self.segments) or len(self.segments) > self.longest:
            return []
        return self._match_from(0, None)

    def _match_from(self, start: int, parent: Section | None) -> list[Section]:
        """Return the sections that ``segments[start:]`` name below ``parent``."""
        key = (start, id(parent))
        if key not in self.memo:
            self.memo[key] = self._search(start, parent)
        return self.memo[key]

    def _search(self, start: int, parent: Section | None) -> list[Section]:
        remaining = len(self.segments) - start
        for width in range(min(self.widest, remaining), 0, -1):
            segment = " / ".join(self.segments[start : start + width])
            for candidates in self._candidate_groups(parent, segment):
                if start + width == len(self.segments):
                    return candidates
                found: list[Section] = []
                for candidate in candidates:
                    for section in self._match_from(start + width, candidate):
                        if all(section is not other for other in found):
                            found.append(section)
                if found:
                    return found
        return []

    def _candidate_groups(
        self, parent: Section | None, segment: str
    ) -> Iterator[list[Section]]:
        """Yield the non-empty matches of each rule, from the strictest.

        Below a parent, the rules run over its children first and then over
        all its descendants.
        """
        rules = _rules(segment, _spaced_title)
        if parent is None:
            pools = [self.first_candidates]
        else:
            descendants = [s for child in parent.children for s in child.walk()]
            pools = [list(parent.children), descendants]
        for pool in pools:
            for rule in rules:
                matches = [section for section in pool if rule(section)]
                if matches:
                    yield matches


def _closest_titles(sections: Sequence[Section], text: str) -> list[str]:
    by_folded: dict[str, str] = {}
    for section in sections:
        by_folded.setdefault(section.title.casefold(), section.title)

    close = difflib.get_close_matches(text.casefold(), by_folded, n=3, cutoff=0.5)
    return [by_folded[folded] for folded in close]
