"""Start-up time and peak memory of ``runbook --help``, against Python baselines.

Each command runs in a fresh process, many times, alternating with the
baselines so that machine load hits all of them alike. Reports the median
wall time and the peak resident set size (ru_maxrss) of each:

- ``python -c pass``: the interpreter alone;
- ``python -c "import click"``: the one import the CLI cannot avoid;
- ``runbook --help``: the installed console script.

Targets: ``runbook --help`` under 70 ms and under 25 MB peak RSS, and at most
1.3 times the ``import click`` baseline.

Usage: python benchmarks/startup.py [--runs 30]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

# Time and ru_maxrss of one child, measured by a small wrapper process so that
# RUSAGE_CHILDREN covers exactly that child.
_PROBE = """
import json, resource, subprocess, sys, time
started = time.perf_counter()
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True)
elapsed = time.perf_counter() - started
peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps([elapsed, peak_kb]))
"""


def console_script() -> str:
    """Return the real ``runbook`` script beside this interpreter, not a shim."""
    beside = Path(sys.executable).with_name("runbook")
    if beside.exists():
        return str(beside)
    found = shutil.which("runbook")
    if not found:
        raise SystemExit("runbook is not installed: run scripts/setup first")
    return found


def measure(command: list[str]) -> tuple[float, int]:
    output = subprocess.run(
        [sys.executable, "-S", "-c", _PROBE, *command],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    elapsed, peak_kb = json.loads(output)
    return elapsed, peak_kb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "python -c 'import click'": [sys.executable, "-c", "import click"],
        "runbook --help": [console_script(), "--help"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    peaks: dict[str, list[int]] = {name: [] for name in commands}
    for _ in range(args.runs):
        for name, command in commands.items():
            elapsed, peak_kb = measure(command)
            times[name].append(elapsed * 1000)
            peaks[name].append(peak_kb)
    print(f"median of {args.runs} runs each, interleaved")
    for name in commands:
        print(
            f"  {name:26} {statistics.median(times[name]):7.1f} ms"
            f"  {max(peaks[name]) / 1024:6.1f} MB peak RSS"
        )
    help_ms = statistics.median(times["runbook --help"])
    click_ms = statistics.median(times["python -c 'import click'"])
    help_mb = max(peaks["runbook --help"]) / 1024
    print(
        f"  runbook --help / import click  {help_ms / click_ms:5.2f}  (target <= 1.3)"
    )
    print(f"  runbook --help                 {help_ms:5.1f} ms (target < 70 ms)")
    print(f"  runbook --help peak RSS        {help_mb:5.1f} MB (target < 25 MB)")


if __name__ == "__main__":
    main()
