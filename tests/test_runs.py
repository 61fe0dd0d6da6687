"""One engine behind both doors: makemore_jax.train / tune / mix and `makemore train / tune / mix`.

The same settings give the same work directory through either door, either
door resumes a run the other began, a --config file equals its flags, a work
directory holds one run, and a setting is refused alike from every door.
"""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import makemore_jax
from makemore_jax.cli.commands import main
from makemore_jax.errors import MakemoreError
from makemore_jax.runs.events import Step

from conftest import ROOT, first_names, run_inprocess, snapshot, tiny_flags, tiny_settings

TIMING = ("steps_per_s", "compile_s")  # what a run measures of the machine: differs between any two runs


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return first_names(tmp_path_factory, 400)


def files(d):
    """A work directory's files, metrics.jsonl as its records without their timings."""
    out = snapshot(d)
    if "metrics.jsonl" in out:
        records = [json.loads(line) for line in out["metrics.jsonl"].decode().splitlines()]
        out["metrics.jsonl"] = [{k: v for k, v in r.items() if k not in TIMING} for r in records]
    return out


# a counted model, a trained table, an n-gram, a sequence model
@pytest.mark.parametrize("kind", ["counts", "bigram", "ngram", "transformer"])
def test_python_and_the_command_write_the_same_work_directory(tmp_path, capsys, small, kind):
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    steps = {} if kind in ("counts", "ngram") else {"steps": 20}
    model = makemore_jax.train(small, workdir=a, type=kind, **steps, **tiny_settings(kind))
    flags = tiny_flags(kind) + (["--steps", "20"] if steps else [])
    code, out, err = run_inprocess(capsys, "train", "-i", small, "-o", b, "--type", kind, *flags)
    assert code == 0, err
    assert files(a) == files(b)
    assert f"step {model.step:,}" in out or not steps
    saved = json.loads(open(os.path.join(b, "model.json")).read())
    assert saved["metrics"] == model.metrics and saved["step"] == model.step
    printed = [run_inprocess(capsys, "sample", "-o", d, "-n", "6", "--seed", "3")[1] for d in (a, b)]
    assert printed[0] == printed[1] and len(printed[0].splitlines()) == 6
    assert model.sample(6, seed=3) == printed[0].splitlines()


def test_the_python_model_is_the_best_by_dev_as_on_the_command_line(tmp_path, small):
    model = makemore_jax.train(small, type="mlp", steps=30, **tiny_settings("mlp"))
    evaluations = [r for r in model.history if "dev_nll" in r]
    best = min(evaluations, key=lambda r: r["dev_nll"])
    assert model.step == best["step"] and model.best_dev == pytest.approx(best["dev_nll"], abs=1e-6)
    assert model.last is not None and model.last.step == 30


def test_a_python_run_is_resumed_by_the_command_and_the_reverse(tmp_path, capsys, small):
    flags = ["-i", small, "--type", "mlp", *tiny_flags("mlp")]
    whole = str(tmp_path / "whole")
    assert run_inprocess(capsys, "train", "-o", whole, "--steps", "40", *flags)[0] == 0

    py_first = str(tmp_path / "py_first")
    makemore_jax.train(small, workdir=py_first, type="mlp", steps=20, **tiny_settings("mlp"))
    code, out, err = run_inprocess(capsys, "train", "-o", py_first, "--resume", "--steps", "40")
    assert code == 0, err
    assert "step      30/40" in out and "step      10/" not in out

    cli_first = str(tmp_path / "cli_first")
    assert run_inprocess(capsys, "train", "-o", cli_first, "--steps", "20", *flags)[0] == 0
    model = makemore_jax.train(None, workdir=cli_first, resume=True, steps=40)
    assert model.last is not None and model.last.step == 40

    expected = files(whole)
    for d in (py_first, cli_first):
        assert files(d) == expected


