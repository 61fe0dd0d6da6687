"""`makemore import --format arpa` (store/arpa.py, models/ngram/backoff.py): ARPA files in, as backoff models.

A hand-written file with backoff weights is scored as computed here by hand;
files written by `makemore export --format arpa` come back as models that
score every word as the file's backoff rules say (the small ARPA reader of
test_models_ngram_arpa, in float64), and go out again byte for byte; sample,
eval and mix use them; every malformed file is refused in one line naming its
line, the work directory untouched.
"""

import math
import os
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_models_ngram_arpa import ODD_WORDS, dev_words, read_arpa, word_log10

import makemore_jax
from makemore_jax.errors import MakemoreError
from makemore_jax.models.ngram import backoff
from makemore_jax.store import arpa, checkpoint
from makemore_jax.training.evaluate import word_nll

from conftest import first_names, run_inprocess, snapshot

run = run_inprocess  # `makemore ARGS` through the real CLI: (exit code, stdout, stderr)

# Order 3 over {a, b}: <s> opens a history once, listed n-grams without a backoff weight (bow 1),
# <unk>, an n-gram whose history is not itself listed ("b a" is not; "b a </s>" is absent, too).
BY_HAND = """\
an ARPA file may say what made it before \\data\\

\\data\\
ngram 1=5
ngram 2=5
ngram 3=2

\\1-grams:
-1.0\t</s>
-99\t<s>\t-0.30
-0.5\ta\t-0.2
-0.7\tb\t-0.1
-2.0\t<unk>

\\2-grams:
-0.2\t<s> a\t-0.05
-0.4\ta b\t-0.15
-0.3\tb </s>
-0.6\ta a
-0.9\t<s> b

\\3-grams:
-0.1\t<s> a b
-0.25\ta b </s>

\\end\\
"""

# log10 p(word), each step by the backoff rule (bow of a listed n-gram without one: 0)
BY_HAND_LOG10 = {
    "ab": -0.2 + -0.1 + -0.25,  # <s> a; <s> a b; a b </s>
    "ba": -0.9 + (-0.1 + -0.5) + (-0.2 + -1.0),  # <s> b; bow(<s> b)=0 bow(b) p(a); bow(b a)=0 bow(a) p(</s>)
    "a": -0.2 + (-0.05 + -0.2 + -1.0),  # <s> a; bow(<s> a) bow(a) p(</s>)
    "bb": -0.9 + (-0.1 + -0.7) + -0.3,  # <s> b; bow(<s> b)=0 bow(b) p(b); b </s>
    "aab": -0.2 + (-0.05 + -0.6) + -0.4 + -0.25,  # <s> a; bow(<s> a) a a; bow(a a)=0 a b; a b </s>
    # <s> a; <s> a b; bow(a b) bow(b) p(a); bow(b a)=0 (not listed) a b; a b </s>
    "abab": -0.2 + -0.1 + (-0.15 + -0.1 + -0.5) + -0.4 + -0.25,
}


