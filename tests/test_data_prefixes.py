"""Scoring by distinct prefixes (data.prefixes): every (prefix, next symbol) pair once, with its count."""

from collections import Counter

import jax
import numpy as np
import pytest

from conftest import NAMES
from makemore_jax.data import prefixes
from makemore_jax.data.words import Vocabulary, encode_padded, read_words
from makemore_jax.seeding import permutation


def pair_counts(words) -> Counter:
    """The lecture's way: every (prefix, next symbol) of every word, '.' for the end."""
    c = Counter()
    for w in words:
        for t in range(len(w) + 1):
            c[(w[:t], w[t] if t < len(w) else ".")] += 1
    return c


def pairs_of_leaves(lv, vocab) -> Counter:
    """The pairs the leaves' weights stand for; a weight past a leaf's end would be an error."""
    c = Counter()
    for row, n, natural, end in zip(lv.tokens, lv.lengths, lv.natural, lv.end):
        w = vocab.decode(row[1:])
        assert len(w) == n and not natural[n + 1 :].any() and not end[n + 1 :].any()
        for t in range(n + 1):
            if natural[t]:
                c[(w[:t], w[t] if t < n else ".")] += int(natural[t])
            if end[t]:
                c[(w[:t], ".")] += int(end[t])
    return c


@pytest.mark.parametrize("seed", range(40))
def test_leaves_weigh_every_pair_as_often_as_the_words_hold_it(seed):
    rng = np.random.default_rng(seed)
    alphabet = "abc"[: rng.integers(1, 4)]
    words = ["".join(rng.choice(list(alphabet), rng.integers(1, 6))) for _ in range(rng.integers(1, 40))]
    vocab = Vocabulary.from_words(words)
    lv = prefixes.leaves(*encode_padded(words, vocab, 7))
    assert pairs_of_leaves(lv, vocab) == pair_counts(words)
    assert lv.positions == sum(len(w) + 1 for w in words)
    # no leaf is a prefix of another, and none repeats
    leaves = [vocab.decode(r[1:]) for r in lv.tokens]
    assert len(set(leaves)) == len(leaves)
    assert not any(a != b and b.startswith(a) for a in leaves for b in leaves)


def test_names_share_a_quarter_of_their_positions():
    words = read_words(NAMES)
    vocab = Vocabulary.from_words(words)
    lv = prefixes.leaves(*encode_padded(words, vocab, 16))
    assert lv.positions == 228_146
    assert int((lv.lengths + 1).sum()) < 0.8 * lv.positions
    assert lv.natural.sum() + lv.end.sum() == lv.positions


def test_split_nll_by_leaves_equals_every_position_summed():
    """Repeats and words that are prefixes of others, packed (Transformer) and padded (MLP) scoring."""
    from makemore_jax.models import get_model
    from makemore_jax.training import evaluate
    from makemore_jax.training.config import TrainConfig
    from makemore_jax.training.trainer import new_model
    from makemore_jax.data.words import Dataset
    from makemore_jax.seeding import seed_key

    words = ["ab", "abc", "ab", "a", "abcd", "b", "ba", "ab", "c", "abd", "cab"] * 7 + ["d" * 9]
    data = Dataset.build(words, seed_key(0, "split"), (1, 0, 0))
    for kind in ("transformer", "mlp"):
        cfg = TrainConfig.create(kind, steps=1, n_embd=8, n_embd2=8, n_layer=1, n_head=2).validate()
        model = new_model(cfg, data)
        tokens, lengths = data.padded("train", model.block_size)
        want, count = evaluate.sequence_nll_sum(model.apply, model.params, tokens, lengths, 4)
        got, positions = evaluate.sequence_nll_sums(model, tokens, lengths)
        assert positions == int(count) == sum(len(w) + 1 for w in words)
        assert abs(got - float(want)) < 1e-5 * float(want), kind
        assert (get_model(kind).apply_packed is not None) == (kind == "transformer")


@pytest.mark.parametrize("n", [0, 1, 2, 1625, 1626, 32_033])
def test_permutation_is_jax_random_permutation(n):
    key = jax.random.fold_in(jax.random.key(3), n)
    np.testing.assert_array_equal(permutation(key, n), np.asarray(jax.random.permutation(key, n)))


def test_permutation_of_three_rounds_is_jax_random_permutation():
    n = 2_700_000  # past e^(ln(2^32 − 1) · 2 / 3): three sorting rounds
    key = jax.random.key(7)
    np.testing.assert_array_equal(permutation(key, n), np.asarray(jax.random.permutation(key, n)))
