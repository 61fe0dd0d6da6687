"""Choosing an n-gram model's order and smoothing on the dev split (``makemore tune --type ngram``).

The training words are counted once, at the largest order; every smaller
order's tables follow from those counts (``ngram.all_levels``). The dev
n-grams are looked up once per order, keeping for each position only what
smoothing needs: the count of the word that came next, the context's total,
and how many next ids it has seen once, twice and three or more times. Every
setting of the grid is then a few arithmetic operations per position and
order, all of them in one compiled call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ..data.words import Vocabulary
from ..errors import MakemoreError
from ..models import ngram

K_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)  # add-k
DISCOUNT_GRID = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9)  # plain Kneser–Ney; 0: from each order's count-of-counts
SCALE_GRID = (0.8, 0.9, 1.0, 1.1, 1.2)  # modified Kneser–Ney: factor on the count-of-counts discounts
DEFAULT_MAX_ORDER = 7


@dataclass(frozen=True)
class Setting:
    """One point of the grid. value is k (add-k), D (kn; 0 = from the counts) or the discount scale."""

    order: int
    method: str
    value: float

    def config_fields(self) -> dict[str, int | str | float]:
        """The TrainConfig fields that build this model."""
        fields: dict[str, int | str | float] = {"order": self.order, "smoothing_method": self.method}
        if self.method == "add-k":
            fields["smoothing"] = self.value
        elif self.method == "kn":
            fields["discount"] = self.value
        else:
            fields["discount_scale"] = self.value
        return fields

    def describe(self) -> str:
        what = {
            "add-k": f"k = {self.value:g}",
            "kn": f"D = {self.value:g}" if self.value else "D from the count-of-counts",
        }
        return f"{self.method}, order {self.order}, " + what.get(self.method, f"discount scale {self.value:g}")


def check_max_order(max_order: int) -> None:
    """MakemoreError, one line, unless max_order is an integer in 1..ngram.MAX_ORDER: from the flag alone,
    before the input is read (what the data allows is training.sizes.check_tunable's)."""
    if isinstance(max_order, bool) or not isinstance(max_order, int) or max_order < 1:
        raise MakemoreError(f"max order must be an integer >= 1, got {max_order!r}")
    too_large = ngram.order_too_large(max_order)
    if too_large:
        raise MakemoreError(too_large)


def grid(max_order: int) -> list[Setting]:
    """Every order 1..max_order with every smoothing value of K_GRID, DISCOUNT_GRID and SCALE_GRID."""
    check_max_order(max_order)
    values = {"add-k": K_GRID, "kn": DISCOUNT_GRID, "modified-kn": SCALE_GRID}
    return [Setting(n, m, v) for m, vs in values.items() for n in range(1, max_order + 1) for v in vs]


def _stats(tables: dict, ngrams_BxN: jax.Array) -> jax.Array:
    """Per order n: c(h_n target), Σ_w c(h_n w), N1, N2, N3+ of h_n, float32 (N, 5, B)."""
    target_B = ngrams_BxN[:, -1]

    def keep(carry, c_BxV, x):
        at_target_B = jnp.take_along_axis(c_BxV, target_B[:, None], axis=1)[:, 0].astype(jnp.float32)
        return carry, jnp.stack([at_target_B, *(s[:, 0] for s in ngram.row_stats(c_BxV))])

    N = ngrams_BxN.shape[1]
    return ngram.fold_orders(tables, ngrams_BxN[:, :-1], keep, (), jnp.zeros((N,)))[1]


@partial(jax.jit, static_argnames="chunk")
def level_stats(
    raw_tables: dict, cont_tables: dict, ngrams_PxN: jax.Array, chunk: int = ngram.EVAL_CHUNK
) -> tuple[jax.Array, jax.Array]:
    """What smoothing needs at every order for every n-gram, from raw and from continuation counts.

    Returns two float32 arrays (N, 5, P'), P' = P rounded up to whole chunks
    (see _stats); the rows go through lax.map chunk at a time.
    """
    P, N = ngrams_PxN.shape
    n_chunks = -(-P // chunk)
    ngrams = jnp.pad(ngrams_PxN, ((0, n_chunks * chunk - P), (0, 0))).reshape(n_chunks, chunk, N)
    raw, cont = jax.lax.map(lambda rows: (_stats(raw_tables, rows), _stats(cont_tables, rows)), ngrams)
    # (chunks, N, 5, chunk) -> (N, 5, P')
    raw_stats, cont_stats = (jnp.moveaxis(a, 0, 2).reshape(N, 5, -1) for a in (raw, cont))
    return raw_stats, cont_stats


@partial(jax.jit, static_argnames="vocab_size")
def grid_nll(
    raw_Lx5xP: jax.Array,
    cont_Lx5xP: jax.Array,
    n_live: int | jax.Array,
    orders_S: jax.Array,
    methods_S: jax.Array,
    ks_S: jax.Array,
    discounts_SxLx3: jax.Array,
    vocab_size: int,
) -> jax.Array:
    """Mean NLL of the first n_live positions under every setting: (S,).

    methods_S: 0 add-k, 1 Kneser–Ney (plain or modified, by the discounts).
    An order-n setting uses orders 1..n, continuation counts below n and raw
    counts at n; ngram.kn_mix and ngram.add_k on the target's probability only.
    """
    L, _, P = raw_Lx5xP.shape
    live_P = jnp.arange(P) < n_live

    def one(setting):
        order, method, k, discounts_Lx3 = setting
        top_5xP = jax.lax.dynamic_index_in_dim(raw_Lx5xP, order - 1, keepdims=False)
        p_add_k = ngram.add_k(top_5xP[0], top_5xP[1], k, vocab_size)
        p_kn = jnp.full((P,), 1.0 / vocab_size, jnp.float32)
        for n in range(L):
            c, total, n1, n2, n3 = jnp.where(n + 1 == order, raw_Lx5xP[n], cont_Lx5xP[n])
            mixed = ngram.kn_mix(p_kn, c, total, n1, n2, n3, *discounts_Lx3[n])
            p_kn = jnp.where(n < order, mixed, p_kn)
        nll = -jnp.log(jnp.where(method == 0, p_add_k, p_kn))
        return jnp.where(live_P, nll, 0.0).sum() / n_live

    return jax.lax.map(one, (orders_S, methods_S, ks_S, discounts_SxLx3))


def dev_nll(
    train_words: Sequence[str],
    dev_words: Sequence[str],
    vocab: Vocabulary,
    settings: Sequence[Setting],
    memory: int | None = None,
) -> np.ndarray:
    """Dev NLL of the model each setting builds from the training words: float (S,).

    The training words are counted within memory bytes (None: ngram.default_memory()), spilling past them.
    """
    if not dev_words:
        raise MakemoreError("tuning needs a dev split: give it a share with --split (e.g. 80,10,10)")
    L = max(s.order for s in settings)
    counts = ngram.count_words(train_words, vocab, L, memory if memory is not None else ngram.default_memory())
    levels = ngram.all_levels(counts)
    where = ngram.layout(levels, L, vocab.size)
    raw = where.fill([level.raw for level in levels])
    cont = where.fill([level.continuation for level in levels])
    ngrams = ngram.words_to_ngrams(dev_words, vocab, L)
    raw_stats, cont_stats = level_stats(raw, cont, ngram.padded_rows(ngrams))
    discounts = np.zeros((len(settings), L, 3), np.float32)
    for i, s in enumerate(settings):
        if s.method != "add-k":
            fields = s.config_fields()
            found = ngram.smoothing_params(
                levels,
                s.order,
                s.method,
                discount=float(fields.get("discount", 0.0)),
                discount_scale=float(fields.get("discount_scale", 1.0)),
            )
            discounts[i, : s.order] = found["discounts"]
    nll = grid_nll(
        raw_stats,
        cont_stats,
        len(ngrams),
        jnp.asarray([s.order for s in settings], jnp.int32),
        jnp.asarray([0 if s.method == "add-k" else 1 for s in settings], jnp.int32),
        jnp.asarray([s.value if s.method == "add-k" else 0.0 for s in settings], jnp.float32),
        jnp.asarray(discounts),
        vocab.size,
    )
    return np.asarray(nll, np.float64)


def best(settings: Sequence[Setting], nll: np.ndarray) -> Setting:
    """The setting of least dev NLL (the first, i.e. the simplest, of equals)."""
    return settings[int(np.argmin(nll))]


def format_tables(settings: Sequence[Setting], nll: np.ndarray) -> list[str]:
    """The dev NLL as one table per method: a row per order, a column per smoothing value."""
    titles = {
        "add-k": "add-k: dev NLL by order (rows) and k (columns)",
        "kn": "Kneser-Ney: dev NLL by order and discount D (counts: n1/(n1+2n2) of each order)",
        "modified-kn": "modified Kneser-Ney: dev NLL by order and scale of the count-of-counts discounts D1, D2, D3+",
    }
    by_key = {(s.method, s.order, s.value): x for s, x in zip(settings, nll)}
    lines = []
    for method, title in titles.items():
        values = sorted({s.value for s in settings if s.method == method})
        orders = sorted({s.order for s in settings if s.method == method})
        if not values:
            continue
        heads = ["counts" if (method == "kn" and v == 0) else f"{v:g}" for v in values]
        lines += [title, "order " + "".join(f"{h:>9}" for h in heads)]
        for n in orders:
            cells = [by_key.get((method, n, v)) for v in values]
            lines.append(f"{n:>5} " + "".join(f"{x:>9.4f}" if x is not None else f"{'':>9}" for x in cells))
    return lines
