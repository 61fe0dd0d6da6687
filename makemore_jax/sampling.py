"""Seeded, batched generation: n names in one compiled call, for every model.

Every name has its own key, ``fold_in(key, i)``, and its own stream of
uniforms drawn from it, so the first k names of ``n`` are the same for any
n >= k and nothing depends on batch shape or device.

The next id is drawn by inversion: one uniform u per name and position, and the
first id whose cumulative probability under softmax(logits / T) exceeds u. That
is one random number per character where Gumbel-max (``jax.random.categorical``)
needs V of them, and random bits are most of a small model's sampling cost.
T = 0 is greedy decoding; a tiny T cannot overflow (logits are shifted by their
maximum before dividing). The loop stops as soon as every name has ended.

A model is driven through a ``Decoder``: ``init(params, config, n) -> state``
and ``step(params, state, token_N, t) -> (logits_NxV, state)``. Models with a
carried state or a key/value cache supply their own; for the others
``recompute_decoder`` re-runs ``apply`` over the whole buffer at every step.
"""

from __future__ import annotations

import math
from functools import lru_cache, partial
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .data import BOUNDARY_ID, Vocabulary
from .errors import MakemoreError
from .models import bigram


class Decoder(NamedTuple):
    init: Callable[[Any, Any, int], Any]
    step: Callable[[Any, Any, jax.Array, jax.Array], tuple[jax.Array, Any]]
    # For models whose next id depends on the current id alone: params -> logits_VxV.
    # The sampler then inverts each row of the table once, instead of every name's logits at every step.
    table: Callable[[Any], jax.Array] | None = None


TABLE_DECODER = Decoder(bigram.decode_init, bigram.decode_step, lambda params: params["W"])  # params {"W": logits_VxV}


@lru_cache(maxsize=None)
def recompute_decoder(apply: Callable) -> Decoder:
    """The plain path: keep the ids so far, run apply on all of them, read position t."""

    def init(params, config, n):
        return jnp.zeros((n, config.block_size), jnp.int32)

    def step(params, buf_NxT, token_N, t):
        buf_NxT = buf_NxT.at[:, t].set(token_N)
        return jnp.take(apply(params, buf_NxT), t, axis=1), buf_NxT

    return Decoder(init, step)


TRIANGLE_MAX_V = 512  # running sums by a V×V triangle product up to this vocabulary size (1 MiB), cumsum beyond


def tempered_cdf(logits_NxV: jax.Array, temperature: jax.Array) -> jax.Array:
    """Running sums of exp((logits - max) / T) along each row (unnormalised); T > 0."""
    shifted_NxV = logits_NxV - jnp.max(logits_NxV, axis=-1, keepdims=True)  # <= 0, max exactly 0: no overflow
    p_NxV = jnp.exp(shifted_NxV / temperature)
    V = logits_NxV.shape[-1]
    if V > TRIANGLE_MAX_V:
        return jnp.cumsum(p_NxV, axis=-1)
    # A product with a triangle of ones: XLA's cumsum is a slow reduce-window on CPU.
    return jnp.dot(p_NxV, jnp.triu(jnp.ones((V, V), p_NxV.dtype)), precision=jax.lax.Precision.HIGHEST)


def invert(cdf_NxV: jax.Array, u_N: jax.Array) -> jax.Array:
    """The first id whose running sum exceeds u·total: an id of probability 0 is never picked."""
    total_N = cdf_NxV[:, -1]
    # Strictly below the total, even when u·total rounds up to it.
    threshold_N = jnp.minimum(u_N * total_N, jnp.nextafter(total_N, jnp.zeros_like(total_N)))
    return jnp.sum(cdf_NxV <= threshold_N[:, None], axis=-1).astype(jnp.int32)


def pick(logits_NxV: jax.Array, u_N: jax.Array, temperature: jax.Array) -> jax.Array:
    """Draw from softmax(logits / T) for each row by inversion, given u in [0, 1); T = 0 is argmax."""
    return jax.lax.cond(
        temperature > 0,
        lambda l: invert(tempered_cdf(l, temperature), u_N),
        lambda l: jnp.argmax(l, axis=-1).astype(jnp.int32),
        logits_NxV,
    )


def name_uniforms(key: jax.Array, n: int, length: int) -> jax.Array:
    """The uniforms that decide each name, (length, n): name i uses uniform(fold_in(key, i), (length,)).

    With JAX's partitionable Threefry (the default) a longer draw extends a
    shorter one, so max_len does not change the names that fit in both.
    """
    keys_N = jax.vmap(jax.random.fold_in, (None, 0))(key, jnp.arange(n))
    return jax.vmap(lambda k: jax.random.uniform(k, (length,)), out_axes=1)(keys_N)


def keep_top_k(logits_NxV: jax.Array, k: int) -> jax.Array:
    """Logits outside each row's k largest set to -inf (k >= V keeps all)."""
    if k <= 0 or k >= logits_NxV.shape[-1]:
        return logits_NxV
    kth_Nx1 = jax.lax.top_k(logits_NxV, k)[0][:, -1:]
    return jnp.where(logits_NxV < kth_Nx1, -jnp.inf, logits_NxV)