def test_a_python_run_stopped_by_ctrl_c_is_continued_exactly_by_the_command(tmp_path, capsys, small):
    whole = str(tmp_path / "whole")
    makemore_jax.train(small, workdir=whole, type="mlp", steps=40, **tiny_settings("mlp"))

    def ctrl_c_at_step_20(event):  # Ctrl-C as the run's own handler sees it, after the chunk that ends at 20
        if isinstance(event, Step) and event.record["step"] == 20:
            raise KeyboardInterrupt

    stopped = str(tmp_path / "stopped")
    with pytest.raises(makemore_jax.Interrupted) as stop:
        makemore_jax.train(
            small, workdir=stopped, type="mlp", steps=40, progress=ctrl_c_at_step_20, **tiny_settings("mlp")
        )
    assert stop.value.step == 20 and stop.value.saved
    code, out, err = run_inprocess(capsys, "train", "-o", stopped, "--resume")
    assert code == 0 and "step      30/40" in out and "step      20/" not in out, err
    assert files(stopped) == files(whole)


def test_a_run_on_a_list_of_words_reads_them_as_a_file(tmp_path, small):
    words = open(small).read().split("\n")
    listed = makemore_jax.train(["  " + w + " " for w in words] + ["", "   "], type="counts")
    from_file = makemore_jax.train(small, type="counts")
    assert listed.metrics == from_file.metrics
    assert listed.training["input_sha256"] != from_file.training["input_sha256"]  # another file: other bytes
    assert "input" not in listed.training  # no file to read back
    assert listed.known_words() == from_file.known_words()


def test_a_run_on_a_list_resumes_from_the_file_of_its_lines(tmp_path, capsys, small):
    words = open(small).read().split()
    d = str(tmp_path / "w")
    makemore_jax.train(words, workdir=d, **tiny_settings("mlp", steps=10), type="mlp")
    code, _, err = run_inprocess(capsys, "train", "-o", d, "--resume", "--steps", "20")
    assert code == 2 and "the run does not record an input file (it was given a list of words)" in err
    other = tmp_path / "other.txt"
    other.write_text("\n".join(words[:-1]) + "\n")
    code, _, err = run_inprocess(capsys, "train", "-o", d, "--resume", "--steps", "20", "-i", str(other))
    assert code == 2 and "is not the input this run was trained on" in err
    same = tmp_path / "same.txt"
    same.write_text("\n".join(words) + "\n")
    code, out, err = run_inprocess(capsys, "train", "-o", d, "--resume", "--steps", "20", "-i", str(same))
    assert code == 0 and "step      20/20" in out, err


@pytest.mark.parametrize(
    "words, message",
    [
        ([], "words: no words"),
        ([""], "words: no words"),
        (["a" * 5000], "has 5,000 characters; a word may have at most 1,000"),
        (["ab", 3], "word 2 is not a str: 3"),
        (["a\nb"], "holds a line break"),
        (b"emma\n", "must be a path or a list of words"),
    ],
)
def test_a_list_of_words_is_refused_as_a_file_would_be(words, message):
    with pytest.raises(MakemoreError, match=message):
        makemore_jax.train(words, type="counts")


def test_a_setting_is_refused_alike_from_flags_python_and_a_config_file(tmp_path, capsys, small):
    cases = [
        ({"steps": -5}, ["--steps", "-5"], "steps = -5", "steps must be an integer >= 0, got -5"),
        ({"lr": -3.0}, ["--lr", "-3.0"], "lr = -3.0", "lr must be a finite number >= 0, got -3.0"),
        ({"steps": "x"}, ["--steps", "x"], 'steps = "x"', "steps must be an integer >= 0, got 'x'"),
        (
            {"n_layer": 9},
            ["--n-layer", "9"],
            "n_layer = 9",
            "n_layer: the bigram model does not take this setting (only for transformer)",
        ),
        ({"order": 3}, ["--order", "3"], "order = 3", "order: the bigram model does not take this setting"),
        ({"optimizer": "adam9"}, ["--optimizer", "adam9"], 'optimizer = "adam9"', "optimizer must be one of sgd"),
    ]
    config = tmp_path / "run.toml"
    for keywords, flags, toml, message in cases:
        with pytest.raises(MakemoreError) as python:
            makemore_jax.train(small, type="bigram", **keywords)
        code, _, flag_err = run_inprocess(capsys, "train", "-i", small, "-o", str(tmp_path / "w"), *flags)
        config.write_text(f'type = "bigram"\n{toml}\n')
        code2, _, file_err = run_inprocess(
            capsys, "train", "-i", small, "-o", str(tmp_path / "w"), "--config", str(config)
        )
        assert code == code2 == 2
        assert message in str(python.value)
        assert flag_err == file_err == f"makemore train: error: {python.value}\n"
        assert not (tmp_path / "w").exists()
    with pytest.raises(MakemoreError, match="steps must be an integer >= 0, got '10'"):
        makemore_jax.train(small, type="mlp", steps="10")


