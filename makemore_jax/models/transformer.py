"""Transformer: a decoder-only, GPT-2 style character model.

Vaswani et al. 2017 ("Attention Is All You Need") with the pre-LayerNorm block
of GPT-2 (Radford et al. 2019, "Language Models are Unsupervised Multitask
Learners"), the same network as the Transformer in PyTorch makemore:

    x = wte[idx] + wpe[t]
    n_layer times:  x = x + attn(ln_1(x));  x = x + mlp(ln_2(x))
    logits = ln_f(x) @ lm_head

attn is causal multi-head self-attention, softmax(q kᵀ / √head_dim) v, with one
fused projection for q, k, v; mlp is Linear(C, 4C), GELU (tanh), Linear(4C, C).

Parameters are a plain pytree. The per-layer ones are stacked along a leading
layer axis L, and the head structure lives in the shapes, so ``apply`` needs no
config (head count H = the size of that axis):

    wte (V, C), wpe (block_size, C), ln_f {scale, bias} (C,), lm_head {w} (C, V)
    blocks: ln_1, ln_2 {scale, bias} (L, C)
            attn.c_attn {w (L, C, 3, H, D), b (L, 3, H, D)}   q | k | v, D = C / H
            attn.c_proj {w (L, H, D, C),    b (L, C)}
            mlp.c_fc    {w (L, C, 4C),      b (L, 4C)}
            mlp.c_proj  {w (L, 4C, C),      b (L, C)}

c_attn.w reshaped to (C, 3C) is PyTorch's ``c_attn.weight.T`` column for
column (q, k, v, each split into heads in order), and c_proj.w reshaped to
(C, C) is ``c_proj.weight.T``, so weights move between the two one-to-one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

import jax
import jax.numpy as jnp

from ..errors import MakemoreError
from . import ModelConfig, ModelDef, layers


def check(config: ModelConfig) -> None:
    if config.n_embd % config.n_head:
        raise MakemoreError(f"transformer: n_embd ({config.n_embd}) must be divisible by n_head ({config.n_head})")


def _block_init(key: jax.Array, n_embd: int, n_head: int) -> dict:
    """One block with PyTorch-default init; the fused projections reshaped per head."""
    k_attn, k_attn_proj, k_fc, k_mlp_proj = jax.random.split(key, 4)
    head_dim = n_embd // n_head
    c_attn = layers.linear_init(k_attn, n_embd, 3 * n_embd)
    c_proj = layers.linear_init(k_attn_proj, n_embd, n_embd)
    return {
        "ln_1": layers.layer_norm_init(n_embd),
        "attn": {
            "c_attn": {
                "w": c_attn["w"].reshape(n_embd, 3, n_head, head_dim),
                "b": c_attn["b"].reshape(3, n_head, head_dim),
            },
            "c_proj": {"w": c_proj["w"].reshape(n_head, head_dim, n_embd), "b": c_proj["b"]},
        },
        "ln_2": layers.layer_norm_init(n_embd),
        "mlp": {
            "c_fc": layers.linear_init(k_fc, n_embd, 4 * n_embd),
            "c_proj": layers.linear_init(k_mlp_proj, 4 * n_embd, n_embd),
        },
    }


def init(key: jax.Array, config: ModelConfig) -> dict:
    """Parameters as in the module docstring: embeddings N(0, 1), Linear U(±1/√fan_in)."""
    check(config)
    k_wte, k_wpe, k_blocks, k_head = jax.random.split(key, 4)
    C = config.n_embd
    # A Python loop rather than vmap: eagerly, each distinct shape's random draw
    # compiles once and is reused by every layer (~2.5 s first init against ~5 s).
    blocks = [_block_init(k, C, config.n_head) for k in jax.random.split(k_blocks, config.n_layer)]
    return {
        "wte": layers.embedding_init(k_wte, config.vocab_size, C),
        "wpe": layers.embedding_init(k_wpe, config.block_size, C),
        "blocks": jax.tree_util.tree_map(lambda *per_layer: jnp.stack(per_layer), *blocks),
        "ln_f": layers.layer_norm_init(C),
        "lm_head": layers.linear_init(k_head, C, config.vocab_size, bias=False),
    }


def _qkv(attn: dict, h_BxTxC: jax.Array) -> jax.Array:
    """The fused q, k, v projection: (B, T, C) -> (B, T, 3, H, D)."""
    w_Cx3xHxD = attn["c_attn"]["w"]
    qkv = layers.dense(h_BxTxC, w_Cx3xHxD.reshape(w_Cx3xHxD.shape[0], -1))
    return qkv.reshape(*h_BxTxC.shape[:-1], *w_Cx3xHxD.shape[1:]) + attn["c_attn"]["b"]


def _mlp(mlp: dict, h_BxTxC: jax.Array) -> jax.Array:
    return layers.linear(mlp["c_proj"], layers.gelu(layers.linear(mlp["c_fc"], h_BxTxC)))


def _attend(
    q_BxTxHxD: jax.Array, k: jax.Array, v: jax.Array, allowed_TxS: jax.Array, kv_layout: str = "bshd"
) -> jax.Array:
    """softmax(q kᵀ / √D) v per head, over the key positions allowed for each query.

    k and v are (B, S, H, D) as the fused projection makes them (kv_layout
    "bshd"), or (B, H, S, D) ("bhsd") as the decode cache keeps them. Either
    way XLA gets the layout it reads without a transpose: in training, mixing
    the two measured ~5% slower a step; in sampling, a (B, S, H, D) cache
    measured ~10% slower than (B, H, S, D).
    """
    weights_BxHxTxS = _attention_weights(q_BxTxHxD, k, allowed_TxS, kv_layout)
    return jnp.einsum(f"bhts,{kv_layout}->bthd", weights_BxHxTxS, v)


def _attention_weights(q_BxTxHxD: jax.Array, k: jax.Array, allowed_TxS: jax.Array, kv_layout: str) -> jax.Array:
    """softmax(q kᵀ / √D) per head over the allowed key positions: (B, H, T, S)."""
    scale = 1.0 / math.sqrt(q_BxTxHxD.shape[-1])
    scores_BxHxTxS = jnp.einsum(f"bthd,{kv_layout}->bhts", q_BxTxHxD, k) * scale
    # Every query may see at least itself, so each row's max is a real score and
    # exp(lowest − max) is exactly 0, as exp(−inf) would be; XLA:CPU's exp of
    # −inf takes a slow path (packed evaluation measured ~10% faster without it).
    scores_BxHxTxS = jnp.where(allowed_TxS, scores_BxHxTxS, jnp.finfo(scores_BxHxTxS.dtype).min)
    return jax.nn.softmax(scores_BxHxTxS, axis=-1)


# Training attention, the "bshd" case of _attend with its backward pass written
# out. The same arithmetic as autodiff's, in other dot forms: autodiff's
# gradients of q and k come out of XLA:CPU as batched dots in a (B, H, T, D)
# layout, transposed back afterwards; here every gradient dot has the form of
# a forward one. Measured on a 2-core Xeon at the makemore sizes, batch 32:
# ~1.7 ms less thread time per AdamW step (15.5 -> 13.8 ms).
@jax.custom_vjp
def _attention(q_BxTxHxD: jax.Array, k_BxSxHxD: jax.Array, v_BxSxHxD: jax.Array, allowed: jax.Array) -> jax.Array:
    return _attend(q_BxTxHxD, k_BxSxHxD, v_BxSxHxD, allowed)


def _attention_fwd(q_BxTxHxD, k_BxSxHxD, v_BxSxHxD, allowed):
    weights_BxHxTxS = _attention_weights(q_BxTxHxD, k_BxSxHxD, allowed, "bshd")
    y_BxTxHxD = jnp.einsum("bhts,bshd->bthd", weights_BxHxTxS, v_BxSxHxD)
    return y_BxTxHxD, (q_BxTxHxD, k_BxSxHxD, v_BxSxHxD, weights_BxHxTxS)


def _attention_bwd(saved, g_BxTxHxD):
    q_BxTxHxD, k_BxSxHxD, v_BxSxHxD, weights_BxHxTxS = saved
    scale = 1.0 / math.sqrt(q_BxTxHxD.shape[-1])
    g_weights = jnp.einsum("bthd,bshd->bhts", g_BxTxHxD, v_BxSxHxD)
    # softmax backward; a masked weight is 0, so is its score's gradient
    g_scores = weights_BxHxTxS * (g_weights - jnp.sum(g_weights * weights_BxHxTxS, -1, keepdims=True)) * scale
    g_q = jnp.einsum("bhts,bshd->bthd", g_scores, k_BxSxHxD)
    g_k = jnp.einsum("bhts,bthd->bshd", g_scores, q_BxTxHxD)
    g_v = jnp.einsum("bhts,bthd->bshd", weights_BxHxTxS, g_BxTxHxD)
    return g_q, g_k, g_v, None  # None: the mask has no gradient


_attention.defvjp(_attention_fwd, _attention_bwd)


def _attn_out(attn: dict, y_BxTxHxD: jax.Array) -> jax.Array:
    """Concatenate the heads and project back: (B, T, H, D) -> (B, T, C)."""
    H, D, C = attn["c_proj"]["w"].shape
    y_BxTxC = y_BxTxHxD.reshape(*y_BxTxHxD.shape[:-2], H * D)
    return layers.dense(y_BxTxC, attn["c_proj"]["w"].reshape(H * D, C)) + attn["c_proj"]["b"]


Site = int | jax.Array  # a dropout site's number (traced inside the scan over layers)
Dropout = Callable[[jax.Array, Site], jax.Array]  # (x, site) -> x, dropped out at that site or not
Carry = TypeVar("Carry")


def _no_dropout(x: jax.Array, site: Site) -> jax.Array:
    return x


def _block_rest(
    block: dict, x_BxTxC: jax.Array, y_BxTxHxD: jax.Array, drop: Dropout = _no_dropout, index: Site = 0
) -> jax.Array:
    """The block after attention: the attention residual, then the MLP one (each branch through drop).

    index: the layer's index, which numbers its dropout sites.
    """
    x_BxTxC = x_BxTxC + drop(_attn_out(block["attn"], y_BxTxHxD), 2 * index + 1)
    return x_BxTxC + drop(_mlp(block["mlp"], layers.layer_norm(block["ln_2"], x_BxTxC)), 2 * index + 2)


# Up to this many layers the blocks are unrolled into straight-line code; past
# it they run as a lax.scan over the layer axis. Measured on 2 CPU cores at the
# makemore sizes (n_layer 4, block_size 16), a jitted AdamW training step took
# ~97 ms unrolled against ~133 ms as a scan at batch 256 (equal at batch 32):
# the scan's backward pass stacks every layer's residuals into fresh buffers
# and copies them. Unrolling costs compile time (~3 s at 4 layers, ~6 s at 8,
# ~16 s at 16, against ~2 s for the scan at any depth), hence the cap.
UNROLL_UP_TO = 8


def _for_each_layer(body: Callable[[Carry, dict, Site], Carry], carry: Carry, blocks: dict) -> Carry:
    """carry = body(carry, block, index) for index = 0..n_layer-1, block = blocks[index]."""
    n_layer = jax.tree_util.tree_leaves(blocks)[0].shape[0]
    if n_layer <= UNROLL_UP_TO:
        for index in range(n_layer):
            carry = body(carry, jax.tree_util.tree_map(lambda a, index=index: a[index], blocks), index)
        return carry

    def step(carry: Carry, block_and_index: tuple[dict, jax.Array]) -> tuple[Carry, None]:
        return body(carry, *block_and_index), None

    return jax.lax.scan(step, carry, (blocks, jnp.arange(n_layer)))[0]


def _head(params: dict, x_BxTxC: jax.Array) -> jax.Array:
    return layers.linear(params["lm_head"], layers.layer_norm(params["ln_f"], x_BxTxC))


def _same_row(k_BxTxHxD: jax.Array) -> jax.Array:
    return k_BxTxHxD


def _with_previous_row(k_RxSxHxD: jax.Array) -> jax.Array:
    """Each row's slots preceded by the previous row's: (R, S, ...) -> (R, 2S, ...); row 0's are zeros."""
    previous = jnp.concatenate([jnp.zeros_like(k_RxSxHxD[:1]), k_RxSxHxD[:-1]], axis=0)
    return jnp.concatenate([previous, k_RxSxHxD], axis=1)


