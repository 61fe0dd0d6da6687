"""The fixed- and growing-context models: mlp, bow, wavenet.

tests/test_models.py checks what every model must do (shapes, seeding,
causality, decode == apply); here each model is checked against a plain numpy
reading of its equations, its fast path against its literal form, and each
one is shown able to learn by overfitting a handful of words.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from makemore_jax.errors import MakemoreError
from makemore_jax.models import ModelConfig, bow, mlp, wavenet

V = 7
TINY = ModelConfig(vocab_size=V, block_size=5, n_embd=3, n_embd2=6)
TINY_WAVENET = ModelConfig(vocab_size=V, block_size=12, n_embd=3, n_embd2=6)

# compiled once per shape; op-by-op dispatch would dominate the run time
mlp_apply, bow_apply, wavenet_apply = (jax.jit(m.apply) for m in (mlp, bow, wavenet))
mlp_init, bow_init, wavenet_init = (jax.jit(m.init, static_argnums=1) for m in (mlp, bow, wavenet))


def random_ids(seed, batch, T):
    ids = np.random.default_rng(seed).integers(1, V, size=(batch, T))
    ids[:, 0] = 0  # the start boundary
    return jnp.asarray(ids, jnp.int32)


def other_id_at(idx, s):
    """idx with a different non-boundary id at position s."""
    return idx.at[:, s].set(idx[:, s] % (V - 1) + 1)


def as_numpy(params):
    return jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params)


def window_ids(row, t, width):
    """Ids at t-width+1 .. t of one row, oldest first, V (the blank) before the start."""
    return [row[s] if s >= 0 else V for s in range(t - width + 1, t + 1)]


# --- the shared window helper -------------------------------------------------


def test_context_windows_blank_pad_before_the_start():
    idx = jnp.array([[0, 4, 5]], jnp.int32)
    windows = mlp.context_windows(idx, 4, blank=9)
    np.testing.assert_array_equal(windows[0], [[9, 9, 9, 0], [9, 9, 0, 4], [9, 0, 4, 5]])


def test_context_windows_longer_than_the_window():
    idx = jnp.arange(6, dtype=jnp.int32)[None]
    np.testing.assert_array_equal(
        mlp.context_windows(idx, 2, blank=-1)[0], [[-1, 0], [0, 1], [1, 2], [2, 3], [3, 4], [4, 5]]
    )


# --- mlp ------------------------------------------------------------------------


def mlp_reference(params, idx):
    """Bengio et al.'s equation, one position at a time, in float64."""
    p = as_numpy(params)
    W = TINY.block_size
    out = np.zeros((*idx.shape, V))
    for b, row in enumerate(np.asarray(idx)):
        for t in range(len(row)):
            x = np.concatenate([p["wte"][i] for i in window_ids(row, t, W)])
            h = np.tanh(x @ p["hidden"]["w"] + p["hidden"]["b"])
            out[b, t] = h @ p["lm_head"]["w"] + p["lm_head"]["b"]
    return out


