"""rnn, gru, lstm: the scanned recurrence against a per-step NumPy reference, the
learned start state, gate behaviour, and a small overfitting run.

Shapes, seeding, causality and decode == apply are covered for every model in
test_models.py; these tests are about what makes the recurrent ones what they are.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from makemore_jax.models import ModelConfig, get_model
from makemore_jax.models.layers import linear

TINY = ModelConfig(vocab_size=7, block_size=9, n_embd=5, n_embd2=6)
NAMES = ("rnn", "gru", "lstm")
H = TINY.n_embd2


def random_ids(key, batch=3, T=TINY.block_size, V=TINY.vocab_size):
    ids = jax.random.randint(key, (batch, T), 1, V)
    return ids.at[:, 0].set(0).astype(jnp.int32)


def as_numpy(params):
    return jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params)


# --- a per-step reference, written from the equations with a Python loop ---------


def np_sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def np_linear(p, a):
    return a @ p["w"] + p["b"]


def reference_step(name, cell, x, h, c):
    if name == "rnn":
        return np.tanh(np_linear(cell["xh_to_h"], np.concatenate([x, h], -1))), c
    if name == "gru":
        xh = np.concatenate([x, h], -1)
        z = np_sigmoid(np_linear(cell["xh_to_z"], xh))
        r = np_sigmoid(np_linear(cell["xh_to_r"], xh))
        hbar = np.tanh(np_linear(cell["xh_to_hbar"], np.concatenate([x, r * h], -1)))
        return (1 - z) * h + z * hbar, c
    gates = np_linear(cell["xh_to_gates"], np.concatenate([x, h], -1))
    i, f, g, o = (gates[:, k * H : (k + 1) * H] for k in range(4))
    c = np_sigmoid(f) * c + np_sigmoid(i) * np.tanh(g)
    return np_sigmoid(o) * np.tanh(c), c


def reference_logits(name, params, ids):
    p = as_numpy(params)
    ids = np.asarray(ids)
    B, T = ids.shape
    h = np.repeat(p["start"]["h"], B, axis=0)
    c = np.repeat(p["start"]["c"], B, axis=0) if name == "lstm" else None
    out = []
    for t in range(T):
        h, c = reference_step(name, p["cell"], p["wte"][ids[:, t]], h, c)
        out.append(np_linear(p["lm_head"], h))
    return np.stack(out, axis=1)


def perturbed(params, seed):
    """Move every parameter, the zero start state included, off its init value (numpy's
    noise: JAX's random draws, op by op, compile for every parameter shape)."""
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(
        lambda x: jnp.asarray(np.asarray(x) + 0.3 * rng.standard_normal(x.shape), jnp.float32), params
    )


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("T", [1, TINY.block_size])
def test_scan_matches_per_step_reference(name, T):
    model = get_model(name)
    params = perturbed(model.init(jax.random.key(0), TINY), 1)
    ids = random_ids(jax.random.key(2), T=T)
    logits = jax.jit(model.apply)(params, ids)
    np.testing.assert_allclose(logits, reference_logits(name, params, ids), rtol=1e-5, atol=1e-5)


# --- parameters and state ----------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_params_layout_and_init(name):
    params = get_model(name).init(jax.random.key(0), TINY)
    E, V = TINY.n_embd, TINY.vocab_size
    shapes = jax.tree_util.tree_map(lambda a: a.shape, params)
    cell_out = {
        "rnn": {"xh_to_h": H},
        "gru": {"xh_to_z": H, "xh_to_r": H, "xh_to_hbar": H},
        "lstm": {"xh_to_gates": 4 * H},
    }[name]
    assert shapes == {
        "wte": (V, E),
        "start": {k: (1, H) for k in (("h", "c") if name == "lstm" else ("h",))},
        "cell": {k: {"w": (E + H, n), "b": (n,)} for k, n in cell_out.items()},
        "lm_head": {"w": (H, V), "b": (V,)},
    }
    assert all(not np.any(s) for s in jax.tree_util.tree_leaves(params["start"]))
    bound = 1 / math.sqrt(E + H)
    for lin in params["cell"].values():
        assert np.abs(lin["w"]).max() <= bound
    bound = 1 / math.sqrt(H)
    assert np.abs(params["lm_head"]["w"]).max() <= bound


def test_lstm_forget_bias_starts_at_plus_one():
    b = np.asarray(get_model("lstm").init(jax.random.key(0), TINY)["cell"]["xh_to_gates"]["b"])
    bound = 1 / math.sqrt(TINY.n_embd + H)
    i, f, g, o = np.split(b, 4)
    assert np.all(np.abs(f - 1.0) <= bound)
    assert all(np.all(np.abs(gate) <= bound) for gate in (i, g, o))


@pytest.mark.parametrize("name", NAMES)
def test_decode_state_is_the_start_state_per_sequence(name):
    model = get_model(name)
    params = perturbed(model.init(jax.random.key(0), TINY), 1)
    state = model.decode_init(params, TINY, 4)
    assert set(state) == set(params["start"])
    for key, s in state.items():
        assert s.shape == (4, H)
        np.testing.assert_array_equal(s, np.repeat(params["start"][key], 4, axis=0))


@pytest.mark.parametrize("name", NAMES)
def test_start_state_is_learned(name):
    model = get_model(name)
    params = model.init(jax.random.key(0), TINY)
    ids = random_ids(jax.random.key(1))
    targets = random_ids(jax.random.key(2))

    def loss(p):
        logp = jax.nn.log_softmax(model.apply(p, ids))
        return -jnp.take_along_axis(logp, targets[..., None], -1).mean()

    grads = jax.jit(jax.grad(loss))(params)["start"]
    for key, g in grads.items():
        assert g.shape == (1, H)
        assert float(jnp.abs(g).max()) > 1e-6, f"start[{key!r}] gets no gradient"


# --- gate behaviour ------------------------------------------------------------


def test_gru_closed_update_gate_keeps_the_start_state():
    """z = 0 everywhere: h_t = h_{t-1} = start, whatever the ids."""
    model = get_model("gru")
    params = perturbed(model.init(jax.random.key(0), TINY), 1)
    params["cell"]["xh_to_z"]["b"] = jnp.full((H,), -1e9)
    logits = model.apply(params, random_ids(jax.random.key(2)))
    expected = linear(params["lm_head"], params["start"]["h"])
    np.testing.assert_allclose(logits, jnp.broadcast_to(expected, logits.shape), rtol=1e-6, atol=1e-6)


def test_gru_open_update_and_closed_reset_gates_forget_the_start_state():
    """z = 1 and r = 0: h_t = tanh(W [x_t, 0] + b), so the start state no longer matters;
    with the reset gate left alone it does."""
    model = get_model("gru")
    params = perturbed(model.init(jax.random.key(0), TINY), 1)
    params["cell"]["xh_to_z"]["b"] = jnp.full((H,), 1e9)
    ids = random_ids(jax.random.key(2))

    def with_start_shifted(p):
        return {**p, "start": {"h": p["start"]["h"] + 1.0}}

    assert not np.allclose(model.apply(params, ids), model.apply(with_start_shifted(params), ids))
    params["cell"]["xh_to_r"]["b"] = jnp.full((H,), -1e9)
    shifted = model.apply(with_start_shifted(params), ids)
    np.testing.assert_allclose(model.apply(params, ids), shifted, rtol=1e-6, atol=1e-6)


def _lstm_with_gate_biases(i_bias, f_bias):
    model = get_model("lstm")
    params = perturbed(model.init(jax.random.key(0), TINY), 1)
    b = params["cell"]["xh_to_gates"]["b"]
    params["cell"]["xh_to_gates"]["b"] = b.at[:H].set(i_bias).at[H : 2 * H].set(f_bias)
    return model, params


def _run_decode(model, params, ids):
    state = model.decode_init(params, TINY, ids.shape[0])
    for t in range(ids.shape[1]):
        _, state = model.decode_step(params, state, ids[:, t], jnp.int32(t))
    return state


def test_lstm_open_forget_gate_and_closed_input_gate_keep_the_cell():
    """f = 1, i = 0: c_t = c_{t-1} exactly, so the start cell survives any input."""
    model, params = _lstm_with_gate_biases(-1e9, 1e9)
    state = _run_decode(model, params, random_ids(jax.random.key(2)))
    np.testing.assert_allclose(state["c"], jnp.broadcast_to(params["start"]["c"], (3, H)), rtol=1e-6, atol=1e-6)
    # h_t = o_t * tanh(c_start) with 0 < o_t < 1: same sign, never larger
    tanh_c = np.tanh(np.asarray(state["c"]))
    assert np.all(np.sign(state["h"]) == np.sign(tanh_c))
    assert np.all(np.abs(state["h"]) <= np.abs(tanh_c))


def test_lstm_closed_forget_gate_wipes_the_cell():
    """f = 0, i = 0: c_t = 0 from the first step on, h_t = o * tanh(0) = 0."""
    model, params = _lstm_with_gate_biases(-1e9, -1e9)
    state = _run_decode(model, params, random_ids(jax.random.key(2)))
    np.testing.assert_allclose(state["c"], 0, atol=1e-6)
    np.testing.assert_allclose(state["h"], 0, atol=1e-6)


# --- lengths and the sampler's path -------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_decode_in_a_scan_matches_apply_beyond_block_size(name):
    """The sampler scans decode_step; recurrences have no length limit."""
    model = get_model(name)
    params = perturbed(model.init(jax.random.key(0), TINY), 1)
    T = 3 * TINY.block_size
    ids = random_ids(jax.random.key(2), batch=2, T=T)

    @jax.jit
    def decode_all(params, ids):
        def step(state, t):
            logits, state = model.decode_step(params, state, ids[:, t], t)
            return state, logits

        _, logits_TxBxV = jax.lax.scan(step, model.decode_init(params, TINY, 2), jnp.arange(T))
        return jnp.swapaxes(logits_TxBxV, 0, 1)

    full = jax.jit(model.apply)(params, ids)
    assert full.shape == (2, T, TINY.vocab_size)
    np.testing.assert_allclose(decode_all(params, ids), full, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(full, reference_logits(name, params, ids), rtol=1e-4, atol=1e-4)
