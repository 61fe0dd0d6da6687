"""Data-parallel training and sharded counting over several simulated CPU devices.

JAX fixes its device count when it starts, so everything that needs four
devices runs in a child process started with
XLA_FLAGS=--xla_force_host_platform_device_count=4 (``python
tests/test_training_parallel.py worker`` runs the checks and prints their results as
JSON); the rest of the suite keeps its single device.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMES = os.path.join(ROOT, "names.txt")
FOUR_DEVICES = "--xla_force_host_platform_device_count=4"
TOLERANCE = 2e-5  # float32: the sharded sums add in another order


def env_with_devices(flag: str = FOUR_DEVICES) -> dict:
    """This process's environment (with the suite's compile flags, see conftest) plus the device flag."""
    flags = f"{os.environ.get('XLA_FLAGS', '')} {flag}".strip()
    return {**os.environ, "PYTHONPATH": ROOT, "XLA_FLAGS": flags, "JAX_PLATFORMS": "cpu"}


def makemore(*args, flag=FOUR_DEVICES, timeout=120):
    proc = subprocess.run(
        [sys.executable, "-m", "makemore_jax", *args],
        capture_output=True,
        text=True,
        env=env_with_devices(flag),
        cwd=ROOT,
        timeout=timeout,
    )
    return proc.returncode, proc.stdout, proc.stderr


# ---- the child process -------------------------------------------------------------------


def family(kind, **kw):
    from makemore_jax.training.config import TrainConfig

    base = dict(
        optimizer="adamw",
        lr=1e-2,
        batch_size=16,
        steps=20,
        eval_every=20,
        log_every=10,
        n_layer=1,
        n_head=2,
        n_embd=8,
        n_embd2=16,
    )
    return TrainConfig.create(kind, **{**base, **kw})


def worker() -> dict:
    import jax

    from makemore_jax.data import words as data
    from makemore_jax.models import counts, ngram
    from makemore_jax.seeding import seed_key
    from makemore_jax.training import parallel as distributed
    from makemore_jax.training import steps as train_steps
    from makemore_jax.training import trainer as train

    from conftest import fit_words  # the tests' folder is this script's: first on its path

    devices = jax.devices()
    assert len(devices) == 4, devices
    words = data.read_words(NAMES)
    small = words[:3001]  # 2,401 training words: the rows do not split evenly over 2 or 4 devices
    on = {d: distributed.DataParallel.over(devices[:d]) for d in (2, 3, 4)}
    out = {"device_count": len(devices)}

    def max_diff(a, b):
        return max(
            (
                float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
                for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b))
            ),
            default=0.0,
        )

    # training: the same global batches on 1, 2 and 4 devices
    # SGD for the Transformer: AdamW divides by sqrt(v), which turns rounding noise in a near-zero
    # gradient into a full-size step (its moments and losses still agree to 1e-8; see the MLP's)
    layouts = {"2": on[2], "4": on[4], "4_shard_params": distributed.DataParallel.over(devices, shard_params=True)}
    runs = {
        # data-parallel steps run padded rows, and dropout masks are drawn in the layout used:
        # compare padded with padded
        "transformer_dropout": (
            family(
                "transformer", dropout=0.1, optimizer="sgd", lr=0.5, steps=10, eval_every=10, log_every=5, pack=False
            ),
            ("4", "4_shard_params"),
        ),
        "mlp_all_words": (family("mlp", batch_size=0, steps=6, eval_every=6, log_every=3), ("2",)),
        "bigram_full_batch": (family("bigram", optimizer="sgd", lr=10.0, batch_size=0), ("4",)),
    }
    out["train"] = {}
    for name, (cfg, labels) in runs.items():
        one, state1, _ = fit_words(small, cfg)
        row = {"changed": max_diff(one.params, jax.tree.map(lambda x: 0 * x, one.params))}
        for label in labels:
            many, state, _ = fit_words(small, cfg, parallel=layouts[label])
            row[label] = {
                "params": max_diff(one.params, many.params),
                "opt_state": max_diff(state1.opt_state, state.opt_state),
                "losses": max(abs(a["loss"] - b["loss"]) for a, b in zip(state1.history, state.history)),
            }
        out["train"][name] = row

    # the compiled step of 4 devices sums over them (the gradients) and holds a quarter batch each
    cfg = family("mlp")
    dataset = data.Dataset.build(small, seed_key(cfg.seed, "split"), cfg.split)
    mlp = train.new_model(cfg, dataset)
    optimizer = train_steps.make_optimizer(cfg)
    params, opt_state = on[4].place_state(mlp.params, optimizer.init(mlp.params))
    loss_fn, batch = train._loss_and_data(mlp, dataset, on[4])
    batch = on[4].place_inputs(batch)
    step_text = on[4].compile_steps(loss_fn, optimizer, params, opt_state, batch, 1).as_text()
    out["step_has_all_reduce"] = "all-reduce" in step_text
    out["token_rows_per_device"] = [s.data.shape[0] for s in batch["tokens"].addressable_shards]
    out["train_words"] = len(dataset.words["train"])

    # counting: each device its share, the tables summed, equal to one device's table
    xs, ys = data.bigram_pairs(words, data.Vocabulary.from_words(words))
    V = data.Vocabulary.from_words(words).size
    single = np.asarray(counts.count_matrix(xs, ys, V))
    out["counts"] = {
        str(d): bool(np.array_equal(single, np.asarray(distributed.count_matrix(xs, ys, V, on[d])))) for d in (2, 3, 4)
    }
    out["counts_total"] = int(single.sum())
    flat = np.asarray(xs, np.int64) * V + ys
    parts = on[4].sharding(distributed.DATA_AXIS, None)
    placed = np.full((4, -(-len(flat) // 4)), V * V, np.int32)
    placed.reshape(-1)[: len(flat)] = flat
    text = distributed._summed_tables.lower(placed, V * V, parts, on[4].sharding()).compile().as_text()
    out["count_has_all_reduce"] = "all-reduce" in text
    vocab = data.Vocabulary.from_words(words)
    rows = ngram.words_to_ngrams(words, vocab, 3)
    out["ngram3"] = bool(ngram.count_ngram_rows(rows, V) == distributed.count_ngram_rows(rows, V, on[4]))

    return out


# ---- the tests ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def four():
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "worker"],
        capture_output=True,
        text=True,
        env=env_with_devices(),
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_child_sees_four_devices(four):
    assert four["device_count"] == 4


@pytest.mark.parametrize("run", ["transformer_dropout", "mlp_all_words", "bigram_full_batch"])
def test_data_parallel_training_equals_one_device(four, run):
    row = four["train"][run]
    assert row["changed"] > 1e-3  # the runs trained: equality is not of untouched parameters
    layouts = [k for k in row if k != "changed"]
    assert layouts
    for layout in layouts:
        assert row[layout]["params"] < TOLERANCE, (layout, row[layout])
        assert row[layout]["opt_state"] < TOLERANCE, (layout, row[layout])
        assert row[layout]["losses"] < TOLERANCE, (layout, row[layout])


def test_the_compiler_splits_the_batch_and_sums_the_gradients(four):
    assert four["step_has_all_reduce"]
    n = four["train_words"]
    assert four["token_rows_per_device"] == [-(-n // 4)] * 4


def test_sharded_counts_equal_one_device_counts_exactly(four):
    assert four["counts"] == {"2": True, "3": True, "4": True}
    assert four["counts_total"] == 228146
    assert four["count_has_all_reduce"]
    assert four["ngram3"]


# ---- the command -------------------------------------------------------------------------


def test_batch_that_does_not_divide_among_the_devices_is_one_line_and_exit_2(tmp_path):
    work = tmp_path / "w"
    code, _, err = makemore("train", "-o", str(work), "--type", "mlp", "--batch-size", "30", timeout=60)
    assert code == 2, err
    assert err.strip() == (
        "makemore train: error: batch size 30 does not divide among 4 devices: use a multiple of 4, or fewer --devices"
    )
    assert not work.exists()  # refused before anything was written


@pytest.mark.parametrize(
    "args,message",
    [
        (["--devices", "64"], "--devices 64: this process sees only"),
        (["--device", "tpu"], "--device tpu: JAX has no tpu device here"),
        (["--coordinator", "localhost:1234"], "coordinator, num_processes and process_id go together"),
        (
            ["--coordinator", "localhost", "--num-processes", "2", "--process-id", "0"],
            "--coordinator must be HOST:PORT",
        ),
        (["--coordinator", "localhost:1", "--num-processes", "2", "--process-id", "2"], "--process-id must be in 0..1"),
        (["--devices", "0"], "--devices: must be an integer >= 1"),
    ],
)
def test_bad_device_settings_are_one_line_and_exit_2(tmp_path, capsys, args, message):
    from makemore_jax.cli.commands import main

    work = tmp_path / "w"
    try:
        code = main(["train", "-o", str(work), "--steps", "1", *args])
    except SystemExit as stop:
        code = stop.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and message in err, err
    assert not work.exists()


@pytest.mark.parametrize("command", ["sample", "eval", "tune", "mix"])
def test_other_commands_take_a_device_kind_too(tmp_path, capsys, command):
    from makemore_jax.cli.commands import build_parser, main

    assert (
        build_parser()
        .parse_args(
            [command, "--device", "cpu"]
            + (["a", "b"] if command == "mix" else [])
            + (["--type", "ngram"] if command == "tune" else [])
        )
        .device
        == "cpu"
    )
    code = main(
        [command, "-o", str(tmp_path / "none"), "--device", "tpu"]
        + (["a", "b"] if command == "mix" else [])
        + (["--type", "ngram"] if command == "tune" else [])
    )
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--device tpu: JAX has no tpu device here" in err, err


def test_sample_runs_on_the_device_it_is_given(tmp_path, capsys):
    from makemore_jax.cli.commands import main

    work = str(tmp_path / "w")
    assert main(["train", "-o", work, "--type", "counts", "--num-samples", "0", "-q"]) == 0
    capsys.readouterr()
    assert main(["sample", "-o", work, "-n", "5", "--no-report"]) == 0
    default = capsys.readouterr().out
    assert main(["sample", "-o", work, "-n", "5", "--no-report", "--device", "cpu"]) == 0
    assert capsys.readouterr().out == default and len(default.split()) == 5


def _last_params(workdir):
    from makemore_jax.store import checkpoint

    return checkpoint.flatten_params(checkpoint.load(str(workdir), "last").fitted.params)


TRAIN = [
    "--type",
    "mlp",
    "--steps",
    "20",
    "--batch-size",
    "16",
    "--eval-every",
    "20",
    "--n-embd",
    "8",
    "--n-embd2",
    "16",
    "--num-samples",
    "0",
    "-q",
]


@pytest.fixture(scope="module")
def one_device_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("one") / "w"
    code, _, err = makemore("train", "-o", str(work), *TRAIN, "--devices", "1")
    assert code == 0, err
    return _last_params(work)


def test_cli_trains_on_four_devices_like_on_one(tmp_path, one_device_run):
    code, _, err = makemore("train", "-o", str(tmp_path / "w"), *TRAIN, "--shard-params")
    assert code == 0, err
    many = _last_params(tmp_path / "w")
    assert many.keys() == one_device_run.keys()
    for name, value in one_device_run.items():
        np.testing.assert_allclose(many[name], value, atol=TOLERANCE, rtol=0, err_msg=name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def two_processes(tmp_path, *args, timeout=120):
    """`makemore train ARGS` as two processes of two CPU devices each, joined on 127.0.0.1: [(code, out, err)]."""
    coordinator = f"127.0.0.1:{_free_port()}"
    procs = []
    for pid in (0, 1):
        cmd = [
            sys.executable,
            "-m",
            "makemore_jax",
            "train",
            "-o",
            str(tmp_path / f"w{pid}"),
            *args,
            "--coordinator",
            coordinator,
            "--num-processes",
            "2",
            "--process-id",
            str(pid),
        ]
        procs.append(
            subprocess.Popen(
                cmd,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env_with_devices("--xla_force_host_platform_device_count=2"),
                cwd=ROOT,
            )
        )
    results = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=timeout)
            results.append((p.returncode, out, err))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return results


def parsed_parts(results) -> list[tuple[int, int]]:
    """(words parsed, of how many) from each process's 'process I: parsed A of the N words' line."""
    import re

    parts = []
    for pid, (_, out, _) in enumerate(results):
        found = re.search(rf"^process {pid}: parsed ([\d,]+) of the ([\d,]+) words", out, re.M)
        assert found, out
        parts.append(tuple(int(g.replace(",", "")) for g in found.groups()))
    return parts