def _blocks_and_head(
    params: dict,
    x_BxTxC: jax.Array,
    allowed: jax.Array,
    keys_of: Callable[[jax.Array], jax.Array] = _same_row,
    drop: Dropout = _no_dropout,
) -> jax.Array:
    """Every block, then the head.

    keys_of maps a layer's (B, T, H, D) keys or values to the ones each row attends over.
    """

    def layer(x_BxTxC: jax.Array, block: dict, index: Site) -> jax.Array:
        qkv_BxTx3xHxD = _qkv(block["attn"], layers.layer_norm(block["ln_1"], x_BxTxC))
        q, k, v = (qkv_BxTx3xHxD[:, :, i] for i in range(3))
        y_BxTxHxD = _attention(q, keys_of(k), keys_of(v), allowed)
        return _block_rest(block, x_BxTxC, y_BxTxHxD, drop, index)

    return _head(params, _for_each_layer(layer, x_BxTxC, params["blocks"]))


def _forward(params: dict, idx_BxT: jax.Array, drop: Dropout = _no_dropout) -> jax.Array:
    T = idx_BxT.shape[1]
    causal_TxT = jnp.tril(jnp.ones((T, T), bool))
    x_BxTxC = drop(params["wte"][idx_BxT] + params["wpe"][:T], 0)
    return _blocks_and_head(params, x_BxTxC, causal_TxT, drop=drop)


