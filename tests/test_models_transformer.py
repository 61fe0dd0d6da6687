"""Transformer specifics: the maths against a naive reference, positions, the KV cache, training."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from makemore_jax.errors import MakemoreError
from makemore_jax.models import ModelConfig, check_config, get_model, layers, transformer

TINY = ModelConfig(vocab_size=7, block_size=8, n_layer=2, n_head=3, n_embd=12)
MODEL = get_model("transformer")
apply = jax.jit(MODEL.apply)  # eager dispatch op by op is far slower than compiling


def random_ids(key, batch, T, vocab_size=TINY.vocab_size):
    ids = jax.random.randint(key, (batch, T), 1, vocab_size)
    return ids.at[:, 0].set(0).astype(jnp.int32)


@pytest.fixture(scope="module")
def params():
    return jax.jit(MODEL.init, static_argnums=1)(jax.random.key(0), TINY)  # compiled: far cheaper than op by op


@pytest.fixture
def scanned_layers(monkeypatch):
    """Run the blocks through lax.scan instead of unrolling them (the path for deep models).

    Functions jitted earlier keep their traced path, so tests using this jit afresh.
    """
    monkeypatch.setattr(transformer, "UNROLL_UP_TO", 0)


def fresh_jit(fn):
    """jit a new function object, so nothing is reused from an earlier trace."""
    return jax.jit(lambda *args: fn(*args))


def uses_scan(fn, *args) -> bool:
    return "scan" in str(jax.make_jaxpr(lambda *a: fn(*a))(*args))  # a new function: no cached trace


# --- sizes and parameters ---------------------------------------------------


@pytest.mark.parametrize("n_embd, n_head", [(10, 4), (64, 5)])
def test_check_refuses_n_embd_not_divisible_by_n_head(n_embd, n_head):
    bad = ModelConfig(vocab_size=7, block_size=8, n_head=n_head, n_embd=n_embd)
    with pytest.raises(MakemoreError, match=rf"n_embd \({n_embd}\).*n_head \({n_head}\)"):
        check_config(bad, "transformer")
    with pytest.raises(MakemoreError):
        MODEL.init(jax.random.key(0), bad)


def test_check_accepts_makemore_defaults():
    check_config(ModelConfig(vocab_size=27, block_size=16), "transformer")


def test_parameter_shapes_and_pytorch_default_init(params):
    L, C, H, V = TINY.n_layer, TINY.n_embd, TINY.n_head, TINY.vocab_size
    D = C // H
    shapes = jax.tree_util.tree_map(lambda a: a.shape, params)
    assert shapes == {
        "wte": (V, C),
        "wpe": (TINY.block_size, C),
        "blocks": {
            "ln_1": {"scale": (L, C), "bias": (L, C)},
            "attn": {"c_attn": {"w": (L, C, 3, H, D), "b": (L, 3, H, D)}, "c_proj": {"w": (L, H, D, C), "b": (L, C)}},
            "ln_2": {"scale": (L, C), "bias": (L, C)},
            "mlp": {"c_fc": {"w": (L, C, 4 * C), "b": (L, 4 * C)}, "c_proj": {"w": (L, 4 * C, C), "b": (L, C)}},
        },
        "ln_f": {"scale": (C,), "bias": (C,)},
        "lm_head": {"w": (C, V)},
    }
    blocks = params["blocks"]
    # Linear: U(±1/√fan_in); the fan-in of the MLP's output layer is 4C.
    linears = [(blocks["attn"]["c_attn"]["w"], C), (blocks["mlp"]["c_proj"]["w"], 4 * C), (params["lm_head"]["w"], C)]
    for w, fan_in in linears:
        assert float(jnp.abs(w).max()) <= 1 / math.sqrt(fan_in)
        assert float(jnp.abs(w).max()) > 0.8 / math.sqrt(fan_in)
    # Layers are initialised independently, not copies of one another.
    assert not np.allclose(blocks["mlp"]["c_fc"]["w"][0], blocks["mlp"]["c_fc"]["w"][1])
    np.testing.assert_array_equal(blocks["ln_1"]["scale"], 1.0)
    np.testing.assert_array_equal(params["ln_f"]["bias"], 0.0)
    embeddings = jnp.concatenate([params["wte"].ravel(), params["wpe"].ravel()])
    assert 0.8 < float(jnp.std(embeddings)) < 1.2  # nn.Embedding: N(0, 1)


# --- the forward pass against a naive reference ------------------------------


def _np_layer_norm(p, x):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + 1e-5) * p["scale"] + p["bias"]


def _np_gelu(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def reference_forward(params, ids_T):
    """One sequence, float64, per head and per query with explicit loops: PyTorch makemore's maths."""
    p = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params)
    T = len(ids_T)
    L, C, _, H, D = p["blocks"]["attn"]["c_attn"]["w"].shape
    x = p["wte"][ids_T] + p["wpe"][:T]
    for layer in range(L):
        b = jax.tree_util.tree_map(lambda a, layer=layer: a[layer], p["blocks"])
        # PyTorch's layout: one (C, 3C) matrix, split into q | k | v, each split into heads.
        qkv = _np_layer_norm(b["ln_1"], x) @ b["attn"]["c_attn"]["w"].reshape(C, 3 * C)
        qkv = qkv + b["attn"]["c_attn"]["b"].reshape(3 * C)
        q, k, v = qkv[:, :C], qkv[:, C : 2 * C], qkv[:, 2 * C :]
        heads = []
        for h in range(H):
            cols = slice(h * D, (h + 1) * D)
            y_h = np.zeros((T, D))
            for i in range(T):
                scores = np.array([q[i, cols] @ k[j, cols] / math.sqrt(D) for j in range(i + 1)])
                weights = np.exp(scores - scores.max())
                weights /= weights.sum()
                y_h[i] = weights @ v[: i + 1, cols]
            heads.append(y_h)
        y = np.concatenate(heads, axis=1)
        x = x + y @ b["attn"]["c_proj"]["w"].reshape(C, C) + b["attn"]["c_proj"]["b"]
        hidden = _np_gelu(_np_layer_norm(b["ln_2"], x) @ b["mlp"]["c_fc"]["w"] + b["mlp"]["c_fc"]["b"])
        x = x + hidden @ b["mlp"]["c_proj"]["w"] + b["mlp"]["c_proj"]["b"]
    return _np_layer_norm(p["ln_f"], x) @ p["lm_head"]["w"]


