"""Faults and interruptions: signals, SIGKILL at random moments, one writer per work
directory, unwritable directories and the file-size limit, damaged, edited or
planted checkpoints, numerics. Real processes wherever the fault is a process's.
"""

import contextlib
import fcntl
import hashlib
import io
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from makemore_jax.cli.commands import EXIT_INTERRUPTED, EXIT_TERMINATED, main
from makemore_jax.errors import MakemoreError
from makemore_jax.store import checkpoint, lock

from conftest import ROOT, first_names, run_inprocess, snapshot

# a tiny minibatch model with AdamW moments: cheap to compile, every part of a checkpoint
TINY = ["--type", "bigram", "--optimizer", "adamw", "--lr", "0.05", "--batch-size", "16"]
ENV = {**os.environ, "PYTHONPATH": ROOT}


@pytest.fixture(scope="module")
def small_names(tmp_path_factory):
    return first_names(tmp_path_factory, 300)


def start(args, out_path, env=ENV):
    """`makemore ARGS` in a new process, stdout to out_path, stderr piped."""
    out = open(out_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "makemore_jax", *args], stdout=out, stderr=subprocess.PIPE, text=True, env=env
    )
    out.close()
    return proc


def run_under(prelude: str, args):
    """`makemore ARGS` in a process that first runs the Python lines of prelude (limits,
    dropped privileges: they survive exec), then becomes the command."""
    launcher = (
        f"import ctypes, os, resource, signal, sys\n{prelude}\n"
        "os.execv(sys.executable, [sys.executable, '-m', 'makemore_jax', *sys.argv[1:]])"
    )
    return subprocess.run([sys.executable, "-c", launcher, *args], capture_output=True, text=True, env=ENV, timeout=120)


