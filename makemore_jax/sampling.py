"""Seeded, batched generation: n names in one compiled call.

Every name has its own key, ``fold_in(key, i)``, and every position its own
``fold_in(name_key, t)``, so the first k names of ``n`` are the same for any
n >= k and nothing depends on batch shape or device.

The next id is ``argmax(logits + T·g)`` with g Gumbel noise. For T > 0 this is
exactly ``jax.random.categorical(key, logits / T)`` (the Gumbel-max trick, which
is how categorical samples); written this way T = 0 is greedy decoding and a
tiny T cannot overflow.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from .data import BOUNDARY_ID, Vocabulary
from .errors import MakemoreError

# next_logits(params, buf_NxL, t) -> logits_NxV for position t + 1, where
# buf[:, :t + 1] holds the ids so far and buf[:, 0] is the start boundary.
NextLogits = Callable[[object, jax.Array, jax.Array], jax.Array]


def table_next_logits(logits_VxV: jax.Array, buf_NxL: jax.Array, t: jax.Array) -> jax.Array:
    """Bigram models: the next id depends on the last one only."""
    return logits_VxV[buf_NxL[:, t]]


def draw_next(name_key: jax.Array, t: jax.Array, logits_V: jax.Array, temperature: jax.Array) -> jax.Array:
    """The id at step t of one name: categorical(fold_in(name_key, t), logits / T), T = 0 greedy."""
    g_V = jax.random.gumbel(jax.random.fold_in(name_key, t), logits_V.shape, logits_V.dtype)
    return jnp.argmax(logits_V + temperature * g_V).astype(jnp.int32)


@partial(jax.jit, static_argnames=("next_logits", "n", "max_len"))
def sample_ids(
    next_logits: NextLogits,
    params,
    key: jax.Array,
    n: int,
    max_len: int,
    temperature: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """Generate n sequences of at most max_len ids.

    Returns ids (n, max_len) int32, each row zero from its end boundary on, and
    ended (n,) bool: False where a row was cut at max_len characters.
    """
    name_keys = jax.vmap(jax.random.fold_in, (None, 0))(key, jnp.arange(n))
    buf_NxL = jnp.zeros((n, max_len + 2), jnp.int32)

    def step(carry, t):
        buf_NxL, ended_N = carry
        logits_NxV = next_logits(params, buf_NxL, t)
        nxt_N = jax.vmap(draw_next, (0, None, 0, None))(name_keys, t, logits_NxV, temperature)
        nxt_N = jnp.where(ended_N, BOUNDARY_ID, nxt_N)
        buf_NxL = buf_NxL.at[:, t + 1].set(nxt_N)
        return (buf_NxL, ended_N | (nxt_N == BOUNDARY_ID)), None

    init = (buf_NxL, jnp.zeros((n,), bool))
    (buf_NxL, ended_N), _ = jax.lax.scan(step, init, jnp.arange(max_len + 1))
    return buf_NxL[:, 1 : max_len + 1], ended_N


def validate_sampling(n: int, max_len: int, temperature: float) -> None:
    if n < 0:
        raise MakemoreError(f"number of samples must be >= 0, got {n}")
    if max_len < 1:
        raise MakemoreError(f"maximum length must be >= 1, got {max_len}")
    if not (temperature >= 0 and math.isfinite(temperature)):
        raise MakemoreError(f"temperature must be a finite number >= 0, got {temperature}")


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
) -> list[str]:
    """n names from a bigram logits table (W, or log P of a counting model).

    Same key, same table -> the same names, on any machine. temperature 0 is
    greedy; names longer than max_len are cut there.
    """
    validate_sampling(n, max_len, temperature)
    if n == 0:
        return []
    ids, _ = sample_ids(
        table_next_logits, jnp.asarray(logits_VxV, jnp.float32), key, n, max_len, jnp.float32(temperature)
    )
    return decode_rows(ids, vocab)
