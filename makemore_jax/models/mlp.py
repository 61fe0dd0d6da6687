"""MLP language model after Bengio et al. 2003, "A Neural Probabilistic Language Model".

The next id is predicted from a fixed window of the previous ``block_size`` ids:
each id is looked up in an embedding table C, the embeddings are concatenated,
and a tanh hidden layer followed by a linear read-out gives the logits::

    x_t = [C(i_{t-W+1}), ..., C(i_t)]        W = block_size, oldest first
    logits_t = tanh(x_t H + d) U + b

Positions before the start of the sequence hold a "blank" id V, with its own
row in C (so the table is (V + 1) x n_embd), as in the PyTorch makemore: the
boundary id 0 at t = 0 is then still a real token the model sees.

Two equal forms of the first layer are kept. ``apply_concat`` is the taught
one: gather B x T x W embeddings, concatenate, one matmul. ``apply`` uses that
the layer is linear in each window slot: x_t H = Σ_j C(i_{t-W+1+j}) H_j, where
H_j is the slot's n_embd x n_embd2 block of H. The products P_j = C H_j for all
V + 1 ids are a (W, V + 1, n_embd2) table, built once per call, so the
B·T·W·n_embd·n_embd2 multiply becomes W·(V+1)·n_embd·n_embd2 plus a gather.
Tests check that both forms agree.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from . import ModelConfig, ModelDef
from .layers import embedding_init, linear, linear_init


def context_windows(idx_BxT: jax.Array, width: int, blank: int) -> jax.Array:
    """For every position t the ids t-width+1 .. t, oldest first: (B, T) -> (B, T, width).

    Slots before the start of the sequence (index < 0) hold ``blank``. The
    gather indices depend on T and width only, so they are built with numpy at
    trace time and no per-position loop runs in the compiled program.
    """
    T = idx_BxT.shape[1]
    padded_BxP = jnp.pad(idx_BxT, ((0, 0), (width - 1, 0)), constant_values=blank)
    offsets_TxW = np.arange(T)[:, None] + np.arange(width)[None, :]
    return padded_BxP[:, offsets_TxW]


def init(key: jax.Array, config: ModelConfig) -> dict:
    """{'wte': (V+1, n_embd), 'hidden': Linear(block_size·n_embd -> n_embd2), 'lm_head': Linear(n_embd2 -> V)}."""
    k_wte, k_hidden, k_head = jax.random.split(key, 3)
    V, W = config.vocab_size, config.block_size
    return {
        "wte": embedding_init(k_wte, V + 1, config.n_embd),
        "hidden": linear_init(k_hidden, W * config.n_embd, config.n_embd2),
        "lm_head": linear_init(k_head, config.n_embd2, V),
    }


def _sizes(params: dict) -> tuple[int, int]:
    """(blank id V, window width W), read off the parameter shapes."""
    n_ids, n_embd = params["wte"].shape
    return n_ids - 1, params["hidden"]["w"].shape[0] // n_embd


def apply_concat(params: dict, idx_BxT: jax.Array) -> jax.Array:
    """The literal form: concatenate the window's embeddings, then the MLP. (B, T) -> (B, T, V)."""
    blank, W = _sizes(params)
    ctx_BxTxW = context_windows(idx_BxT, W, blank)
    emb_BxTxWxC = params["wte"][ctx_BxTxW]
    x_BxTxWC = emb_BxTxWxC.reshape(*ctx_BxTxW.shape[:2], -1)
    h_BxTxH = jnp.tanh(linear(params["hidden"], x_BxTxWC))
    return linear(params["lm_head"], h_BxTxH)


def slot_tables(wte_IxC: jax.Array, w_WCxH: jax.Array) -> jax.Array:
    """A Linear over W concatenated embeddings, split by slot: P[j, i] = wte[i] @ w_j, (W, I, H).

    w_j is rows j·C .. (j+1)·C of w, the block that multiplies slot j's
    embedding, so concat(wte[i_0], ..., wte[i_{W-1}]) @ w = Σ_j P[j, i_j].
    """
    n_embd = wte_IxC.shape[1]
    w_WxCxH = w_WCxH.reshape(w_WCxH.shape[0] // n_embd, n_embd, -1)
    return jnp.einsum("ic,wch->wih", wte_IxC, w_WxCxH)


def _slot_tables(params: dict) -> jax.Array:
    return slot_tables(params["wte"], params["hidden"]["w"])


def _hidden_from_tables(params: dict, tables_WxIxH: jax.Array, ctx_NxW: jax.Array) -> jax.Array:
    """tanh(Σ_j P[j, ctx_j] + d) for windows (..., W) -> (..., H)."""
    W = tables_WxIxH.shape[0]
    pre_NxH = tables_WxIxH[jnp.arange(W), ctx_NxW].sum(-2) + params["hidden"]["b"]
    return jnp.tanh(pre_NxH)


def apply(params: dict, idx_BxT: jax.Array) -> jax.Array:
    """Next-id logits at every position: idx (B, T) int32 -> logits (B, T, V) float32."""
    blank, W = _sizes(params)
    ctx_BxTxW = context_windows(idx_BxT, W, blank)
    h_BxTxH = _hidden_from_tables(params, _slot_tables(params), ctx_BxTxW)
    return linear(params["lm_head"], h_BxTxH)


def decode_init(params: dict, config: ModelConfig, batch: int) -> jax.Array:
    """The window of the last W ids, all blank before the first step: (B, W) int32."""
    blank, W = _sizes(params)
    return jnp.full((batch, W), blank, jnp.int32)


def decode_step(params: dict, ctx_BxW: jax.Array, token_B: jax.Array, t: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Shift token_B into the window and read out the logits for position t + 1: (B, V).

    The slot tables are rebuilt each step (W·(V+1)·n_embd·n_embd2 work, whatever
    B) so that the state stays one batch-leading array of ids.
    """
    ctx_BxW = jnp.concatenate([ctx_BxW[:, 1:], token_B[:, None].astype(jnp.int32)], axis=1)
    h_BxH = _hidden_from_tables(params, _slot_tables(params), ctx_BxW)
    return linear(params["lm_head"], h_BxH), ctx_BxW


MODELS = {"mlp": ModelDef("mlp", init, apply, decode_init, decode_step, settings=("n_embd", "n_embd2"))}
