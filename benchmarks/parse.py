"""Measure what building the playbook model adds to markdown-it-py's parse.

Generates a playbook of N sections, each a heading, a paragraph and a bash
block. Then times markdown-it-py's ``parse`` of the text and ``parse_playbook``
of the same text in one process, alternating between the two. Prints the median
of each and the overhead of ``parse_playbook`` relative to markdown-it-py alone.
``parse_playbook`` includes markdown-it-py's parse, so the overhead is the cost
of building the model.

Run with runbook installed (``scripts/setup``):

    python3 benchmarks/parse.py
    python3 benchmarks/parse.py --sections 2000 --runs 9 --max-overhead 0.5

With ``--max-overhead`` the script exits with status 1 when the overhead is
above that fraction.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable

from markdown_it import MarkdownIt

from runbook.playbook import parse_playbook


def generate_playbook(sections: int) -> str:
    """Return a playbook with ``sections`` level-2 sections under one title."""
    parts = ["# Benchmark playbook\n"]
    for number in range(sections):
        parts.append(
            f"\n## Check service {number}\n\n"
            f"Restart service {number} when its *health check* fails, then look "
            f"at `journalctl` for [errors](https://example.com/{number}).\n\n"
            "```bash {timeout=5}\n"
            f"# restart service {number}\n"
            f"systemctl restart service-{number}\n"
            f'journalctl -u service-{number} --since "-5 min" | tail -n 20\n'
            "```\n"
        )
    return "".join(parts)


def seconds(function: Callable[[], object]) -> float:
    """Return the wall time of one call, starting from a collected heap.

    The garbage collector stays on while the call runs, because its passes over
    the many token objects are part of what parsing costs.
    """
    gc.collect()
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sections",
        type=int,
        default=10_000,
        help="number of sections in the generated playbook (default: 10000)",
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=5,
        help="timed runs of each parser; the median is printed (default: 5)",
    )
    parser.add_argument(
        "--max-overhead",
        type=float,
        help="exit with status 1 when the overhead is above this fraction "
        "(0.5 means 50%%)",
    )
    options = parser.parse_args(argv)

    text = generate_playbook(options.sections)
    line_count = text.count("\n")
    markdown = MarkdownIt("commonmark").enable("table")

    # One untimed call of each, so that imports and caches do not count.
    markdown.parse(text)
    steps = len(parse_playbook(text, "benchmark.md").root.all_steps())
    if steps != options.sections:
        print(f"error: expected {options.sections} steps, parsed {steps}")
        return 1

    # Alternate the two so that both see the same heap and machine load.
    markdown_times = []
    playbook_times = []
    for _ in range(options.runs):
        markdown_times.append(seconds(lambda: markdown.parse(text)))
        playbook_times.append(seconds(lambda: parse_playbook(text, "benchmark.md")))

    markdown_time = statistics.median(markdown_times)
    playbook_time = statistics.median(playbook_times)
    overhead = playbook_time / markdown_time - 1

    print(f"sections:            {options.sections}")
    print(f"lines:               {line_count}")
    print(f"runs (median of):    {options.runs}")
    print(f"markdown-it parse:   {markdown_time * 1000:.1f} ms")
    print(f"parse_playbook:      {playbook_time * 1000:.1f} ms")
    print(f"overhead:            {overhead:.1%}")

    if options.max_overhead is not None and overhead > options.max_overhead:
        print(f"error: overhead is above {options.max_overhead:.0%}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
