"""The benchmark harness, end to end at --quick sizes, so that it cannot rot.

Checks that every task runs, that its correctness checks hold and that the
results have the documented shape. It never asserts a speed.
"""

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "benchmarks")
BIGRAM_TASKS = ("bigram_counts", "bigram_training", "bigram_sampling")
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def _real_results_state():
    """Names, sizes and mtimes of the committed results, to prove a quick run leaves them alone."""
    paths = [os.path.join(BENCH, "RESULTS.md")]
    results = os.path.join(BENCH, "results")
    if os.path.isdir(results):
        paths += [os.path.join(results, name) for name in sorted(os.listdir(results))]
    return {p: (os.stat(p).st_size, os.stat(p).st_mtime_ns) for p in paths if os.path.exists(p)}


@pytest.fixture(scope="module")
def quick_run():
    if importlib.util.find_spec("torch") is None:
        pytest.fail("PyTorch is not installed; the benchmarks need it: pip install torch==2.13.0 (the bench extra)")
    before = _real_results_state()
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick"], cwd=ROOT, capture_output=True, text=True, timeout=900
    )
    written = re.findall(r"^wrote (.+)$", proc.stdout, flags=re.M)
    out_dirs = {os.path.dirname(p) for p in written}
    yield proc, written, before
    for d in out_dirs:
        if os.path.basename(d).startswith("makemore-bench-"):
            shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def record(quick_run):
    proc, written, _ = quick_run
    assert proc.returncode == 0, f"quick benchmark failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    (json_path,) = [p for p in written if p.endswith(".json")]
    with open(json_path, encoding="utf-8") as f:
        return json.load(f)


def test_quick_run_writes_outside_the_committed_results(quick_run, record):
    _, written, before = quick_run
    assert len(written) == 2
    for path in written:
        assert not os.path.abspath(path).startswith(BENCH + os.sep), path
    assert _real_results_state() == before


def test_results_describe_the_machine(record):
    assert record["quick"] is True
    machine = record["machine"]
    assert machine["cores"] >= 1 and machine["cpu_model"] and machine["id"]
    assert set(record["versions"]) >= {"jax", "jaxlib", "torch", "numpy"}
    threads = record["threads"]
    assert isinstance(threads["torch_intra_op"], int) and "XLA" in threads["xla_cpu"]


def test_every_registered_task_ran(record):
    from benchmarks import tasks  # noqa: F401  (registers them)
    from benchmarks.harness import TASKS

    assert list(record["tasks"]) == list(TASKS)
    assert list(TASKS)[:3] == list(BIGRAM_TASKS)


def test_bigram_tasks_compare_lecture_pytorch_and_package(record):
    for name in BIGRAM_TASKS:
        kinds = {c["kind"] for c in record["tasks"][name]["candidates"]}
        assert {"lecture", "best_effort", "package"} <= kinds, name


def test_every_task_has_timings_and_targets(record):
    for name, task in record["tasks"].items():
        assert "package" in {c["kind"] for c in task["candidates"]}, name
        for c in task["candidates"]:
            if c.get("missing"):  # a run without a time (time_to_quality: target not reached) says why
                assert c["median_s"] is None and c["per_second"] is None, (name, c["name"])
                continue
            assert c["repeats"] >= 1
            assert 0 < c["min_s"] <= c["median_s"] <= c["max_s"], (name, c["name"])
        for r in task["ratios"]:
            assert r["baseline"] in {c["name"] for c in task["candidates"]}
            if r.get("missing"):
                assert r["speedup"] is None and r["met"] is (None if r["target"] is None else False)
                continue
            assert r["speedup"] > 0
            assert r["met"] is None if r["target"] is None else isinstance(r["met"], bool)
        assert any(r["target"] is not None for r in task["ratios"]), name
        assert len(task["machine_load"]["load_average_before"]) == 3


def test_every_correctness_check_held(record):
    for name, task in record["tasks"].items():
        assert task["checks"], name
        failed = [c for c in task["checks"] if not c["passed"]]
        assert not failed, (name, failed)


def test_counts_compared_every_implementation(record):
    names = {c["name"] for c in record["tasks"]["bigram_counts"]["candidates"]}
    checked = " ".join(c["name"] for c in record["tasks"]["bigram_counts"]["checks"])
    for n in names - {"lecture_tensor"}:
        assert f"{n} == lecture_tensor" in checked
    assert record["tasks"]["bigram_counts"]["extra"]["floor"]["bytes_read"] > 0