def test_a_config_file_equals_its_flags_and_flags_beside_it_win(tmp_path, capsys, small):
    config = tmp_path / "run.toml"
    settings = tiny_settings("transformer", steps=20)
    lines = "".join(f"{k} = {v}\n" for k, v in settings.items())
    config.write_text(f'type = "transformer"\nsplit = [80, 10, 10]\n{lines}')
    by_file, by_flags = str(tmp_path / "file"), str(tmp_path / "flags")
    assert run_inprocess(capsys, "train", "-i", small, "-o", by_file, "--config", str(config))[0] == 0
    flags = tiny_flags("transformer", steps=20) + ["--split", "80,10,10"]
    assert run_inprocess(capsys, "train", "-i", small, "-o", by_flags, "--type", "transformer", *flags)[0] == 0
    assert files(by_file) == files(by_flags)
    code, out, _ = run_inprocess(
        capsys, "train", "-i", small, "-o", str(tmp_path / "w"), "--config", str(config), "--steps", "10"
    )
    assert code == 0 and "step      10/10" in out
    config.write_text('type = "transformer"\nn_layers = 2\n')
    code, _, err = run_inprocess(capsys, "train", "-i", small, "-o", str(tmp_path / "v"), "--config", str(config))
    assert code == 2 and f"{config}: unknown setting 'n_layers'" in err


# ---- a work directory holds one run: every write replaces the run it held, whole ---------------------------
# Set up through the command line alone, so that each fails on the code before runs/ for the reason it names.

MLP = ["--type", "mlp", "--steps", "10", "--n-embd", "8", "--n-embd2", "16", "--batch-size", "8", "--eval-every", "10"]


def train(capsys, small, d, *flags):
    code, out, err = run_inprocess(capsys, "train", "-i", small, "-o", d, "--num-samples", "0", *flags)
    assert code == 0, err
    return out


@pytest.fixture(scope="module")
def mixed(tmp_path_factory, small):
    """Two work directories to mix: a counts and an n-gram model."""
    root = tmp_path_factory.mktemp("mix")
    dirs = [str(root / k) for k in ("counts", "ngram")]
    for d, kind in zip(dirs, ("counts", "ngram")):
        assert main(["train", "-i", small, "-o", d, "--type", kind, "--num-samples", "0", "-q"]) == 0
    return dirs


def test_training_into_a_mixture_directory_replaces_the_mixture(tmp_path, capsys, small, mixed):
    d = str(tmp_path / "w")
    assert run_inprocess(capsys, "mix", *mixed, "-o", d, "--num-samples", "0")[0] == 0
    train(capsys, small, d, "--type", "counts", "--smoothing", "3")
    assert not [n for n in os.listdir(d) if n.startswith(("member-", "mixture"))]
    code, out, _ = run_inprocess(capsys, "eval", "-o", d, "-i", small)
    code2, out2, _ = run_inprocess(capsys, "eval", "-o", mixed[0], "-i", small)
    assert code == code2 == 0 and out != out2  # add-3, not the mixture (nor the add-1 member)
    assert makemore_jax.load(d).fitted.config.smoothing == 3


def test_mixing_into_a_trained_run_leaves_nothing_of_it_to_resume(tmp_path, capsys, small, mixed):
    d = str(tmp_path / "w")
    train(capsys, small, d, *MLP)
    code, _, err = run_inprocess(capsys, "mix", *mixed, "-o", d, "--num-samples", "0")
    assert code == 0, err
    assert not {"model.json", "last.json", "metrics.jsonl"} & set(os.listdir(d))
    code, _, err = run_inprocess(capsys, "train", "-o", d, "--resume", "-i", small)
    assert code == 2 and "holds a mixture; there is nothing to resume" in err


