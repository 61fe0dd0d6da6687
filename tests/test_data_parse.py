"""The vectorised parser and the array-backed words against the reference: parse_words and lists of str.

Every check compares the arrays' answer with what parse_words (one Python
string a line) or a plain list of words gives, on fuzzed inputs: Unicode
whitespace, every line ending, a byte-order mark, blank lines, non-ASCII
characters, and faults (invalid UTF-8, NUL, long lines, no words). Small
blocks (PARSE_BLOCK) put block boundaries everywhere.
"""

import jax
import numpy as np
import pytest

from makemore_jax.data import words as data
from makemore_jax.errors import MakemoreError
from makemore_jax.models import ngram
from makemore_jax.seeding import seed_key

from conftest import NAMES

SPACES = [chr(c) for c in range(0x110000) if chr(c).isspace() and chr(c) not in "\n\r"]
LETTERS = list("abcxyz.'-") + ["é", "ß", "日", "本", "\U0001f600", "\ufeff", "\u200b", "\x01", "\x7f", "\x80", "\xff"]
ENDINGS = ["\n", "\r\n", "\r"]


def fuzzed_text(rng, lines: int, letters=LETTERS) -> str:
    """Lines of letters with whitespace around and inside, any line ending, some blank."""
    out = []
    for _ in range(lines):
        kind = rng.integers(6)
        if kind == 0:  # blank, or whitespace only
            line = "".join(rng.choice(SPACES, rng.integers(0, 3)))
        else:
            pad = lambda: "".join(rng.choice(SPACES, rng.integers(0, 3)))  # noqa: E731
            inner = ["".join(rng.choice(letters, rng.integers(1, 6))) for _ in range(rng.integers(1, 3))]
            line = pad() + "".join(rng.choice(SPACES)).join(inner) + pad()
        out.append(line + rng.choice(ENDINGS))
    if rng.integers(2):
        out[-1] = out[-1].rstrip("\r\n")  # no line ending at the very end
    return "".join(out)


def outcome(parse, raw: bytes, **kwargs):
    """('ok', words) or ('error', message): what parsing raw gives."""
    try:
        return "ok", list(parse(raw, **kwargs))
    except MakemoreError as err:
        return "error", str(err)


def array_words(raw: bytes, **kwargs) -> list[str]:
    codes, offsets = data.parse_code_points(raw, **kwargs)
    assert offsets.dtype == np.int64 and offsets[0] == 0 and np.all(np.diff(offsets) > 0)
    return ["".join(map(chr, codes[a:b].tolist())) for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())]


@pytest.fixture(params=[1 << 22, 1, 7, 64], ids=["block-4M", "block-1", "block-7", "block-64"])
def block(request, monkeypatch):
    monkeypatch.setattr(data, "PARSE_BLOCK", request.param)
    return request.param


@pytest.mark.parametrize("seed", range(40))
def test_parser_equals_parse_words_on_fuzzed_text(seed, block):
    rng = np.random.default_rng(seed)
    text = fuzzed_text(rng, int(rng.integers(1, 60)))
    raw = (b"\xef\xbb\xbf" if seed % 3 == 0 else b"") + text.encode("utf-8")
    expected = outcome(data.parse_words, raw, source="f.txt")
    assert outcome(array_words, raw, source="f.txt") == expected
    got = outcome(data.parse_word_array, raw, source="f.txt")
    assert got == expected
    if expected[0] == "ok":
        words = data.parse_word_array(raw)
        assert words.vocab == data.Vocabulary.from_words(expected[1])
        assert words.ids.dtype == data.id_dtype(words.vocab.size)


@pytest.mark.parametrize("seed", range(10))
def test_ascii_input_stays_in_bytes(seed, block):
    rng = np.random.default_rng(100 + seed)
    text = fuzzed_text(rng, 40, letters=list("abcq .'-\x01\x7f"))
    raw = text.encode("ascii", "ignore")
    if data.parse_words(raw, allow_empty=True):
        codes, _ = data.parse_code_points(raw)
        assert codes.dtype == np.uint8
    assert outcome(array_words, raw, allow_empty=True) == outcome(data.parse_words, raw, allow_empty=True)


@pytest.mark.parametrize("seed", range(20))
def test_plain_lists_of_lines(seed, block, monkeypatch):
    """Words and \\n only (the parser's short way), blank lines and faults included."""
    monkeypatch.setattr(data, "MAX_WORD_LEN", 6)
    rng = np.random.default_rng(500 + seed)
    pieces = ["", "ab", "xyz.q", "é", "日本", "\U0001f600", "abcdefg", "a\x00", "\x00"][: 6 + seed % 4]
    text = "\n".join(
        pieces[i] for i in rng.integers(len(pieces), size=int(rng.integers(1, 40)))
    )  # (numpy's str arrays drop NULs)
    raw = text.encode("utf-8") + (b"\xff" if seed % 7 == 6 else b"")
    expected = outcome(data.parse_words, raw, source="f.txt")
    assert outcome(array_words, raw, source="f.txt") == expected
    assert outcome(data.parse_word_array, raw, source="f.txt") == expected