def _dropout(key: jax.Array, rate: float) -> Dropout:
    def drop(x: jax.Array, site: Site) -> jax.Array:
        keep = jax.random.bernoulli(jax.random.fold_in(key, site), 1.0 - rate, x.shape)
        return jnp.where(keep, x / (1.0 - rate), 0.0)

    return drop


def apply(params: dict, idx_BxT: jax.Array, key: jax.Array | None = None, rate: float = 0.0) -> jax.Array:
    """Next-id logits (B, T, V) for int32 ids (B, T), 1 <= T <= block_size; causal.

    Training with dropout (Srivastava et al. 2014) at GPT-2's places gives a
    key and rate > 0: the embedding sum and the output of every attention and
    MLP branch are zeroed with probability rate and the rest scaled by
    1/(1 - rate), each site with its own key fold_in(key, site). Evaluation
    and sampling give neither.
    """
    if rate and key is None:
        raise ValueError("apply: dropout (rate > 0) needs a key")
    return _forward(params, idx_BxT, _dropout(key, rate) if rate and key is not None else _no_dropout)


def apply_packed(
    params: dict,
    ids_RxS: jax.Array,
    positions_RxS: jax.Array,
    segments_RxS: jax.Array,
    key: jax.Array | None = None,
    rate: float = 0.0,
) -> jax.Array:
    """Logits (R, S, V) of words packed end to end in rows of S slots (see ``packing``).

    Slot s of row r attends to the slots of rows r - 1 and r that belong to
    its own word (segments equal) and come no later than itself, which with
    S >= block_size is all of its word's earlier positions: each word gets the
    logits ``apply`` gives it in a padded row. positions restart at 0 at each
    word. With rate > 0 the dropout of ``apply``, drawn in this layout.
    """
    R, S = ids_RxS.shape
    slot_RxS = jnp.arange(R * S, dtype=jnp.int32).reshape(R, S)
    # row 0 has no previous row: its stand-in slots get segment -1, which no slot has
    key_segments_Rx2S = _with_previous_row(segments_RxS[..., None])[..., 0].at[0, :S].set(-1)
    key_slots_Rx2S = _with_previous_row(slot_RxS[..., None])[..., 0]
    allowed_RxSx2S = (key_segments_Rx2S[:, None, :] == segments_RxS[:, :, None]) & (
        key_slots_Rx2S[:, None, :] <= slot_RxS[:, :, None]
    )
    if rate and key is None:
        raise ValueError("apply_packed: dropout (rate > 0) needs a key")
    drop = _no_dropout if not rate or key is None else _dropout(key, rate)
    x_RxSxC = drop(params["wte"][ids_RxS] + params["wpe"][positions_RxS], 0)
    return _blocks_and_head(params, x_RxSxC, allowed_RxSx2S[:, None], _with_previous_row, drop)