def perturbed(params, seed):
    """1.5 × every parameter + N(0, 0.3²) noise (numpy's: JAX's random draws compile for seconds per shape)."""
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(
        lambda x: jnp.asarray(1.5 * np.asarray(x) + 0.3 * rng.standard_normal(x.shape), jnp.float32), params
    )


@pytest.mark.parametrize("path", ["unrolled", "scanned"])
def test_forward_matches_naive_per_head_reference(params, path, request):
    if path == "scanned":
        request.getfixturevalue("scanned_layers")
    ids = random_ids(jax.random.key(5), 3, TINY.block_size)
    # Perturb every parameter: at init the LayerNorms are all identities, so a
    # mix-up of ln_1 and ln_2 (say) would go unseen; larger weights also make
    # the attention far from uniform.
    params = perturbed(params, 6)
    assert uses_scan(MODEL.apply, params, ids) == (path == "scanned")
    logits = fresh_jit(MODEL.apply)(params, ids)
    for row in range(ids.shape[0]):
        expected = reference_forward(params, np.asarray(ids[row]))
        np.testing.assert_allclose(logits[row], expected, rtol=1e-4, atol=1e-4)


def test_shorter_sequences_are_prefixes_of_the_full_one(params):
    ids = random_ids(jax.random.key(6), 3, TINY.block_size)
    full = apply(params, ids)
    for T in (1, 5):
        np.testing.assert_allclose(apply(params, ids[:, :T]), full[:, :T], rtol=1e-5, atol=1e-5)


def test_positions_break_the_symmetry_of_attention(params):
    ids = jnp.array([[0, 1, 2, 3, 4, 5, 6, 1], [0, 2, 1, 3, 4, 5, 6, 1], [0, 1, 1, 1, 1, 1, 1, 1]], jnp.int32)
    original, swapped = 0, 1  # ids 1 and 2 trade places
    later = slice(3, None)
    logits = apply(params, ids)
    assert not np.allclose(logits[original, later], logits[swapped, later], atol=1e-4)
    np.testing.assert_array_equal(logits[original, 0], logits[swapped, 0])

    # One attention layer without position embeddings sees the earlier ids as a
    # set: swapping two of them leaves a later position's logits unchanged. (Two
    # layers would not: by then position 1 has seen different prefixes.) wpe is
    # what tells the model where each id is.
    one_layer = {**params, "blocks": jax.tree_util.tree_map(lambda a: a[:1], params["blocks"])}
    logits = apply(one_layer, ids)
    assert not np.allclose(logits[original, later], logits[swapped, later], atol=1e-4)
    logits = apply({**one_layer, "wpe": jnp.zeros_like(params["wpe"])}, ids)
    np.testing.assert_allclose(logits[original, later], logits[swapped, later], rtol=1e-5, atol=1e-5)


# --- the key/value cache -----------------------------------------------------


def decode_all(params, ids_BxT, state):
    """Feed whole sequences through decode_step inside a lax.scan over t, as the sampler does."""

    def step(state, t):
        logits_BxV, state = MODEL.decode_step(params, state, ids_BxT[:, t], t)
        return state, logits_BxV

    state, logits_TxBxV = jax.lax.scan(step, state, jnp.arange(ids_BxT.shape[1], dtype=jnp.int32))
    return jnp.swapaxes(logits_TxBxV, 0, 1), state


