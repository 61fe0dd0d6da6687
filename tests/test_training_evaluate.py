"""Log-probabilities of single words: evaluate.word_nll, `sample --log-prob`, `eval --per-word`."""

import math

import jax
import numpy as np
import pytest

from makemore_jax.cli.commands import main
from makemore_jax.data.words import Dataset
from makemore_jax.errors import MakemoreError
from makemore_jax.store import checkpoint
from makemore_jax.training.evaluate import split_nll, word_nll

from conftest import NAMES


def run(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Words, a counting model and a tiny rnn trained on them."""
    root = tmp_path_factory.mktemp("scores")
    words = root / "small.txt"
    with open(NAMES) as f:
        words.write_text("".join(f.readline() for _ in range(300)) + "emma\n")  # one repeat
    common = ["-i", str(words), "--num-samples", "0", "--quiet"]
    assert main(["train", "--type", "counts", "-o", str(root / "counts"), *common]) == 0
    assert (
        main(
            [
                "train",
                "--type",
                "rnn",
                "-o",
                str(root / "rnn"),
                "--steps",
                "20",
                "--eval-every",
                "20",
                "--n-embd",
                "4",
                "--n-embd2",
                "8",
                "--batch-size",
                "8",
                *common,
            ]
        )
        == 0
    )
    return root


def test_word_nll_of_the_counting_model_is_the_sum_over_its_pairs(trained):
    model = checkpoint.load(str(trained / "counts")).fitted
    logp = np.asarray(jax.nn.log_softmax(model.runner.table, axis=-1), np.float64)
    ids = {c: i for i, c in enumerate(model.vocab.chars, start=1)}
    words = ["emma", "", "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", "ava"]  # longer than block_size: a table does not care
    got = word_nll(model, words)
    for word, nll in zip(words, got):
        seq = [0] + [ids[c] for c in word] + [0]
        assert nll == pytest.approx(-sum(logp[a, b] for a, b in zip(seq, seq[1:])), rel=1e-5)


@pytest.mark.parametrize("name", ["counts", "rnn"])
def test_word_nll_adds_up_to_the_split_nll(trained, name):
    model = checkpoint.load(str(trained / name)).fitted
    words = open(trained / "small.txt").read().split()
    nll = word_nll(model, words)
    assert nll.shape == (len(words),) and (nll > 0).all()
    mean = split_nll(model, Dataset(model.vocab, {"train": [], "dev": [], "test": words}), ["test"])["test"]
    assert nll.sum() / sum(len(w) + 1 for w in words) == pytest.approx(mean, rel=1e-5)
    assert word_nll(model, words[:3]) == pytest.approx(
        nll[:3], rel=1e-5
    )  # a word's score does not depend on the others


def test_word_nll_refuses_what_the_model_cannot_score(trained):
    model = checkpoint.load(str(trained / "rnn")).fitted
    with pytest.raises(MakemoreError, match="not in the model's vocabulary"):
        word_nll(model, ["ok", "ç"])
    with pytest.raises(MakemoreError, match="the model handles at most"):
        word_nll(model, ["a" * model.block_size])
    assert word_nll(model, []).shape == (0,)


def test_sample_log_prob_prints_each_name_with_its_log_probability(trained, capsys):
    workdir = str(trained / "rnn")
    code, plain, _ = run(capsys, "sample", "-o", workdir, "-n", "6", "--seed", "3")
    assert code == 0
    code, scored, err = run(capsys, "sample", "-o", workdir, "-n", "6", "--seed", "3", "--log-prob")
    assert code == 0 and "samples are in the training set" in err
    rows = [line.split() for line in scored.splitlines()]
    names = [row[1] if len(row) > 1 else "" for row in rows]
    assert names == plain.splitlines()  # the same names, each after its log p
    model = checkpoint.load(workdir).fitted
    expected = -word_nll(model, names)
    assert [float(row[0]) for row in rows] == pytest.approx(expected, abs=1e-3)
    assert all(float(row[0]) < 0 for row in rows)


def test_eval_per_word_lists_the_most_and_least_likely_words(trained, capsys):
    workdir, words_file = str(trained / "counts"), str(trained / "small.txt")
    code, out, _ = run(capsys, "eval", "-o", workdir, "-i", words_file, "--per-word", "4")
    assert code == 0
    lines = out.splitlines()
    assert "mean NLL" in lines[0]
    assert lines[1].startswith("4 most likely words (mean NLL per character") and lines[7].startswith(
        "4 least likely words"
    )
    most = [line.split() for line in lines[3:7]]
    least = [line.split() for line in lines[9:13]]
    assert len(lines) == 13
    words = open(words_file).read().split()
    distinct = list(dict.fromkeys(words))
    nll = dict(zip(distinct, word_nll(checkpoint.load(workdir).fitted, distinct)))
    per_char = sorted(nll[w] / (len(w) + 1) for w in distinct)
    assert [float(row[0]) for row in most] == pytest.approx(per_char[:4], abs=1e-4)
    assert [float(row[0]) for row in least] == pytest.approx(per_char[::-1][:4], abs=1e-4)
    assert len({row[2] for row in most + least}) == 8
    for nll_per_char, log_p, word in most + least:
        assert float(nll_per_char) == pytest.approx(nll[word] / (len(word) + 1), abs=1e-4)
        assert float(log_p) == pytest.approx(-nll[word], abs=1e-3)
        assert math.exp(float(log_p)) < 1


def test_eval_per_word_defaults_to_ten_and_lists_a_word_once(trained, tmp_path, capsys):
    few = tmp_path / "few.txt"
    few.write_text("emma\nava\nemma\n")
    code, out, _ = run(capsys, "eval", "-o", str(trained / "counts"), "-i", str(few), "--per-word")
    assert code == 0
    assert "2 most likely words" in out and "2 least likely words" in out
    assert out.count("emma") == 2  # once in each list
    code, out, _ = run(capsys, "eval", "-o", str(trained / "counts"), "-i", str(few))
    assert "likely" not in out
