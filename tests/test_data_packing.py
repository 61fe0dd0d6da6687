"""Packed batches: the same words, the same loss and gradients as padded rows, less padding."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from makemore_jax.data import packing
from makemore_jax.data.words import Vocabulary, encode_padded
from makemore_jax.models import ModelConfig, get_model
from makemore_jax.training import steps as train_steps
from makemore_jax.training import trainer as train
from makemore_jax.training.config import TrainConfig
from makemore_jax.training.evaluate import masked_nll_sum

from conftest import fit_words

BLOCK = 8
WORDS = ["ab", "abcdefg", "c", "", "bca", "abcdefg", "gfedcba", "d", "ee", "fab"]


@pytest.fixture(scope="module")
def batch():
    vocab = Vocabulary.from_words(WORDS)
    tokens, lengths = encode_padded(WORDS, vocab, BLOCK)
    return jnp.asarray(tokens), jnp.asarray(lengths), vocab.size


@pytest.fixture(scope="module")
def transformer(batch):
    V = batch[2]
    model = get_model("transformer")
    return model, model.init(jax.random.key(3), ModelConfig(V, BLOCK, n_layer=1, n_head=2, n_embd=8))


def test_pack_lays_each_word_out_once_end_to_end(batch):
    tokens, lengths, _ = batch
    need = int((lengths + 1).sum())  # 44 slots: words cross row boundaries
    capacity = -(-need // BLOCK) * BLOCK + BLOCK
    p = packing.pack(tokens, lengths, capacity, BLOCK)
    assert bool(p.fits) and p.inputs.shape == (capacity // BLOCK, BLOCK)
    inputs, targets, pos, seg, counted = (np.asarray(a).reshape(-1) for a in p[:5])
    assert counted.sum() == need and counted[:need].all()
    toks = np.asarray(tokens)
    for b, n in enumerate(np.asarray(lengths) + 1):
        slots = np.flatnonzero(seg == b)
        assert len(slots) == n and (np.diff(slots) == 1).all()  # contiguous, in order
        np.testing.assert_array_equal(pos[slots], np.arange(n))
        np.testing.assert_array_equal(inputs[slots], toks[b, :n])
        np.testing.assert_array_equal(targets[slots], toks[b, 1 : n + 1])
    idle = seg[~counted]
    assert len(set(idle)) == len(idle) and (idle >= len(WORDS)).all()  # each idle slot alone
    starts = np.flatnonzero(pos == 0)[:-1]
    assert any(s % BLOCK + n > BLOCK for s, n in zip(starts, np.asarray(lengths) + 1))  # some word spans two rows


def test_pack_says_when_the_words_do_not_fit(batch):
    tokens, lengths, _ = batch
    need = int((lengths + 1).sum())
    assert not bool(packing.pack(tokens, lengths, (need // BLOCK) * BLOCK, BLOCK).fits)
    with pytest.raises(ValueError):
        packing.pack(tokens, lengths, BLOCK + 1, BLOCK)


def test_packed_transformer_gives_the_padded_loss_and_gradients(batch, transformer):
    tokens, lengths, _ = batch
    model, params = transformer
    capacity = -(-int((lengths + 1).sum()) // BLOCK) * BLOCK

    def padded(p):
        total, count = masked_nll_sum(model.apply(p, tokens[:, :-1]), tokens[:, 1:], lengths)
        return total / count

    def packed(p):
        pk = packing.pack(tokens, lengths, capacity, BLOCK)
        total, count = packing.packed_nll_sum(model.apply_packed(p, pk.inputs, pk.positions, pk.segments), pk)
        return total / count

    loss_a, grads_a = jax.jit(jax.value_and_grad(padded))(params)
    loss_b, grads_b = jax.jit(jax.value_and_grad(packed))(params)
    assert abs(float(loss_a) - float(loss_b)) < 1e-5
    for a, b in zip(jax.tree_util.tree_leaves(grads_a), jax.tree_util.tree_leaves(grads_b)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=2e-6, rtol=1e-4)


def test_packed_logits_of_each_word_are_its_padded_logits(batch, transformer):
    tokens, lengths, _ = batch
    model, params = transformer
    pk = packing.pack(tokens, lengths, 8 * BLOCK, BLOCK)
    padded_logits = np.asarray(jax.jit(model.apply)(params, tokens[:, :-1]))
    seg, pos = np.asarray(pk.segments).reshape(-1), np.asarray(pk.positions).reshape(-1)
    flat = np.asarray(jax.jit(model.apply_packed)(params, pk.inputs, pk.positions, pk.segments)).reshape(len(seg), -1)
    counted = np.flatnonzero(np.asarray(pk.counted).reshape(-1))
    assert len(counted) == int((lengths + 1).sum())
    for slot in counted:
        np.testing.assert_allclose(flat[slot], padded_logits[seg[slot], pos[slot]], atol=1e-5)


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_sequence_loss_packed_or_overflowing_equals_padded(batch, transformer, dropout):
    """Drawn batches: packed (fits), and a capacity too small (runs padded): the padded loss either way."""
    tokens, lengths, _ = batch
    model, params = transformer
    data = {"tokens": tokens, "lengths": lengths, "key": jax.random.key(0), "dropout_key": jax.random.key(1)}
    args = (model.apply, 0.0, 6, dropout)
    padded = train_steps.sequence_loss(*args)
    packed = train_steps.sequence_loss(*args, apply_packed=model.apply_packed, capacity=6 * BLOCK - BLOCK)
    tiny = train_steps.sequence_loss(*args, apply_packed=model.apply_packed, capacity=BLOCK)
    padded, packed, tiny = (jax.jit(jax.value_and_grad(f)) for f in (padded, packed, tiny))
    fits = []
    for step in range(6):
        want, want_grads = padded(params, data, step)
        for loss_fn in (packed, tiny):
            got, got_grads = loss_fn(params, data, step)
            if dropout == 0.0 or loss_fn is tiny:  # dropout masks are drawn in the layout used
                assert abs(float(got) - float(want)) < 1e-5
                for a, b in zip(jax.tree_util.tree_leaves(want_grads), jax.tree_util.tree_leaves(got_grads)):
                    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=2e-6, rtol=1e-4)
            else:
                assert np.isfinite(float(got)) and float(got) != float(want)
        idx = jax.random.randint(jax.random.fold_in(data["key"], step), (6,), 0, len(WORDS))
        fits.append(int((lengths[idx] + 1).sum()) <= 5 * BLOCK)
    assert any(fits)  # the packed path really ran on some steps


def test_capacity_is_whole_rows_and_never_more_than_padded():
    rng = np.random.default_rng(0)
    lengths = rng.integers(2, 12, 5000)
    for batch_size in (1, 8, 32, 256):
        cap = packing.capacity_for(lengths, batch_size, 16)
        assert cap % 16 == 0 and 16 <= cap <= batch_size * 16
        totals = (lengths[rng.integers(0, len(lengths), (2000, batch_size))] + 1).sum(axis=1)
        assert (totals <= cap).mean() > 0.99  # a batch rarely runs padded


def test_training_packs_by_default_and_no_pack_trains_padded():
    words = ["emma", "olivia", "ava", "isabella", "sophia", "mia", "amelia", "harper", "evelyn", "abigail"] * 8
    base = dict(steps=20, eval_every=20, n_layer=1, n_head=2, n_embd=16, batch_size=16, block_size=16)
    packed = fit_words(words, TrainConfig.create("transformer", **base))[1]
    padded = fit_words(words, TrainConfig.create("transformer", pack=False, **base))[1]
    for name in ("loss", "train_nll", "dev_nll"):
        assert abs(packed.history[-1][name] - padded.history[-1][name]) < 1e-4
    model_def = get_model("transformer")
    lengths = np.array([len(w) for w in words])
    assert 0 < train_steps.packing_capacity(TrainConfig.create("transformer", **base), model_def, lengths, 16) < 16 * 16
    assert (
        train_steps.packing_capacity(TrainConfig.create("transformer", pack=False, **base), model_def, lengths, 16) == 0
    )
    assert train_steps.packing_capacity(TrainConfig.create("gru", **base), get_model("gru"), lengths, 16) == 0


def test_a_config_saved_before_packing_resumes_padded():
    cfg = TrainConfig.create("transformer").to_json()
    del cfg["pack"]
    assert TrainConfig.from_json(cfg).pack is False
    assert TrainConfig.from_json(TrainConfig.create("transformer").to_json()).pack is True


def test_pack_words_keeps_words_inside_their_chunk():
    rng = np.random.default_rng(1)
    lengths = rng.integers(0, 8, 300)
    tokens = np.zeros((300, 10), np.int32)
    for i, n in enumerate(lengths):
        tokens[i, 1 : n + 1] = rng.integers(1, 9, n)
    p = packing.pack_words(tokens, lengths, 9, 4)
    assert p.inputs.shape[1:] == (4, 9)
    seg, pos, counted = (np.asarray(a).reshape(p.inputs.shape[0], -1) for a in (p.segments, p.positions, p.counted))
    inputs, targets = (np.asarray(a).reshape(p.inputs.shape[0], -1) for a in (p.inputs, p.targets))
    seen = 0
    for c in range(seg.shape[0]):
        for w in np.unique(seg[c][counted[c]]):
            slots = np.flatnonzero(seg[c] == w)
            n = lengths[w] + 1
            assert len(slots) == n and (np.diff(slots) == 1).all() and (seg[:c] != w).all()
            np.testing.assert_array_equal(pos[c, slots], np.arange(n))
            np.testing.assert_array_equal(inputs[c, slots], tokens[w, :n])
            np.testing.assert_array_equal(targets[c, slots], tokens[w, 1 : n + 1])
            seen += 1
    assert seen == 300 and counted.sum() == (lengths + 1).sum()


def test_split_nll_of_a_packing_model_equals_the_padded_sums(batch, transformer):
    from makemore_jax.training import evaluate

    tokens, lengths, _ = batch
    model, params = transformer

    from types import SimpleNamespace

    run = model.runner(SimpleNamespace(params=params, model_config=None, block_size=BLOCK))  # a fitted model's runner
    want_total, want_count = evaluate.word_nlls(model.apply, params, tokens, lengths, 4).sum(), (lengths + 1).sum()
    got_total, got_count = evaluate.nll_sum(run, np.asarray(tokens), np.asarray(lengths))
    assert int(got_count) == int(want_count) == int((lengths + 1).sum())
    assert abs(float(got_total) - float(want_total)) < 1e-4 * float(want_total)


def test_a_packed_run_resumed_midway_equals_the_uninterrupted_run():
    from dataclasses import replace

    from makemore_jax.data.words import Dataset
    from makemore_jax.seeding import seed_key

    words = ["emma", "olivia", "ava", "isabella", "sophia", "mia", "amelia", "harper", "evelyn", "abigail"] * 8
    cfg = TrainConfig.create(
        "transformer",
        steps=20,
        eval_every=10,
        log_every=10,
        n_layer=1,
        n_head=2,
        n_embd=8,
        batch_size=16,
        block_size=16,
        dropout=0.1,
    )
    data = Dataset.build(words, seed_key(cfg.seed, "split"), cfg.split)
    assert train_steps.packing_capacity(
        cfg, get_model("transformer"), np.asarray([len(w) for w in data.words["train"]]), 16
    )
    whole = train.new_model(cfg, data)
    full = train.fit(whole, data)
    first = train.new_model(cfg, data)
    first.config = replace(cfg, steps=10)
    part = train.fit(first, data)
    first.config = cfg
    resumed = train.fit(first, data, train.TrainState(part.params, part.opt_state, part.step, part.best_dev))
    assert resumed.step == full.step == 20
    for a, b in zip(
        jax.tree_util.tree_leaves((full.params, full.opt_state)),
        jax.tree_util.tree_leaves((resumed.params, resumed.opt_state)),
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