FAULTS = {  # what parse_words refuses, by kind
    "utf-8": [b"\xff", b"\xe2\x82", b"\xed\xa0\x80", b"\xc0\xaf", "\U0001f600".encode()[:3]],
    "nul": [b"\x00", b"a\x00b"],
    "long": [b"x" * 13, "é".encode() * 13, b"a \xc2\xa0" * 5],
}


@pytest.mark.parametrize("seed", range(60))
def test_faults_give_the_same_message_and_line(seed, block, monkeypatch):
    monkeypatch.setattr(data, "MAX_WORD_LEN", 12)  # long lines easy to make; both parsers read it at call time
    rng = np.random.default_rng(1000 + seed)
    lines = fuzzed_text(rng, 30).encode("utf-8").split(b"\n")
    kinds = [k for k in FAULTS if (seed >> "utf-8 nul long".split().index(k)) & 1] or ["long"]  # every mix
    for _ in range(rng.integers(1, 4)):  # one to three faults anywhere
        at = int(rng.integers(len(lines)))
        group = FAULTS[kinds[rng.integers(len(kinds))]]
        fault = group[rng.integers(len(group))]
        cuts = [i for i in range(len(lines[at]) + 1) if i == len(lines[at]) or not 0x80 <= lines[at][i] < 0xC0]
        cut = cuts[rng.integers(len(cuts))]  # between characters: the fault is the only fault
        lines[at] = lines[at][:cut] + fault + lines[at][cut:]
    raw = b"\n".join(lines)
    expected = outcome(data.parse_words, raw, source="f.txt")
    assert outcome(array_words, raw, source="f.txt") == expected
    assert outcome(data.parse_word_array, raw, source="f.txt") == expected


@pytest.mark.parametrize(
    "raw", [b"", b"\n", b"\r\n\r", b" \t\n\xc2\xa0\n\xe3\x80\x80", b"\xef\xbb\xbf", b"\xef\xbb\xbf \n"]
)
def test_no_words(raw, block):
    assert outcome(data.parse_word_array, raw, source="f.txt") == outcome(data.parse_words, raw, source="f.txt")
    assert outcome(data.parse_word_array, raw, source="f.txt")[0] == "error"
    assert len(data.parse_word_array(raw, allow_empty=True)) == 0
    assert data.parse_word_array(raw, allow_empty=True) == []


def test_byte_order_mark_kept_when_the_part_does_not_start_the_file():
    raw = b"\xef\xbb\xbfab\n"
    assert list(data.parse_word_array(raw, byte_order_mark=False)) == data.parse_words(raw, byte_order_mark=False)
    assert data.parse_word_array(raw, byte_order_mark=False)[0] == "\ufeffab"


def test_long_word_at_the_limit(block):
    ok = ("x" * data.MAX_WORD_LEN + "\n").encode()
    assert list(data.parse_word_array(ok)) == ["x" * data.MAX_WORD_LEN]
    bad = b"a\n\r\n" + (" " + "x" * (data.MAX_WORD_LEN + 1) + " \n").encode()
    with pytest.raises(MakemoreError, match=r"^input: line 3 has 1,001 characters; a word may have at most 1,000$"):
        data.parse_word_array(bad)


def test_names_file_parses_the_same(names):
    words = data.read_word_array(NAMES)
    assert words == names and words.strings() == names
    assert words.vocab == data.Vocabulary.from_words(names)
    assert words.ids.dtype == np.uint8 and words.offsets.dtype == np.int64


# ---- WordArray against lists of str ------------------------------------------------------


def fuzzed_words(seed: int, n: int = 300, letters=("a", "b", "é", "日", "\U0001f600", " ", ".")) -> list[str]:
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list(letters), rng.integers(0, 7))) for _ in range(n)]


@pytest.mark.parametrize("seed", range(5))
def test_word_array_reads_as_its_list(seed):
    words = fuzzed_words(seed)
    array = data.WordArray.from_strings(words)
    assert len(array) == len(words) and list(array) == words and array == words and words == array
    assert array[0] == words[0] and array[-1] == words[-1] and array[17] == words[17]
    assert array[5:40] == words[5:40] and array[5:40:3] == words[5:40:3] and array[40:5] == []
    assert array[5:40][3:9] == words[8:14] and array[5:40][-1] == words[39]
    rows = np.random.default_rng(seed).permutation(len(words))[:100]
    assert array.take(rows) == [words[r] for r in rows]
    assert array.take(rows[:0]) == []
    assert np.array_equal(data.word_lengths(array), data.word_lengths(words))
    assert array + ["z"] == words + ["z"] and ["z"] + array == ["z"] + words
    assert array != words[:-1] and array != words[::-1]
    with pytest.raises(IndexError):
        array[len(words)]


