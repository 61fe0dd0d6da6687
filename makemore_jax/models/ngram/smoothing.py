"""From counts to probabilities: discounts (or k), the count tables a model holds, and the next-id distributions."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import jax
import jax.numpy as jnp
import numpy as np

from ...data.words import Vocabulary
from ...errors import MakemoreError
from .counting import INT32_LIMIT, Level, all_levels, choose_representation, count_ngrams, flat_index

FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)  # where the count-of-counts give no usable estimate (KenLM's)
Carry = TypeVar("Carry")
METHODS = (
    "add-k",
    "kn",
    "modified-kn",
)  # smoothing methods: add-k (with k = smoothing), Kneser–Ney, modified Kneser–Ney


# ---- discounts ------------------------------------------------------------------------


def count_of_counts(counts: np.ndarray) -> tuple[int, int, int, int]:
    """n1..n4: how many n-grams have count exactly 1, 2, 3 and 4."""
    small = np.bincount(np.minimum(np.asarray(counts, np.int64), 5), minlength=6)
    n1, n2, n3, n4 = (int(x) for x in small[1:5])
    return n1, n2, n3, n4


def _usable(value: float, limit: float) -> bool:
    return math.isfinite(value) and 0 < value < limit


def kn_discount(counts: np.ndarray) -> float:
    """Ney, Essen & Kneser's D = n1 / (n1 + 2 n2); FALLBACK_DISCOUNTS[0] if that is not in (0, 1)."""
    n1, n2, _, _ = count_of_counts(counts)
    d = n1 / (n1 + 2 * n2) if n1 + n2 else math.nan
    return d if _usable(d, 1.0) else FALLBACK_DISCOUNTS[0]


def modified_kn_discounts(counts: np.ndarray) -> tuple[float, float, float]:
    """Chen & Goodman's (D1, D2, D3+) from the count-of-counts; each D_k must lie in (0, k).

    Y = n1 / (n1 + 2 n2), D1 = 1 − 2Y n2/n1, D2 = 2 − 3Y n3/n2, D3+ = 3 − 4Y n4/n3.
    A value that is undefined or out of range (tiny data) is replaced by
    FALLBACK_DISCOUNTS, as KenLM's --discount_fallback does.
    """
    n = count_of_counts(counts)
    y = n[0] / (n[0] + 2 * n[1]) if n[0] + n[1] else math.nan
    raw = [k + 1 - (k + 2) * y * n[k + 1] / n[k] if n[k] else math.nan for k in range(3)]
    d1, d2, d3 = (d if _usable(d, k + 1) else FALLBACK_DISCOUNTS[k] for k, d in enumerate(raw))
    return d1, d2, d3


def smoothing_params(
    levels: Sequence[Level], order: int, method: str, k: float = 1.0, discount: float = 0.0, discount_scale: float = 1.0
) -> dict:
    """{'add_k': k} or {'discounts': float32 (order, 3)}, the (D1, D2, D3+) of each order 1..order.

    Kneser–Ney discounts come from the count-of-counts of the counts each order
    uses (raw at the top, continuation below), times discount_scale, capped at
    D_k <= k so that no count goes negative. Plain Kneser–Ney with discount > 0
    uses that D at every order instead.
    """
    if not (math.isfinite(k) and k >= 0):
        raise MakemoreError(f"add-k needs a finite k >= 0, got {k}")
    if not (discount == 0 or 0 < discount < 1) or not (math.isfinite(discount_scale) and discount_scale > 0):
        raise MakemoreError(f"discount must be in (0, 1) or 0 and its scale > 0, got {discount} and {discount_scale}")
    if method == "add-k":
        return {"add_k": np.float32(k)}
    if method not in METHODS:
        raise MakemoreError(f"smoothing method must be one of {', '.join(METHODS)}, got {method!r}")
    rows: list[tuple[float, ...]] = []
    for n in range(1, order + 1):
        counts = levels[n - 1].raw if n == order else levels[n - 1].continuation
        if method == "kn":
            rows.append((discount,) * 3 if discount else (kn_discount(counts) * discount_scale,) * 3)
        else:
            rows.append(tuple(d * discount_scale for d in modified_kn_discounts(counts)))
    return {"discounts": np.minimum(np.asarray(rows, np.float32), np.array([1, 2, 3], np.float32))}


