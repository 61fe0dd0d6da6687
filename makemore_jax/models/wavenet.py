"""Hierarchical MLP of Karpathy's makemore lecture part 5, after van den Oord et al. 2016,
"WaveNet: A Generative Model for Raw Audio".

The previous 8 ids (blank-padded before the start, as in the MLP) are embedded
and fused in a binary tree: each level concatenates consecutive pairs of
vectors (8 -> 4 -> 2 -> 1), then Linear -> n_embd2, normalisation, tanh. A
linear head on the root gives the logits. Growing the context slowly, two
vectors at a time, is what WaveNet's stack of dilated causal convolutions does.

Normalisation: the lecture uses BatchNorm, whose statistics come from the
batch (and running averages at evaluation time), so the output at one position
depends on the rest of the batch and on train/eval mode. LayerNorm over the
feature axis normalises each vector by itself: ``apply`` stays a pure function
of (params, idx), causal per row and equal in training and sampling. The fusing
Linear layers have no bias, as in the lecture; the norm's own bias follows.

Two equal forms are kept. ``apply_tree`` is the lecture's: for every position
build its 8-id window and fuse 4 + 2 + 1 pairs. ``apply`` shares the work
between positions, as WaveNet does: the level-1 node over ids (s-1, s) is the
same whichever later window contains it, so each level is computed once per
position as a causal convolution of width 2 with dilation 1, 2 and 4 — 3 fused
nodes per position instead of 7. Level 1 is moreover a Linear applied straight
to embeddings, so, as in the MLP, it is read from (V + 1) x n_embd2 tables per
pair slot instead of multiplied out at every position. Tests check that both
forms agree.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from . import ModelConfig, ModelDef
from .layers import embedding_init, layer_norm, layer_norm_init, linear, linear_init
from .mlp import context_windows, slot_tables

CONTEXT = 8  # ids seen per prediction: 2 ** len(LEVELS)
LEVELS = ("level1", "level2", "level3")
DILATIONS = (1, 2, 4)  # distance between the two vectors fused at each level


def init(key: jax.Array, config: ModelConfig) -> dict:
    """{'wte': (V+1, n_embd), 'level1'..'level3': {'fuse': {'w'}, 'norm'}, 'lm_head': Linear(n_embd2 -> V)}."""
    k_wte, k_head, *k_levels = jax.random.split(key, 2 + len(LEVELS))
    V, C, H = config.vocab_size, config.n_embd, config.n_embd2
    params: dict[str, Any] = {"wte": embedding_init(k_wte, V + 1, C)}
    for name, k, fan_in in zip(LEVELS, k_levels, (2 * C, 2 * H, 2 * H)):
        params[name] = {"fuse": linear_init(k, fan_in, H, bias=False), "norm": layer_norm_init(H)}
    params["lm_head"] = linear_init(k_head, H, V)
    return params


def _fuse(level: dict, pairs_Nx2D: jax.Array) -> jax.Array:
    """Tree nodes from the concatenations [left child, right child]: (..., 2D) -> (..., H)."""
    return jnp.tanh(layer_norm(level["norm"], linear(level["fuse"], pairs_Nx2D)))


def _tree(params: dict, ctx_Nx8: jax.Array) -> jax.Array:
    """Fuse an 8-id window pairwise down to one vector: (..., 8) ids -> (..., H)."""
    h = params["wte"][ctx_Nx8]  # (..., 8, C)
    for name in LEVELS:
        # consecutive pairs side by side: (..., n, D) -> (..., n/2, 2D)
        h = _fuse(params[name], h.reshape(*h.shape[:-2], h.shape[-2] // 2, 2 * h.shape[-1]))
    return h[..., 0, :]


def _blank(params: dict) -> int:
    return params["wte"].shape[0] - 1


def apply_tree(params: dict, idx_BxT: jax.Array) -> jax.Array:
    """The lecture's form, one 8-id window per position: (B, T) -> (B, T, V)."""
    ctx_BxTx8 = context_windows(idx_BxT, CONTEXT, _blank(params))
    return linear(params["lm_head"], _tree(params, ctx_BxTx8))


def apply(params: dict, idx_BxT: jax.Array) -> jax.Array:
    """Next-id logits at every position: idx (B, T) int32 -> logits (B, T, V) float32."""
    padded_BxP = jnp.pad(idx_BxT, ((0, 0), (CONTEXT - 1, 0)), constant_values=_blank(params))
    # Level 1 is a Linear straight after the embedding, so it is a lookup in
    # per-id tables: [wte[a], wte[b]] @ w = left[a] + right[b]
    left_IxH, right_IxH = slot_tables(params["wte"], params["level1"]["fuse"]["w"])
    pre_BxPxH = left_IxH[padded_BxP[:, :-1]] + right_IxH[padded_BxP[:, 1:]]
    h_BxPxH = jnp.tanh(layer_norm(params["level1"]["norm"], pre_BxPxH))
    for name, d in zip(LEVELS[1:], DILATIONS[1:]):
        # node at s fuses the nodes at s - d and s; the first d have no left child and drop
        pairs_BxPx2H = jnp.concatenate([h_BxPxH[:, :-d], h_BxPxH[:, d:]], axis=-1)
        h_BxPxH = _fuse(params[name], pairs_BxPx2H)
    # 1 + 2 + 4 = CONTEXT - 1 leading nodes dropped, exactly the padding: P is back to T
    return linear(params["lm_head"], h_BxPxH)


def decode_init(params: dict, config: ModelConfig, batch: int) -> jax.Array:
    """The window of the last 8 ids, all blank before the first step: (B, 8) int32."""
    return jnp.full((batch, CONTEXT), _blank(params), jnp.int32)


def decode_step(params: dict, ctx_Bx8: jax.Array, token_B: jax.Array, t: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Shift token_B into the window and read out the logits for position t + 1: (B, V)."""
    ctx_Bx8 = jnp.concatenate([ctx_Bx8[:, 1:], token_B[:, None].astype(jnp.int32)], axis=1)
    return linear(params["lm_head"], _tree(params, ctx_Bx8)), ctx_Bx8


MODELS = {"wavenet": ModelDef("wavenet", init, apply, decode_init, decode_step, settings=("n_embd", "n_embd2"))}