decode_all_jit = jax.jit(decode_all)


@pytest.mark.parametrize("path, batch", [("unrolled", 1), ("unrolled", 3), ("scanned", 3)])
def test_kv_cache_decoding_matches_apply_at_every_position(params, path, batch, request):
    if path == "scanned":
        request.getfixturevalue("scanned_layers")
    ids = random_ids(jax.random.key(7), 3, TINY.block_size)
    expected = apply(params, ids)[:batch]
    ids = ids[:batch]
    state = MODEL.decode_init(params, TINY, batch)
    assert state["k"].shape == (TINY.n_layer, batch, TINY.n_head, TINY.block_size, TINY.n_embd // TINY.n_head)
    assert uses_scan(MODEL.decode_step, params, state, ids[:, 0], jnp.int32(0)) == (path == "scanned")
    decode = decode_all_jit if path == "unrolled" else fresh_jit(decode_all)
    decoded, _ = decode(params, ids, state)
    np.testing.assert_allclose(decoded, expected, rtol=1e-5, atol=1e-5)


def test_kv_cache_ignores_stale_entries(params):
    # A cache full of another sequence's keys and values gives the same logits:
    # positions after t are masked, so nothing needs clearing between uses.
    first = random_ids(jax.random.key(10), 3, TINY.block_size)
    second = random_ids(jax.random.key(11), 3, TINY.block_size)
    fresh = MODEL.decode_init(params, TINY, 3)
    _, used = decode_all_jit(params, first, fresh)
    assert float(jnp.abs(used["k"]).min()) > 0
    again, _ = decode_all_jit(params, second, used)
    np.testing.assert_allclose(again, decode_all_jit(params, second, fresh)[0], rtol=1e-6, atol=1e-6)


def test_scanned_and_unrolled_layers_agree(params, monkeypatch):
    ids = random_ids(jax.random.key(12), 3, TINY.block_size)
    unrolled = apply(params, ids)
    monkeypatch.setattr(transformer, "UNROLL_UP_TO", 0)
    assert uses_scan(MODEL.apply, params, ids)
    np.testing.assert_allclose(fresh_jit(MODEL.apply)(params, ids), unrolled, rtol=1e-6, atol=1e-6)


def test_dropout_is_keyed_scaled_and_off_at_rate_zero(params):
    # compiled, as training runs it: op by op these calls take seconds
    dropped = jax.jit(transformer.apply, static_argnames="rate")
    idx = jax.random.randint(jax.random.key(1), (3, TINY.block_size), 0, TINY.vocab_size)
    np.testing.assert_allclose(dropped(params, idx, jax.random.key(2), 0.0), apply(params, idx), rtol=1e-6, atol=1e-6)
    a = dropped(params, idx, jax.random.key(2), 0.3)
    b = dropped(params, idx, jax.random.key(2), 0.3)
    c = dropped(params, idx, jax.random.key(3), 0.3)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c) and not np.allclose(a, apply(params, idx))
    # causal still: dropout masks are per position, so later ids never reach earlier logits
    changed = idx.at[:, 4].set((idx[:, 4] + 1) % 7)
    np.testing.assert_array_equal(dropped(params, changed, jax.random.key(2), 0.3)[:, :4], a[:, :4])
    with pytest.raises(ValueError, match="needs a key"):
        transformer.apply(params, idx, rate=0.3)


def _autodiff_everywhere(monkeypatch):
    """The hand-written backward passes (layers.dense, transformer._attention) replaced by plain jnp.

    They are left to autodiff.
    """
    monkeypatch.setattr(layers, "dense", lambda x, w: x @ w)
    monkeypatch.setattr(transformer, "_attention", transformer._attend)


@pytest.mark.parametrize("path", ["unrolled", "scanned"])
def test_hand_written_gradients_match_autodiff(params, path, request, monkeypatch):
    if path == "scanned":
        request.getfixturevalue("scanned_layers")
    ids = random_ids(jax.random.key(9), 4, TINY.block_size)
    params = perturbed(params, 10)
    cotangent = jax.random.normal(jax.random.key(11), (4, TINY.block_size, TINY.vocab_size))

    def objective(params):
        return jnp.sum(MODEL.apply(params, ids) * cotangent)

    loss, grads = fresh_jit(jax.value_and_grad(objective))(params)
    _autodiff_everywhere(monkeypatch)
    ref_loss, ref_grads = fresh_jit(jax.value_and_grad(objective))(params)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-6)  # the forward numbers are the same
    for path_, g, ref in zip(
        jax.tree_util.tree_leaves_with_path(grads),
        jax.tree_util.tree_leaves(grads),
        jax.tree_util.tree_leaves(ref_grads),
    ):
        scale = float(jnp.abs(ref).max())
        assert scale > 0, path_[0]
        np.testing.assert_allclose(g, ref, rtol=0, atol=1e-5 * scale, err_msg=jax.tree_util.keystr(path_[0]))
