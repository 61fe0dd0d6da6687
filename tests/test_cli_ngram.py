"""`makemore train --type ngram`, `makemore tune --type ngram`, and sample/eval on their work directories."""

import json
import os

import pytest

from makemore_jax.cli.commands import main

from conftest import NAMES, first_names, snapshot
from conftest import run_inprocess as run


@pytest.fixture(scope="module")
def small_names(tmp_path_factory):
    return first_names(tmp_path_factory, 2000)


@pytest.fixture(scope="module")
def tuned(tmp_path_factory, small_names):
    d = str(tmp_path_factory.mktemp("tune") / "w")
    try:
        code = main(["tune", "--type", "ngram", "-i", small_names, "-o", d, "--max-order", "4", "--num-samples", "4"])
    except SystemExit as exit:
        code = exit.code
    return code, d


def test_train_ngram_saves_a_model_that_samples_and_evaluates(tmp_path, capsys, small_names):
    d = str(tmp_path / "w")
    code, out, err = run(
        capsys, "train", "--type", "ngram", "--order", "3", "--kn", "-i", small_names, "-o", d, "--num-samples", "5"
    )
    assert code == 0, err
    line = next(
        x
        for x in out.splitlines()
        if x.startswith("ngram (order 3, Kneser-Ney, D from the count-of-counts): train NLL")
    )
    train, dev, test = (float(line.split(f"{s} NLL ")[1].split()[0]) for s in ("train", "dev", "test"))
    assert train < dev and 1.5 < dev < 3.0 and 1.5 < test < 3.0
    assert sorted(f for f in os.listdir(d) if not f.endswith(".npz")) == ["model.json"]  # nothing to resume
    printed = out.split("samples (makemore sample -o")[1].splitlines()[1:]
    code, again, err = run(capsys, "sample", "-o", d, "-n", "5", "--seed", "0")
    assert code == 0 and again.split() == [p.strip() for p in printed]
    assert "samples are in the training set" in err

    long_words = tmp_path / "long.txt"
    long_words.write_text("a" * 40 + "\nbob\n")  # longer than any training word: an n-gram model does not mind
    code, out, err = run(capsys, "eval", "-o", d, "-i", str(long_words), "--per-word", "1")
    assert code == 0, err
    assert "over 45 characters (2 words)" in out
    assert out.rstrip().endswith("a" * 40)  # the least likely word


def test_train_ngram_with_each_smoothing(tmp_path, capsys, small_names):
    cases = [
        (["--smoothing", "0.1"], "ngram (order 3, add-k, k = 0.1)"),
        (["--kn", "--discount", "0.75"], "ngram (order 3, Kneser-Ney, D = 0.75)"),
        (["--modified-kn", "--discount-scale", "1.1"], "ngram (order 3, modified Kneser-Ney, discounts × 1.1)"),
        ([], "ngram (order 3, modified Kneser-Ney)"),
    ]
    dev = {}
    for flags, label in cases:
        d = str(tmp_path / str(len(dev)))
        code, out, err = run(
            capsys, "train", "--type", "ngram", "--order", "3", *flags, "-i", small_names, "-o", d, "--num-samples", "0"
        )
        assert code == 0, err
        assert f"{label}: train NLL" in out, out
        dev[label] = json.loads(open(os.path.join(d, "model.json")).read())["metrics"]["dev_nll"]
    assert len(set(dev.values())) == len(dev)


def test_a_budget_that_spills_trains_the_same_model(tmp_path, capsys, monkeypatch):
    """--memory 1M spills names.txt's 6-grams to disk many times over: the same lines, the same saved arrays."""
    from makemore_jax.models.ngram import spill

    spill_dir = tmp_path / "tmp"
    spill_dir.mkdir()
    monkeypatch.setattr(spill.tempfile, "tempdir", str(spill_dir))
    written = []
    real = spill.write_run
    monkeypatch.setattr(spill, "write_run", lambda path, *arrays: (written.append(path), real(path, *arrays)))
    runs = {}
    for name, flags in (("whole", []), ("spilled", ["--memory", "1M"])):
        d = str(tmp_path / name)
        code, out, err = run(capsys, "train", "--type", "ngram", "--order", "6", "-o", d, "--num-samples", "5", *flags)
        assert code == 0, err
        assert "counting" not in err  # no status line off a terminal
        runs[name] = (out.replace(d, "WORKDIR"), {k: v for k, v in snapshot(d).items() if k.endswith(".npz")})
    assert len(written) >= 3 and os.listdir(spill_dir) == []
    assert runs["spilled"] == runs["whole"]