def test_mlp_both_forms_match_numpy_reference():
    params = mlp_init(jax.random.key(0), TINY)
    idx = random_ids(1, 2, 8)  # longer than the window: blank-padded and full windows
    expected = mlp_reference(params, idx)
    np.testing.assert_allclose(jax.jit(mlp.apply)(params, idx), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(jax.jit(mlp.apply_concat)(params, idx), expected, rtol=1e-5, atol=1e-5)


def test_mlp_param_shapes():
    params = mlp_init(jax.random.key(0), TINY)
    shapes = jax.tree_util.tree_map(lambda a: a.shape, params)
    W, C, H = TINY.block_size, TINY.n_embd, TINY.n_embd2
    assert shapes == {"wte": (V + 1, C), "hidden": {"w": (W * C, H), "b": (H,)}, "lm_head": {"w": (H, V), "b": (V,)}}


def test_mlp_blank_row_is_read_before_the_start_only():
    params = mlp_init(jax.random.key(0), TINY)
    idx = random_ids(2, 2, TINY.block_size)
    moved = {**params, "wte": params["wte"].at[V].add(1.0)}
    a, b = mlp_apply(params, idx), mlp_apply(moved, idx)
    # position t has block_size - 1 - t blank slots: all but the last position see the blank
    for t in range(TINY.block_size - 1):
        assert not np.allclose(a[:, t], b[:, t]), f"position {t} ignores the blank"
    np.testing.assert_array_equal(a[:, -1], b[:, -1])


def test_mlp_context_is_exactly_block_size_ids():
    params = mlp_init(jax.random.key(0), TINY)
    T = 8  # longer than the window, to see the far end of it
    idx = random_ids(3, 2, T)
    base = mlp_apply(params, idx)
    t = T - 1
    oldest_in, just_out = t - TINY.block_size + 1, t - TINY.block_size
    assert not np.allclose(base[:, t], mlp_apply(params, other_id_at(idx, oldest_in))[:, t])
    np.testing.assert_array_equal(base[:, t], mlp_apply(params, other_id_at(idx, just_out))[:, t])


# --- bow ------------------------------------------------------------------------


def test_causal_mean_equals_naive_masked_average():
    x = np.random.default_rng(0).normal(size=(2, 6, 3)).astype(np.float32)
    naive = np.stack([x[:, : t + 1].mean(1) for t in range(6)], axis=1)
    np.testing.assert_allclose(bow.causal_mean(jnp.asarray(x)), naive, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(bow.causal_mean_masked(jnp.asarray(x)), naive, rtol=1e-6, atol=1e-6)


def bow_reference(params, idx):
    p = as_numpy(params)
    out = np.zeros((*idx.shape, V))
    for b, row in enumerate(np.asarray(idx)):
        xs = [p["wte"][i] + p["wpe"][t] for t, i in enumerate(row)]
        for t, x in enumerate(xs):
            x = x + np.mean(xs[: t + 1], axis=0)
            fc, proj = p["block"]["c_fc"], p["block"]["c_proj"]
            x = x + np.tanh(x @ fc["w"] + fc["b"]) @ proj["w"] + proj["b"]
            out[b, t] = x @ p["lm_head"]["w"] + p["lm_head"]["b"]
    return out


def test_bow_matches_numpy_reference():
    params = bow_init(jax.random.key(0), TINY)
    idx = random_ids(4, 2, TINY.block_size)
    np.testing.assert_allclose(jax.jit(bow.apply)(params, idx), bow_reference(params, idx), rtol=1e-5, atol=1e-5)


def test_bow_every_earlier_id_counts():
    params = bow_init(jax.random.key(0), TINY)
    idx = random_ids(5, 2, TINY.block_size)
    base = bow_apply(params, idx)
    for s in range(TINY.block_size):
        changed = bow_apply(params, other_id_at(idx, s))
        assert not np.allclose(base[:, -1], changed[:, -1]), f"id {s} does not reach the last position"


def test_bow_refuses_sequences_longer_than_its_position_table():
    params = bow_init(jax.random.key(0), TINY)
    with pytest.raises(MakemoreError, match="block_size 5"):
        bow_apply(params, random_ids(6, 1, TINY.block_size + 1))


# --- wavenet --------------------------------------------------------------------


def wavenet_reference(params, idx):
    """The lecture's tree over each 8-id window: pairs (0,1)(2,3)(4,5)(6,7), then (01,23)(45,67), then the root."""
    p = as_numpy(params)

    def fuse(level, left, right):
        z = np.concatenate([left, right]) @ p[level]["fuse"]["w"]
        z = (z - z.mean()) / np.sqrt(z.var() + 1e-5) * p[level]["norm"]["scale"] + p[level]["norm"]["bias"]
        return np.tanh(z)

    out = np.zeros((*idx.shape, V))
    for b, row in enumerate(np.asarray(idx)):
        for t in range(len(row)):
            nodes = [p["wte"][i] for i in window_ids(row, t, 8)]
            for level in ("level1", "level2", "level3"):
                nodes = [fuse(level, nodes[k], nodes[k + 1]) for k in range(0, len(nodes), 2)]
            out[b, t] = nodes[0] @ p["lm_head"]["w"] + p["lm_head"]["b"]
    return out


def test_wavenet_both_forms_match_numpy_reference():
    params = wavenet_init(jax.random.key(0), TINY_WAVENET)
    idx = random_ids(7, 2, 12)  # longer than the window: blank-padded and full windows
    expected = wavenet_reference(params, idx)
    np.testing.assert_allclose(jax.jit(wavenet.apply)(params, idx), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(jax.jit(wavenet.apply_tree)(params, idx), expected, rtol=1e-5, atol=1e-5)


def test_wavenet_param_shapes():
    params = wavenet_init(jax.random.key(0), TINY_WAVENET)
    shapes = jax.tree_util.tree_map(lambda a: a.shape, params)
    C, H = TINY_WAVENET.n_embd, TINY_WAVENET.n_embd2
    norm = {"scale": (H,), "bias": (H,)}
    assert shapes == {
        "wte": (V + 1, C),
        "level1": {"fuse": {"w": (2 * C, H)}, "norm": norm},
        "level2": {"fuse": {"w": (2 * H, H)}, "norm": norm},
        "level3": {"fuse": {"w": (2 * H, H)}, "norm": norm},
        "lm_head": {"w": (H, V), "b": (V,)},
    }


def test_wavenet_sees_exactly_8_ids_in_order():
    params = wavenet_init(jax.random.key(0), TINY_WAVENET)
    idx = jnp.asarray([[0, 1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5]], jnp.int32)
    t = idx.shape[1] - 1
    base = wavenet_apply(params, idx)[0, t]

    def at_t(ids):
        return wavenet_apply(params, jnp.asarray([ids], jnp.int32))[0, t]

    ids = list(np.asarray(idx[0]))
    # swapping two different ids inside one pair, or across pairs, changes the prediction
    for a, b in [(t - 1, t), (t - 7, t - 6), (t - 3, t - 4)]:
        swapped = list(ids)
        swapped[a], swapped[b] = swapped[b], swapped[a]
        assert swapped != ids and not np.allclose(base, at_t(swapped)), f"swap {a},{b} invisible"
    for s in range(t - 7, t + 1):
        changed = list(ids)
        changed[s] = changed[s] % (V - 1) + 1
        assert not np.allclose(base, at_t(changed)), f"id {s} is inside the window but ignored"
    for s in range(0, t - 7):
        changed = list(ids)
        changed[s] = changed[s] % (V - 1) + 1
        np.testing.assert_array_equal(base, at_t(changed), err_msg=f"id {s} is more than 8 back")