def apply_trie(params: dict, ids_RxS: jax.Array, depths_RxS: jax.Array, ends_RxS: jax.Array) -> jax.Array:
    """Logits (R, S, V) of prefix trees laid out depth-first in rows of S slots (see ``data.prefixes.trie``).

    Slot s attends to the slots s' <= s whose subtree holds it (s < ends[s']):
    its ancestors and itself, the prefix it extends. So each slot gets the
    logits ``apply`` gives at that position of any word with that prefix, and
    a shared prefix is computed once for all the words below it. depths are
    the positions (0 at the root).
    """
    S = ids_RxS.shape[1]
    slot_S = jnp.arange(S, dtype=jnp.int32)
    allowed_RxSxS = (slot_S[None, None, :] <= slot_S[None, :, None]) & (slot_S[None, :, None] < ends_RxS[:, None, :])
    x_RxSxC = params["wte"][ids_RxS] + params["wpe"][depths_RxS]
    return _blocks_and_head(params, x_RxSxC, allowed_RxSxS[:, None])


def decode_init(params: dict, config: ModelConfig, batch: int) -> dict:
    """Empty key/value caches, each (n_layer, B, H, block_size, D) float32 zeros."""
    n_layer, _, _, n_head, head_dim = params["blocks"]["attn"]["c_attn"]["w"].shape
    shape = (n_layer, batch, n_head, config.block_size, head_dim)
    return {"k": jnp.zeros(shape, jnp.float32), "v": jnp.zeros(shape, jnp.float32)}


