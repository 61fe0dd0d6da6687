"""`makemore export --format arpa` (models/ngram/arpa.py): the counting and n-gram models as ARPA files.

A small ARPA reader written here recomputes, by standard backoff with one
<s> before each word (as KenLM and SRILM do), the log10 probability of every
word of the dev split and a few made-up ones, and must get the model's own.
"""

import math
import os

import numpy as np
import pytest

from makemore_jax.data.words import Dataset
from makemore_jax.errors import MakemoreError
from makemore_jax.models.ngram import arpa
from makemore_jax.seeding import seed_key
from makemore_jax.store import checkpoint
from makemore_jax.training.evaluate import word_nll

from conftest import first_names, run_inprocess, snapshot

# words that reach unseen contexts, the start and the end in every way: one character, rare pairs, long
ODD_WORDS = ["a", "q", "zzzzzzzzzz", "xqjv", "emmaemmaemmaemma", "ab", "yx", "anna"]


run = run_inprocess  # `makemore ARGS` through the real CLI: (exit code, stdout, stderr)


# ---- a small ARPA reader -----------------------------------------------------------


def read_arpa(path: str):
    """(order, {n-gram: log10 p}, {context: log10 bow}) of an ARPA file, checking its \\data\\ counts."""
    lines = open(path, encoding="utf-8").read().split("\n")
    assert lines[0] == "\\data\\"
    declared, i = {}, 1
    while lines[i].startswith("ngram "):
        n, count = lines[i][len("ngram ") :].split("=")
        declared[int(n)] = int(count)
        i += 1
    order = max(declared)
    assert sorted(declared) == list(range(1, order + 1))
    probs, bows, listed, n = {}, {}, {}, None
    for line in lines[i:]:
        if line.startswith("\\") and line.endswith("-grams:"):
            n = int(line[1 : -len("-grams:")])
            listed[n] = 0
        elif line == "\\end\\":
            break
        elif line.strip():
            fields = line.split()
            assert len(fields) in (n + 1, n + 2), line
            ngram = tuple(fields[1 : n + 1])
            assert ngram not in probs, f"{ngram} listed twice"
            probs[ngram] = float(fields[0])
            if len(fields) == n + 2:
                bows[ngram] = float(fields[-1])
            listed[n] += 1
    else:
        raise AssertionError("no \\end\\")
    assert listed == declared  # the header counts exactly the entries of each section
    return order, probs, bows


def backoff_log10(probs, bows, history: tuple, token: str) -> float:
    """Standard backoff: the listed prob of "h w".

    Else bow(h) (0 when h is not listed) plus that of h minus its oldest.
    """
    total = 0.0
    while (*history, token) not in probs:
        total += bows.get(history, 0.0)
        assert history, f"{token!r} is not a unigram"
        history = history[1:]
    return total + probs[(*history, token)]


def word_log10(model, word: str) -> float:
    """log10 p(word): each character and </s> given the longest history up to order − 1, one <s> first."""
    order, probs, bows = model
    tokens = ["<s>", *word, "</s>"]
    return sum(
        backoff_log10(probs, bows, tuple(tokens[max(0, i - order + 1) : i]), tokens[i]) for i in range(1, len(tokens))
    )


# ---- through the CLI ---------------------------------------------------------------


@pytest.fixture(scope="module")
def small_names(tmp_path_factory):
    return first_names(tmp_path_factory, 2000)


