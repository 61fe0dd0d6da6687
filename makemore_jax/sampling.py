"""Seeded, batched generation: n names in one compiled call, for every model.

Every name has its own key, ``fold_in(key, i)``, and every position its own
``fold_in(name_key, t)``, so the first k names of ``n`` are the same for any
n >= k and nothing depends on batch shape or device.

The next id is ``argmax(logits + T·g)`` with g Gumbel noise. For T > 0 this is
exactly ``jax.random.categorical(key, logits / T)`` (the Gumbel-max trick, which
is how categorical samples); written this way T = 0 is greedy decoding and a
tiny T cannot overflow.

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


TABLE_DECODER = Decoder(bigram.decode_init, bigram.decode_step)  # params {"W": logits_VxV}


@lru_cache(maxsize=None)
def recompute_decoder(apply: Callable) -> Decoder:
    """The plain path: keep the ids so far, run apply on all of them, read position t."""

    def init(params, config, n):
        return jnp.zeros((n, config.block_size), jnp.int32)

    def step(params, buf_NxT, token_N, t):
        buf_NxT = buf_NxT.at[:, t].set(token_N)
        return jnp.take(apply(params, buf_NxT), t, axis=1), buf_NxT

    return Decoder(init, step)


def draw_next(name_key: jax.Array, t: jax.Array, logits_V: jax.Array, temperature: jax.Array) -> jax.Array:
    """The id at step t of one name: categorical(fold_in(name_key, t), logits / T), T = 0 greedy."""
    g_V = jax.random.gumbel(jax.random.fold_in(name_key, t), logits_V.shape, logits_V.dtype)
    return jnp.argmax(logits_V + temperature * g_V).astype(jnp.int32)


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
    name_keys = jax.vmap(jax.random.fold_in, (None, 0))(key, jnp.arange(n))

    def step(carry, t):
        state, token_N, ended_N = carry
        logits_NxV, state = decoder.step(params, state, token_N, t)
        logits_NxV = keep_top_k(logits_NxV, top_k)
        nxt_N = jax.vmap(draw_next, (0, None, 0, None))(name_keys, t, logits_NxV, temperature)
        nxt_N = jnp.where(ended_N, BOUNDARY_ID, nxt_N)
        return (state, nxt_N, ended_N | (nxt_N == BOUNDARY_ID)), nxt_N

    init = (decoder.init(params, config, n), jnp.zeros((n,), jnp.int32), jnp.zeros((n,), bool))
    (_, _, ended_N), ids_LxN = jax.lax.scan(step, init, jnp.arange(max_len + 1))
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
    if model.table is None:
        max_len = model.block_size - 1 if max_len is None else min(max_len, model.block_size - 1)
    elif max_len is None:
        max_len = 2 * (model.block_size - 1)
    validate_sampling(n, max_len, temperature, top_k)
    if n == 0:
        return [], np.zeros((0,), bool)
    if model.table is not None:
        decoder, config, params = TABLE_DECODER, None, {"W": model.table}
    else:
        md = model.model_def
        use_own = fast and md.decode_step is not None
        decoder = Decoder(md.decode_init, md.decode_step) if use_own else recompute_decoder(md.apply)
        config, params = model.model_config, model.params
    ids, ended = sample_ids(decoder, config, params, key, n, max_len, jnp.float32(temperature), top_k)
    return decode_rows(ids, model.vocab), np.asarray(ended)