@partial(jax.jit, static_argnames=("decoder", "config", "n", "max_len", "top_k"))
def sample_ids(
    decoder: Decoder,
    config,
    params,
    key: jax.Array,
    n: int,
    max_len: int,
    temperature: jax.Array,
    top_k: int = 0,
) -> tuple[jax.Array, jax.Array]:
    """Generate n sequences of at most max_len ids after the start boundary.

    Returns ids (n, max_len) int32, each row zero from its end boundary on, and
    ended (n,) bool: False where a row was cut at max_len characters.
    """
    # float32 products in full, on GPUs too (whose default is TF32, ~1e-3 off): a name flips wherever a
    # uniform falls between the two machines' running sums, so without this the same key would give
    # other names on a GPU than on a CPU
    with jax.default_matmul_precision("highest"):
        u_LxN = name_uniforms(key, n, max_len + 1)
        if decoder.table is not None:  # the next id depends on the current one alone: invert each row once
            table_VxV = keep_top_k(decoder.table(params), top_k)
            cdf_VxV = tempered_cdf(table_VxV, jnp.where(temperature > 0, temperature, 1.0))
            greedy_V = jnp.argmax(table_VxV, axis=-1).astype(jnp.int32)

            def next_ids(state, token_N, t):
                drawn_N = invert(cdf_VxV[token_N], u_LxN[t])
                return jnp.where(temperature > 0, drawn_N, greedy_V[token_N]), state

        else:

            def next_ids(state, token_N, t):
                logits_NxV, state = decoder.step(params, state, token_N, t)
                return pick(keep_top_k(logits_NxV, top_k), u_LxN[t], temperature), state

        def going(carry):
            t, _, _, ended_N, _ = carry
            return (t <= max_len) & ~jnp.all(ended_N)

        def step(carry):
            t, state, token_N, ended_N, ids_LxN = carry
            nxt_N, state = next_ids(state, token_N, t)
            nxt_N = jnp.where(ended_N, BOUNDARY_ID, nxt_N)
            ids_LxN = jax.lax.dynamic_update_index_in_dim(ids_LxN, nxt_N, t, axis=0)
            return t + 1, state, nxt_N, ended_N | (nxt_N == BOUNDARY_ID), ids_LxN

        zeros_N = jnp.zeros((n,), jnp.int32)
        init = (jnp.int32(0), decoder.init(params, config, n), zeros_N, zeros_N.astype(bool), jnp.zeros_like(u_LxN, jnp.int32))
        _, _, _, ended_N, ids_LxN = jax.lax.while_loop(going, step, init)
        return ids_LxN.T[:, :max_len], ended_N


def validate_sampling(n: int, max_len: int, temperature: float, top_k: int = 0) -> None:
    if n < 0:
        raise MakemoreError(f"number of samples must be >= 0, got {n}")
    if max_len < 1:
        raise MakemoreError(f"maximum length must be >= 1, got {max_len}")
    if not (temperature >= 0 and math.isfinite(temperature)):
        raise MakemoreError(f"temperature must be a finite number >= 0, got {temperature}")
    if top_k < 0:
        raise MakemoreError(f"top-k must be >= 0 (0 = off), got {top_k}")


def decode_rows(ids_NxL: np.ndarray, vocab: Vocabulary) -> list[str]:
    """Rows of ids to strings, each cut at its first boundary id."""
    return [vocab.decode(row) for row in np.asarray(ids_NxL)]


def sample_names(
    key: jax.Array,
    logits_VxV: jax.Array,
    vocab: Vocabulary,
    n: int,
    *,
    max_len: int = 50,
    temperature: float = 1.0,
    top_k: int = 0,
) -> list[str]:
    """n names from a bigram logits table (W, or log P of a counting model).

    Same key, same table -> the same names, on any machine. temperature 0 is
    greedy; names longer than max_len are cut there.
    """
    validate_sampling(n, max_len, temperature, top_k)
    if n == 0:
        return []
    params = {"W": jnp.asarray(logits_VxV, jnp.float32)}
    ids, _ = sample_ids(TABLE_DECODER, None, params, key, n, max_len, jnp.float32(temperature), top_k)
    return decode_rows(ids, vocab)


def plan(model, max_len: int | None, fast: bool = True):
    """(decoder, config, params, max_len) for sample_ids to draw from a trained model.

    Sequence models generate at most block_size - 1 characters (the longest
    word they were built for); max_len may lower that. Tables have no such
    limit and default to twice the longest training word. fast=False takes the
    recompute path even where the model has its own decoder.
    """
    if model.table is None:
        max_len = model.block_size - 1 if max_len is None else min(max_len, model.block_size - 1)
    elif max_len is None:
        max_len = 2 * (model.block_size - 1)
    if model.table is not None:
        return TABLE_DECODER, None, {"W": model.table}, max_len
    md = model.model_def
    use_own = fast and md.decode_step is not None
    decoder = Decoder(md.decode_init, md.decode_step) if use_own else recompute_decoder(md.apply)
    return decoder, model.model_config, model.params, max_len


def generate(
    model,
    key: jax.Array,
    n: int,
    *,
    max_len: int | None = None,
    temperature: float = 1.0,
    top_k: int = 0,
    fast: bool = True,
) -> tuple[list[str], np.ndarray]:
    """n names from a TrainedModel, and whether each ended by itself.

    Sequence models generate at most block_size - 1 characters (the longest
    word they were built for); max_len may lower that. fast=False forces the
    recompute path, to check the model's incremental decoder against it.
    """
    decoder, config, params, max_len = plan(model, max_len, fast)
    validate_sampling(n, max_len, temperature, top_k)
    if n == 0:
        return [], np.zeros((0,), bool)
    ids, ended = sample_ids(decoder, config, params, key, n, max_len, jnp.float32(temperature), top_k)
    return decode_rows(ids, model.vocab), np.asarray(ended)