CASES = {
    "counts add-1": ["--type", "counts", "--smoothing", "1"],
    "counts add-0.5": ["--type", "counts", "--smoothing", "0.5"],
    "order 1 kn": ["--type", "ngram", "--order", "1", "--kn"],
    "order 1 add-k": ["--type", "ngram", "--order", "1", "--smoothing", "0.5"],
    "order 2 add-k": ["--type", "ngram", "--order", "2", "--smoothing", "1"],
    "order 2 kn": ["--type", "ngram", "--order", "2", "--kn"],
    "order 2 modified-kn": ["--type", "ngram", "--order", "2", "--modified-kn"],
    "order 4 add-k": ["--type", "ngram", "--order", "4", "--smoothing", "0.5"],
    "order 4 kn": ["--type", "ngram", "--order", "4", "--kn"],
    "order 4 modified-kn": ["--type", "ngram", "--order", "4", "--modified-kn"],
    "order 5 modified-kn (sparse tables)": [
        "--type",
        "ngram",
        "--order",
        "5",
        "--modified-kn",
        "--discount-scale",
        "1.2",
    ],
    "order 5 add-k (sparse tables)": ["--type", "ngram", "--order", "5", "--smoothing", "0.1"],
}


def train(capsys, small_names, d, flags):
    code, out, err = run(capsys, "train", *flags, "-i", small_names, "-o", d, "--num-samples", "0", "-q")
    assert code == 0, err
    return checkpoint.load(d).fitted


