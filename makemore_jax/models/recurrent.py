"""Recurrent language models: a cell applied along time by one ``lax.scan``.

The family of makemore's RNN and GRU, plus an LSTM:

- ``rnn``: the simple recurrent network of Mikolov et al. 2010, "Recurrent neural
  network based language model": h_t = tanh(W [x_t, h_{t-1}] + b).
- ``gru``: the gated recurrent unit of Cho et al. 2014, "Learning Phrase
  Representations using RNN Encoder-Decoder for Statistical Machine
  Translation", written as makemore writes it (z gates the *new* candidate).
- ``lstm``: the long short-term memory of Hochreiter & Schmidhuber 1997, in the
  form of Graves 2013, "Generating Sequences With Recurrent Neural Networks",
  without peephole connections.

All three share the model around the cell, as makemore's ``RNN`` module does:
ids -> embedding wte -> cell over time from a learned start state -> lm_head on
every hidden state. Params (nested dicts of float32 arrays; E = n_embd,
H = n_embd2, V = vocab_size)::

    wte      (V, E)
    start    {"h": (1, H)}  (lstm: {"h": (1, H), "c": (1, H)}), zeros at init
    cell     rnn:  {"xh_to_h": linear(E+H -> H)}
             gru:  {"xh_to_z", "xh_to_r", "xh_to_hbar": linear(E+H -> H) each}
             lstm: {"xh_to_gates": linear(E+H -> 4H)}, gates in order i, f, g, o
    lm_head  linear(H -> V)

where linear(a -> b) is {"w": (a, b), "b": (b,)} and the rows of "w" take the
input [x_t, h_{t-1}] in that order (x first), so a PyTorch makemore ``Linear``
ports as its weight transposed. The decoding state is ``start`` broadcast to the
batch: {"h": (B, H)}, plus "c" for the lstm.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp

from . import ModelConfig, ModelDef
from .layers import embedding_init, linear, linear_init

State = dict  # {"h": (B, H)} or {"h": (B, H), "c": (B, H)}


@dataclass(frozen=True)
class Cell:
    """One recurrence: how to initialise it, which state it carries, one step of it.

    ``step(cell_params, x_BxE, state) -> state``; the new ``state["h"]`` is what
    the lm_head reads.
    """

    init: Callable[[jax.Array, int, int], dict]
    step: Callable[[dict, jax.Array, State], State]
    state_keys: tuple[str, ...] = ("h",)


# --- the cells -----------------------------------------------------------------


def rnn_init(key: jax.Array, n_in: int, n_hidden: int) -> dict:
    return {"xh_to_h": linear_init(key, n_in + n_hidden, n_hidden)}


def rnn_step(cell: dict, x_BxE: jax.Array, state: State) -> State:
    """Mikolov et al. 2010: h_t = tanh(W [x_t, h_{t-1}] + b)."""
    xh_BxEH = jnp.concatenate([x_BxE, state["h"]], axis=-1)
    return {"h": jnp.tanh(linear(cell["xh_to_h"], xh_BxEH))}


def gru_init(key: jax.Array, n_in: int, n_hidden: int) -> dict:
    kz, kr, kh = jax.random.split(key, 3)
    return {
        "xh_to_z": linear_init(kz, n_in + n_hidden, n_hidden),
        "xh_to_r": linear_init(kr, n_in + n_hidden, n_hidden),
        "xh_to_hbar": linear_init(kh, n_in + n_hidden, n_hidden),
    }


def gru_step(cell: dict, x_BxE: jax.Array, state: State) -> State:
    """Cho et al. 2014, as makemore writes it: z = 1 takes the candidate, z = 0 keeps h."""
    h_BxH = state["h"]
    xh_BxEH = jnp.concatenate([x_BxE, h_BxH], axis=-1)
    z_BxH = jax.nn.sigmoid(linear(cell["xh_to_z"], xh_BxEH))
    r_BxH = jax.nn.sigmoid(linear(cell["xh_to_r"], xh_BxEH))
    # the reset gate decides how much of the past the candidate may look at
    xhr_BxEH = jnp.concatenate([x_BxE, r_BxH * h_BxH], axis=-1)
    hbar_BxH = jnp.tanh(linear(cell["xh_to_hbar"], xhr_BxEH))
    return {"h": (1.0 - z_BxH) * h_BxH + z_BxH * hbar_BxH}


def lstm_init(key: jax.Array, n_in: int, n_hidden: int) -> dict:
    gates = linear_init(key, n_in + n_hidden, 4 * n_hidden)
    # Forget-gate bias +1 (Gers et al. 2000; Jozefowicz et al. 2015): the cell
    # starts out remembering (f ≈ 0.73), so gradients reach early positions
    # before the network has learnt what to keep.
    gates["b"] = gates["b"].at[n_hidden : 2 * n_hidden].add(1.0)
    return {"xh_to_gates": gates}


def lstm_step(cell: dict, x_BxE: jax.Array, state: State) -> State:
    """Graves 2013 without peepholes: c_t = f c_{t-1} + i g, h_t = o tanh(c_t)."""
    xh_BxEH = jnp.concatenate([x_BxE, state["h"]], axis=-1)
    i_BxH, f_BxH, g_BxH, o_BxH = jnp.split(linear(cell["xh_to_gates"], xh_BxEH), 4, axis=-1)
    c_BxH = jax.nn.sigmoid(f_BxH) * state["c"] + jax.nn.sigmoid(i_BxH) * jnp.tanh(g_BxH)
    return {"h": jax.nn.sigmoid(o_BxH) * jnp.tanh(c_BxH), "c": c_BxH}


RNN = Cell(rnn_init, rnn_step)
GRU = Cell(gru_init, gru_step)
LSTM = Cell(lstm_init, lstm_step, ("h", "c"))


# --- the model around any cell -----------------------------------------------------


def init(cell: Cell, key: jax.Array, config: ModelConfig) -> dict:
    """wte ~ N(0, 1), zero start state, cell and lm_head with PyTorch's Linear init."""
    k_wte, k_cell, k_head = jax.random.split(key, 3)
    H = config.n_embd2
    return {
        "wte": embedding_init(k_wte, config.vocab_size, config.n_embd),
        "start": {name: jnp.zeros((1, H), jnp.float32) for name in cell.state_keys},
        "cell": cell.init(k_cell, config.n_embd, H),
        "lm_head": linear_init(k_head, H, config.vocab_size),
    }


