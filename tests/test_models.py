"""Properties every registered model must have; a new model file is covered by adding it."""

import math
from collections import Counter

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from makemore_jax.data.words import Vocabulary, bigram_pairs, encode_padded
from makemore_jax.errors import MakemoreError
from makemore_jax.models import MODEL_NAMES, ModelConfig, check_config, get_model
from makemore_jax.models.counts import count_matrix, smoothed_probs
from makemore_jax.models.losses import mean_nll
from makemore_jax.training import steps as train_steps

TINY = ModelConfig(vocab_size=7, block_size=9, n_layer=2, n_head=2, n_embd=8, n_embd2=12)
NAMES = MODEL_NAMES


def random_ids(key, batch=3, T=TINY.block_size):
    ids = jax.random.randint(key, (batch, T), 1, TINY.vocab_size)
    return ids.at[:, 0].set(0).astype(jnp.int32)


def test_every_family_member_is_present():
    assert set(NAMES) == set(MODEL_NAMES)


@pytest.fixture(params=NAMES)
def model(request):
    return get_model(request.param)


def test_unknown_name_is_refused():
    with pytest.raises(MakemoreError, match="unknown model type 'gpt9'"):
        get_model("gpt9")


def test_init_is_seeded_and_float32(model):
    a = model.init(jax.random.key(0), TINY)
    b = model.init(jax.random.key(0), TINY)
    c = model.init(jax.random.key(1), TINY)
    leaves_a, leaves_b, leaves_c = (jax.tree_util.tree_leaves(p) for p in (a, b, c))
    assert leaves_a and all(x.dtype == jnp.float32 for x in leaves_a)
    assert all(np.array_equal(x, y) for x, y in zip(leaves_a, leaves_b))
    assert any(not np.array_equal(x, y) for x, y in zip(leaves_a, leaves_c))


@pytest.mark.parametrize("T", [1, 4, TINY.block_size])
def test_logits_shape(model, T):
    params = model.init(jax.random.key(0), TINY)
    logits = jax.jit(model.apply)(params, random_ids(jax.random.key(1), 3, T))
    assert logits.shape == (3, T, TINY.vocab_size)
    assert logits.dtype == jnp.float32 and bool(jnp.isfinite(logits).all())


def test_causal_later_ids_never_change_earlier_logits(model):
    params = model.init(jax.random.key(0), TINY)
    apply = jax.jit(model.apply)
    ids = random_ids(jax.random.key(2))
    base = apply(params, ids)
    for j in range(1, TINY.block_size):
        changed = ids.at[:, j].set((ids[:, j] % (TINY.vocab_size - 1)) + 1)
        out = apply(params, changed)
        np.testing.assert_array_equal(out[:, :j], base[:, :j], err_msg=f"position {j} leaks backwards")


def test_every_position_uses_its_own_id(model):
    params = model.init(jax.random.key(0), TINY)
    ids = random_ids(jax.random.key(3))
    changed = ids.at[:, 4].set((ids[:, 4] % (TINY.vocab_size - 1)) + 1)
    apply = jax.jit(model.apply)  # op by op, a model's first call takes seconds
    a, b = apply(params, ids), apply(params, changed)
    assert not np.allclose(a[:, 4], b[:, 4])


@pytest.mark.parametrize("name", [n for n in NAMES if get_model(n).decode_step is not None])
def test_incremental_decoding_matches_apply(name):
    model = get_model(name)
    params = model.init(jax.random.key(0), TINY)
    ids = random_ids(jax.random.key(4), batch=2)
    full = jax.jit(model.apply)(params, ids)
    state = model.decode_init(params, TINY, 2)
    step = jax.jit(model.decode_step)
    for t in range(TINY.block_size):
        logits, state = step(params, state, ids[:, t], jnp.int32(t))
        np.testing.assert_allclose(logits, full[:, t], rtol=1e-5, atol=1e-5, err_msg=f"step {t}")


@pytest.mark.parametrize("field", ["n_embd", "n_layer", "block_size", "vocab_size"])
def test_non_positive_sizes_are_refused(field):
    bad = ModelConfig(**{**TINY.__dict__, field: 0})
    with pytest.raises(MakemoreError, match=field):
        check_config(bad, "bigram")


# ---- every model learns, through the package's own trainer -----------------------

WORDS = (
    "emma olivia ava isabella sophia charlotte mia amelia harper evelyn "
    "liam noah oliver elijah james william benjamin lucas henry theo"
).split()


def memorisation_floor(words) -> float:
    """The lowest mean NLL of any model that sees the whole prefix: the entropy of
    what follows each prefix in these words (only shared prefixes cost anything)."""
    follows = Counter((w[:i], (w + ".")[i]) for w in words for i in range(len(w) + 1))
    seen = Counter()
    for (prefix, _), n in follows.items():
        seen[prefix] += n
    nll = [-math.log(follows[w[:i], (w + ".")[i]] / seen[w[:i]]) for w in words for i in range(len(w) + 1)]
    return sum(nll) / len(nll)


def bigram_floor(words, vocab) -> float:
    """The bigram's optimum: the unsmoothed counting model's NLL of the words."""
    xs, ys = bigram_pairs(words, vocab)
    return float(mean_nll(smoothed_probs(count_matrix(xs, ys, vocab.size), 0.0), xs, ys))


@pytest.mark.parametrize("name", NAMES)
def test_learns_a_handful_of_words_to_its_floor(name):
    model = get_model(name)
    vocab = Vocabulary.from_words(WORDS)
    block_size = max(map(len, WORDS)) + 1  # mlp's window and wavenet's 8 both cover every prefix here
    tokens, lengths = encode_padded(WORDS, vocab, block_size)
    config = ModelConfig(vocab.size, block_size, n_layer=2, n_head=2, n_embd=16, n_embd2=32)
    params = model.init(jax.random.key(0), config)
    lr = {"bigram": 1e-1, "transformer": 3e-3}.get(name, 1e-2)  # W ~ N(0, 1) has far to go
    optimizer = optax.adamw(lr, weight_decay=0.0)
    batch = {"tokens": jnp.asarray(tokens), "lengths": jnp.asarray(lengths)}
    loss_fn = train_steps.sequence_loss(model.apply, 0.0, 0)  # every word at every step

    grads = jax.jit(jax.grad(loss_fn))(params, batch, 0)  # compiled: op by op it takes seconds
    for path, g in jax.tree_util.tree_leaves_with_path(grads):
        assert bool(jnp.any(g != 0)), f"{jax.tree_util.keystr(path)} gets no gradient"

    _, _, losses = train_steps.run_steps(loss_fn, optimizer, params, optimizer.init(params), batch, 0, 300)
    first, last = float(losses[0]), float(losses[-1])
    floor = bigram_floor(WORDS, vocab) if name == "bigram" else memorisation_floor(WORDS)
    assert abs(first - math.log(vocab.size)) < 1.0 or name == "bigram"  # W ~ N(0, 1) starts above uniform
    assert floor < 0.8 * first  # the words leave room to show learning
    assert last < floor + 0.1, f"{name}: {first:.3f} -> {last:.3f}, floor {floor:.3f}"