def test_training_losses_agree(record):
    losses = record["tasks"]["bigram_training"]["extra"]["final_losses"]
    assert max(losses.values()) - min(losses.values()) <= 1e-4


def test_model_training_has_a_torch_compile_candidate_or_says_why(record):
    """Each model's torch.compile candidate, or a note saying why it has none (a --quick run compiles none)."""
    task = record["tasks"]["model_training"]
    names = {c["name"] for c in task["candidates"]}
    for tag, info in task["extra"]["models"].items():
        why = info["torch_compile"]["error"]
        if why:
            assert f"torch_compile_{tag}" not in names
            assert any(why in n and tag in n for n in task["notes"]), (tag, why)
            continue
        compiled = next(c for c in task["candidates"] if c["name"] == f"torch_compile_{tag}")
        assert compiled["kind"] == "best_effort" and compiled["first_call_s"] > 0
        assert any(r["baseline"] == f"torch_compile_{tag}" for r in task["ratios"])


def test_time_to_quality_compares_the_same_recipe_and_makemore_jax_own(record):
    task = record["tasks"]["time_to_quality"]
    subjects = {r["subject"]: r for r in task["ratios"]}
    assert subjects["jax_best_recipe"]["baseline"] == "makemore" and subjects["jax_best_recipe"]["target"] == 2.0
    assert {r["baseline"] for r in task["ratios"] if r["subject"] == "jax_run_steps"} == {"makemore", "torch_best"}
    assert set(task["extra"]["runs"]) == {"jax", "torch", "torch_best", "jax_best"}
    for run in task["extra"]["runs"].values():  # a time only where the run reached the target
        assert run["reached"] == (run["dev_nll"] <= task["extra"]["target_nll"])


def test_a_missing_time_gives_no_speedup_and_a_missed_target():
    from benchmarks.harness import Candidate, Target, Timing, format_ratio, result
    from benchmarks.report import render_task

    cands = [Candidate(n, n, "jax", "package", lambda: None) for n in ("fast", "slow", "never")]
    timings = {"fast": Timing([1.0]), "slow": Timing([3.0]), "never": Timing(missing="did not reach 2.00")}
    targets = [
        Target("fast vs slow", "fast", ("slow",), at_least=2.0),
        Target("fast vs never", "fast", ("never",), at_least=2.0),
        Target("never vs slow", "never", ("slow",)),
        Target("fast vs the fastest that finished", "fast", ("never", "slow")),
    ]
    res = result("t", "d", "run", cands, timings, targets, [], 1)
    assert res.candidate("never")["median_s"] is None and res.candidate("never")["missing"] == "did not reach 2.00"
    assert res.ratio("fast vs slow")["speedup"] == 3.0 and res.ratio("fast vs slow")["met"] is True
    assert res.ratio("fast vs never")["speedup"] is None and res.ratio("fast vs never")["met"] is False
    assert res.ratio("never vs slow")["speedup"] is None and res.ratio("never vs slow")["met"] is None
    assert res.ratio("fast vs the fastest that finished")["baseline"] == "slow"
    text = "\n".join(render_task("t", {**json.loads(json.dumps(res.to_json())), "finished": "now"}))
    assert "did not reach 2.00" in text and "**missed**" in text
    assert format_ratio(None) == "–"


def test_markdown_lists_every_task(quick_run, record):
    _, written, _ = quick_run
    (md_path,) = [p for p in written if p.endswith(".md")]
    with open(md_path, encoding="utf-8") as f:
        text = f.read()
    for name in record["tasks"]:
        assert f"--only {name}" in text
    assert "quick run" in text


def test_schedule_spreads_slow_candidates_over_the_rounds():
    from benchmarks.harness import schedule

    assert schedule(30, 30) == list(range(30))
    assert schedule(3, 30) == [9, 19, 29]
    assert len(schedule(50, 30)) == 30


def test_ks_statistic_tells_equal_from_shifted_lengths():
    from benchmarks.tasks.bigram_sampling import ks_two_sample

    rng = np.random.default_rng(0)
    a, b = rng.poisson(6, 5000), rng.poisson(6, 5000)
    assert ks_two_sample(a, b)[1] > 0.01
    assert ks_two_sample(a, b + 1)[1] < 1e-6