def start_state(params: dict, batch: int) -> State:
    """The learned start state, one copy per sequence: {"h": (B, H)} (+ "c" for lstm)."""
    return jax.tree_util.tree_map(lambda s_1xH: jnp.broadcast_to(s_1xH, (batch, s_1xH.shape[1])), params["start"])


def decode_init(params: dict, config: ModelConfig, batch: int) -> State:
    return start_state(params, batch)


def apply(cell: Cell, params: dict, idx_BxT: jax.Array) -> jax.Array:
    """idx (B, T) int32 -> logits (B, T, V); position t has read ids 0..t.

    The scan runs time-major, so the embedding is gathered straight into
    (T, B, E) and the lm_head is applied once to all hidden states afterwards.
    """
    B = idx_BxT.shape[0]
    x_TxBxE = params["wte"][idx_BxT.T]
    state = start_state(params, B)

    def advance(state: State, x_BxE: jax.Array) -> tuple[State, jax.Array]:
        state = cell.step(params["cell"], x_BxE, state)
        return state, state["h"]

    _, h_TxBxH = jax.lax.scan(advance, state, x_TxBxE)
    return linear(params["lm_head"], jnp.swapaxes(h_TxBxH, 0, 1))


def decode_step(cell: Cell, params: dict, state: State, token_B: jax.Array, t: jax.Array) -> tuple[jax.Array, State]:
    """Feed the id at position t; the logits apply gives at t, and the next state.

    t is not needed: the state alone says where the sequence is.
    """
    state = cell.step(params["cell"], params["wte"][token_B], state)
    return linear(params["lm_head"], state["h"]), state


def _model_def(name: str, cell: Cell) -> ModelDef:
    return ModelDef(
        name,
        partial(init, cell),
        partial(apply, cell),
        decode_init,
        partial(decode_step, cell),
        settings=("n_embd", "n_embd2"),
    )


MODELS = {name: _model_def(name, cell) for name, cell in (("rnn", RNN), ("gru", GRU), ("lstm", LSTM))}
