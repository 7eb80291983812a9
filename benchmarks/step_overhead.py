"""Per-step overhead of runbook's shell session, against bash baselines.

Runs the same trivial commands four ways in one process, several rounds, and
reports medians:

1. one ``bash -c`` running every command (the floor: no per-step cost at all);
2. one ``bash -c`` process per command (what a runner without a persistent
   shell pays per step);
3. ``BashSession.run`` for each command (the session alone);
4. the full ``Runner`` under ``--yes``: session, transcript record flushed to
   disk, and the plain-text progress lines written to /dev/null.

Target: a step through the runner costs no more than spawning one ``bash -c``
process (ratio 4 / 2 at most 1.0), and under 0.5 ms.

Usage: python benchmarks/step_overhead.py [--steps 200] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runbook.commands import RunRequest, run  # noqa: E402
from runbook.session import BashSession  # noqa: E402

BASH = ["bash", "--noprofile", "--norc"]


def commands(count: int) -> list[str]:
    return [f"n={index}" for index in range(count)]


def time_one_bash(cmds: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run([*BASH, "-c", "\n".join(cmds)], check=True)
    return time.perf_counter() - started


def time_bash_per_step(cmds: list[str]) -> float:
    started = time.perf_counter()
    for cmd in cmds:
        subprocess.run([*BASH, "-c", cmd], check=True)
    return time.perf_counter() - started


def time_session(cmds: list[str]) -> float:
    with BashSession() as session:
        started = time.perf_counter()
        for cmd in cmds:
            outcome = session.run(cmd)
            if outcome.exit_status != 0:
                raise SystemExit(f"step {cmd!r} failed: {outcome}")
        return time.perf_counter() - started


def time_runner(cmds: list[str], workdir: Path) -> float:
    playbook = workdir / "bench.md"
    blocks = "".join(f"```bash\n{cmd}\n```\n\n" for cmd in cmds)
    playbook.write_text(f"# Bench\n\n{blocks}", encoding="utf-8")
    transcript = workdir / "transcript.jsonl"
    transcript.unlink(missing_ok=True)
    request = RunRequest(
        playbook=str(playbook),
        section="Bench",
        assume_yes=True,
        transcript=str(transcript),
        environment={},
    )
    with open(os.devnull, "w") as sink:
        started = time.perf_counter()
        status = run(request, stdout=sink)
        elapsed = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"runner exited with {status}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    cmds = commands(args.steps)
    results: dict[str, list[float]] = {
        "one bash -c, all commands": [],
        "bash -c per step": [],
        "BashSession.run per step": [],
        "Runner --yes per step": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            results["one bash -c, all commands"].append(time_one_bash(cmds))
            results["bash -c per step"].append(time_bash_per_step(cmds))
            results["BashSession.run per step"].append(time_session(cmds))
            results["Runner --yes per step"].append(time_runner(cmds, Path(tmp)))
    per_step = {
        name: statistics.median(values) / args.steps * 1000
        for name, values in results.items()
    }
    print(f"{args.steps} trivial steps, median of {args.rounds} rounds")
    for name, value in per_step.items():
        print(f"  {name:28} {value:8.3f} ms per step")
    spawn = per_step["bash -c per step"]
    session = per_step["BashSession.run per step"]
    runner = per_step["Runner --yes per step"]
    print(f"  session / bash -c spawn      {session / spawn:8.2f}  (target <= 1.0)")
    print(f"  runner / bash -c spawn       {runner / spawn:8.2f}  (target <= 1.0)")
    print(f"  runner per step              {runner:8.3f} ms  (target < 0.5 ms)")


if __name__ == "__main__":
    main()