# ---- count tables -------------------------------------------------------------------------
#
# A model's counts of every order live in one table, so that one lax.scan over
# the orders (one compiled loop body, whatever N) finds a context's counts:
#
#   unigram       int32 (V,)      order 1 (a single, empty context)
#   dense:  dense int32 (Σ_{n=2..N} V^n,)   order n's rows of V counts, row = flat index of the context,
#           dense_offsets int32 (N,)        where order n begins (n = 2..N), then the end
#   sparse: ctx_keys  int32 (R,)    the contexts of orders 2..N, each order's keys sorted,
#           level_rows int32 (N,)   where order n's contexts begin (n = 2..N), then R,
#           row_start int32 (R+1,)  context r's next ids are next_ids[row_start[r]:row_start[r+1]],
#           next_ids, counts int32 (M,)
#
# A context's flat index and its key are built from its suffix one order down:
# flat = flat' · V + oldest id, key = (row of the suffix within its order) · V + oldest id.


def model_order(params: dict) -> int:
    """N: the orders the tables hold."""
    return (params["dense_offsets"] if "dense_offsets" in params else params["level_rows"]).shape[0]


def vocab_size_of(params: dict) -> int:
    return params["unigram"].shape[0]


@dataclass(frozen=True)
class Layout:
    """Where the count of every n-gram of orders 1..N goes in a model's tables."""

    vocab_size: int
    unigram_ids: np.ndarray  # order 1: each unigram's id
    cells: tuple[np.ndarray, ...]  # order n >= 2: each n-gram's index in 'dense' or 'counts'
    structure: dict  # the arrays other than the counts
    size: int  # length of the 'dense' or 'counts' array

    def fill(self, counts: Sequence[np.ndarray]) -> dict:
        """The tables holding counts[n − 1] (one per n-gram of order n) for every order n."""
        unigram = np.zeros((self.vocab_size,), np.int32)
        unigram[self.unigram_ids] = counts[0]
        values = np.zeros((self.size,), np.int32)
        for cells, c in zip(self.cells, counts[1:]):
            values[cells] = c
        name = "dense" if "dense_offsets" in self.structure else "counts"
        return {"unigram": unigram, **self.structure, name: values}


def layout(levels: Sequence[Level], order: int, vocab_size: int, representation: str = "auto") -> Layout:
    """The layout of the tables of orders 1..order (dense or sparse, by V^order)."""
    if not 1 <= order <= len(levels):
        raise ValueError(f"order {order} needs levels 1..{order}, got {len(levels)}")
    kind = choose_representation(representation, vocab_size, order)
    cells, structure, size = (_dense_layout if kind == "dense" else _sparse_layout)(levels[:order], vocab_size)
    return Layout(vocab_size, levels[0].ngrams[:, 0], cells, structure, size)


def _dense_layout(levels: Sequence[Level], V: int) -> tuple[tuple[np.ndarray, ...], dict[str, np.ndarray], int]:
    """Order n's rows at dense_offsets[n − 2], row = flat index of the context."""
    offsets, cells = [0], []
    for n, level in enumerate(levels[1:], start=2):
        flat = np.asarray(flat_index(jnp.asarray(level.ngrams[:, :-1]), V)).astype(np.int64)
        cells.append(offsets[-1] + flat * V + level.ngrams[:, -1])
        offsets.append(offsets[-1] + V**n)
    return tuple(cells), {"dense_offsets": np.asarray(offsets, np.int32)}, offsets[-1]


def _sparse_layout(levels: Sequence[Level], V: int) -> tuple[tuple[np.ndarray, ...], dict[str, np.ndarray], int]:
    """Orders 2..N as CSR rows; within an order, contexts sorted by key, next ids in order."""
    keys_all, starts, next_all, cells = [], [np.zeros((1,), np.int64)], [], []
    level_rows, entries = [0], 0
    ctx_rows = np.zeros((len(levels[0].raw),), np.int64)  # each n-gram's context row within its order
    for n, level in enumerate(levels[1:], start=2):
        rows_below = 1 if n == 2 else level_rows[-1] - level_rows[-2]
        if rows_below * V > INT32_LIMIT:
            raise MakemoreError(
                f"order {n} is too large for this data: {rows_below:,} contexts of order {n - 1} times "
                f"{V} ids overflow the int32 context keys; at most order {n - 1} fits"
            )
        keys = ctx_rows[level.suffix] * V + level.ngrams[:, 0]
        by_key = np.lexsort((level.ngrams[:, -1], keys))  # contexts by key, each context's next ids in order
        ctx_keys, row_start, inverse = np.unique(keys[by_key], return_index=True, return_inverse=True)
        ctx_rows = np.empty_like(keys)
        ctx_rows[by_key] = inverse
        position = np.empty_like(by_key)
        position[by_key] = np.arange(len(by_key))
        keys_all.append(ctx_keys)
        starts.append(entries + np.append(row_start[1:], len(by_key)))
        next_all.append(level.ngrams[by_key, -1])
        cells.append(entries + position)
        entries += len(by_key)
        level_rows.append(level_rows[-1] + len(ctx_keys))
    structure = {
        "ctx_keys": np.concatenate(keys_all or [np.zeros((0,), np.int64)]).astype(np.int32),
        "level_rows": np.asarray(level_rows, np.int32),
        "row_start": np.concatenate(starts).astype(np.int32),
        "next_ids": np.concatenate(next_all or [np.zeros((0,), np.int32)]).astype(np.int32),
    }
    return tuple(cells), structure, entries