def wait_for_step_lines(proc, out_path, n=1, timeout=60.0):
    """Wait until the process has printed n progress lines (it is training); False if it ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(out_path) as f:
            if sum(line.startswith("step") for line in f) >= n:
                return True
        if proc.poll() is not None:
            return False
        time.sleep(0.01)
    raise AssertionError("the training process printed no progress in time")


def checkpoint_files(d):
    return {k: v for k, v in snapshot(d).items() if k != checkpoint.METRICS_FILE}


# ---- Ctrl-C and SIGTERM --------------------------------------------------------------


@pytest.mark.parametrize(
    "signum,status,says",
    [
        (signal.SIGINT, EXIT_INTERRUPTED, "interrupted (Ctrl-C)"),
        (signal.SIGTERM, EXIT_TERMINATED, "stopped by SIGTERM"),
    ],
)
def test_stop_signal_saves_the_current_step_and_says_how_to_resume(tmp_path, small_names, signum, status, says):
    work = tmp_path / "w"
    # evaluations (the regular checkpoints) far apart: what is saved must be the step reached
    args = [
        "train",
        "-o",
        str(work),
        "-i",
        small_names,
        *TINY,
        "--steps",
        "1000000",
        "--eval-every",
        "100000",
        "--log-every",
        "5",
    ]
    proc = start(args, tmp_path / "out.txt")
    assert wait_for_step_lines(proc, tmp_path / "out.txt", n=3)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == status, err
    assert "Traceback" not in err
    last_line = err.strip().splitlines()[-1]
    match = re.fullmatch(
        rf"makemore train: {re.escape(says)} at step ([\d,]+); saved, continue with: "
        rf"makemore train -o {re.escape(str(work))} --resume -i {re.escape(small_names)}",
        last_line,
    )
    assert match, last_line
    step = int(match.group(1).replace(",", ""))
    printed = [
        int(line.split()[1].split("/")[0].replace(",", ""))
        for line in open(tmp_path / "out.txt")
        if line.startswith("step")
    ]
    assert step >= 15 and step == printed[-1]  # the chunk running when the signal came is finished and kept
    saved = checkpoint.load(str(work), "last")
    assert saved.step == step and saved.opt_leaves is not None
    assert [r["step"] for r in checkpoint.read_metrics(str(work))] == list(range(5, step + 1, 5))
    assert not [f for f in os.listdir(work) if f.startswith(checkpoint.TEMP_PREFIX)]


def test_a_deferred_stop_ends_training_after_the_chunk_and_saves_it(small_names, tmp_path):
    from makemore_jax.data.words import Dataset, read_words
    from makemore_jax.seeding import seed_key
    from makemore_jax.training import trainer as train
    from makemore_jax.training.config import TrainConfig

    cfg = TrainConfig.create("bigram", optimizer="adamw", lr=0.05, batch_size=16, steps=100, eval_every=50, log_every=5)
    data = Dataset.build(read_words(small_names), seed_key(0, "split"), cfg.split)
    model = train.new_model(cfg, data)
    saved, chunks = [], []
    with pytest.raises(train.Interrupted) as stop:
        train.fit(
            model,
            data,
            None,
            lambda r: chunks.append(r["step"]),
            lambda m, st, best: saved.append(st.step),
            stop_requested=lambda: len(chunks) >= 3,
        )  # as if a signal came during the third chunk
    assert chunks == [5, 10, 15]
    assert stop.value.step == 15 and saved == [15]  # saved at the step reached, not the last evaluation


def test_signals_are_deferred_once_then_raise_and_handlers_are_restored():
    from makemore_jax.cli import interrupt

    before = signal.getsignal(signal.SIGTERM)
    stop = interrupt.Deferred()
    with stop.active():
        os.kill(os.getpid(), signal.SIGTERM)  # recorded, nothing raised
        assert stop() and stop.signum == signal.SIGTERM
        with pytest.raises(interrupt.Stop) as second:
            os.kill(os.getpid(), signal.SIGINT)  # the user insists: at once
        assert second.value.signum == signal.SIGINT
    assert signal.getsignal(signal.SIGTERM) is before
    with pytest.raises(KeyboardInterrupt) as raised, interrupt.stop_raises():
        os.kill(os.getpid(), signal.SIGTERM)  # outside training SIGTERM raises like Ctrl-C
    assert raised.value.signum == signal.SIGTERM and interrupt.exit_status(raised.value.signum) == EXIT_TERMINATED
    assert signal.getsignal(signal.SIGTERM) is before


# ---- SIGKILL at random moments --------------------------------------------------------

KILL_TRIALS = 8  # 2 of them at any moment from the start, 6 while training and saving


def test_sigkill_at_random_moments_leaves_a_loadable_checkpoint_and_resumes_exactly(tmp_path, small_names, capsys):
    """Kill a real training process again and again, each time at a random moment, resuming
    each time from what the last one left; then finish, and compare with a run never killed."""
    rng = random.Random(20251126)
    work = tmp_path / "killed"
    # a checkpoint every 2 steps: most of a run's time is spent saving, where a kill hurts most
    fresh = ["-i", small_names, *TINY, "--eval-every", "2", "--log-every", "2", "--num-samples", "0"]
    # compiled programs cached on disk, filled by one run that is not killed: each trial starts in ~1 s
    env = {
        **ENV,
        "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "jax-cache"),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
    }
    warm = subprocess.run(
        [sys.executable, "-m", "makemore_jax", "train", "-o", str(tmp_path / "warm"), *fresh, "--steps", "2"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert warm.returncode == 0, warm.stderr
    steps_left, mid_write = [], 0
    for trial in range(KILL_TRIALS):
        resume = (work / "last.json").exists()
        args = ["train", "-o", str(work), *(["--resume", "-i", small_names] if resume else fresh), "--steps", "100000"]
        out = tmp_path / f"out{trial}.txt"
        proc = start(args, out, env)
        if trial % 4 == 3:  # any moment from the start: reading, compiling, the first saves
            time.sleep(rng.uniform(0.0, 1.5))
        else:  # a moment while training and saving
            assert wait_for_step_lines(proc, out), proc.communicate()[1]
            time.sleep(rng.uniform(0.0, 0.25))
        proc.kill()
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL, err
        files = os.listdir(work) if work.exists() else []
        mid_write += any(f.startswith(checkpoint.TEMP_PREFIX) for f in files)  # killed while writing a file
        for name in ("model", "last"):
            if f"{name}.json" in files:
                checkpoint.load(str(work), name)  # whatever the moment: complete and verified
        records = checkpoint.read_metrics(str(work))
        if checkpoint.METRICS_FILE in files:
            lines = (work / checkpoint.METRICS_FILE).read_text().splitlines()
            assert len(records) == len(lines)  # every line whole
            assert [r["step"] for r in records] == list(range(2, 2 * len(records) + 1, 2))
        step = checkpoint.load(str(work), "last").step if "last.json" in files else 0
        if steps_left:
            assert step >= steps_left[-1]  # a killed resume never loses what was saved before
        steps_left.append(step)
    assert steps_left[-1] >= 20  # the runs got somewhere

    target = steps_left[-1] + 6
    code, _, err = run_inprocess(
        capsys, "train", "-o", str(work), "--resume", "-i", small_names, "--steps", str(target)
    )
    assert code == 0, err
    ref = tmp_path / "ref"
    code, _, err = run_inprocess(capsys, "train", "-o", str(ref), *fresh, "--steps", str(target))
    assert code == 0, err
    a, b = sorted(os.listdir(work)), sorted(os.listdir(ref))
    assert a == b  # same array files, named by their SHA-256: the same parameters and moments; no leftovers
    assert len([f for f in a if f.endswith(".npz")]) == 2 and not [f for f in a if f.startswith(checkpoint.TEMP_PREFIX)]
    for name in a:
        if name.endswith(".npz"):
            assert (work / name).read_bytes() == (ref / name).read_bytes()

    def without_timing(records):
        return [{k: v for k, v in r.items() if k not in ("steps_per_s", "compile_s")} for r in records]

    assert without_timing(checkpoint.read_metrics(str(work))) == without_timing(checkpoint.read_metrics(str(ref)))
    print(f"{KILL_TRIALS} SIGKILLs ({mid_write} in the middle of writing a file), steps saved after each: {steps_left}")


# ---- one writer per work directory ----------------------------------------------------


def test_a_second_run_into_the_same_directory_is_refused_and_a_dead_holder_blocks_nothing(
    tmp_path, small_names, capsys
):
    work = tmp_path / "w"
    args = [
        "train",
        "-o",
        str(work),
        "-i",
        small_names,
        *TINY,
        "--steps",
        "1000000",
        "--eval-every",
        "10",
        "--log-every",
        "10",
    ]
    first = start(args, tmp_path / "first.txt")
    try:
        assert wait_for_step_lines(first, tmp_path / "first.txt", n=2)
        for second in (args, ["train", "-o", str(work), "--resume", "-i", small_names]):
            proc = subprocess.run(
                [sys.executable, "-m", "makemore_jax", *second], capture_output=True, text=True, env=ENV, timeout=120
            )
            assert proc.returncode == 2, proc.stderr
            assert proc.stderr.strip() == (
                f"makemore train: error: {work} is in use by another makemore run (process {first.pid}); one run at a "
                "time writes to a work directory: wait for it to end, or choose another -o"
            )
        assert first.poll() is None  # the first run goes on
    finally:
        first.kill()
        first.communicate(timeout=60)
    # the holder died without a word: its lock died with it
    code, _, err = run_inprocess(capsys, "train", "-o", str(work), "--resume", "-i", small_names, "--steps", "20")
    assert code == 0, err
    assert checkpoint.load(str(work), "last").step >= 20


def test_lock_in_one_process_refuses_another_descriptor_and_is_released(tmp_path):
    work = tmp_path / "w"
    work.mkdir()
    fd = os.open(work, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as another run would hold it
    try:
        with pytest.raises(MakemoreError, match=rf"in use by another makemore run \(process {os.getpid()}\)"):
            lock.hold(str(work))
    finally:
        os.close(fd)
    lock.hold(str(work))
    try:
        fd = os.open(work, os.O_RDONLY)
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.close(fd)
    finally:
        lock.release_all()
    fd = os.open(work, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free again
    os.close(fd)
    assert os.listdir(work) == []  # no lock file


# ---- unwritable directories, the file-size limit --------------------------------------


# As root, give up the right to ignore file permissions (so that 0o555 means read-only):
# drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (1, 2) from the bounding set, prctl(PR_CAPBSET_DROP = 24).
WITHOUT_DAC_OVERRIDE = """
if os.geteuid() == 0:
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):
        if libc.prctl(24, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")
"""


@pytest.fixture(scope="module")
def trained_once(tmp_path_factory, small_names):
    """A tiny model trained once for the module; every test gets its own copy (see trained)."""
    work = tmp_path_factory.mktemp("trained") / "w"
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(["train", "-o", str(work), "-i", small_names, *TINY, "--steps", "10", "--eval-every", "10"])
    assert code == 0, err.getvalue()
    return work


@pytest.fixture
def trained(trained_once, tmp_path):
    """A fresh copy of the module's trained work directory, for a test to damage as it likes."""
    work = tmp_path / "w"
    shutil.copytree(trained_once, work)
    return work


def test_read_only_work_directory_is_one_line_and_keeps_the_checkpoint(trained, small_names):
    before = snapshot(trained)
    os.chmod(trained, 0o555)
    try:
        for extra in (["--resume", "--steps", "20"], [*TINY, "--steps", "20"]):
            proc = run_under(WITHOUT_DAC_OVERRIDE, ["train", "-o", str(trained), "-i", small_names, *extra])
            assert proc.returncode == 2, proc.stderr
            assert proc.stderr.strip().splitlines() == [
                f"makemore train: error: cannot write to {trained}: Permission denied"
                " (what was saved there before is kept)"
            ]
    finally:
        os.chmod(trained, 0o755)
    assert snapshot(trained) == before
    assert checkpoint.load(str(trained), "last").step == 10


def file_size_limit(limit_bytes: int) -> str:
    # SIGXFSZ ignored: a write past the limit fails with EFBIG instead of killing the process
    return (
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit_bytes}, {limit_bytes}))"
    )


