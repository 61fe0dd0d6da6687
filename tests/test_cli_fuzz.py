"""Hostile input, property-based (hypothesis) and by hand: the word reader, the command
line, and the checkpoint loader. Whatever comes in, the tool either accepts it
by the stated rules or refuses it in one line; it never shows a traceback.

The reader's rules (data.parse_words): UTF-8; a byte-order mark at the start is
dropped; lines end at \\n, \\r\\n or a lone \\r; surrounding whitespace is stripped
and blank lines dropped; a character is one code point, not normalised; refused:
bytes that are not UTF-8, a NUL, a word over MAX_WORD_LEN characters, no word.
"""

import contextlib
import io
import json
import os
import re
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from makemore_jax.cli.commands import main
from makemore_jax.data.words import MAX_WORD_LEN, Vocabulary, parse_words
from makemore_jax.errors import MakemoreError
from makemore_jax.store import checkpoint

QUICK = settings(max_examples=300, deadline=None)
SLOW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# pieces that break naive readers: line ends of every kind, BOMs, NUL, invalid and
# truncated UTF-8, Unicode whitespace and line separators, combining marks, emoji
PIECES = [
    b"a",
    b"b",
    b"z",
    b"anna",
    b".",
    b" ",
    b"\t",
    b"\n",
    b"\r",
    b"\r\n",
    b"\n\r",
    b"\x00",
    b"\xef\xbb\xbf",
    b"\xff",
    b"\xc3",
    b"\xc3\xa9",
    "e\u0301".encode(),
    "\U0001f642".encode(),
    "\U0001f468\u200d\U0001f469".encode(),
    "\u2028".encode(),
    "\u00a0".encode(),
    "\u0085".encode(),
    b"\x0b",
    b"\x1c",
    "\ufeff".encode(),
    "\u05d0".encode(),
]
hostile_bytes = st.one_of(
    st.binary(max_size=64),
    st.lists(st.sampled_from(PIECES) | st.binary(max_size=3), max_size=40).map(b"".join),
)


def reference_words(raw: bytes) -> list[str]:
    """The rules, written out a second way (a regular expression for the line ends)."""
    text = raw.decode("utf-8")
    if text.startswith("\ufeff"):
        text = text[1:]
    return [line.strip() for line in re.split(r"\r\n|\r|\n", text) if line.strip()]


@QUICK
@given(hostile_bytes)
def test_reader_follows_the_rules_or_refuses_in_one_line(raw):
    try:
        words = parse_words(raw, source="in.txt")
    except MakemoreError as err:
        message = str(err)
        assert message.startswith("in.txt: ") and "\n" not in message
        refusals = ("is not valid UTF-8", "holds a NUL character", "characters; a word may have at most", "no words")
        assert any(r in message for r in refusals), message
        return
    assert words == reference_words(raw)
    for w in words:
        assert w and w == w.strip() and len(w) <= MAX_WORD_LEN
        assert not set(w) & {"\n", "\r", "\x00"}


line_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"), max_size=12)


@QUICK
@given(st.lists(st.tuples(line_text, st.sampled_from(["\n", "\r\n", "\r"])), min_size=1, max_size=20), st.booleans())
def test_line_endings_and_a_bom_do_not_change_the_words(lines, bom):
    raw = ("\ufeff" if bom else "") + "".join(text + end for text, end in lines)
    expected = [text.strip() for text, _ in lines if text.strip()]
    if not expected:
        with pytest.raises(MakemoreError, match="no words"):
            parse_words(raw.encode())
        return
    assert parse_words(raw.encode()) == expected
    assert parse_words("\n".join(text for text, _ in lines).encode()) == expected


@QUICK
@given(st.lists(line_text.filter(lambda t: t.strip()), min_size=1, max_size=20))
def test_every_accepted_word_encodes_and_decodes_to_itself(words):
    words = parse_words("\n".join(words).encode())
    vocab = Vocabulary.from_words(words)
    stream = vocab.encode_stream(words)
    cuts = np.flatnonzero(stream == 0)
    assert [vocab.decode(stream[a + 1 : b]) for a, b in zip(cuts[:-1], cuts[1:])] == words
    assert len(stream) == sum(len(w) + 1 for w in words) + 1  # one id per code point, one boundary per word


