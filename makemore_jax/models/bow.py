"""Causal bag of words, the BoW model of Karpathy's makemore.

Each position's vector is its token embedding plus a position embedding; the
context is summarised by the plain average of the vectors at positions 0..t,
the continuous bag-of-words of Mikolov et al. 2013 ("Efficient Estimation of
Word Representations in Vector Space") made causal. One residual block mixes
that average in and applies a tanh MLP; a linear head gives the logits::

    x = wte[i_t] + wpe[t]
    x = x + mean_{s<=t} x_s
    x = x + tanh(x W_fc + b_fc) W_proj + b_proj
    logits = x W_head + b_head

The average is uniform attention with nothing learned: makemore computes it as
softmax over a causally masked all-zero T x T score matrix times x. Here it is
a cumulative sum divided by the count of positions (O(T) instead of O(T²));
``causal_mean_masked`` keeps the matrix form and the tests check they agree.
The running sum is also the decode state, so generating one more id is O(1).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..errors import MakemoreError
from . import ModelConfig, ModelDef
from .layers import embedding_init, linear, linear_init


def init(key: jax.Array, config: ModelConfig) -> dict:
    """{'wte': (V, n_embd), 'wpe': (block_size, n_embd), 'block': {'c_fc', 'c_proj'}, 'lm_head'}."""
    k_wte, k_wpe, k_fc, k_proj, k_head = jax.random.split(key, 5)
    C, H = config.n_embd, config.n_embd2
    return {
        "wte": embedding_init(k_wte, config.vocab_size, C),
        "wpe": embedding_init(k_wpe, config.block_size, C),
        "block": {"c_fc": linear_init(k_fc, C, H), "c_proj": linear_init(k_proj, H, C)},
        "lm_head": linear_init(k_head, C, config.vocab_size),
    }


def causal_mean(x_BxTxC: jax.Array) -> jax.Array:
    """y_t = (x_0 + ... + x_t) / (t + 1), by a cumulative sum."""
    count_Tx1 = jnp.arange(1, x_BxTxC.shape[1] + 1, dtype=x_BxTxC.dtype)[:, None]
    return jnp.cumsum(x_BxTxC, axis=1) / count_Tx1


def causal_mean_masked(x_BxTxC: jax.Array) -> jax.Array:
    """The same average as makemore writes it: softmax of masked zero scores, times x."""
    T = x_BxTxC.shape[1]
    causal_TxT = jnp.tril(jnp.ones((T, T), bool))
    att_TxT = jax.nn.softmax(jnp.where(causal_TxT, 0.0, -jnp.inf), axis=-1)
    return jnp.einsum("ts,bsc->btc", att_TxT, x_BxTxC)


def _block_mlp(params: dict, x: jax.Array) -> jax.Array:
    return linear(params["c_proj"], jnp.tanh(linear(params["c_fc"], x)))


def _readout(params: dict, x: jax.Array, mean: jax.Array) -> jax.Array:
    """Residual block after the average, then the head: (..., C) -> (..., V)."""
    x = x + mean
    x = x + _block_mlp(params["block"], x)
    return linear(params["lm_head"], x)


def apply(params: dict, idx_BxT: jax.Array) -> jax.Array:
    """Next-id logits at every position: idx (B, T) int32, T <= block_size -> logits (B, T, V)."""
    T, block_size = idx_BxT.shape[1], params["wpe"].shape[0]
    if T > block_size:
        # wpe has block_size rows; indexing past them would silently repeat the last one
        raise MakemoreError(f"bow: sequence of length {T} is longer than block_size {block_size}")
    x_BxTxC = params["wte"][idx_BxT] + params["wpe"][:T]
    return _readout(params, x_BxTxC, causal_mean(x_BxTxC))


def decode_init(params: dict, config: ModelConfig, batch: int) -> jax.Array:
    """The running sum of x over the positions so far: (B, n_embd), zero at the start."""
    return jnp.zeros((batch, params["wte"].shape[1]), jnp.float32)


def decode_step(params: dict, sum_BxC: jax.Array, token_B: jax.Array, t: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Add position t to the sum and read out the logits for t + 1: (B, V). Needs t < block_size."""
    x_BxC = params["wte"][token_B] + params["wpe"][t]
    sum_BxC = sum_BxC + x_BxC
    mean_BxC = sum_BxC / (t + 1).astype(jnp.float32)
    return _readout(params, x_BxC, mean_BxC), sum_BxC


MODELS = {"bow": ModelDef("bow", init, apply, decode_init, decode_step, settings=("n_embd", "n_embd2"))}
