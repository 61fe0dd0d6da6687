"""The n-gram model as the rest of the package sees it.

Scoring words and splits, apply and decoding, saved arrays, its ModelDef.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ...data.packing import in_chunks
from ...data.words import BOUNDARY_ID, SPLITS, Dataset, Vocabulary, word_lengths
from ...errors import MakemoreError
from .. import ArraySpecs, Counter, Decoder, FittedView, ModelConfig, ModelDef, Runner, Settings
from . import backoff
from .counting import (
    DENSE_MAX_CELLS,
    all_levels,
    dense_fits,
    key_dtype,
    ngram_keys,
    padded_rows,
    shape_bucket,
    word_pieces,
    words_to_ngrams,
)
from .smoothing import build_params, model_order, probs
from .spill import count_words, default_memory, memory_bytes

EVAL_CHUNK = 4096  # positions per step of a whole-split evaluation
SCORE_ROWS = 2**18  # positions scored in one call at most; a longer list is scored by its distinct contexts
SCORE_CONTEXTS = 2**18  # distinct contexts per compiled call (one shape: one compilation)


# ---- evaluation ---------------------------------------------------------------------------


def logprobs(params: dict, contexts_BxC: jax.Array) -> jax.Array:
    """log p(next id | context) of an n-gram model's tables or a backoff model's: (B, N − 1) -> (B, V)."""
    if backoff.is_backoff(params):
        return backoff.logprobs(params, contexts_BxC)
    return jnp.log(probs(params, contexts_BxC))


@partial(jax.jit, static_argnames=("n_groups", "chunk"))
def ngrams_nll(
    params: dict, ngrams_PxN: jax.Array, group_P: jax.Array, n_groups: int, chunk: int = EVAL_CHUNK
) -> tuple[jax.Array, jax.Array]:
    """Total −log p(last id | the ids before it) of the rows of each group, and the rows in it.

    Rows with group −1 are padding. The rows go through ``lax.map`` chunk at a
    time, all in one call: (n_groups,) float32 sums and (n_groups,) int32 counts.
    """

    def score(args):
        rows_CxN, group_C = args
        logp_CxV = logprobs(params, rows_CxN[:, :-1])
        nll_C = -jnp.take_along_axis(logp_CxV, rows_CxN[:, -1:], axis=1)[:, 0]
        live_C = group_C >= 0
        where_C = jnp.where(live_C, group_C, 0)
        return (
            jax.ops.segment_sum(jnp.where(live_C, nll_C, 0.0), where_C, num_segments=n_groups),
            jax.ops.segment_sum(live_C.astype(jnp.int32), where_C, num_segments=n_groups),
        )

    sums, counts = jax.lax.map(score, in_chunks(ngrams_PxN, group_P, chunk, -1))
    return sums.sum(axis=0), counts.sum(axis=0)


def nll_per_list(
    params: dict, word_lists: Sequence[Sequence[str]], vocab: Vocabulary, memory: int | None = None
) -> list[float | None]:
    """Mean NLL per character of each list of words, each end counting as one (as ``evaluate.split_nll``).

    All lists in one compiled call; None for an empty list; +inf where the
    model gives a character probability 0 (add-k with k = 0). MakemoreError
    for a character outside the vocabulary. memory: see nll_sums_per_list.
    """
    sums = nll_sums_per_list(params, word_lists, vocab, memory)
    return [float(t) / int(c) if c else None for t, c in sums]


def nll_sums_per_list(
    params: dict, word_lists: Sequence[Sequence[str]], vocab: Vocabulary, memory: int | None = None
) -> np.ndarray:
    """(total NLL, positions) of each list of words: float64 (len(word_lists), 2); see nll_per_list.

    Lists of up to SCORE_ROWS positions in all go in one call; longer ones a
    piece of SCORE_ROWS positions at a time (one shape: one compilation), so
    what scoring holds stays bounded however long the lists are. Where the
    n-grams' keys fit int64, a long list is scored by its distinct contexts,
    its n-grams counted within memory bytes (None: default_memory()).
    """
    if any(isinstance(words, str) for words in word_lists):
        raise TypeError("nll_per_list takes lists of words (see words_nll for one list)")
    order = model_order(params)
    if sum(int(word_lengths(words).sum()) + len(words) for words in word_lists) <= SCORE_ROWS:
        return _sums_per_list(params, word_lists, vocab, order)
    if key_dtype(vocab.size, order) is not None:
        return np.stack([_distinct_sums(params, words, vocab, order, memory) for words in word_lists])
    sums = np.zeros((len(word_lists), 2), np.float64)
    for i, words in enumerate(word_lists):
        for piece in word_pieces(words, SCORE_ROWS):
            sums[i] += _sums_per_list(params, [piece], vocab, order, SCORE_ROWS)[0]
    return sums


def _distinct_sums(params: dict, words: Sequence[str], vocab: Vocabulary, order: int, memory: int | None) -> np.ndarray:
    """(total NLL, positions) of a long list, float64 (2,): its n-grams counted (within memory bytes,
    None: the default budget), each distinct context's next-id distribution computed once, and each n-gram's
    −log p weighted by how often it occurs. A long list repeats most contexts many times over."""
    counts = count_words(words, vocab, order, default_memory() if memory is None else memory)
    contexts_MxC, targets_M = counts.ngrams[:, :-1], counts.ngrams[:, -1]
    context_M = ngram_keys(contexts_MxC, vocab.size, np.int64)  # V^(order - 1) fits int64 here
    _, first, inverse = np.unique(context_M, return_index=True, return_inverse=True)
    distinct_CxC = contexts_MxC[first]
    logp_CxV = np.concatenate(
        [
            np.asarray(
                contexts_logprobs(params, jnp.asarray(_pad_rows(distinct_CxC[a : a + SCORE_CONTEXTS], SCORE_CONTEXTS)))
            )
            for a in range(0, len(distinct_CxC), SCORE_CONTEXTS)
        ]
    )
    nll_M = -logp_CxV[inverse.reshape(-1), targets_M].astype(np.float64)
    return np.array([np.dot(counts.counts.astype(np.float64), nll_M), float(counts.counts.sum())])


def _pad_rows(rows: np.ndarray, size: int) -> np.ndarray:
    return np.pad(rows, ((0, size - len(rows)), (0, 0)))


@partial(jax.jit, static_argnames="chunk")
def contexts_logprobs(params: dict, contexts_BxC: jax.Array, chunk: int = EVAL_CHUNK) -> jax.Array:
    """log p(next id | context) of contexts (B a multiple of chunk), through lax.map chunk at a time: (B, V) float32."""
    B, C = contexts_BxC.shape
    logp = jax.lax.map(lambda rows_KxC: logprobs(params, rows_KxC), contexts_BxC.reshape(B // chunk, chunk, C))
    return logp.reshape(B, -1)


def _sums_per_list(
    params: dict, word_lists: Sequence[Sequence[str]], vocab: Vocabulary, order: int, least_rows: int = 0
) -> np.ndarray:
    """nll_sums_per_list in one compiled call, the rows padded to a bucketed length of at least least_rows."""
    ngrams = [words_to_ngrams(words, vocab, order) for words in word_lists]
    group = np.concatenate([np.full((len(g),), i, np.int32) for i, g in enumerate(ngrams)] + [np.zeros((0,), np.int32)])
    rows = np.concatenate([*ngrams, np.zeros((0, order), np.int32)])
    pad = max(shape_bucket(len(rows)), least_rows) - len(rows)
    rows = np.pad(rows, ((0, pad), (0, 0)))
    sums, counts = ngrams_nll(
        params, jnp.asarray(rows), jnp.asarray(np.pad(group, (0, pad), constant_values=-1)), len(word_lists)
    )
    return np.stack([np.asarray(sums, np.float64), np.asarray(counts, np.float64)], axis=1)


def words_nll(params: dict, words: Sequence[str], vocab: Vocabulary) -> float:
    """Mean NLL per character of one list of words (see nll_per_list); MakemoreError if it is empty."""
    if not words:
        raise MakemoreError("mean NLL of an empty set of words is undefined")
    nll = nll_per_list(params, [words], vocab)[0]
    assert nll is not None  # None only for an empty list
    return nll


def word_nll(model: FittedView, words: Sequence[str], params: dict | None = None) -> np.ndarray:
    """Total NLL in nats of each word under an n-gram Fitted, −log p(c1 … cn, end): (len(words),).

    As ``evaluate.word_nll``, but for words of any length, in one compiled call.
    params: the tables to run (default: the model's own).
    """
    params = model.params if params is None else params
    if len(words) == 0:
        return np.zeros((0,), np.float32)
    rows = words_to_ngrams(words, model.vocab, model_order(params))
    word_P = np.repeat(np.arange(len(words), dtype=np.int32), word_lengths(words) + 1)
    pad = shape_bucket(len(rows)) - len(rows)
    sums, _ = ngrams_nll(
        params,
        padded_rows(rows),
        jnp.asarray(np.pad(word_P, (0, pad), constant_values=-1)),
        shape_bucket(len(words)),
    )
    return np.asarray(sums)[: len(words)]


def split_nll(
    model: FittedView, data: Dataset, splits: Sequence[str] | None = None, params: dict | None = None
) -> dict[str, float | None]:
    """Mean NLL of each split of a Dataset under an n-gram Fitted (None for an empty split); a
    long split's n-grams are counted within the model's memory setting (``--memory``), as its training split was.
    params: the tables to run (default: the model's own)."""
    params = model.params if params is None else params
    splits = list(splits or SPLITS)
    memory = memory_bytes(model.config.memory or "")
    if not data.local_only:
        return dict(zip(splits, nll_per_list(params, [data.words[s] for s in splits], data.vocab, memory)))
    # one process's part of a multi-host run: its sums, added over the processes (every process calls this)
    sums = data.combine(nll_sums_per_list(params, [data.words[s] for s in splits], data.vocab, memory))
    return {s: float(t / c) if c else None for s, (t, c) in zip(splits, sums)}


# ---- the model as the rest of the package sees it ---------------------------------------


def apply(params: dict, idx_BxT: jax.Array) -> jax.Array:
    """Next-id log-probabilities at every position of id sequences (idx[:, 0] the start boundary).

    Position t's context is ids t−N+2..t, the boundary before the start:
    (B, T) int32 in, (B, T, V) float32 out, as every model's apply.
    """
    B, T = idx_BxT.shape
    C = model_order(params) - 1
    padded_BxP = jnp.pad(idx_BxT, ((0, 0), (C, 0)), constant_values=BOUNDARY_ID)
    contexts_BxTxC = jnp.stack([padded_BxP[:, 1 + j : 1 + j + T] for j in range(C)], axis=-1)
    logp = logprobs(params, contexts_BxTxC.reshape(B * T, C).astype(jnp.int32))
    return logp.reshape(B, T, -1)


def decode_init(params: dict, config: ModelConfig | None, batch: int) -> jax.Array:
    """The decoder state: the last N−1 ids of each name, all boundary before the start."""
    return jnp.zeros((batch, model_order(params) - 1), jnp.int32)


def decode_step(params: dict, context_BxC: jax.Array, token_B: jax.Array, t: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Shift the id at position t into the context; the next id's log-probabilities."""
    if context_BxC.shape[1]:  # an order-1 model has no context to keep
        context_BxC = jnp.concatenate([context_BxC[:, 1:], token_B[:, None]], axis=1)
    return logprobs(params, context_BxC), context_BxC


def run(model: FittedView) -> Runner:
    """Its apply and context decoder, any length, and its own scoring of splits and words (by n-gram rows)."""
    return tables_runner(model, model.params)


def run_backoff(model: FittedView) -> Runner:
    """A backoff model runs as the n-grams do, on the tables built from its entries."""
    return tables_runner(model, backoff.run_tables(model.params, model.vocab.size))


def tables_runner(model: FittedView, params: dict) -> Runner:
    return Runner(
        params,
        apply,
        Decoder(decode_init, decode_step),
        model.model_config,
        model.block_size,
        any_length=True,
        split_nll=partial(split_nll, model, params=params),
        word_nll=partial(word_nll, model, params=params),
    )


# ---- checking saved parameters ----------------------------------------------------------


def expected_arrays(arrays: dict[str, np.ndarray], order: int, vocab_size: int, method: str) -> ArraySpecs:
    """{'params/...': (shape, dtype)}: what the arrays of an order-`order` model must be.

    The sparse tables' sizes depend on the data: they are read from the arrays,
    once their contents are checked to fit together. MakemoreError says what
    does not fit.
    """
    i32, f32, V = np.dtype("int32"), np.dtype("float32"), vocab_size
    expected: ArraySpecs = {"params/unigram": ((V,), i32)}
    if "params/dense_offsets" in arrays or "params/dense" in arrays:
        if not dense_fits(V, order):
            raise MakemoreError(
                f"a dense order-{order} table over {V} ids cannot be right: it has more than {DENSE_MAX_CELLS:,} cells"
            )
        offsets = np.cumsum([0] + [V**n for n in range(2, order + 1)])
        expected.update({"params/dense_offsets": ((order,), i32), "params/dense": ((int(offsets[-1]),), i32)})
        got = np.asarray(arrays.get("params/dense_offsets", offsets))
        if got.shape == offsets.shape and not np.array_equal(got, offsets):
            raise MakemoreError("dense_offsets do not match the order and vocabulary")
    else:
        rows, entries = (np.shape(arrays.get(f"params/{k}", ()))[:1] or (0,) for k in ("ctx_keys", "next_ids"))
        expected.update(
            {
                "params/ctx_keys": (rows, i32),
                "params/level_rows": ((order,), i32),
                "params/row_start": ((rows[0] + 1,), i32),
                "params/next_ids": (entries, i32),
                "params/counts": (entries, i32),
            }
        )
        if all(np.shape(arrays.get(k, ())) == shape for k, (shape, _) in expected.items()):
            _check_sparse({k[len("params/") :]: np.asarray(v) for k, v in arrays.items()}, V)
    if method == "add-k":
        expected["params/add_k"] = ((), f32)
        if not np.all(np.asarray(arrays.get("params/add_k", 0.0)) >= 0):
            raise MakemoreError("add_k must be >= 0")
    else:
        expected["params/discounts"] = ((order, 3), f32)
        d = np.asarray(arrays.get("params/discounts", np.ones((order, 3))), np.float64)
        if d.shape == (order, 3) and not (np.all(d > 0) and np.all(d <= [1, 2, 3])):
            raise MakemoreError("discounts must lie in (0, k] for counts k = 1, 2, 3+")
    return expected


def _check_sparse(t: dict[str, np.ndarray], V: int) -> None:
    levels, keys, start = t["level_rows"].astype(np.int64), t["ctx_keys"].astype(np.int64), t["row_start"]
    fits = (
        levels[0] == 0
        and levels[-1] == keys.size
        and np.all(np.diff(levels) >= 0)
        and np.all(keys >= 0)
        and all(np.all(np.diff(keys[a:b]) > 0) for a, b in zip(levels[:-1], levels[1:]))
        and start[0] == 0
        and start[-1] == t["next_ids"].size
        and np.all((np.diff(start) >= 1) & (np.diff(start) <= V))
        and np.all((t["next_ids"] >= 0) & (t["next_ids"] < V))
        and np.all(t["counts"] >= 0)
    )
    if not fits:
        raise MakemoreError(
            "its sparse count table is inconsistent (context keys, row starts, ids or counts out of order or range)"
        )


# ---- the model as the rest of the package sees it ---------------------------------------------


def count(data: Dataset, settings: Settings, counter: Counter) -> dict:
    """The model of settings (order, smoothing) counted from the training split.

    counter.ngram_words counts here within settings.memory (spilling to disk
    past it, see ``spill``), or over devices and processes (the same table).
    """
    memory = memory_bytes(settings.memory)
    counts = counter.ngram_words(data.words["train"], data.vocab, settings.order, memory)
    return build_params(
        all_levels(counts),
        settings.order,
        data.vocab.size,
        settings.smoothing_method,
        settings.smoothing,
        settings.discount,
        settings.discount_scale,
    )


def saved_arrays(arrays: dict[str, np.ndarray], settings: Settings, vocab_size: int) -> ArraySpecs:
    return expected_arrays(arrays, settings.order, vocab_size, settings.smoothing_method)


def resolve(given: dict[str, Any]) -> dict[str, Any]:
    """The smoothing settings' rules: smoothing K means add-k; discount needs kn, discount_scale a KN method."""
    if "smoothing" in given:  # smoothing K is add-k's k; it excludes kn and modified-kn
        if given.get("smoothing_method", "add-k") != "add-k":
            raise MakemoreError(
                f"smoothing (add-k's k) and smoothing_method {given['smoothing_method']!r} contradict: give one"
            )
        given["smoothing_method"] = "add-k"
    method = given.get("smoothing_method", "modified-kn")
    if "discount" in given and method != "kn":
        raise MakemoreError("discount is plain Kneser-Ney's single discount: use it with smoothing_method kn (--kn)")
    if "discount_scale" in given and method == "add-k":
        raise MakemoreError(
            "discount_scale scales Kneser-Ney discounts: use it with smoothing_method kn or modified-kn"
        )
    return given


def describe(settings: Settings) -> str:
    """'ngram (order N, smoothing)'."""
    smoothing = {
        "add-k": f"add-k, k = {settings.smoothing:g}",
        "kn": "Kneser-Ney, " + (f"D = {settings.discount:g}" if settings.discount else "D from the count-of-counts"),
        "modified-kn": "modified Kneser-Ney",
    }[settings.smoothing_method]
    if settings.smoothing_method != "add-k" and settings.discount_scale != 1 and not settings.discount:
        smoothing += f", discounts × {settings.discount_scale:g}"
    return f"ngram (order {settings.order}, {smoothing})"


MODEL_DEF = ModelDef(
    "ngram",
    count=count,
    run=run,
    saved_arrays=saved_arrays,
    any_length=True,
    defaults=(("order", 5), ("smoothing_method", "modified-kn")),
    settings=("order", "smoothing", "smoothing_method", "discount", "discount_scale", "memory"),
    resolve=resolve,
    describe=describe,
)
BACKOFF_DEF = ModelDef(
    backoff.NAME,
    run=run_backoff,
    saved_arrays=lambda arrays, settings, V: backoff.expected_arrays(arrays, settings.order, V),
    any_length=True,
    defaults=(),
    settings=("order",),
    describe=lambda settings: f"backoff (order {settings.order}, from an ARPA file)",
    fitted_here=False,
)
MODELS = {"ngram": MODEL_DEF, backoff.NAME: BACKOFF_DEF}
