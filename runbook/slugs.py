"""GitHub-style heading slugs, made unique within one playbook."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

# Characters removed from a lowercased ASCII title.
_ASCII_REMOVED = re.compile(r"[^a-z0-9_\- ]")

# Unicode general categories kept in a slug: letters, marks, decimal and letter
# numbers, and connector punctuation such as "_". github-slugger, which
# reproduces GitHub's anchors, removes the rest except "-" and " " (see its
# script/generate-regex.mjs). It also keeps symbols with the Alphabetic
# property, such as circled letters, which this module removes.
_KEPT_CATEGORIES = frozenset(
    {"Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "Pc"}
)


def slugify(title: str) -> str:
    """Turn a heading's plain text into a GitHub-style anchor slug.

    The title is lowercased, and every character other than a letter, digit,
    mark, connector (``_``), hyphen or space is removed, emoji included. Each
    space becomes ``-``, and runs of spaces are not collapsed, so "docs 🚀" gives
    "docs-".
    """
    lowered = title.lower()
    if lowered.isascii():
        kept = _ASCII_REMOVED.sub("", lowered)
    else:
        kept = "".join(char for char in lowered if _is_slug_char(char))
    return kept.replace(" ", "-")


def _is_slug_char(char: str) -> bool:
    return char in " -" or unicodedata.category(char) in _KEPT_CATEGORIES


def unique_slugs(titles: Iterable[str]) -> list[str]:
    """Return one distinct slug per title, in the order given.

    The first heading with a given slug keeps it. Later ones get ``-1``, ``-2``
    and so on, skipping any suffixed slug that another heading produces by
    itself: "Setup", "Setup 1", "Setup" give ``setup``, ``setup-1``, ``setup-2``.
    """
    bases = [slugify(title) for title in titles]
    reserved = set(bases)
    taken: set[str] = set()
    next_suffix: dict[str, int] = {}
    slugs: list[str] = []

    for base in bases:
        slug = base
        if slug in taken:
            number = next_suffix.get(base, 1)
            slug = f"{base}-{number}"
            while slug in reserved or slug in taken:
                number += 1
                slug = f"{base}-{number}"
            next_suffix[base] = number + 1

        taken.add(slug)
        slugs.append(slug)

    return slugs
