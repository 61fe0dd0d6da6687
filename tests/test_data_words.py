import filecmp

import jax
import numpy as np
import pytest

from makemore_jax.data import words as data
from makemore_jax.errors import MakemoreError
from makemore_jax.seeding import seed_key

from conftest import NAMES


def test_names_dataset_facts(names, vocab, pairs):
    xs, ys = pairs
    assert len(names) == 32033
    assert vocab.size == 27
    assert vocab.chars == tuple("abcdefghijklmnopqrstuvwxyz")
    assert xs.dtype == np.int32 and ys.dtype == np.int32
    assert len(xs) == len(ys) == 228146


def test_bundled_names_equal_repository_copy():
    assert filecmp.cmp(data.bundled_names_path(), NAMES, shallow=False)


def test_pairs_match_the_lecture_loop(names, vocab, pairs):
    stoi = {c: i + 1 for i, c in enumerate(vocab.chars)}
    expected = []
    for w in names[:500]:
        ids = [0] + [stoi[c] for c in w] + [0]
        expected.extend(zip(ids, ids[1:]))
    n = len(expected)
    xs, ys = pairs
    assert list(zip(xs[:n].tolist(), ys[:n].tolist())) == expected


def test_parse_strips_drops_blanks_and_keeps_any_character():
    words = data.parse_words("  Émile \n\n\t\nO'Neil\r\nx.y 2\n   \n".encode())
    assert words == ["Émile", "O'Neil", "x.y 2"]
    vocab = data.Vocabulary.from_words(words)
    assert vocab.chars == tuple(sorted(set("ÉmileO'Neilx.y 2")))
    xs, ys = data.bigram_pairs(words, vocab)
    stream = np.concatenate([xs, ys[-1:]])
    decoded = [vocab.decode(stream[i + 1 :]) for i in np.flatnonzero(stream == 0)[:-1]]
    assert decoded == words  # the literal '.' in a word is a character, not the boundary


def test_byte_order_mark_is_dropped():
    assert data.parse_words(b"\xef\xbb\xbfanna\nbob\n") == ["anna", "bob"]


def test_invalid_utf8_names_the_line():
    with pytest.raises(MakemoreError, match="line 3 is not valid UTF-8"):
        data.parse_words(b"anna\nbob\nca\xffrl\n", source="f.txt")


@pytest.mark.parametrize("raw", [b"", b"\n\n  \n\t\n"])
def test_empty_input_is_an_error(raw):
    with pytest.raises(MakemoreError, match="no words"):
        data.parse_words(raw)


def test_missing_file(tmp_path):
    with pytest.raises(MakemoreError, match="no such file"):
        data.read_words(tmp_path / "nope.txt")


def test_unknown_character_is_named():
    vocab = data.Vocabulary.from_words(["abc"])
    with pytest.raises(MakemoreError, match=r"'z' \(U\+007A\) in word 'abz'"):
        vocab.encode_stream(["ab", "abz"])


def test_vocabulary_json_round_trip(vocab):
    assert data.Vocabulary.from_json(vocab.to_json()) == vocab
    with pytest.raises(MakemoreError):
        data.Vocabulary.from_json(["b", "a"])


def test_split_is_seeded_disjoint_and_complete(names):
    a = data.split_words(names, seed_key(7, "split"))
    b = data.split_words(names, seed_key(7, "split"))
    c = data.split_words(names, seed_key(8, "split"))
    assert a == b
    assert a != c
    train, dev, test = a
    assert (len(train), len(dev), len(test)) == (25627, 3203, 3203)
    assert sorted(train + dev + test) == sorted(names)


def test_split_proportions_are_configurable(names):
    train, dev, test = data.split_words(names[:1000], jax.random.key(0), (50, 25, 25))
    assert (len(train), len(dev), len(test)) == (500, 250, 250)
    with pytest.raises(MakemoreError):
        data.split_words(names, jax.random.key(0), (0.5, 0.5))
    with pytest.raises(MakemoreError):
        data.split_words(names, jax.random.key(0), (0, 0.5, 0.5))


def test_single_word_trains_on_it():
    train, dev, test = data.split_words(["solo"], jax.random.key(0))
    assert (train, dev, test) == (["solo"], [], [])


@pytest.mark.parametrize("alphabet", ["abc", "aé€.b", "a\U0001f600c"])  # table lookup; a '.' of its own; binary search
def test_encode_padded_equals_the_word_by_word_encoding(alphabet):
    rng = np.random.default_rng(len(alphabet))
    words = ["".join(rng.choice(list(alphabet), rng.integers(1, 7))) for _ in range(200)]
    vocab = data.Vocabulary.from_words(words)
    tokens, lengths = data.encode_padded(words, vocab, 8)
    for row, n, w in zip(tokens, lengths, words):
        assert n == len(w)
        assert row.tolist() == [0] + [vocab.chars.index(c) + 1 for c in w] + [0] * (8 - len(w))