def test_file_size_limit_is_one_line_and_keeps_the_checkpoint(trained, small_names):
    before = checkpoint_files(trained)
    biggest = max(len(v) for v in before.values())
    # a bigger model whose arrays pass the limit: the first save of the new run fails
    args = [
        "train",
        "-o",
        str(trained),
        "-i",
        small_names,
        "--type",
        "mlp",
        "--n-embd",
        "32",
        "--n-embd2",
        "256",
        "--steps",
        "4",
        "--eval-every",
        "2",
        "--log-every",
        "2",
    ]
    proc = run_under(file_size_limit(2 * biggest), args)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"makemore train: error: cannot write to {trained}: File too large (what was saved there before is kept)"
    )
    assert "Traceback" not in proc.stderr
    assert checkpoint_files(trained) == before  # byte for byte, and no temporary file left
    assert checkpoint.load(str(trained), "last").step == 10 and checkpoint.load(str(trained)).fitted.type == "bigram"


# ---- damaged, edited, foreign and planted checkpoints ---------------------------------


def _rewrite_meta(work, name="model", **changes):
    path = work / f"{name}.json"
    meta = json.loads(path.read_text())
    meta.update(changes)
    path.write_text(json.dumps(meta, indent=2))
    return meta


def _reseal(work, name="model"):
    """Recompute meta_sha256 after an edit: what a careful forger would do."""
    meta = json.loads((work / f"{name}.json").read_text())
    meta["meta_sha256"] = checkpoint.meta_digest(meta)
    (work / f"{name}.json").write_text(json.dumps(meta))