def count_tables(levels: Sequence[Level], order: int, vocab_size: int, representation: str = "auto") -> dict:
    """The tables of an order-`order` model: continuation counts below its order, raw counts at it."""
    counts = [level.continuation for level in levels[: order - 1]] + [levels[order - 1].raw]
    return layout(levels, order, vocab_size, representation).fill(counts)


def search_keys(keys_R: jax.Array, key_B: jax.Array, lo: jax.Array, hi: jax.Array) -> jax.Array:
    """The first position in [lo, hi) of sorted keys_R whose key is >= key_B (hi if none)."""
    last = max(keys_R.shape[0] - 1, 0)

    def halve(_, bounds):
        lo_B, hi_B = bounds
        mid_B = (lo_B + hi_B) // 2
        below_B = (lo_B < hi_B) & (keys_R[jnp.minimum(mid_B, last)] < key_B)
        return jnp.where(below_B, mid_B + 1, lo_B), jnp.where(below_B | (lo_B >= hi_B), hi_B, mid_B)

    bounds = (jnp.full(key_B.shape, lo, jnp.int32), jnp.full(key_B.shape, hi, jnp.int32))
    return jax.lax.fori_loop(0, keys_R.shape[0].bit_length() + 1, halve, bounds)[0]


def fold_orders(
    tables: dict,
    contexts_BxC: jax.Array,
    step: Callable[[Carry, jax.Array, Any], tuple[Carry, Any]],
    carry: Carry,
    xs_N: Any,
) -> tuple[Carry, Any]:
    """carry, y_n = step(carry, counts_BxV, x_n) for orders n = 1..N, one lax.scan over n >= 2.

    counts_BxV holds c(h_n w) for every next id w, h_n the last n − 1 ids of
    each context (zeros for a context never seen). xs_N: a pytree of arrays
    with a leading axis of length N. Returns (carry, ys) with ys stacked (N, ...).
    """
    B, C = contexts_BxC.shape
    V = vocab_size_of(tables)
    first = jax.tree_util.tree_map(lambda a: a[0], xs_N)
    carry, y1 = step(carry, jnp.broadcast_to(tables["unigram"], (B, V)), first)
    if C == 0:
        return carry, jax.tree_util.tree_map(lambda y: y[None], y1)
    dense = "dense_offsets" in tables
    ids_V = jnp.arange(V)

    def one_order(state, inputs):
        n, x = inputs
        row_B, found_B, carry = state
        oldest_B = jnp.take(contexts_BxC, C - (n - 1), axis=1)
        if dense:
            row_B = row_B * V + oldest_B  # flat index of the last n − 1 ids
            cells_BxV = tables["dense_offsets"][n - 2] + row_B[:, None] * V + ids_V[None, :]
            counts_BxV = tables["dense"][cells_BxV]
        else:
            keys = tables["ctx_keys"]
            lo, hi = tables["level_rows"][n - 2], tables["level_rows"][n - 1]
            key_B = row_B * V + oldest_B
            pos_B = search_keys(keys, key_B, lo, hi)
            found_B = found_B & (pos_B < hi) & (keys[jnp.minimum(pos_B, max(keys.shape[0] - 1, 0))] == key_B)
            context_B = jnp.where(found_B, pos_B, 0)
            row_B = jnp.where(found_B, pos_B - lo, 0)
            counts_BxV = _expand(tables, context_B, found_B, V)
        carry, y = step(carry, counts_BxV, x)
        return (row_B, found_B, carry), y

    init = (jnp.zeros((B,), jnp.int32), jnp.ones((B,), bool), carry)
    rest = jax.tree_util.tree_map(lambda a: a[1:], xs_N)
    (_, _, carry), ys = jax.lax.scan(one_order, init, (jnp.arange(2, C + 2), rest))
    return carry, jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a[None], b]), y1, ys)


def _expand(tables: dict, context_B: jax.Array, found_B: jax.Array, V: int) -> jax.Array:
    """The sparse row of each context as V counts: a context has at most V next ids."""
    B = context_B.shape[0]
    start_B, end_B = tables["row_start"][context_B], tables["row_start"][context_B + 1]
    pos_BxV = start_B[:, None] + jnp.arange(V)[None, :]
    live_BxV = found_B[:, None] & (pos_BxV < end_B[:, None])
    pos_BxV = jnp.minimum(pos_BxV, max(tables["next_ids"].shape[0] - 1, 0))
    counts_BxV = jnp.where(live_BxV, tables["counts"][pos_BxV], 0)
    batch_BxV = jnp.broadcast_to(jnp.arange(B)[:, None], (B, V))
    return jnp.zeros((B, V), jnp.int32).at[batch_BxV, tables["next_ids"][pos_BxV]].add(counts_BxV)