def decode_step(params: dict, state: dict, token_B: jax.Array, t: jax.Array) -> tuple[jax.Array, dict]:
    """Logits (B, V) of ``apply`` at position t, given the id at t and the caches of 0..t-1.

    Each layer writes this position's k, v into its cache at t and attends over
    cache positions 0..t; positions after t hold zeros (or stale values) and are
    masked out, so the cache never needs clearing. The whole cache is carried
    and updated in place; that measured ~15% faster sampling than slicing out
    one layer's cache and stacking the updated ones back.
    """
    block_size = state["k"].shape[3]
    allowed_1xS = (jnp.arange(block_size) <= t)[None]

    def layer(
        carry: tuple[jax.Array, jax.Array, jax.Array], block: dict, index: Site
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        x_Bx1xC, k_cache, v_cache = carry
        qkv_Bx1x3xHxD = _qkv(block["attn"], layers.layer_norm(block["ln_1"], x_Bx1xC))
        # (B, 1, H, D) -> (1, B, H, 1, D): this layer's slot at position t.
        k_new, v_new = (qkv_Bx1x3xHxD[:, :, i].transpose(0, 2, 1, 3)[None] for i in (1, 2))
        k_cache = jax.lax.dynamic_update_slice(k_cache, k_new, (index, 0, 0, t, 0))
        v_cache = jax.lax.dynamic_update_slice(v_cache, v_new, (index, 0, 0, t, 0))
        y_Bx1xHxD = _attend(qkv_Bx1x3xHxD[:, :, 0], k_cache[index], v_cache[index], allowed_1xS, "bhsd")
        return _block_rest(block, x_Bx1xC, y_Bx1xHxD), k_cache, v_cache

    x_Bx1xC = (params["wte"][token_B] + params["wpe"][t])[:, None]
    carry = (x_Bx1xC, state["k"], state["v"])
    x_Bx1xC, k_cache, v_cache = _for_each_layer(layer, carry, params["blocks"])
    return _head(params, x_Bx1xC)[:, 0], {"k": k_cache, "v": v_cache}


MODELS = {
    "transformer": ModelDef(
        "transformer",
        init,
        apply,
        decode_init=decode_init,
        decode_step=decode_step,
        check=check,
        apply_packed=apply_packed,
        apply_trie=apply_trie,
        settings=("n_layer", "n_head", "n_embd", "dropout", "pack"),
    )
}