def _plant_arrays(work, payload, name="model"):
    old = json.loads((work / f"{name}.json").read_text())["arrays_file"]
    (work / old).write_bytes(payload)
    _rewrite_meta(work, name, arrays_sha256=hashlib.sha256(payload).hexdigest())
    _reseal(work, name)


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda w: _rewrite_meta(w, step=11), "do not match their checksum (meta_sha256): edited by hand"),
        (lambda w: _rewrite_meta(w, metrics={"test_nll": 0.1}), "edited by hand"),
        (lambda w: _rewrite_meta(w, makemore_jax_version=None), "makemore_jax_version"),
        (
            lambda w: (
                _rewrite_meta(w, config={**json.loads((w / "model.json").read_text())["config"], "colour": 1}),
                _reseal(w),
            ),
            "config fields: unexpected colour",
        ),
        (
            lambda w: (
                _rewrite_meta(
                    w,
                    config={
                        k: v for k, v in json.loads((w / "model.json").read_text())["config"].items() if k != "seed"
                    },
                ),
                _reseal(w),
            ),
            "config fields: missing seed",
        ),
        (
            lambda w: (
                _rewrite_meta(w, config={**json.loads((w / "model.json").read_text())["config"], "split": [1, "a", 2]}),
                _reseal(w),
            ),
            "not a valid checkpoint",
        ),
        (lambda w: (_rewrite_meta(w, vocab=list("abc")), _reseal(w)), "expected float32[4, 4]"),
        (
            lambda w: (
                _rewrite_meta(
                    w, type="mlp", config={**json.loads((w / "model.json").read_text())["config"], "type": "mlp"}
                ),
                _reseal(w),
            ),
            "arrays do not fit an mlp model",
        ),
        (lambda w: (_rewrite_meta(w, best_dev_nll=[1]), _reseal(w)), "best_dev_nll must be a number"),
    ],
)
def test_edited_or_foreign_checkpoints_are_refused_in_one_line_naming_the_file(trained, capsys, edit, message):
    edit(trained)
    code, out, err = run_inprocess(capsys, "sample", "-o", str(trained), "-n", "2")
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and str(trained) in lines[0], lines


