"""The incident-response playbook as tests: serial against ``-j 2``, in one run.

Runs ``runbook test PLAYBOOK --format json`` twice, first with ``--jobs 1``
and then with ``--jobs N`` (default 2), each as a child process with the
image already built, and prints:

1. the wall time of each whole run, and the speed-up;
2. per case (a section with one scenario): its result and seconds in each
   run, how long the sandbox took to get ready (container start, the fault
   and its proof), and the container's start to healthy alone.

The ready and healthy figures come from the JSON report: ``prepare_seconds``
is the time from the case's start to its transcript's first record, and
``container_ready_seconds`` is the sandbox record's ``ready_seconds``. The
results do not change the exit status: pending or failing scenarios are
timed like the others.

Usage: python benchmarks/suite.py [--playbook FILE] [--jobs 2] [--keep-transcripts]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def run_suite(
    playbook: str, jobs: int, transcripts: Path
) -> tuple[float, dict[str, Any]]:
    """Run ``runbook test`` once; return its wall time and its JSON report."""
    command = [
        sys.executable, "-m", "runbook", "test", playbook, "--jobs", str(jobs),
        "--format", "json", "--no-require-scenarios",
        "--transcripts", str(transcripts),
    ]  # fmt: skip
    started = time.monotonic()
    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=1800, check=False
    )
    seconds = time.monotonic() - started
    if result.returncode not in (0, 1) or not result.stdout.strip():
        sys.exit(
            f"{' '.join(command)} exited with {result.returncode}:\n{result.stderr}"
        )
    return seconds, json.loads(result.stdout)


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--playbook", default="playbooks/incident-response.md")
    parser.add_argument("--jobs", type=int, default=2, help="the parallel run's -j")
    parser.add_argument(
        "--keep-transcripts", action="store_true", help="print and keep their folder"
    )
    options = parser.parse_args()
    os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
    subprocess.run(
        [sys.executable, "-m", "runbook.sandbox", "build"], cwd=ROOT, check=True
    )
    folder = Path(tempfile.mkdtemp(prefix="runbook-suite-"))
    serial_seconds, serial = run_suite(options.playbook, 1, folder / "serial")
    parallel_seconds, parallel = run_suite(
        options.playbook, options.jobs, folder / "parallel"
    )
    print(f"cpus: {os.cpu_count()}, cases: {len(serial['cases'])}")
    print(f"serial (-j 1): {serial_seconds:.1f} s wall")
    print(
        f"parallel (-j {options.jobs}): {parallel_seconds:.1f} s wall, "
        f"{serial_seconds / parallel_seconds:.2f}x faster"
    )
    by_id = {case["node_id"]: case for case in parallel["cases"]}
    print()
    print(
        "| case | result | -j 1 s | ready s | healthy s "
        f"| -j {options.jobs} s | ready s | healthy s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for case in serial["cases"]:
        other = by_id.get(case["node_id"], {})
        print(
            f"| {case['node_id']} | {case['status']} | {fmt(case['seconds'])} "
            f"| {fmt(case['prepare_seconds'])} "
            f"| {fmt(case['container_ready_seconds'])} "
            f"| {fmt(other.get('seconds'))} | {fmt(other.get('prepare_seconds'))} "
            f"| {fmt(other.get('container_ready_seconds'))} |"
        )
    for name, report in (("-j 1", serial), (f"-j {options.jobs}", parallel)):
        cases = report["cases"]
        total = sum(case["seconds"] for case in cases)
        ready = sum(case["prepare_seconds"] or 0 for case in cases)
        healthy = sum(case["container_ready_seconds"] or 0 for case in cases)
        print(
            f"{name}: cases sum to {total:.1f} s; sandbox ready {ready:.1f} s "
            f"({ready / total:.0%}), of which start to healthy {healthy:.1f} s "
            f"({healthy / total:.0%})"
        )
    if options.keep_transcripts:
        print(f"transcripts: {folder}")
    else:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
