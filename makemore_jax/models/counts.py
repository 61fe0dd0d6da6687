"""The counting model: a V×V table of bigram counts, smoothed and normalised.

Its parameters are the counts, {"counts": int32 V×V}; add-k smoothing (the
settings' ``smoothing``) is applied when the table is read, so one count
table serves every k. It runs as the bigram whose W is log P
(``bigram.table_runner``): evaluated and sampled through that table.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ..data.words import Dataset
from ..errors import MakemoreError
from . import ArraySpecs, Counter, FittedView, ModelDef, Runner, Settings, bigram

SCATTER_PARTS = 2  # count_matrix counts the pairs in this many independent scatters (one per CPU thread)
FLAT_CELLS = jax.lax.ScatterDimensionNumbers(
    update_window_dims=(), inserted_window_dims=(0,), scatter_dims_to_operand_dims=(0,)
)


@partial(jax.jit, static_argnames="vocab_size")
def count_matrix(xs: jax.Array, ys: jax.Array, vocab_size: int) -> jax.Array:
    """N[i, j] = how many times id j follows id i: an int32 V×V table of the pairs (xs, ys), each (P,).

    Ids must lie in [0, vocab_size). The pairs are split into SCATTER_PARTS
    parts, each scatter-added into its own table, and the tables added: one
    scatter is one serial loop, and XLA:CPU runs independent ones on its
    threads side by side. Each scatter runs on the flat index x·V + y, through
    lax.scatter_add: a 2-D scatter first builds an (N, 2) index array
    (measured about 1.7× slower), and ``.at[].add`` first wraps negative
    indices, another pass over the index (benchmarks, count matrix task).
    """
    V = vocab_size

    def count(x_P, y_P):
        flat_P = x_P * V + y_P
        return jax.lax.scatter_add(jnp.zeros((V * V,), jnp.int32), flat_P[:, None], jnp.ones_like(flat_P), FLAT_CELLS)

    parts = zip(jnp.array_split(xs, SCATTER_PARTS), jnp.array_split(ys, SCATTER_PARTS))
    return sum(count(x_P, y_P) for x_P, y_P in parts).reshape(V, V)


@jax.jit
def _normalise(counts_VxV: jax.Array, k: jax.Array) -> jax.Array:
    smoothed = counts_VxV.astype(jnp.float32) + k
    row_total = smoothed.sum(axis=1, keepdims=True)
    # A row with nothing in it (a character only ever seen outside the training
    # split, with k = 0) has no evidence either way: it is uniform, the limit of
    # add-k as k -> 0, rather than 0/0.
    uniform = jnp.full_like(smoothed, 1.0 / smoothed.shape[1])
    return jnp.where(row_total > 0, smoothed / jnp.where(row_total > 0, row_total, 1.0), uniform)


def smoothed_probs(counts_VxV: jax.Array, k: float = 1.0) -> jax.Array:
    """Add-k smoothing, then each row divided by its sum: P[i, j] = p(next = j | prev = i).

    k >= 0 (0 is the plain maximum-likelihood table). Returns float32 V×V whose
    rows sum to 1.
    """
    if not (k >= 0 and math.isfinite(k)):  # NaN fails both
        raise MakemoreError(f"smoothing must be a finite number >= 0, got {k}")
    return _normalise(jnp.asarray(counts_VxV), jnp.float32(k))


def count(data: Dataset, settings: Settings, counter: Counter) -> dict:
    """The bigram counts of the training split (counter.pairs: here or over devices)."""
    xs, ys = data.pairs("train")
    return {"counts": counter.pairs(xs, ys, data.vocab.size)}


def table(params: dict, settings: Settings) -> jax.Array:
    """log p(next | current), add-k smoothed with k = settings.smoothing: V×V."""
    return jnp.log(smoothed_probs(params["counts"], settings.smoothing))


def run(model: FittedView) -> Runner:
    return bigram.table_runner(table(model.params, model.config), model.block_size)


def saved_arrays(arrays: dict[str, np.ndarray], settings: Settings, vocab_size: int) -> ArraySpecs:
    return {"params/counts": ((vocab_size, vocab_size), jnp.dtype("int32"))}


MODELS = {
    "counts": ModelDef(
        "counts",
        count=count,
        table=table,
        run=run,
        saved_arrays=saved_arrays,
        defaults=(),
        settings=("smoothing",),
    )
}
