"""`python -m benchmarks`: run the tasks, one fresh process each, and write the results.

The parent describes the machine, starts one worker process per task (so that
no task inherits another's caches, threads or compiled code), merges what the
workers report into <out>/<machine>.json and renders the markdown table from
every results file in <out>. It exits 1 if any correctness check failed; a
missed speed target is reported, never an error. ``--quick`` (tiny sizes: it
checks that every task runs and its checks hold, not how fast) runs all the
tasks one after another in a single worker, sparing a process start per task.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile

from .context import BenchmarkError, Context, require_torch
from .harness import format_ratio

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS_DIR = os.path.join(HERE, "results")
RESULTS_MD = os.path.join(HERE, "RESULTS.md")


def build_parser(task_names: list[str]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks", description="makemore_jax against the lecture's PyTorch and PyTorch's best."
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes, seconds per task; results go to a temporary directory unless --out is given",
    )
    p.add_argument(
        "--only",
        action="append",
        choices=task_names,
        metavar="NAME",
        help=f"run only this task (repeatable): {', '.join(task_names)}",
    )
    p.add_argument(
        "--device", choices=("cpu", "gpu"), default="cpu", help="where JAX and PyTorch both run (default cpu)"
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        help="results directory (default benchmarks/results, with the table in benchmarks/RESULTS.md; "
        "any other DIR gets its own RESULTS.md)",
    )
    p.add_argument("--render", action="store_true", help="only regenerate the markdown from the results files")
    p.add_argument("--worker", help=argparse.SUPPRESS)  # task names, comma-separated
    p.add_argument("--result-dir", help=argparse.SUPPRESS)  # where the worker writes <task>.json
    return p


def run_worker(names: list[str], result_dir: str, quick: bool, device: str) -> int:
    """Inside the worker process: run the tasks in turn and write each one's record as <task>.json."""
    from .environment import OtherLoad, package_revision
    from .harness import TASKS

    ctx = Context.create(quick, device, log=lambda s: print(s, flush=True))
    for name in names:
        with OtherLoad() as load:  # other processes on the machine skew every number: say how busy it was
            res = TASKS[name](ctx)
        record = res.to_json()
        record["wall_s"] = load.wall_s
        record["machine_load"] = load.to_json()
        record["makemore_jax_revision"] = package_revision()
        record["finished"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        with open(os.path.join(result_dir, f"{name}.json"), "w", encoding="utf-8") as f:
            json.dump(record, f, allow_nan=False)
    return 0


def spawn(names: list[str], quick: bool, device: str, scratch: str) -> dict[str, dict]:
    """Run the tasks in one worker process; their records by name."""
    cmd = [sys.executable, "-m", "benchmarks", "--worker", ",".join(names), "--result-dir", scratch]
    cmd += ["--device", device, *(["--quick"] if quick else [])]
    proc = subprocess.run(cmd, cwd=os.path.dirname(HERE))
    records = {}
    for name in names:
        result_file = os.path.join(scratch, f"{name}.json")
        if proc.returncode != 0 or not os.path.exists(result_file):
            raise BenchmarkError(f"task {name} failed (worker exit status {proc.returncode}); see its output above")
        with open(result_file, encoding="utf-8") as f:
            records[name] = json.load(f)
    return records


def summarise(name: str, task: dict) -> list[str]:
    lines = [f"{name}: {task['wall_s']:.1f} s"]
    for r in task["ratios"]:
        verdict = "" if r["target"] is None else f"  (target ≥{r['target']:g}×: {'met' if r['met'] else 'MISSED'})"
        lines.append(f"  {r['label']:<44} {format_ratio(r['speedup']):>8}× over {r['baseline']}{verdict}")
    for c in task["checks"]:
        if not c["passed"]:
            lines.append(f"  CHECK FAILED: {c['name']}: {c['detail']}")
    return lines


def main(argv: list[str] | None = None) -> int:
    from . import (
        report,
        tasks,  # noqa: F401  (registers the tasks)
    )
    from .harness import TASKS

    args = build_parser(list(TASKS)).parse_args(argv)
    try:
        if args.worker:
            return run_worker(args.worker.split(","), args.result_dir, args.quick, args.device)
        out = args.out or (tempfile.mkdtemp(prefix="makemore-bench-") if args.quick else RESULTS_DIR)
        markdown = RESULTS_MD if os.path.abspath(out) == RESULTS_DIR else os.path.join(out, "RESULTS.md")
        if args.render:
            report.atomic_write_text(markdown, report.render(out))
            print(f"wrote {markdown}")
            return 0
        require_torch()
        from .environment import describe

        header = {**describe(args.device), "quick": args.quick}
        names = args.only or list(TASKS)
        done = {}
        with tempfile.TemporaryDirectory(prefix="makemore-bench-worker-") as scratch:
            for batch in [names] if args.quick else [[name] for name in names]:
                done.update(spawn(batch, args.quick, args.device, scratch))
        path = os.path.join(out, f"{header['machine']['id']}.json")
        report.merge(path, header, done, list(TASKS))
        report.atomic_write_text(markdown, report.render(out))
    except BenchmarkError as err:
        print(f"benchmarks: error: {err}", file=sys.stderr)
        return 2
    print()
    for name, task in done.items():
        print("\n".join(summarise(name, task)))
    print(f"\nwrote {path}\nwrote {markdown}")
    failed = [c["name"] for t in done.values() for c in t["checks"] if not c["passed"]]
    if failed:
        print(f"benchmarks: {len(failed)} correctness check(s) failed", file=sys.stderr)
        return 1
    return 0
