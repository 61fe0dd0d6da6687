"""Results files: merging a run into <machine>.json, and RESULTS.md from all of them."""

from __future__ import annotations

import glob
import json
import os

from makemore_jax.store.userfile import write_user_file

from .harness import format_ratio, format_seconds

SCHEMA = 1
KIND_NAMES = {"lecture": "lecture", "best_effort": "PyTorch best effort", "package": "makemore_jax", "probe": "probe"}


def atomic_write_text(path: str, text: str) -> None:
    """Write text (UTF-8) to path atomically, its directory made if missing; a symbolic link is written
    through, and a device, FIFO, socket or work directory's own file is refused (MakemoreError)."""
    write_user_file(path, text.encode("utf-8"), "--out", make_parents=True)


def merge(path: str, header: dict, tasks: dict[str, dict], order: list[str]) -> dict:
    """The results file at path with these tasks replaced (all of them if the setup changed).

    Tasks are kept in `order` (the registry's), any unknown old ones after them.
    """
    record = {"schema": SCHEMA, **header, "tasks": {}}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            old = json.load(f)
        same_setup = all(old.get(k) == record.get(k) for k in ("schema", "machine", "versions", "quick"))
        if same_setup:
            record["tasks"] = old.get("tasks", {})
    record["tasks"].update(tasks)
    rank = {name: i for i, name in enumerate(order)}
    record["tasks"] = dict(sorted(record["tasks"].items(), key=lambda kv: rank.get(kv[0], len(rank))))
    atomic_write_text(path, json.dumps(record, indent=2, ensure_ascii=False, allow_nan=False) + "\n")
    return record


def _speed(c: dict, unit: str) -> str:
    per_s = c["per_second"]
    if per_s is None:
        return "–"
    return f"{per_s:,.0f} {unit}s/s" if per_s >= 10 else f"{per_s:.2f} {unit}s/s"


def _verdict(r: dict) -> str:
    missing = r.get("missing")  # a run without a time: no speed-up, and the target missed
    if r["target"] is None:
        return f"no speed-up: {missing}" if missing else ""
    verdict = f"≥ {r['target']:g}×: " + ("met" if r["met"] else "**missed**")
    return verdict + (f" ({missing})" if missing else "")


BUSY_SHARE = 0.05  # other processes using more than this share of all cores make a run suspect


def _busy_warning(task: dict) -> str:
    """A warning when other work ran during the task: PyTorch's OpenMP threads then wait on each other."""
    share = task.get("machine_load", {}).get("other_processes_cpu_share")
    if share is None or share <= BUSY_SHARE:
        return ""
    return (
        f"**Warning: other processes used {share:.0%} of the machine's CPU time during this task; timings, "
        f"PyTorch's multi-threaded ones most of all, are unreliable.**"
    )


def render_task(name: str, task: dict) -> list[str]:
    unit = task["work_unit"]
    revision = task.get("makemore_jax_revision")
    measured = f" Measured {task['finished']}" + (f" on makemore_jax at {revision}" if revision else "") + "."
    lines = [f"### {task['title']} (`--only {name}`)", "", task["description"] + "." + measured, ""]
    lines += [
        f"| implementation | kind | median | min | max | {unit}s/s | first call |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for c in task["candidates"]:
        per_call = "" if c["work"] == 1 else f" ({c['work']:,} {unit}s)"
        missing = f" — {c['missing']}" if c.get("missing") else ""
        lines.append(
            f"| {c['label']}{per_call}{missing} | {KIND_NAMES[c['kind']]} | {format_seconds(c['median_s'])} | "
            f"{format_seconds(c['min_s'])} | {format_seconds(c['max_s'])} | {_speed(c, unit)} | "
            f"{format_seconds(c['first_call_s'])} |"
        )
    lines += ["", "| speed-up | baseline | × | target |", "|---|---|---:|---|"]
    for r in task["ratios"]:
        lines.append(f"| {r['label']} | {r['baseline']} | {format_ratio(r['speedup'])} | {_verdict(r)} |")
    share = task.get("machine_load", {}).get("other_processes_cpu_share")
    busy = "" if share is None else f" Other processes used {share:.1%} of the CPU time meanwhile."
    lines += [
        "",
        f"Medians of up to {task['rounds']} interleaved rounds; the first call (compilation) is not in them.{busy}",
        "",
    ]
    warning = _busy_warning(task)
    if warning:
        lines += [warning, ""]
    failed = [c for c in task["checks"] if not c["passed"]]
    lines.append(
        f"Checks: {len(task['checks']) - len(failed)}/{len(task['checks'])} passed"
        + ("" if not failed else " — FAILED: " + "; ".join(f"{c['name']} ({c['detail']})" for c in failed))
        + "."
    )
    for c in task["checks"]:
        lines.append(f"- {'ok' if c['passed'] else 'FAILED'}: {c['name']}: {c['detail']}")
    if task["notes"]:
        lines.append("")
        lines += [f"- {n}" for n in task["notes"]]
    lines.append("")
    return lines


def render_machine(record: dict) -> list[str]:
    m, v, t = record["machine"], record["versions"], record["threads"]
    env = ", ".join(f"{k}={val}" for k, val in t["env"].items()) or "none set"
    lines = [
        f"## {m['id']}" + (" (quick run: tiny sizes, not a measurement)" if record.get("quick") else ""),
        "",
        f"- CPU: {m['cpu_model']}, {m['cores']} usable cores, {m['memory_gib']} GiB; {m['platform']}"
        + (f"; GPU: {m['gpu']}" if m.get("gpu") else ""),
        f"- device: {m['device']}; Python {m['python']}; jax {v['jax']}, jaxlib {v['jaxlib']}, torch {v['torch']}, "
        f"numpy {v['numpy']}, optax {v['optax']}, makemore_jax {v['makemore_jax']}",
        f"- threads: torch {t['torch_intra_op']} intra-op / {t['torch_inter_op']} inter-op; {t['xla_cpu']}; "
        f"thread variables: {env}",
        "",
    ]
    for name, task in record["tasks"].items():
        lines += render_task(name, task)
    return lines


def render(results_dir: str) -> str:
    """RESULTS.md text for every <machine>.json in results_dir."""
    lines = [
        "# Benchmark results",
        "",
        "Generated by `python -m benchmarks` from `benchmarks/results/*.json`; do not edit by hand.",
        "Speed-ups compare work per second (steps, names or calls) of medians.",
        "",
    ]
    for path in sorted(glob.glob(os.path.join(results_dir, "*.json"))):
        with open(path, encoding="utf-8") as f:
            lines += render_machine(json.load(f))
    return "\n".join(lines).rstrip() + "\n"
