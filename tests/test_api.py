"""The Python API (makemore_jax.load / train and Model) does what the command line does, by the same functions."""

import json
import math
import os

import numpy as np
import pytest

import makemore_jax

from conftest import first_names, run_inprocess


@pytest.fixture(scope="module")
def words_file(tmp_path_factory):
    return first_names(tmp_path_factory, 2000)


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory, words_file):
    d = str(tmp_path_factory.mktemp("api") / "bigram")
    from makemore_jax.cli import main

    assert main(["train", "-o", d, "-i", words_file, "--steps", "50", "-q", "--num-samples", "0"]) in (0, None)
    return d


def test_importing_the_package_does_not_load_jax():
    import subprocess
    import sys

    code = "import sys, makemore_jax; assert 'jax' not in sys.modules; makemore_jax.load; assert 'jax' in sys.modules"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_loaded_model_samples_what_the_command_line_prints(trained_dir, capsys):
    model = makemore_jax.load(trained_dir)
    for flags, kwargs in [
        ([], {}),
        (
            ["--prefix", "ma", "--min-len", "4", "--top-p", "0.9", "-t", "0.8"],
            dict(prefix="ma", min_len=4, top_p=0.9, temperature=0.8),
        ),
        (["--unique", "--new-only"], dict(unique=True, new_only=True)),
    ]:
        code, out, err = run_inprocess(
            capsys, "sample", "-o", trained_dir, "-n", "12", "--seed", "3", "--no-report", *flags
        )
        assert code == 0, err
        assert out.split() == model.sample(12, seed=3, **kwargs)
    assert model.sample(5, seed=1) == model.sample(5, seed=1) != model.sample(5, seed=2)


def test_new_only_excludes_the_training_input_and_unique_repeats_nothing(trained_dir):
    model = makemore_jax.load(trained_dir)
    names = model.sample(200, seed=0, unique=True, new_only=True)
    assert len(set(names)) == 200 and not set(names) & model.known_words()
    assert model.known_words() == set(open(model.training["input"]).read().split())  # every split of the input


def test_scores_agree_with_eval_and_with_each_other(trained_dir, words_file, capsys):
    model = makemore_jax.load(trained_dir)
    code, out, _ = run_inprocess(capsys, "eval", "-o", trained_dir, "-i", words_file)
    words = open(words_file).read().split()
    nll = model.nll(words)
    assert f"mean NLL {nll:.4f} (perplexity {math.exp(nll):.2f})" in out
    log_p = model.log_prob(["emma", "ava"])
    assert log_p.shape == (2,) and np.all(log_p < 0)
    assert model.nll(["emma", "ava"]) == pytest.approx(-log_p.sum() / 9)  # 4 + 1 and 3 + 1 characters
    assert model.perplexity(["emma", "ava"]) == pytest.approx(math.exp(model.nll(["emma", "ava"])))


def test_train_save_load_round_trip(tmp_path, words_file):
    words = open(words_file).read().split()
    model = makemore_jax.train(words, type="ngram", order=3)
    assert model.type == "ngram" and set(model.metrics) >= {"dev_nll", "dev_ppl", "test_ppl"}
    assert model.metrics["dev_ppl"] == pytest.approx(math.exp(model.metrics["dev_nll"]))
    before = model.sample(10, seed=4, prefix="a")
    model.save(str(tmp_path / "ng"))
    back = makemore_jax.load(str(tmp_path / "ng"))
    assert back.sample(10, seed=4, prefix="a") == before and all(n.startswith("a") for n in before)
    saved = json.load(open(os.path.join(tmp_path, "ng", "model.json")))
    assert saved["metrics"]["dev_ppl"] == pytest.approx(model.metrics["dev_ppl"])
    new = model.sample(30, seed=4, new_only=True)  # the words it was trained on are in memory
    assert len(new) == 30 and not set(new) & model.known_words()
    from makemore_jax.errors import MakemoreError

    with pytest.raises(MakemoreError, match="does not record its training input"):
        back.sample(3, new_only=True)  # trained from a list in Python: no input file to read them back from


def test_bad_requests_are_one_clear_error(trained_dir):
    model = makemore_jax.load(trained_dir)
    from makemore_jax.errors import MakemoreError

    with pytest.raises(MakemoreError, match="not in the model's vocabulary"):
        model.sample(3, prefix="Z")
    with pytest.raises(makemore_jax.NotEnough, match="found only") as err:
        model.sample(100, unique=True, max_len=1)
    assert len(err.value.names) <= 27
    with pytest.raises(MakemoreError, match="no such work directory"):
        makemore_jax.load(os.path.join(trained_dir, "missing"))