def dev_words(model, path):
    words = open(path, encoding="utf-8").read().split()
    return Dataset.build(words, seed_key(model.config.seed, "split"), model.config.split).words["dev"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_arpa_gives_the_models_own_probabilities(tmp_path, capsys, small_names, case):
    d, path = str(tmp_path / "w"), str(tmp_path / "model.arpa")
    model = train(capsys, small_names, d, CASES[case])
    before = snapshot(d)
    code, out, err = run(capsys, "export", "-o", d, "--format", "arpa", path)
    assert code == 0, err
    assert out.startswith(f"wrote {path}: ARPA, order ")
    assert snapshot(d) == before  # the work directory is only read
    assert not [f for f in os.listdir(tmp_path) if f.startswith(checkpoint.TEMP_PREFIX)]
    read = read_arpa(path)
    assert read[0] == (2 if CASES[case][1] == "counts" else model.config.order)
    words = dev_words(model, small_names) + ODD_WORDS
    assert len(words) > 150
    expected = -np.asarray(word_nll(model, words), np.float64) / math.log(10)
    got = np.array([word_log10(read, w) for w in words])
    worst = int(np.argmax(np.abs(got - expected)))
    assert np.allclose(got, expected, rtol=0, atol=1e-4), (words[worst], got[worst], expected[worst])


@pytest.mark.parametrize("case", ["order 4 modified-kn", "order 4 add-k", "counts add-1"])
def test_arpa_lists_the_prefix_and_suffix_of_every_ngram(tmp_path, capsys, small_names, case):
    """KenLM and SRILM find an n-gram by extending its suffix, and a context by its prefix: both must be listed."""
    d, path = str(tmp_path / "w"), str(tmp_path / "model.arpa")
    train(capsys, small_names, d, CASES[case])
    assert run(capsys, "export", "-o", d, path)[0] == 0
    order, probs, bows = read_arpa(path)
    missing = [g for g in probs if len(g) > 1 and (g[1:] not in probs or g[:-1] not in probs)]
    assert missing == []
    assert probs[("<s>",)] == -99
    assert all(g[-1] != "</s>" for g in bows if bows[g] != 0)  # </s> ends a word: never a context
    assert all("<s>" not in g[1:] for g in probs)  # one <s>, and only first


@pytest.mark.parametrize(
    "flags",
    [
        ["--type", "counts", "--smoothing", "1"],
        ["--type", "ngram", "--order", "3", "--smoothing", "0.5"],
        ["--type", "ngram", "--order", "3", "--kn"],
        ["--type", "ngram", "--order", "3", "--modified-kn"],
    ],
)
def test_arpa_with_a_character_never_seen_in_training(tmp_path, capsys, flags):
    """A character only in the dev split: an unseen context (add-k: uniform) and an unseen unigram (Kneser-Ney)."""
    words = ["abc", "bca", "cab", "acb", "abba", "cabbac", "bb", "ca", "aab", "bcc", "cba", "ab", "ba"] * 3 + ["azza"]
    seed = next(s for s in range(100) if "azza" in Dataset.build(words, seed_key(s, "split")).words["dev"])
    path = tmp_path / "words.txt"
    path.write_text("\n".join(words) + "\n")
    d, arpa_path = str(tmp_path / "w"), str(tmp_path / "model.arpa")
    code, out, err = run(
        capsys, "train", *flags, "-i", str(path), "-o", d, "--seed", str(seed), "--num-samples", "0", "-q"
    )
    assert code == 0, err
    assert run(capsys, "export", "-o", d, arpa_path)[0] == 0
    model = checkpoint.load(d).fitted
    dev = dev_words(model, str(path)) + ["z", "zz", "zzzz", "azza", "abcz"]
    expected = -np.asarray(word_nll(model, dev), np.float64) / math.log(10)
    assert np.allclose([word_log10(read_arpa(arpa_path), w) for w in dev], expected, rtol=0, atol=1e-4)


def test_arpa_file_by_hand(tmp_path, capsys):
    """A bigram counting model small enough to check by hand: add-1 over {a, b, boundary}."""
    words = tmp_path / "ab.txt"
    words.write_text("ab\n" * 8 + "b\n" * 2)
    d, path = str(tmp_path / "w"), str(tmp_path / "ab.arpa")
    code, out, err = run(
        capsys, "train", "--type", "counts", "-i", str(words), "-o", d, "--split", "1,0,0", "--num-samples", "0"
    )
    assert code == 0, err
    assert run(capsys, "export", "-o", d, path)[0] == 0
    order, probs, bows = read_arpa(path)
    assert order == 2
    # start: a 8 times, b 2 times; after a: b 8; after b: end 10; add-1 over 3 ids
    for ngram, p in {
        ("<s>", "a"): 9 / 13,
        ("<s>", "b"): 3 / 13,
        ("<s>", "</s>"): 1 / 13,
        ("a", "b"): 9 / 11,
        ("a", "a"): 1 / 11,
        ("b", "</s>"): 11 / 13,
        ("b", "b"): 1 / 13,
    }.items():
        assert probs[ngram] == pytest.approx(math.log10(p), abs=1e-6), ngram
    assert probs[("a",)] == pytest.approx(math.log10(1 / 3), abs=1e-6)  # an unseen context is uniform
    assert word_log10((order, probs, bows), "ab") == pytest.approx(math.log10(9 / 13 * 9 / 11 * 11 / 13), abs=1e-6)


def test_export_refuses_what_it_cannot_write(tmp_path, capsys, small_names):
    counted, neural = str(tmp_path / "counted"), str(tmp_path / "neural")
    train(capsys, small_names, counted, CASES["counts add-1"])
    train(capsys, small_names, neural, ["--type", "bigram", "--steps", "1"])
    (tmp_path / "adir").mkdir()
    refused = [
        (neural, ["--format", "arpa", str(tmp_path / "n.arpa")], "a bigram model cannot be written as ARPA"),
        (counted, ["--format", "json", str(tmp_path / "c.arpa")], "invalid choice"),
        (counted, [str(tmp_path / "no" / "such" / "c.arpa")], "does not exist"),
        (counted, [str(tmp_path / "adir")], "is a directory"),
        (str(tmp_path / "nothing"), [str(tmp_path / "c.arpa")], "nothing"),
    ]
    for d, args, message in refused:
        before = {name: snapshot(str(tmp_path / name)) for name in ("counted", "neural", "adir")}
        listing = sorted(os.listdir(tmp_path))
        code, out, err = run(capsys, "export", "-o", d, *args)
        assert code == 2, (args, err)
        assert len(err.strip().splitlines()) == 1 and message in err, err
        assert sorted(os.listdir(tmp_path)) == listing  # nothing written
        assert {name: snapshot(str(tmp_path / name)) for name in before} == before


def test_a_character_that_cannot_be_a_token_is_refused():
    class Vocab:
        chars = ("a", " ", "b")

    with pytest.raises(MakemoreError, match="cannot be an ARPA token"):
        arpa.arpa_tokens(Vocab())