# ---- probabilities --------------------------------------------------------------------------


def kn_mix(
    p_lower: jax.Array,
    c: jax.Array,
    total: jax.Array,
    n1: jax.Array,
    n2: jax.Array,
    n3: jax.Array,
    d1: jax.Array,
    d2: jax.Array,
    d3: jax.Array,
) -> jax.Array:
    """One order of interpolated (modified) Kneser–Ney, given the next order down.

    (c − D(c) + (D1·N1 + D2·N2 + D3·N3+) · p_lower) / total, with D(0) = 0,
    D(1) = D1, D(2) = D2, D(≥3) = D3; p_lower where the context has no counts.
    Shapes broadcast: whole rows (c (B, V), the rest (B, 1)) or one id per row.
    """
    d = jnp.where(c == 0, 0.0, jnp.where(c == 1, d1, jnp.where(c == 2, d2, d3)))
    mixed = (c - d + (d1 * n1 + d2 * n2 + d3 * n3) * p_lower) / jnp.maximum(total, 1.0)
    return jnp.where(total > 0, mixed, p_lower)


def add_k(c: jax.Array, total: jax.Array, k: jax.Array | float, vocab_size: int) -> jax.Array:
    """(c + k) / (total + k·V); uniform where both are 0 (k = 0 and an unseen context)."""
    denominator = total + k * vocab_size
    return jnp.where(denominator > 0, (c + k) / jnp.where(denominator > 0, denominator, 1.0), 1.0 / vocab_size)


def row_stats(counts_BxV: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Σ_w c, N1, N2, N3+ of each row (how many next ids were seen once, twice, three or more times): (B, 1) each."""
    total, n1, n2, n3 = (
        x.sum(axis=1, keepdims=True).astype(jnp.float32)
        for x in (counts_BxV, counts_BxV == 1, counts_BxV == 2, counts_BxV >= 3)
    )
    return total, n1, n2, n3


def probs(params: dict, contexts_BxC: jax.Array) -> jax.Array:
    """p(next id | context) for contexts of N − 1 ids, oldest first: (B, N − 1) -> (B, V), rows sum to 1."""
    N, V = model_order(params), vocab_size_of(params)
    params = jax.tree_util.tree_map(jnp.asarray, params)  # numpy tables cannot be indexed by traced ids
    if contexts_BxC.shape[1] != N - 1:
        raise ValueError(f"an order-{N} model needs contexts of {N - 1} ids, got {contexts_BxC.shape[1]}")
    B = contexts_BxC.shape[0]
    if "add_k" in params:
        top, _ = fold_orders(
            params, contexts_BxC, lambda _, c, x: (c, None), jnp.zeros((B, V), jnp.int32), jnp.zeros((N,))
        )
        return add_k(top.astype(jnp.float32), top.sum(axis=1, keepdims=True).astype(jnp.float32), params["add_k"], V)

    def mix(p_BxV, c_BxV, d_3):
        return kn_mix(p_BxV, c_BxV.astype(jnp.float32), *row_stats(c_BxV), d_3[0], d_3[1], d_3[2]), None

    p, _ = fold_orders(params, contexts_BxC, mix, jnp.full((B, V), 1.0 / V, jnp.float32), params["discounts"])
    return p


@jax.jit
def next_logprobs(params: dict, contexts_BxC: jax.Array) -> jax.Array:
    """log p(next id | context) for a batch of contexts: (B, N − 1) int32 in, (B, V) float32 out."""
    return jnp.log(probs(params, contexts_BxC))


# ---- models -------------------------------------------------------------------------------


def build_params(
    levels: Sequence[Level],
    order: int,
    vocab_size: int,
    method: str = "modified-kn",
    k: float = 1.0,
    discount: float = 0.0,
    discount_scale: float = 1.0,
    representation: str = "auto",
) -> dict:
    """An order-`order` model's parameters: its count tables and its discounts (or k)."""
    return {
        **count_tables(levels, order, vocab_size, representation),
        **smoothing_params(levels, order, method, k, discount, discount_scale),
    }


def fit(
    words: Sequence[str],
    vocab: Vocabulary,
    order: int,
    method: str = "modified-kn",
    k: float = 1.0,
    discount: float = 0.0,
    discount_scale: float = 1.0,
    representation: str = "auto",
) -> dict:
    """Count the words and build an order-`order` model (see build_params)."""
    counts = count_ngrams(words, vocab, order, representation)
    return build_params(all_levels(counts), order, vocab.size, method, k, discount, discount_scale, representation)