def cli(*args):
    """main() in this process with its output captured (capsys does not mix with hypothesis)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exit:
            code = exit.code
    return code, out.getvalue(), err.getvalue()


def assert_one_line_error(code, err, command):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"makemore {command}: error: ") and "Traceback" not in err, err


@SLOW
@given(hostile_bytes)
def test_train_sample_eval_on_any_bytes(raw):
    with tempfile.TemporaryDirectory() as d:
        path, work = os.path.join(d, "in.txt"), os.path.join(d, "w")
        with open(path, "wb") as f:
            f.write(raw)
        # as many samples as `sample -n 4` below draws: one compiled sampler serves both
        code, out, err = cli("train", "--type", "counts", "-i", path, "-o", work, "--num-samples", "4")
        if code != 0:
            assert_one_line_error(code, err, "train")
            assert not os.path.exists(work)  # nothing written before the input was checked
            return
        words = parse_words(raw)
        assert f"{len(words):,} {'word' if len(words) == 1 else 'words'} (" in out
        code, out, err = cli("sample", "-o", work, "-n", "4")
        assert code == 0 and len(out.split("\n")) == 5, err
        code, out, err = cli("eval", "-o", work, "-i", path)
        assert code == 0 and "mean NLL" in out, err


def _not_huge(value: str) -> bool:
    """Keep values that do not ask for hours of work (-n 99999999)."""
    try:
        return abs(float(value)) <= 1000
    except ValueError:
        return True


flag_values = st.one_of(st.text(max_size=8), st.integers(-5, 300).map(str), st.floats().map(str)).filter(_not_huge)


@SLOW
@given(st.sampled_from(["-n", "--seed", "--temperature", "--top-k", "--max-len"]), flag_values)
def test_any_flag_value_is_used_or_refused_in_one_line(tmp_path_factory, flag, value):
    work = _shared_model(tmp_path_factory)
    code, out, err = cli("sample", "-o", work, flag, value, "--no-report")
    if code == 0:
        assert "Traceback" not in err
    else:
        assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err


_MODEL = {}


def _shared_model(tmp_path_factory):
    if "work" not in _MODEL:
        work = str(tmp_path_factory.mktemp("fuzz") / "w")
        assert cli("train", "--type", "counts", "-o", work, "--num-samples", "0")[0] == 0
        _MODEL["work"] = work
    return _MODEL["work"]


# ---- hostile files by hand -------------------------------------------------------------


@pytest.mark.parametrize(
    "raw,message",
    [
        (b"anna\n" + b"a" * (1 << 20) + b"\nbob\n", "line 2 has 1,048,576 characters; a word may have at most 1,000"),
        (b"anna\r\nbo\x00b\r\n", "line 2 holds a NUL character (is it a binary or UTF-16 file?)"),
        ("anna\nbob\n".encode("utf-16"), "line 1 is not valid UTF-8 (byte 0xff)"),
        ("anna\nbob\n".encode("utf-16-le"), "line 1 holds a NUL character"),
        (b"anna\rbob\r\xe9mile\r", "line 3 is not valid UTF-8 (byte 0xe9)"),
        (b"\xef\xbb\xbf \r\n\t\r\n", "no words"),
    ],
)
def test_hostile_files_are_refused_naming_the_line(tmp_path, tmp_path_factory, raw, message):
    path = tmp_path / "in.txt"
    path.write_bytes(raw)
    code, _, err = cli("train", "-i", str(path), "-o", str(tmp_path / "w"))
    assert_one_line_error(code, err, "train")
    assert f"{path}: {message}" in err
    assert not (tmp_path / "w").exists()
    code, _, err = cli("eval", "-i", str(path), "-o", _shared_model(tmp_path_factory))
    assert_one_line_error(code, err, "eval")
    assert f"{path}: {message}" in err


def test_line_endings_and_bom_give_the_same_model(tmp_path):
    words = ["anna", "bob", "émile", "zoë"]
    variants = {
        "lf": "\n".join(words).encode(),
        "crlf": "\r\n".join(words).encode() + b"\r\n",
        "cr": "\r".join(words).encode(),
        "mixed": b"anna\r\nbob\remile\n".replace(b"emile", "émile".encode()) + "zoë".encode(),
        "bom": b"\xef\xbb\xbf" + "\r\n".join(words).encode(),
        "padded": ("  " + "\t\n \n".join(words) + " \n\n").encode(),
    }
    hashes = set()
    for name, raw in variants.items():
        path = tmp_path / f"{name}.txt"
        path.write_bytes(raw)
        work = tmp_path / name
        code, out, err = cli("train", "--type", "counts", "-i", str(path), "-o", str(work), "--num-samples", "0")
        assert code == 0 and "4 words" in out, (name, err)
        hashes.add(json.loads((work / "model.json").read_text())["arrays_sha256"])
    assert len(hashes) == 1


@pytest.mark.parametrize("kind", ["counts", "bigram", "mlp", "ngram"])
def test_combining_marks_emoji_and_a_single_word_train_sample_and_evaluate(tmp_path, kind):
    steps = [] if kind in ("counts", "ngram") else ["--steps", "4", "--eval-every", "2", "--batch-size", "4"]
    for name, text in {
        "unicode": (
            "e\u0301mile\n\u00e9mile\n\U0001f642\U0001f642\nna\u0308ive\n"
            "\u05e9\u05dc\u05d5\u05dd\n\U0001f468\u200d\U0001f469\n"
        )
        * 3,
        "single": "anna\n",
    }.items():
        path = tmp_path / f"{name}.txt"
        path.write_text(text)
        work = tmp_path / f"{kind}-{name}"
        # as many samples as `sample -n 5` below draws: one compiled sampler serves both
        code, out, err = cli("train", "--type", kind, "-i", str(path), "-o", str(work), "--num-samples", "5", *steps)
        assert code == 0, err
        if name == "unicode":  # a character is a code point: the combining acute is one of its own
            vocab = json.loads((work / "model.json").read_text())["vocab"]
            assert "\u0301" in vocab and "e" in vocab and "\u00e9" in vocab and "\u200d" in vocab
        code, out, err = cli("sample", "-o", str(work), "-n", "5")
        assert code == 0 and len(out.splitlines()) == 5, err
        code, out, err = cli("eval", "-o", str(work), "-i", str(path))
        assert code == 0 and "mean NLL" in out, err


def test_a_million_words(tmp_path):
    rng = np.random.default_rng(0)
    letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz", np.uint8)
    lengths = rng.integers(1, 9, 1_000_000)
    chars = letters[rng.integers(0, 26, int(lengths.sum()))]
    ends = np.cumsum(lengths)
    raw = b"\n".join(chars[e - n : e].tobytes() for e, n in zip(ends, lengths))
    path = tmp_path / "million.txt"
    path.write_bytes(raw)
    work = tmp_path / "w"
    code, out, err = cli("train", "--type", "counts", "-i", str(path), "-o", str(work), "--num-samples", "2")
    assert code == 0, err
    assert "1,000,000 words (train 800,000 / dev 100,000 / test 100,000), vocabulary of 27" in out
    code, out, err = cli("eval", "-o", str(work), "-i", str(path))
    assert code == 0 and "(1,000,000 words)" in out, err
    nll = float(out.split("mean NLL ")[1].split()[0])
    # uniform random letters and lengths: next letter log(26) or so, the end a little cheaper
    assert 2.9 < nll < 3.4


# ---- the checkpoint loader -------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    import jax

    from makemore_jax.models import get_model
    from makemore_jax.training.config import TrainConfig
    from makemore_jax.training.fitted import Fitted

    work = tmp_path_factory.mktemp("ckpt")
    cfg = TrainConfig.create("mlp", n_embd=4, n_embd2=6)
    model = Fitted(cfg, Vocabulary(tuple("abc")), {}, 5)
    model.params = get_model("mlp").init(jax.random.key(0), model.model_config)
    checkpoint.save(str(work), "model", model, step=3, best_dev=2.0, training={"input": "x"}, metrics={"dev_nll": 2.0})
    return work, json.loads((work / "model.json").read_text())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    field=st.sampled_from(
        [
            "type",
            "config",
            "block_size",
            "vocab",
            "step",
            "best_dev_nll",
            "training",
            "metrics",
            "arrays_file",
            "arrays_sha256",
            "format_version",
            "makemore_jax_version",
            "format",
        ]
        + [
            f"config.{k}"
            for k in (
                "type",
                "seed",
                "split",
                "lr",
                "steps",
                "n_embd",
                "n_head",
                "n_layer",
                "block_size",
                "order",
                "smoothing_method",
                "dropout",
            )
        ]
    ),
    value=json_values,
)
def test_any_value_in_any_field_loads_or_is_refused_naming_the_file(saved_model, field, value):
    work, meta = saved_model
    meta = json.loads(json.dumps(meta))
    if field.startswith("config."):
        meta["config"][field.split(".", 1)[1]] = value
    else:
        meta[field] = value
    meta["meta_sha256"] = checkpoint.meta_digest(meta)  # resealed: the loader must judge every field itself
    with tempfile.TemporaryDirectory() as d:
        for name in os.listdir(work):
            if name.endswith(".npz"):
                os.link(os.path.join(work, name), os.path.join(d, name))
        with open(os.path.join(d, "model.json"), "w") as f:
            json.dump(meta, f)
        try:
            checkpoint.load(d)
        except MakemoreError as err:
            assert d in str(err) and "\n" not in str(err)


@QUICK
@given(st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_any_bytes_as_model_json_are_refused(raw):
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "model.json"), "wb") as f:
            f.write(raw)
        with pytest.raises(MakemoreError, match=re.escape(d)):
            checkpoint.load(d)


def test_a_vocabulary_too_large_for_a_table_is_refused_and_other_models_take_it(tmp_path):
    from makemore_jax.training.trainer import MAX_TABLE_VOCAB

    chars = [chr(0x4E00 + i) for i in range(MAX_TABLE_VOCAB + 10)]  # CJK ideographs
    path = tmp_path / "cjk.txt"
    path.write_text("\n".join(a + b for a, b in zip(chars, chars[1:] + chars[:1])) + "\n")
    for kind in ("counts", "bigram"):
        code, _, err = cli("train", "--type", kind, "-i", str(path), "-o", str(tmp_path / kind))
        assert_one_line_error(code, err, "train")
        assert (
            f"a vocabulary of {MAX_TABLE_VOCAB + 11:,} characters needs" in err
            and f"the {kind} model takes at most" in err
        )
        assert not (tmp_path / kind).exists()
    code, out, err = cli(
        "train",
        "--type",
        "mlp",
        "-i",
        str(path),
        "-o",
        str(tmp_path / "mlp"),
        "--steps",
        "2",
        "--eval-every",
        "2",
        "--n-embd",
        "4",
        "--n-embd2",
        "8",
        "--num-samples",
        "2",
    )
    assert code == 0, err
