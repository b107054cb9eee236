"""Run every ``bench/bench_*.py`` one after another and summarise.

Each benchmark runs in its own process (with this interpreter) and prints its own
figures; this script only finds them, runs them, and reports which finished, how long
each took and which failed. A benchmark added to ``bench/`` is picked up by its name.

    uv run python bench/run_all.py                       # everything, default sizes
    uv run python bench/run_all.py --only index           # names containing "index"
    uv run python bench/run_all.py --args index="--files 20000 --repeat 3"
    uv run python bench/run_all.py --list
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent


def discover(only: list[str]) -> list[Path]:
    found = sorted(BENCH_DIR.glob("bench_*.py"))
    return [p for p in found if not only or any(o in p.stem for o in only)]


def extra_args(specs: list[str]) -> dict[str, list[str]]:
    """``--args NAME=ARGS``: NAME is matched against the file name like ``--only``."""
    parsed: dict[str, list[str]] = {}
    for spec in specs:
        name, sep, args = spec.partition("=")
        if not sep:
            raise SystemExit(f"--args {spec!r}: expected NAME=ARGS, e.g. index='--files 20000'")
        parsed[name] = shlex.split(args)
    return parsed


def run(script: Path, args: list[str], timeout: float | None) -> tuple[str, float]:
    print(f"\n===== {script.name} {' '.join(args)}".rstrip(), flush=True)
    start = time.perf_counter()
    try:
        code = subprocess.run([sys.executable, str(script), *args], timeout=timeout).returncode
        status = "ok" if code == 0 else f"failed (exit {code})"
    except subprocess.TimeoutExpired:
        status = f"timed out after {timeout:.0f} s"
    return status, time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description="Run every bench/bench_*.py.")
    ap.add_argument("--only", action="append", default=[],
                    help="run only benchmarks whose name contains this (repeatable)")
    ap.add_argument("--args", action="append", default=[], metavar="NAME=ARGS",
                    help="extra arguments for the benchmarks whose name contains NAME")
    ap.add_argument("--timeout", type=float, help="seconds allowed to each benchmark")
    ap.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    opts = ap.parse_args()
    scripts = discover(opts.only)
    if opts.list or not scripts:
        print("\n".join(p.name for p in scripts) or "no benchmark matches")
        return 0 if scripts else 1
    per_bench = extra_args(opts.args)
    results = []
    for script in scripts:
        args = [a for name, extra in per_bench.items() if name in script.stem for a in extra]
        results.append((script.name, *run(script, args, opts.timeout)))
    print("\n===== summary")
    for name, status, seconds in results:
        print(f"  {name:24s} {status:24s} {seconds:7.0f} s")
    return 0 if all(status == "ok" for _, status, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