@pytest.mark.parametrize("seed", range(5))
def test_word_array_encodes_as_its_list(seed):
    words = fuzzed_words(seed)
    vocab = data.Vocabulary.from_words(words + ["q"])  # a larger vocabulary than the words': the ids are mapped
    array = data.WordArray.from_strings(words)
    assert array.vocab == data.Vocabulary.from_words(words)
    assert np.array_equal(vocab.encode_stream(array), vocab.encode_stream(words))
    assert np.array_equal(vocab.encode_stream(array[10:50]), vocab.encode_stream(words[10:50]))
    for a, b in zip(data.encode_padded(array, vocab, 8), data.encode_padded(words, vocab, 8)):
        assert np.array_equal(a, b) and a.dtype == b.dtype
    assert np.array_equal(ngram.words_to_ngrams(array, vocab, 4), ngram.words_to_ngrams(words, vocab, 4))
    assert ngram.count_words(array, vocab, 5, 1 << 16) == ngram.count_words(words, vocab, 5, 1 << 16)


def test_word_array_refuses_what_the_list_refuses():
    words = ["ab", "a日b", "abc"]
    vocab = data.Vocabulary.from_words(["abc"])
    array = data.WordArray.from_strings(words)

    def message(call):
        with pytest.raises(MakemoreError) as err:
            call()
        return str(err.value)

    expected = message(lambda: vocab.encode_stream(words))
    assert "'日' (U+65E5) in word 'a日b'" in expected
    assert message(lambda: vocab.encode_stream(array)) == expected
    assert message(lambda: data.encode_padded(array, vocab, 8)) == message(lambda: data.encode_padded(words, vocab, 8))
    assert message(lambda: data.WordArray.from_strings(words, vocab)) == expected
    assert message(lambda: data.encode_padded(array, vocab, 3)) == message(lambda: data.encode_padded(words, vocab, 3))
    assert message(lambda: data.WordArray.from_strings(["a\nb"])) == message(
        lambda: data.Vocabulary.from_words(["a\nb"])
    )


# ---- the Dataset from a file and from a list ------------------------------------------------


def assert_same_dataset(a: data.Dataset, b: data.Dataset, block_size: int):
    assert a.vocab == b.vocab and a.sizes == b.sizes and a.max_word_len == b.max_word_len
    for s in data.SPLITS:
        assert a.words[s] == b.words[s]
        for x, y in zip(a.padded(s, block_size), b.padded(s, block_size)):
            assert np.array_equal(x, y)
        for x, y in zip(a.pairs(s), b.pairs(s)):
            assert np.array_equal(x, y)


def test_dataset_from_the_file_is_the_dataset_from_its_list(names, tmp_path):
    key = seed_key(42, "split")
    from_file = data.Dataset.build(data.read_word_array(NAMES), key)
    from_list = data.Dataset.build(names, key)
    assert_same_dataset(from_file, from_list, 16)
    # and the split is split_words's, word for word
    for s, expected in zip(data.SPLITS, data.split_words(names, key)):
        assert from_file.words[s] == expected
        assert isinstance(from_file.words[s], data.WordArray)
    eval_key = seed_key(42, "eval")
    assert_same_dataset(from_file.sample(500, eval_key), from_list.sample(500, eval_key), 16)
    # the sample is the draw a list of str gives
    by_list = data.Dataset(from_list.vocab, {s: list(from_list.words[s]) for s in data.SPLITS}).sample(500, eval_key)
    assert_same_dataset(from_file.sample(500, eval_key), by_list, 16)


@pytest.mark.parametrize("seed", range(3))
def test_dataset_of_fuzzed_unicode_words(seed, tmp_path):
    rng = np.random.default_rng(seed)
    text = fuzzed_text(rng, 400)
    path = tmp_path / "w.txt"
    path.write_bytes(text.encode("utf-8"))
    words = data.read_words(path)
    key = jax.random.key(seed)
    from_file = data.Dataset.build(data.read_word_array(path), key, (0.6, 0.2, 0.2))
    assert_same_dataset(from_file, data.Dataset.build(words, key, (0.6, 0.2, 0.2)), from_file.max_word_len + 1)
    listed = data.Dataset(from_file.vocab, {s: list(from_file.words[s]) for s in data.SPLITS})
    assert_same_dataset(from_file.sample(20, key), listed.sample(20, key), from_file.max_word_len + 1)


def test_dataset_of_part_of_a_list_has_the_parts_vocabulary():
    array = data.WordArray.from_strings(["abc", "xyz", "ab"])
    built = data.Dataset.build(array[::2], jax.random.key(0))
    assert built.vocab == data.Vocabulary.from_words(["abc", "ab"])
    assert sorted(built.words["train"]) == ["ab", "abc"]


def test_ngram_scores_of_arrays_and_lists_agree(names):
    data_ = data.Dataset.build(names[:3000], jax.random.key(1))
    params = ngram.fit(list(data_.words["train"]), data_.vocab, 4)
    lists = [list(data_.words[s]) for s in data.SPLITS]
    assert ngram.nll_per_list(params, [data_.words[s] for s in data.SPLITS], data_.vocab) == ngram.nll_per_list(
        params, lists, data_.vocab
    )