@pytest.mark.parametrize("kind", ["counts", "ngram"])
def test_a_counted_run_over_a_trained_one_leaves_nothing_to_resume(tmp_path, capsys, small, kind):
    d = str(tmp_path / "w")
    train(capsys, small, d, *MLP)
    train(capsys, small, d, "--type", kind)
    assert sorted(n for n in os.listdir(d) if n.endswith((".json", ".jsonl"))) == ["model.json"]
    code, _, err = run_inprocess(capsys, "train", "-o", d, "--resume", "-i", small)
    assert code == 2 and "counted in one pass: there is nothing to resume" in err


def test_tuning_over_a_trained_run_replaces_it(tmp_path, capsys, small):
    d = str(tmp_path / "w")
    train(capsys, small, d, *MLP)
    code, _, err = run_inprocess(capsys, "tune", "--type", "ngram", "-i", small, "-o", d, "--max-order", "2")
    assert code == 0, err
    assert sorted(n for n in os.listdir(d) if n.endswith((".json", ".jsonl"))) == ["model.json"]


def test_a_loss_that_is_not_finite_at_once_leaves_the_directory_as_it_was(tmp_path, capsys, small):
    d = str(tmp_path / "w")
    train(capsys, small, d, *MLP)
    before = snapshot(d)
    code, _, err = run_inprocess(
        capsys, "train", "-i", small, "-o", d, "--type", "bigram", "--lr", "1e38", "--steps", "20"
    )
    assert code == 2 and "loss became" in err
    assert snapshot(d) == before


SMALL_MLP = dict(type="mlp", n_embd=8, n_embd2=16, batch_size=8, eval_every=10, log_every=10)


def test_model_save_replaces_the_run_and_saves_one_that_resumes(tmp_path, capsys, small, mixed):
    d = str(tmp_path / "w")
    assert run_inprocess(capsys, "mix", *mixed, "-o", d, "--num-samples", "0")[0] == 0
    model = makemore_jax.train(small, steps=20, **SMALL_MLP)
    model.save(d)
    assert not [n for n in os.listdir(d) if n.startswith(("member-", "mixture"))]
    assert makemore_jax.load(d).sample(4) == model.sample(4)
    code, out, err = run_inprocess(capsys, "train", "-o", d, "--resume", "--steps", "30", "-i", small)
    assert code == 0 and "step      30/30" in out, err
    whole = str(tmp_path / "whole")
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in SMALL_MLP.items()]
    assert run_inprocess(capsys, "train", "-i", small, "-o", whole, "--steps", "30", *flags)[0] == 0
    assert {k: v for k, v in snapshot(d).items() if k.startswith("last")} == {
        k: v for k, v in snapshot(whole).items() if k.startswith("last")
    }


def test_model_save_waits_for_no_one_and_writes_nothing_into_a_directory_in_use(tmp_path, small):
    d = tmp_path / "w"
    d.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from makemore_jax.store import lock; lock.hold(sys.argv[1]); "
            "print('held', flush=True); sys.stdin.read()",
            str(d),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": ROOT},
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        model = makemore_jax.train(small, type="counts")
        with pytest.raises(MakemoreError, match="is in use by another makemore run"):
            model.save(str(d))
        assert os.listdir(d) == []
    finally:
        holder.communicate("", timeout=30)


def test_a_loaded_mixture_has_its_figures(tmp_path, capsys, mixed):
    d = str(tmp_path / "m")
    code, out, _ = run_inprocess(capsys, "mix", *mixed, "-o", d, "--num-samples", "0")
    assert code == 0
    loaded = makemore_jax.load(d)
    assert set(loaded.metrics) == {f"{s}_{m}" for s in ("train", "dev", "test") for m in ("nll", "ppl")}
    printed = next(line for line in out.splitlines() if line.startswith("mixture "))
    assert re.findall(r"(\d+\.\d{4}) \(", printed) == [
        f"{loaded.metrics[f'{s}_nll']:.4f}" for s in ("train", "dev", "test")
    ]
    assert loaded.best_dev == loaded.metrics["dev_nll"] and np.isfinite(loaded.best_dev)
