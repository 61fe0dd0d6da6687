"""Scoring by distinct prefixes (data.prefixes): every (prefix, next symbol) pair once, with its count."""

from collections import Counter

import jax
import numpy as np
import pytest

from makemore_jax.data import prefixes
from makemore_jax.data.words import Vocabulary, encode_padded, read_words

from conftest import NAMES


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


def random_words(seed: int):
    """(rng, words, vocab): up to 40 words of 1 to 5 letters from an alphabet of 1 to 3, many repeats and prefixes."""
    rng = np.random.default_rng(seed)
    alphabet = "abc"[: rng.integers(1, 4)]
    words = ["".join(rng.choice(list(alphabet), rng.integers(1, 6))) for _ in range(rng.integers(1, 40))]
    return rng, words, Vocabulary.from_words(words)


@pytest.mark.parametrize("seed", range(40))
def test_leaves_weigh_every_pair_as_often_as_the_words_hold_it(seed):
    rng, words, vocab = random_words(seed)
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
    """Repeats and words that are prefixes of others, by the prefix tree (Transformer) and padded (MLP)."""
    from makemore_jax.data.words import Dataset
    from makemore_jax.models import get_model
    from makemore_jax.seeding import seed_key
    from makemore_jax.training import evaluate
    from makemore_jax.training.config import TrainConfig
    from makemore_jax.training.trainer import new_model

    words = ["ab", "abc", "ab", "a", "abcd", "b", "ba", "ab", "c", "abd", "cab"] * 7 + ["d" * 9]
    data = Dataset.build(words, seed_key(0, "split"), (1, 0, 0))
    for kind in ("transformer", "mlp"):
        cfg = TrainConfig.create(kind, steps=1, n_embd=8, n_embd2=8, n_layer=1, n_head=2).validate()
        model = new_model(cfg, data)
        tokens, lengths = data.padded("train", model.block_size)
        want, count = evaluate.word_nlls(model.apply, model.params, tokens, lengths, 4).sum(), (lengths + 1).sum()
        got, positions = evaluate.nll_sum(model.runner, tokens, lengths)
        assert positions == int(count) == sum(len(w) + 1 for w in words)
        assert abs(got - float(want)) < 1e-5 * float(want), kind
        assert (get_model(kind).apply_trie is not None) == (kind == "transformer")


def pairs_of_trie(tr, vocab) -> Counter:
    """The pairs a prefix tree's weights stand for, each slot's prefix read from its parents; checks
    on the way that every slot's visible slots (s' <= s < ends[s']) are its ancestors, root first."""
    c = Counter()
    for r in range(tr.ids.shape[0]):
        prefix = {}
        for s in range(tr.ids.shape[1]):
            d = int(tr.depths[r, s])
            if s and not d:  # an idle slot: sees itself, weighs nothing
                assert tr.ends[r, s] == s + 1 and not tr.counts[r, s] and not tr.words[r, s]
                continue
            text = "" if d == 0 else prefix[int(tr.parents[r, s])] + vocab.itos(int(tr.ids[r, s]))
            assert len(text) == d
            prefix[s] = text
            seen = [q for q in range(s + 1) if tr.ends[r, q] > s]
            assert [prefix[q] for q in seen] == [text[:k] for k in range(d + 1)]
            if tr.counts[r, s]:
                c[(prefix[int(tr.parents[r, s])], text[-1])] += int(tr.counts[r, s])
            if tr.words[r, s]:
                c[(text, ".")] += int(tr.words[r, s])
    return c


@pytest.mark.parametrize("seed", range(40))
def test_trie_weighs_every_pair_as_often_as_the_words_hold_it(seed):
    rng, words, vocab = random_words(seed)
    row_len = int(rng.integers(7, 20))  # from the longest word's path (6 slots) up
    tr = prefixes.trie(*encode_padded(words, vocab, 7), row_len)
    assert pairs_of_trie(tr, vocab) == pair_counts(words)
    assert tr.positions == sum(len(w) + 1 for w in words)
    # every distinct prefix has a slot that weighs it, and only one
    weighed = int((tr.counts > 0).sum()) + 1  # + the root
    assert weighed == len({w[:k] for w in words for k in range(len(w) + 1)})


def test_trie_refuses_rows_shorter_than_a_path():
    vocab = Vocabulary.from_words(["abcd"])
    with pytest.raises(ValueError, match="needs 5 slots"):
        prefixes.trie(*encode_padded(["abcd"], vocab, 6), 4)


def test_names_trie_holds_a_third_of_the_positions():
    words = read_words(NAMES)
    vocab = Vocabulary.from_words(words)
    tr = prefixes.trie(*encode_padded(words, vocab, 16), 32)
    assert tr.positions == 228_146 == tr.counts.sum() + tr.words.sum()
    assert tr.ids.size < 0.35 * tr.positions


def test_transformer_on_a_trie_gives_each_slot_the_logits_of_its_prefix():
    from makemore_jax.models import ModelConfig, get_model

    words = ["emma", "emily", "em", "olivia", "oli", "ava", "emma", "e"]
    vocab = Vocabulary.from_words(words)
    model = get_model("transformer")
    params = model.init(jax.random.key(0), ModelConfig(vocab.size, 8, n_layer=2, n_head=2, n_embd=16))
    tr = prefixes.trie(*encode_padded(words, vocab, 8), 10)  # several rows: paths placed again
    assert tr.ids.shape[0] > 1
    got = np.asarray(jax.jit(model.apply_trie)(params, tr.ids, tr.depths, tr.ends))
    where, rows = [], []  # (row, slot, depth) of each real slot, and its prefix as a padded row
    for r in range(tr.ids.shape[0]):
        prefix = {}
        for s in range(tr.ids.shape[1]):
            d = int(tr.depths[r, s])
            if s and not d:
                continue
            prefix[s] = [] if d == 0 else prefix[int(tr.parents[r, s])] + [int(tr.ids[r, s])]
            where.append((r, s, d))
            rows.append(([0] + prefix[s] + [0] * 8)[:8])
    want = np.asarray(jax.jit(model.apply)(params, np.array(rows, np.int32)))  # one padded row per slot
    for i, (r, s, d) in enumerate(where):
        np.testing.assert_allclose(got[r, s], want[i, d], rtol=1e-5, atol=1e-5)