def write(tmp_path, text, name="m.arpa"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_a_file_by_hand_scores_as_computed_by_hand(tmp_path, capsys):
    d = str(tmp_path / "w")
    code, out, err = run(capsys, "import", "--format", "arpa", "-o", d, write(tmp_path, BY_HAND))
    assert code == 0, err
    assert out.strip() == f"read {tmp_path / 'm.arpa'}: backoff (order 3, from an ARPA file); saved to {d}/"
    model = makemore_jax.load(d)
    assert model.vocab.chars == ("a", "b") and model.type == "backoff"
    by_hand = BY_HAND_LOG10
    words = sorted(by_hand)
    got = model.log_prob(words) / math.log(10)
    assert np.allclose(got, [by_hand[w] for w in words], rtol=0, atol=1e-6), dict(zip(words, got))
    # the mean NLL per character that eval prints: −Σ ln p over every character and end
    eval_file = write(tmp_path, "\n".join(words) + "\n", "words.txt")
    code, out, err = run(capsys, "eval", "-o", d, "-i", eval_file)
    assert code == 0, err
    nll = -sum(by_hand.values()) * math.log(10) / sum(len(w) + 1 for w in words)
    assert f"mean NLL {nll:.4f}" in out


def test_a_history_never_opens_with_two_starts(tmp_path):
    """Order 4: the second character's history is "<s> c1", never "<s> <s> c1"; a listed "<s> <s> a" is unused."""
    text = BY_HAND.replace("ngram 3=2", "ngram 3=2\nngram 4=1").replace(
        "-0.25\ta b </s>\n", "-0.25\ta b </s>\n\n\\4-grams:\n-0.01\t<s> <s> a b\n"
    )
    text = text.replace("-0.1\t<s> a b\n", "-0.1\t<s> a b\t-0.5\n").replace("-0.25\ta b </s>\n", "-0.25\ta b </s>\t0\n")
    model = makemore_jax.import_model(write(tmp_path, text), format="arpa")
    assert model.fitted.config.order == 4
    # </s> given "<s> a b": not listed, bow(<s> a b) = -0.5, then "a b </s>"; the 4-gram "<s> <s> a b" never counts
    assert model.log_prob(["ab"])[0] / math.log(10) == pytest.approx(-0.2 + -0.1 + -0.5 + -0.25, abs=1e-6)


CASES = {
    "counts add-1": ["--type", "counts", "--smoothing", "1"],
    "order 1 kn": ["--type", "ngram", "--order", "1", "--kn"],
    "order 5 modified-kn (sparse tables)": ["--type", "ngram", "--order", "5", "--modified-kn"],
}


@pytest.fixture(scope="module")
def small_names(tmp_path_factory):
    return first_names(tmp_path_factory, 2000)


@pytest.mark.parametrize("case", sorted(CASES))
def test_an_exported_model_comes_back_exactly(tmp_path, capsys, small_names, case):
    """export -> import: every word scored as the file says (and as the model that wrote it, to the file's
    7 digits); import -> export: the same file, byte for byte; through safetensors: the same arrays."""
    d, back, path = str(tmp_path / "w"), str(tmp_path / "back"), str(tmp_path / "m.arpa")
    code, _, err = run(capsys, "train", *CASES[case], "-i", small_names, "-o", d, "--num-samples", "0", "-q")
    assert code == 0, err
    assert run(capsys, "export", "-o", d, "--format", "arpa", path)[0] == 0
    code, _, err = run(capsys, "import", "--format", "arpa", "-o", back, path)
    assert code == 0, err
    original, imported = checkpoint.load(d).fitted, checkpoint.load(back).fitted
    words = dev_words(original, small_names) + ODD_WORDS
    by_file = np.array([word_log10(read_arpa(path), w) for w in words])
    got = -np.asarray(word_nll(imported, words), np.float64) / math.log(10)
    assert np.allclose(got, by_file, rtol=1e-6, atol=1e-5)
    own = -np.asarray(word_nll(original, words), np.float64) / math.log(10)
    assert np.allclose(got, own, rtol=0, atol=1e-4)
    again = str(tmp_path / "again.arpa")
    assert run(capsys, "export", "-o", back, "--format", "arpa", again)[0] == 0
    assert open(again, "rb").read() == open(path, "rb").read()
    st, st_back = str(tmp_path / "m.safetensors"), str(tmp_path / "st")
    assert run(capsys, "export", "-o", back, "--format", "safetensors", st)[0] == 0
    assert run(capsys, "import", "--format", "safetensors", "-o", st_back, st)[0] == 0
    reread = checkpoint.load(st_back).fitted
    assert reread.type == "backoff" and reread.vocab == imported.vocab
    assert all(np.array_equal(reread.params[k], imported.params[k]) for k in imported.params)


def test_sample_eval_and_mix_use_it(tmp_path, capsys, small_names):
    """The imported model samples the names of the model it was written from (same seed, steering included:
    the file's 7 digits do not move a draw here), evaluates as it, and mixes with a model trained here."""
    ngram, back, bigram, mix = (str(tmp_path / n) for n in ("ngram", "back", "bigram", "mix"))
    flags = ["-i", small_names, "--num-samples", "0", "-q"]
    assert run(capsys, "train", "--type", "ngram", "--order", "4", "-o", ngram, *flags)[0] == 0
    path = str(tmp_path / "m.arpa")
    assert run(capsys, "export", "-o", ngram, path)[0] == 0
    assert run(capsys, "import", "--format", "arpa", "-o", back, path)[0] == 0
    steer = ["-n", "30", "--seed", "7", "--prefix", "ma", "--min-len", "4", "--top-p", "0.9", "--no-report"]
    longest = str(checkpoint.load(ngram).fitted.block_size - 1)  # the file does not say how long names were
    code, from_file, err = run(capsys, "sample", "-o", back, *steer, "--max-len", longest)
    assert code == 0, err
    names = from_file.split()
    assert len(names) == 30 and all(n.startswith("ma") and len(n) >= 4 for n in names)
    assert from_file == run(capsys, "sample", "-o", ngram, *steer)[1]
    evals = [run(capsys, "eval", "-o", d, "-i", small_names)[1] for d in (ngram, back)]
    assert evals[0] == evals[1] and "mean NLL" in evals[0]
    assert run(capsys, "train", "--type", "bigram", "--steps", "30", "-o", bigram, *flags)[0] == 0
    code, out, err = run(capsys, "mix", back, bigram, "-o", mix)
    assert code == 0, err
    dev = {line.split()[0]: float(re.findall(r"\d+\.\d+", line)[3]) for line in out.splitlines()[1:4]}
    assert dev["mixture"] <= dev[back] + 1e-4  # the mixture is no worse on dev
    assert run(capsys, "sample", "-o", mix, "-n", "3")[0] == 0
    mixed = makemore_jax.load(mix)
    assert mixed.training["input_sha256"] == makemore_jax.load(bigram).training["input_sha256"]


def test_from_python(tmp_path):
    path = write(tmp_path, BY_HAND)
    model = makemore_jax.import_model(path, format="arpa", workdir=str(tmp_path / "w"))
    assert makemore_jax.load(str(tmp_path / "w")).log_prob(["ab"]) == pytest.approx(model.log_prob(["ab"]))
    out = str(tmp_path / "out.arpa")
    assert model.export(out, format="arpa") == "ARPA, order 3 (5 1-grams, 5 2-grams, 2 3-grams)"
    assert makemore_jax.import_model(out, format="arpa").log_prob(["ab", "ba"]) == pytest.approx(
        model.log_prob(["ab", "ba"]), abs=1e-6
    )
    with pytest.raises(MakemoreError, match="are for format makemore"):
        makemore_jax.import_model(path, format="arpa", type="bigram")


def _edit(old, new):
    assert old in BY_HAND, old
    return BY_HAND.replace(old, new, 1)


REFUSED = {
    "a token of two characters": (_edit("-0.7\tb\t-0.1", "-0.7\tbb\t-0.1"), 12, "token 'bb' is not one character"),
    "a count that disagrees": (_edit("ngram 2=5", "ngram 2=6"), 15, "lists 5 entries, \\data\\ says 6 (line 5)"),
    "an entry too many": (_edit("-0.9\t<s> b\n", "-0.9\t<s> b\n-0.8\tb b\n"), 15, "lists 6 entries"),
    "a probability nan": (_edit("-0.4\ta b", "nan\ta b"), 17, "log10 probability 'nan' is not finite"),
    "a probability -inf": (_edit("-0.3\tb </s>", "-inf\tb </s>"), 18, "'-inf' is not finite"),
    "a probability above 1": (_edit("-0.6\ta a", "0.5\ta a"), 19, "above 0 (a probability above 1)"),
    "a probability not a number": (_edit("-0.6\ta a", "x\ta a"), 19, "'x' is not a number"),
    "a backoff weight inf": (_edit("-0.5\ta\t-0.2", "-0.5\ta\tinf"), 11, "log10 backoff weight 'inf' is not finite"),
    "a backoff weight at the top": (_edit("-0.1\t<s> a b", "-0.1\t<s> a b\t-0.3"), 23, "no backoff weight at"),
    "too few fields": (_edit("-0.4\ta b\t-0.15", "-0.4"), 17, "1 field(s) in a 2-gram entry, expected 3 or 4"),
    "an n-gram twice": (_edit("-0.9\t<s> b", "-0.9\ta b"), 20, "'a b' is listed twice (first at line 17)"),
    "a character that is no unigram": (_edit("-0.9\t<s> b", "-0.9\t<s> c"), 20, "'c' is not among the unigrams"),
    "a missing section": (_edit("\\3-grams:", "\\4-grams:"), 22, "expected the \\3-grams: section"),
    "orders out of turn": (_edit("ngram 2=5", "ngram 3=5"), 5, "the count of order 3 where order 2's belongs"),
    "a bad count line": (_edit("ngram 2=5", "ngram 2=five"), 5, "expected 'ngram N=COUNT'"),
    "no end": (BY_HAND.replace("\\end\\\n", ""), 25, "expected \\end\\ after the last section"),
    "not UTF-8": (None, 12, "not UTF-8 text"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_malformed_file_is_refused_in_one_line_with_its_line(tmp_path, capsys, case):
    text, line, message = REFUSED[case]
    path = tmp_path / "bad.arpa"
    if text is None:
        path.write_bytes(_edit("-0.7\tb\t-0.1", "-0.7\t\xff\t-0.1").encode("latin-1"))
    else:
        path.write_text(text, encoding="utf-8")
    d = str(tmp_path / "w")
    assert run(capsys, "import", "--format", "arpa", "-o", d, write(tmp_path, BY_HAND, "good.arpa"))[0] == 0
    before = snapshot(d)
    code, out, err = run(capsys, "import", "--format", "arpa", "-o", d, str(path))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and f"{path}: line {line}: " in err and message in err, err
    assert snapshot(d) == before  # the run it held is untouched


@pytest.mark.parametrize(
    "text, message",
    [
        ("nothing here\n", "no \\data\\ line: not an ARPA file"),
        (_edit("-1.0\t</s>\n", "-1.0\t<unk2>\n"), "line 9: token '<unk2>' is not one character"),
        (
            _edit("ngram 1=5", "ngram 1=4").replace("-1.0\t</s>\n", "").replace("b </s>", "b b"),
            "</s> is not among the unigrams: no word could end",
        ),
    ],
)
def test_other_refusals(tmp_path, capsys, text, message):
    code, out, err = run(capsys, "import", "--format", "arpa", "-o", str(tmp_path / "w"), write(tmp_path, text))
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not os.path.exists(tmp_path / "w")


def test_what_it_is_not_is_said(tmp_path, capsys):
    d = str(tmp_path / "w")
    assert run(capsys, "import", "--format", "arpa", "-o", d, write(tmp_path, BY_HAND))[0] == 0
    for args, message in [
        (["train", "--resume", "-o", d], "read whole from another tool's file: there is nothing to resume"),
        (
            ["import", "--format", "arpa", "--type", "bigram", "-o", d, str(tmp_path / "m.arpa")],
            "for --format makemore",
        ),
        (["export", "-o", d, "--format", "makemore", str(tmp_path / "m.pt")], "backoff"),
        (["mix", d, d + "2", "-o", str(tmp_path / "mix")], ""),
    ]:
        if args[0] == "mix":
            assert run(capsys, "import", "--format", "arpa", "-o", d + "2", str(tmp_path / "m.arpa"))[0] == 0
            message = "none of the models was trained here"
        code, out, err = run(capsys, *args)
        assert code == 2 and message in err and err.count("\n") == 1, (args, err)


PIECES = ["a", "b", "c", "ab", "<s>", "</s>", "<unk>", "<S>", "\\data\\", "\\end\\", "\\2-grams:", "ngram 2=1",
          "-0.5", "0", "1", "nan", "-inf", "1e999", "-99", " ", "\t", "\u00a0", "\u2028", "\x00", "\x1c", "é",
          "\U0001f642", "\ufeff", "\r", ""]  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["drop", "twice", "swap", "insert", "replace"]),
            st.integers(0, 40),
            st.lists(st.sampled_from(PIECES), max_size=4),
        ),
        max_size=4,
    )
)
def test_any_edit_of_a_file_is_read_by_the_rules_or_refused_in_one_line(edits):
    """Lines dropped, repeated, swapped, inserted or replaced by pieces that break naive readers: the reader
    returns a model whose entries check out and whose tables build, or one MakemoreError, never another error."""
    lines = BY_HAND.split("\n")
    for what, at, pieces in edits:
        at %= len(lines)
        text = "\t".join(pieces) if len(pieces) != 2 else " ".join(pieces)
        if what == "drop":
            del lines[at]
        elif what == "twice":
            lines.insert(at, lines[at])
        elif what == "swap":
            lines[at], lines[-1 - at] = lines[-1 - at], lines[at]
        elif what == "insert":
            lines.insert(at, text)
        else:
            lines[at] = text
    try:
        fitted = arpa.read("\n".join(lines).encode("utf-8", "surrogatepass"), "f.arpa")
    except MakemoreError as err:
        assert "\n" not in str(err) and str(err).startswith("f.arpa: ")
        return
    V = fitted.vocab.size
    backoff.check_entries(fitted.params["grams"], fitted.params["log10_prob"], fitted.params["log10_backoff"], V)
    tables = backoff.tables(fitted.params, V)
    assert np.all(np.isfinite(tables["unigram"])) and tables["row_start"][-1] == len(tables["next_ids"])