def test_arrays_of_a_model_with_another_vocabulary_are_refused(tmp_path, trained, capsys):
    other = tmp_path / "other"
    words = tmp_path / "xyz.txt"
    words.write_text("xyz\nzyx\nxx\n" * 10)
    assert (
        run_inprocess(capsys, "train", "-o", str(other), "-i", str(words), *TINY, "--steps", "2", "--eval-every", "2")[
            0
        ]
        == 0
    )
    foreign = json.loads((other / "model.json").read_text())["arrays_file"]
    _plant_arrays(trained, (other / foreign).read_bytes())
    code, _, err = run_inprocess(capsys, "eval", "-o", str(trained), "-i", str(words))
    assert code == 2 and "params/W is float32[4, 4], expected float32[" in err and str(trained) in err


class _Planted:
    """Unpickling this creates the marker file: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_planted_pickle_is_refused_and_runs_nothing(trained, tmp_path, capsys):
    marker = tmp_path / "pwned"
    buf = io.BytesIO()
    np.savez(buf, **{"params/W": np.array([_Planted(str(marker))], dtype=object)})  # pickled inside the .npz
    assert b"pwned" in buf.getvalue()
    _plant_arrays(trained, buf.getvalue(), "model")
    _plant_arrays(trained, buf.getvalue(), "last")
    for cmd in (["sample", "-n", "2"], ["eval"], ["train", "--resume"]):
        code, _, err = run_inprocess(capsys, *cmd, "-o", str(trained))
        assert code == 2 and "unreadable arrays" in err and "Object arrays cannot be loaded" in err, err
    assert not marker.exists()


def test_a_format_1_checkpoint_still_loads(trained):
    meta = json.loads((trained / "model.json").read_text())
    del meta["meta_sha256"]
    meta["format_version"] = 1
    (trained / "model.json").write_text(json.dumps(meta))
    assert checkpoint.load(str(trained)).step == 10


# ---- numerics -------------------------------------------------------------------------


def test_non_finite_loss_from_the_command_line_names_the_step_and_keeps_a_good_state(tmp_path, small_names, capsys):
    work = tmp_path / "w"
    code, _, err = run_inprocess(
        capsys, "train", "-o", str(work), "-i", small_names, "--lr", "1e38", "--steps", "50", "--eval-every", "10"
    )
    assert code == 2
    assert re.fullmatch(
        r"makemore train: error: loss became (nan|inf) at step [1-9]\d*; stopped \(nothing was saved; try a lower lr\)",
        err.strip(),
    ), err
    assert not work.exists()  # not one step of this run finished: nothing of it to keep


def test_non_finite_loss_after_good_steps_saves_the_last_good_state(tmp_path, small_names, capsys, monkeypatch):
    from makemore_jax.training import trainer

    real = trainer._Chunks.run
    calls = []

    def failing_third_chunk(self, state, todo, record):  # the loss of the third chunk of steps is nan
        params, opt_state, losses = real(self, state, todo, record)
        calls.append(state.step)
        return (params, opt_state, losses * np.nan) if len(calls) == 3 else (params, opt_state, losses)

    monkeypatch.setattr(trainer._Chunks, "run", failing_third_chunk)
    work = tmp_path / "w"
    flags = ["--steps", "50", "--eval-every", "10", "--log-every", "10"]
    code, _, err = run_inprocess(capsys, "train", "-o", str(work), "-i", small_names, *flags)
    assert code == 2 and "loss became nan at step 21; stopped (the last good state, step 20, is what was saved" in err
    saved = checkpoint.load(str(work), "last")
    assert saved.step == 20 and np.isfinite(saved.fitted.params["W"]).all()
    assert [r["step"] for r in checkpoint.read_metrics(str(work))] == [10, 20]


def test_mean_nll_of_nothing_is_an_error():
    import jax.numpy as jnp

    from makemore_jax.models import losses

    with pytest.raises(MakemoreError, match="empty set"):
        losses.mean_nll(jnp.full((3, 3), 1 / 3), jnp.zeros(0, jnp.int32), jnp.zeros(0, jnp.int32))


def test_temperature_near_zero_samples_the_greedy_names(trained, capsys):
    greedy = run_inprocess(capsys, "sample", "-o", str(trained), "-n", "5", "--temperature", "0", "--no-report")
    for t in ("1e-30", "1e-45", "1e-300"):
        code, out, err = run_inprocess(
            capsys, "sample", "-o", str(trained), "-n", "5", "--temperature", t, "--no-report"
        )
        assert (code, out) == greedy[:2] and err == "", t


def test_names_the_terminal_cannot_show_are_one_line(tmp_path, capsys):
    words = tmp_path / "emoji.txt"
    words.write_text("🙂a\na🙂\n")
    work = tmp_path / "w"
    assert (
        run_inprocess(
            capsys,
            "train",
            "--type",
            "counts",
            "-o",
            str(work),
            "-i",
            str(words),
            "--split",
            "1,0,0",
            "--num-samples",
            "0",
        )[0]
        == 0
    )
    proc = subprocess.run(
        [sys.executable, "-m", "makemore_jax", "sample", "-o", str(work), "-n", "50", "--no-report"],
        capture_output=True,
        text=True,
        env={**ENV, "PYTHONIOENCODING": "ascii"},
        timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        "makemore sample: error: cannot print '\\U0001f642' in this terminal's encoding (ascii);"
        " set PYTHONIOENCODING=utf-8"
    )


def test_a_hand_edited_mixture_is_refused(tmp_path, small_names, trained, capsys):
    counts = tmp_path / "counts"
    assert (
        run_inprocess(capsys, "train", "--type", "counts", "-o", str(counts), "-i", small_names, "--num-samples", "0")[
            0
        ]
        == 0
    )
    mix = tmp_path / "mix"
    code, _, err = run_inprocess(capsys, "mix", str(trained), str(counts), "-o", str(mix), "--num-samples", "0")
    assert code == 0, err
    assert run_inprocess(capsys, "sample", "-o", str(mix), "-n", "2")[0] == 0
    path = mix / "mixture.json"
    meta = json.loads(path.read_text())
    for weights, message in (
        ([0.5, 0.5], "its fields do not match their checksum (meta_sha256): edited by hand or damaged"),
        ([float("inf"), 1.0], "damaged (members and weights do not match)"),
    ):
        path.write_text(json.dumps({**meta, "weights": weights}))
        code, out, err = run_inprocess(capsys, "sample", "-o", str(mix), "-n", "2")
        assert code == 2 and out == "" and err.strip().splitlines() == [f"makemore sample: error: {path}: {message}"], (
            err
        )