def test_tune_within_a_budget_that_spills_prints_the_same_table(tmp_path, capsys, monkeypatch):
    """tune --memory 1M counts names.txt's 6-grams in runs spilled to disk: the same grid, the same choice."""
    from makemore_jax.models.ngram import spill

    written = []
    real = spill.write_run
    monkeypatch.setattr(spill, "write_run", lambda path, *arrays: (written.append(path), real(path, *arrays)))
    outs = {}
    for name, flags in (("whole", []), ("spilled", ["--memory", "1M"])):
        d = str(tmp_path / name)
        code, out, err = run(
            capsys, "tune", "--type", "ngram", "--max-order", "6", "-o", d, "--num-samples", "3", *flags
        )
        assert code == 0, err
        outs[name] = [line for line in out.replace(d, "WORKDIR").splitlines() if " s; best: " not in line]
        if name == "whole":
            assert not written
    assert len(written) >= 3
    assert outs["spilled"] == outs["whole"]
    code, out, err = run(capsys, "tune", "--type", "ngram", "-o", str(tmp_path / "bad"), "--memory", "lots")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "memory" in err and not os.path.exists(tmp_path / "bad")


def test_tune_prints_the_grid_and_saves_the_best(tuned, capsys):
    code, d = tuned
    assert code == 0
    meta = json.loads(open(os.path.join(d, "model.json")).read())
    grid = meta["training"]["tuning"]
    assert len(grid) == 4 * 18 and {g["order"] for g in grid} == {1, 2, 3, 4}
    best = min(grid, key=lambda g: g["dev_nll"])
    assert meta["config"]["order"] == best["order"] and meta["config"]["smoothing_method"] == best["method"]
    assert meta["metrics"]["dev_nll"] == pytest.approx(best["dev_nll"], rel=1e-5)
    assert meta["metrics"]["test_nll"] < 3.0
    code, out, err = run(capsys, "sample", "-o", d, "-n", "4", "--temperature", "0.5")
    assert code == 0 and len(out.split()) == 4
    code, out, err = run(capsys, "eval", "-o", d, "-i", NAMES)
    assert code == 0 and "mean NLL" in out


def test_tune_output(tmp_path, capsys, small_names):
    code, out, err = run(
        capsys,
        "tune",
        "--type",
        "ngram",
        "-i",
        small_names,
        "-o",
        str(tmp_path / "w"),
        "--max-order",
        "2",
        "--num-samples",
        "0",
    )
    assert code == 0, err
    lines = out.splitlines()
    assert lines[1] == "add-k: dev NLL by order (rows) and k (columns)"
    assert lines[2].split() == ["order", "0.001", "0.003", "0.01", "0.03", "0.1", "0.3", "1"]
    assert [x.split()[0] for x in lines[3:5]] == ["1", "2"]
    assert any(x.startswith("36 settings, orders 1..2, counted and scored on dev in") for x in lines)
    assert any(x.startswith("ngram (order 2, ") and "test NLL" in x for x in lines)


def _bad_inputs(tmp_path, small_names):
    accents = tmp_path / "accents.txt"
    accents.write_text("anna\nzoë\n")
    ngram = ["--type", "ngram", "-i", small_names]
    return [
        (["train", *ngram, "--order", "0"], "order must be an integer >= 1, got 0"),
        (["train", *ngram, "--order", "-2"], "order must be an integer >= 1, got -2"),
        (["train", *ngram, "--order", "100000"], "order 100,000 is too large to count"),
        (["train", *ngram, "--kn", "--discount", "1"], "discount must be a number in [0, 1), got 1.0"),
        (["train", *ngram, "--kn", "--discount", "-0.25"], "discount must be a number in [0, 1), got -0.25"),
        (["train", *ngram, "--discount", "0.5"], "use it with smoothing_method kn (--kn)"),
        (["train", *ngram, "--kn", "--smoothing", "1"], "smoothing (add-k's k) and smoothing_method 'kn' contradict"),
        (["train", *ngram, "--smoothing", "1", "--discount-scale", "2"], "use it with smoothing_method kn or"),
        (["train", *ngram, "--discount-scale", "0"], "discount_scale must be a finite number > 0, got 0.0"),
        (["train", "--type", "bigram", "--order", "3"], "order: the bigram model does not take this setting"),
        (["train", "--kn"], "smoothing_method: the bigram model does not take this setting (only for ngram)"),
        (["tune", *ngram, "--max-order", "0"], "--max-order: must be an integer >= 1"),
        # 10,000 is too large as well; listing the grid of 100,000 orders alone took seconds
        (["tune", *ngram, "--max-order", "10000"], "is too large to count"),
        (["tune", *ngram, "--split", "1,0,0"], "tuning needs a dev split"),
        (["tune", "-i", small_names], "the following arguments are required: --type"),
        (["tune", "--type", "mlp"], "invalid choice: 'mlp'"),
        (["eval", "-i", str(accents)], "character 'ë' (U+00EB) in word 'zoë' is not in the model's vocabulary"),
    ]


def test_bad_input_is_one_line_exit_2_and_writes_nothing(tuned, tmp_path, capsys, small_names):
    _, d = tuned
    before = snapshot(d)
    for args, message in _bad_inputs(tmp_path, small_names):
        for workdir in (d, str(tmp_path / "fresh")) if args[0] != "eval" else (d,):
            code, out, err = run(capsys, *args, "-o", workdir)
            assert code == 2, (args, err)
            lines = err.strip().splitlines()
            assert len(lines) == 1 and message in lines[0], (args, err)
            assert "Traceback" not in err
        assert snapshot(d) == before, args
        assert not os.path.exists(tmp_path / "fresh"), args
