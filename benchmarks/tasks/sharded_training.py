"""Task 8: data-parallel training throughput at 1, 2 and 4 devices (simulated on the CPU).

JAX fixes its device count when it starts, so every device count runs in a
process of its own, started with XLA_FLAGS=--xla_force_host_platform_device_count=D
(and JAX_PLATFORMS=cpu). Each trains the Transformer on names.txt with the
package's own path: one device runs the plain ``train_steps.run_steps`` program, D > 1
``distributed.DataParallel`` (the batch split over a ``data`` mesh axis, the
gradients summed by the compiler). The same global batch (32 names at the quick
size, 256 otherwise) is drawn on every device count, so the losses must agree to
float32 rounding.

Simulated devices share this machine's cores: on a 2-core CPU there is nothing
to gain from 4 of them, and the task says so rather than hide it. With
``--device gpu`` one more process runs the one-device program on the GPU, for
the single-GPU figure against the CPU ones. Tokens are the predicted positions
of the padded rows (batch × block_size), the same count for every candidate.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

from ..context import Context
from ..harness import Candidate, Target, TaskResult, Timing, check, format_ratio, register, result

DEVICE_COUNTS = (1, 2, 4)
QUICK_DEVICE_COUNTS = (1, 2)  # --quick: the one-device baseline and one sharded run
SEED = 1337
LOSS_TOLERANCE = 1e-4  # one global batch, summed in another order
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def sizes(quick: bool) -> dict:
    if quick:
        return {"batch": 32, "steps": 3, "repeats": 2, "n_layer": 1, "n_head": 2, "n_embd": 16, "n_embd2": 16}
    return {"batch": 256, "steps": 20, "repeats": 5, "n_layer": 4, "n_head": 4, "n_embd": 64, "n_embd2": 64}


def child(devices: int, platform: str, quick: bool) -> dict:
    """In the child process: compile and time training steps on `devices` devices; a JSON-able record."""
    import jax
    import jax.numpy as jnp

    from makemore_jax.data import words as data
    from makemore_jax.seeding import seed_key
    from makemore_jax.training import parallel as distributed
    from makemore_jax.training import steps as train_steps
    from makemore_jax.training import trainer as train
    from makemore_jax.training.config import TrainConfig

    size = sizes(quick)
    chosen = distributed.select_devices(platform, devices)
    jax.config.update("jax_default_device", chosen[0])
    parallel = distributed.DataParallel.over(chosen) if devices > 1 else None
    cfg = TrainConfig.create(
        "transformer",
        seed=SEED,
        batch_size=size["batch"],
        n_layer=size["n_layer"],
        n_head=size["n_head"],
        n_embd=size["n_embd"],
        n_embd2=size["n_embd2"],
    )
    words = data.read_words(data.bundled_names_path())
    dataset = data.Dataset.build(words, seed_key(cfg.seed, "split"), cfg.split)
    model = train.new_model(cfg, dataset)
    optimizer = train_steps.make_optimizer(cfg)
    params, opt_state = model.params, optimizer.init(model.params)
    keys = {"key": seed_key(cfg.seed, "batches"), "dropout_key": seed_key(cfg.seed, "dropout")}
    if parallel is None:
        tokens, lengths = dataset.padded("train", model.block_size)
        batch = {"tokens": jnp.asarray(tokens), "lengths": jnp.asarray(lengths), **keys}
        loss_fn = train_steps.sequence_loss(model.apply, cfg.l2, cfg.batch_size)
        t0 = time.perf_counter()
        compiled = train_steps.run_steps.lower(loss_fn, optimizer, params, opt_state, batch, 0, size["steps"]).compile()
    else:
        tokens, lengths = parallel.shard_rows(dataset.words["train"], dataset.vocab, model.block_size)
        batch = parallel.place_inputs({"tokens": tokens, "lengths": lengths, **keys})
        loss_fn = train_steps.sequence_loss(
            model.apply, cfg.l2, cfg.batch_size, num_words=len(dataset.words["train"]), place_batch=parallel.place_batch
        )
        params, opt_state = parallel.place_state(params, opt_state)
        t0 = time.perf_counter()
        compiled = parallel.compile_steps(loss_fn, optimizer, params, opt_state, batch, size["steps"])
    compile_s = time.perf_counter() - t0
    times, losses = [], None
    for _ in range(size["repeats"] + 1):  # the first call warms up, untimed
        t0 = time.perf_counter()
        _, _, out = compiled(params, opt_state, batch, 0)
        out = np.asarray(out)
        times.append(time.perf_counter() - t0)
        losses = out.tolist()
    return {
        "devices_seen": len(chosen),
        "platform": chosen[0].platform,
        "times_s": times[1:],
        "compile_s": compile_s,
        "losses": losses,
        "tokens_per_call": size["steps"] * cfg.batch_size * model.block_size,
        "block_size": model.block_size,
    }


def spawn(devices: int, platform: str, quick: bool) -> dict:
    env = dict(os.environ)
    if platform == "cpu":
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}".strip()
        env["JAX_PLATFORMS"] = "cpu"
    cmd = [sys.executable, "-m", "benchmarks.tasks.sharded_training", "--devices", str(devices), "--platform", platform]
    if quick:
        cmd.append("--quick")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"sharded_training child ({devices} {platform} devices) failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def sharded_training(ctx: Context) -> TaskResult:
    size = sizes(ctx.quick)
    runs = [(f"cpu{d}", d, "cpu") for d in (QUICK_DEVICE_COUNTS if ctx.quick else DEVICE_COUNTS)]
    if ctx.device == "gpu":
        runs.append(("gpu1", 1, "gpu"))
    cands, timings, records = [], {}, {}
    for tag, devices, platform in runs:
        rec = spawn(devices, platform, ctx.quick)
        records[tag] = rec
        label = f"{devices} simulated CPU device(s)" if platform == "cpu" else "1 GPU"
        cand = Candidate(
            f"jax_{tag}",
            f"Transformer B={size['batch']}: {label}",
            "jax",
            "package",
            fn=lambda: None,
            work=rec["tokens_per_call"],
            first_call_s=rec["compile_s"],
        )
        cands.append(cand)
        timings[cand.name] = Timing(times_s=rec["times_s"], first_call_s=rec["compile_s"], output=rec["losses"])
        ctx.log(f"  {cand.label:<58} {rec['tokens_per_call'] / np.median(rec['times_s']):>12,.0f} tokens/s")
    base = np.asarray(records["cpu1"]["losses"])
    checks = []
    for tag, devices, platform in runs:
        rec = records[tag]
        checks.append(
            check(
                f"{tag}: the child saw {devices} {platform} device(s)",
                rec["devices_seen"] == devices and rec["platform"] == platform,
                f"{rec['devices_seen']} {rec['platform']} device(s)",
            )
        )
        if tag == "cpu1":
            continue  # the baseline itself
        diff = float(np.max(np.abs(np.asarray(rec["losses"]) - base)))
        checks.append(
            check(
                f"{tag}: losses equal the one-device run's (same global batches)",
                np.isfinite(rec["losses"]).all() and diff < LOSS_TOLERANCE,
                f"max |Δ loss| {diff:.2e} over {len(base)} steps",
            )
        )
    targets = [
        # On a 2-core machine two simulated devices could at best use both cores;
        # whether they do is measured, not assumed.
        Target("2 simulated CPU devices vs 1", "jax_cpu2", ("jax_cpu1",), 1.0),
    ]
    if not ctx.quick:
        targets.append(Target("4 simulated CPU devices vs 1", "jax_cpu4", ("jax_cpu1",)))
    if ctx.device == "gpu":
        targets.append(Target("1 GPU vs 1 CPU device", "jax_gpu1", ("jax_cpu1",)))
    res = result(
        "Data-parallel training (simulated devices)",
        f"tokens/s of Transformer AdamW steps (n_layer/n_head/n_embd/n_embd2 = {size['n_layer']}/{size['n_head']}/"
        f"{size['n_embd']}/{size['n_embd2']}, global batch {size['batch']} names, {size['steps']} steps per call) "
        f"on {', '.join(str(d) for _, d, _ in runs[:-1])} and {runs[-1][1]} devices, each count in its own process",
        "token",
        cands,
        timings,
        targets,
        checks,
        size["repeats"],
        extra={"records": records, "cores": os.cpu_count()},
    )
    res.notes = notes(res, os.cpu_count())
    return res


def notes(res: TaskResult, cores: int | None) -> list[str]:
    per_s = {c["name"]: c["per_second"] for c in res.candidates}
    line = ", ".join(f"{c['label'].split(': ', 1)[1]} {c['per_second']:,.0f} tokens/s" for c in res.candidates)
    speedups = {r["label"]: r["speedup"] for r in res.ratios}
    out = [
        f"Throughput: {line}.",
        f"Simulated devices are slices of one CPU with {cores} core(s): XLA runs each device's share of the step "
        "on the host's threads, and the all-reduce of the gradients is a copy through memory. They show that the "
        "data-parallel program is right (the same losses as one device) and what the partitioning costs, not "
        "what real devices would gain: "
        + " and ".join(
            f"{d} devices ran at {format_ratio(speedups[f'{d} simulated CPU devices vs 1'])}×"
            for d in (2, 4)
            if f"{d} simulated CPU devices vs 1" in speedups
        )
        + " the one-device speed here.",
    ]
    if "jax_gpu1" in per_s:
        out.append(f"One GPU: {format_ratio(per_s['jax_gpu1'] / per_s['jax_cpu1'])}× the one-CPU-device speed.")
    return out


if __name__ != "__main__":  # as a child (python -m), the module is also imported by the package, which registers it
    register("sharded_training")(sharded_training)
else:
    parser = argparse.ArgumentParser(description="one child of the sharded_training task")
    parser.add_argument("--devices", type=int, required=True)
    parser.add_argument("--platform", default="cpu")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, ROOT)
    print(json.dumps(child(args.devices, args.platform, args.quick)))