def test_two_processes_on_loopback_train_like_one_device(tmp_path, one_device_run):
    """Two processes of two CPU devices each, joined by jax.distributed (gloo collectives on CPU)."""
    results = two_processes(tmp_path, *TRAIN)
    for code, _out, err in results:
        assert code == 0, err[-3000:]
    assert "process 1: trained to step 20" in results[1][1]
    assert not (tmp_path / "w1").exists()  # process 0 alone writes
    # each process parsed its own part of names.txt, and the parts make the whole list
    (mine, total), (theirs, total1) = parsed_parts(results)
    assert total == total1 == 32033 and mine + theirs == total and 0 < mine < total
    many = _last_params(tmp_path / "w0")
    for name, value in one_device_run.items():
        np.testing.assert_allclose(many[name], value, atol=TOLERANCE, rtol=0, err_msg=name)


@pytest.mark.parametrize("model", [["counts"], ["ngram", "--order", "5"]])  # a V×V count table; a sparse n-gram table
def test_two_processes_count_the_table_of_one_process_exactly(tmp_path, model):
    from makemore_jax.store import checkpoint

    args = ["--type", *model, "--num-samples", "0", "-q"]
    results = two_processes(tmp_path, *args)
    for code, _, err in results:
        assert code == 0, err[-3000:]
    (mine, total), (theirs, _) = parsed_parts(results)
    assert mine + theirs == total and 0 < mine < total
    code, _, err = makemore("train", "-o", str(tmp_path / "one"), *args, "--devices", "1", flag="")
    assert code == 0, err
    one, two = (checkpoint.load(str(tmp_path / d), "model") for d in ("one", "w0"))
    a, b = checkpoint.flatten_params(one.fitted.params), checkpoint.flatten_params(two.fitted.params)
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    # every process scored its part of each split and the sums were added: float32 sums in another order
    assert one.metrics.keys() == two.metrics.keys()
    for name, value in one.metrics.items():
        # a perplexity is exp of its NLL: its relative difference is the NLL's absolute one (NLL ~2.5)
        rel = 1e-5 if name.endswith("_ppl") else 1e-6
        assert two.metrics[name] == pytest.approx(value, rel=rel, abs=0), name


def test_a_bad_part_stops_both_processes_with_one_line_each(tmp_path):
    words = open(NAMES, encoding="utf-8").read().split()[:400]
    bad = tmp_path / "bad.txt"
    # the bad byte sits three quarters of the way in: in process 1's part, which process 0 never parses
    bad.write_bytes("\n".join(words[:300]).encode() + b"\nab\xff\n" + "\n".join(words[300:]).encode())
    results = two_processes(tmp_path, "-i", str(bad), "--type", "counts", "-q", timeout=60)
    (code0, _, err0), (code1, _, err1) = results
    assert code0 == 2 and code1 == 2, (err0, err1)
    ours = [[line for line in err.strip().splitlines() if not line.startswith("[Gloo]")] for err in (err0, err1)]
    assert ours[0] == [f"makemore train: error: process 1 could not read its part of {bad} (its error says why)"]
    assert len(ours[1]) == 1 and "part 2 of 2" in ours[1][0] and "is not valid UTF-8 (byte 0xff)" in ours[1][0], err1
    assert not (tmp_path / "w0").exists()


if __name__ == "__main__" and sys.argv[1:] == ["worker"]:
    sys.path.insert(0, ROOT)
    print(json.dumps(worker()))
