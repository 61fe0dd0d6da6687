"""N-gram counting models of any order, smoothed by add-k or (modified) Kneser–Ney.

An order-N model predicts the next id from the N−1 ids before it. Before the
start of a word those ids are the boundary 0, so a context also says how far
into the word it is: with N = 4, ``. . e`` is "e is the first character".
Order 1 is the unigram model, order 2 the lecture's bigram counting model.

Counting. Every predicted position of the words (each character and each
end) gives one n-gram, a row of N ids: the context, oldest first, then the
predicted id. They are counted by a jitted scatter-add into a V^N table when
that is small (``DENSE_MAX_CELLS``), and otherwise sparsely, holding only the
n-grams that occur. While V^N keys fit int32 (``key_fits``: V = 27 up to
order 6) each row is one key, its flat index, and one sort of the keys counts
them (``count_by_keys``; on the host: numpy sorts int32 keys in about a
millisecond per 200,000, XLA:CPU's sort takes over ten times as long). Beyond
that the rows are ranked in suffix order one id at a time (``refine_ranks``:
the pairs (rank so far, the id before) ranked by a presence table and a cumsum
while they are few, by a sort otherwise), then summed per rank. Every way
gives the same ``NgramCounts``: the distinct n-grams in *suffix order* (sorted
by the predicted id, then the id before it, and so on back) with their
counts. In suffix order the n-grams that end alike are neighbours, so every
lower order is a run of rows (``all_levels``); with keys, order n − 1's key is
order n's divided by V. ``count_ngrams_streaming`` counts a word list chunk by
chunk, holding one chunk and the table at a time.

Smoothing. Interpolated Kneser–Ney (Kneser & Ney 1995; Chen & Goodman 1999,
"An empirical study of smoothing techniques for language modeling") mixes
every order with the next lower one, down to the uniform distribution:

    p_n(w | h) = (c(h w) − D(c(h w)) + Σ_w' D(c(h w')) · p_{n−1}(w | h')) / Σ_w' c(h w')

with h' the context without its oldest id and D(0) = 0; a context with no
counts leaves p_{n−1} as it is. At the model's own order c is the raw count;
below it, the continuation count: how many distinct ids were seen before
``h w``. Plain Kneser–Ney has one discount per order, D = n1 / (n1 + 2 n2)
from that order's count-of-counts n_k (Ney, Essen & Kneser 1994) unless one is
given; modified Kneser–Ney has three, D1, D2 and D3+ for counts 1, 2 and ≥ 3,
from n1..n4 (Chen & Goodman), optionally scaled. Every row sums to 1 by
construction: the mass taken by the discounts is what the lower order gets.

Parameters. A model's parameters are its counts of every order 1..N and its
discounts (or k): a plain pytree that ``next_logprobs`` turns into the
next-id distributions of a batch of contexts in one jitted call, one
``lax.scan`` over the orders (see "count tables" below for the layout: dense
while V^N is small, otherwise one compressed row per context seen, found by
binary search on int32 keys).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Iterable, Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ..data.words import BOUNDARY_ID, Vocabulary
from ..errors import MakemoreError
from ..data.packing import in_chunks
from . import ModelDef

DENSE_MAX_CELLS = 2**22  # dense tables while V^N is at most this (16 MiB of int32 counts)
MAX_NGRAM_CELLS = 2**26  # positions × order held at once while counting (256 MiB of int32 ids)
RANK_TABLE_CELLS = 2**20  # ranking by a presence table of (rank, id) pairs while they fit this many cells
INT32_LIMIT = 2**31 - 1
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)  # where the count-of-counts give no usable estimate (KenLM's)
EVAL_CHUNK = 4096  # positions per step of a whole-split evaluation
METHODS = ("add-k", "kn", "modified-kn")  # smoothing methods: add-k (with k = smoothing), Kneser–Ney, modified Kneser–Ney


# ---- the n-grams of a word list ----------------------------------------------------


def check_order(order) -> None:
    if not (isinstance(order, (int, np.integer)) and not isinstance(order, bool) and order >= 1):
        raise MakemoreError(f"order must be an integer >= 1, got {order!r}")


def ngram_windows(stream_S: np.ndarray, order: int) -> np.ndarray:
    """Every predicted position of an encoded stream (``. w1 . w2 .``) as a row of `order` ids.

    Row i holds the ids at stream positions i+2−order .. i+1, oldest first: the
    context, then the predicted id. Ids before the boundary that opens the
    word are the boundary 0 too. Returns int32 (S−1, order).
    """
    pos_S = np.arange(len(stream_S))
    opened_S = np.maximum.accumulate(np.where(stream_S == BOUNDARY_ID, pos_S, 0))
    idx_PxN = pos_S[1:, None] - np.arange(order - 1, -1, -1)[None, :]
    inside_PxN = idx_PxN >= opened_S[:-1, None]  # the word so far and its opening boundary
    return np.where(inside_PxN, stream_S[np.maximum(idx_PxN, 0)], BOUNDARY_ID).astype(np.int32)


def words_to_ngrams(words: Sequence[str], vocab: Vocabulary, order: int) -> np.ndarray:
    """The n-gram of every character and every end of the words: int32 (P, order), P = Σ (len + 1).

    Raises MakemoreError for a character outside the vocabulary, or if the
    rows would not fit the counting budget (MAX_NGRAM_CELLS ids).
    """
    check_order(order)
    if not words:
        return np.zeros((0, order), np.int32)
    positions = sum(len(w) + 1 for w in words)
    if positions * order > MAX_NGRAM_CELLS:
        raise MakemoreError(
            f"order {order:,} is too large to count: the n-grams of {positions:,} positions would take "
            f"{positions * order * 4 / 2**30:.2f} GiB of ids, and at most order {max(MAX_NGRAM_CELLS // positions, 1):,} "
            f"fits the {MAX_NGRAM_CELLS * 4 // 2**20} MiB budget"
        )
    return ngram_windows(vocab.encode_stream(words), order)


# ---- counting ----------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class NgramCounts:
    """How often each n-gram occurs.

    ngrams int32 (M, order): the distinct n-grams in suffix order (sorted by
    the last column, then the one before it, ...); counts int32 (M,), all > 0.
    """

    order: int
    vocab_size: int
    ngrams: np.ndarray
    counts: np.ndarray

    def __eq__(self, other) -> bool:
        return (
            isinstance(other, NgramCounts)
            and (self.order, self.vocab_size) == (other.order, other.vocab_size)
            and np.array_equal(self.ngrams, other.ngrams)
            and np.array_equal(self.counts, other.counts)
        )


def dense_fits(vocab_size: int, order: int) -> bool:
    """Whether a V^order table stays within DENSE_MAX_CELLS cells (and so within int32 indices)."""
    return vocab_size**order <= DENSE_MAX_CELLS


def choose_representation(representation: str, vocab_size: int, order: int) -> str:
    """'dense' or 'sparse'; 'auto' is dense while V^order fits DENSE_MAX_CELLS."""
    if representation == "auto":
        return "dense" if dense_fits(vocab_size, order) else "sparse"
    if representation not in ("dense", "sparse"):
        raise MakemoreError(f"representation must be auto, dense or sparse, got {representation!r}")
    if representation == "dense" and not dense_fits(vocab_size, order):
        raise MakemoreError(
            f"a dense order-{order} table over {vocab_size} ids has {vocab_size}^{order} cells, "
            f"more than {DENSE_MAX_CELLS:,}; use the sparse representation"
        )
    return representation


def flat_index(ids_BxK: jax.Array, vocab_size: int) -> jax.Array:
    """Σ_j ids[:, j] · V^j: the last column most significant, so increasing index is suffix order."""
    flat_B = jnp.zeros(ids_BxK.shape[:1], jnp.int32)
    for j in range(ids_BxK.shape[1] - 1, -1, -1):
        flat_B = flat_B * vocab_size + ids_BxK[:, j]
    return flat_B


@partial(jax.jit, static_argnames="vocab_size")
def dense_counts(ngrams_PxN: jax.Array, weights_P: jax.Array, vocab_size: int) -> jax.Array:
    """The flat V^N table of summed weights (1 per occurrence): one int32 scatter-add."""
    cells = vocab_size ** ngrams_PxN.shape[1]
    return jnp.zeros((cells,), jnp.int32).at[flat_index(ngrams_PxN, vocab_size)].add(weights_P)


def key_fits(vocab_size: int, order: int) -> bool:
    """Whether every n-gram of `order` ids below vocab_size has an int32 key (its flat index): V^order <= 2^31."""
    return vocab_size**order - 1 <= INT32_LIMIT


def sparse_method(vocab_size: int, order: int) -> str:
    """How the sparse path counts: 'keys' (one sort of int32 keys) where they fit, else 'ranks'."""
    return "keys" if key_fits(vocab_size, order) else "ranks"


def ngram_keys(ngrams_PxN: np.ndarray, vocab_size: int) -> np.ndarray:
    """flat_index of each row on the host: int32 (P,). Needs key_fits (no step of the sum overflows)."""
    key_P = np.zeros((ngrams_PxN.shape[0],), np.int32)
    for j in range(ngrams_PxN.shape[1] - 1, -1, -1):
        key_P *= vocab_size
        key_P += ngrams_PxN[:, j]
    return key_P


def run_starts(sorted_M: np.ndarray) -> np.ndarray:
    """Where each run of equal values of a sorted array begins: int64 indices, 0 first (none if empty)."""
    new_M = np.empty(sorted_M.shape, bool)
    new_M[:1] = True
    np.not_equal(sorted_M[1:], sorted_M[:-1], out=new_M[1:])
    return np.flatnonzero(new_M)


def count_by_keys(ngrams_PxN: np.ndarray, weights_P: np.ndarray | None, vocab_size: int) -> NgramCounts:
    """The sparse counts by one sort of int32 keys; weights_P None counts each row once.

    Increasing key is suffix order, so the sorted distinct keys are the
    n-grams in the order NgramCounts keeps, and each count is the length (or
    the summed weights) of a run of equal keys. Needs key_fits.
    """
    P, order = ngrams_PxN.shape
    if P == 0:
        return NgramCounts(order, vocab_size, np.zeros((0, order), np.int32), np.zeros((0,), np.int32))
    keys_P = ngram_keys(ngrams_PxN, vocab_size)
    if weights_P is None:
        keys_P.sort()
        first = run_starts(keys_P)
        counts = np.diff(first, append=P)
    else:
        by_key = np.argsort(keys_P)
        keys_P = keys_P[by_key]
        first = run_starts(keys_P)
        counts = np.add.reduceat(np.asarray(weights_P)[by_key], first)
    return NgramCounts(order, vocab_size, _digits(keys_P[first], order, vocab_size), counts.astype(np.int32))


RANKING = ("presence", "sort", "pairs")


@partial(jax.jit, static_argnames=("vocab_size", "how"))
def refine_ranks(rank_P: jax.Array, ids_P: jax.Array, vocab_size: int, how: str = "presence"):
    """Each row's rank among the distinct (rank, id) pairs in sorted order, and how many there are.

    If rank_P ranks the rows' last n ids in suffix order and ids_P is the id
    before them, the result ranks their last n + 1 ids in suffix order. The
    pair is one key, rank · V + id, ranked by how (see ranking_method):
    'presence', the number of keys present below a row's own in a table of
    min(RANK_TABLE_CELLS, P·V) cells (a scatter and a cumsum); 'sort', its
    position among the sorted distinct keys (a sort and a binary search);
    'pairs', a sort on rank and id, where the key would overflow int32.
    """
    P = rank_P.shape[0]
    if how == "pairs":
        rank_s, ids_s, pos_s = jax.lax.sort((rank_P, ids_P, jnp.arange(P, dtype=jnp.int32)), num_keys=2)
        new_s = jnp.concatenate([jnp.ones((1,), bool), (rank_s[1:] != rank_s[:-1]) | (ids_s[1:] != ids_s[:-1])])
        ranks_s = jnp.cumsum(new_s, dtype=jnp.int32) - 1
        return jnp.zeros((P,), jnp.int32).at[pos_s].set(ranks_s), ranks_s[-1] + 1
    key_P = rank_P * vocab_size + ids_P
    if how == "presence":
        present = jnp.zeros((min(RANK_TABLE_CELLS, P * vocab_size),), jnp.int32).at[key_P].set(1)
        return (jnp.cumsum(present) - present)[key_P], present.sum()
    key_s = jnp.sort(key_P)
    ranks_s = jnp.cumsum(jnp.concatenate([jnp.ones((1,), bool), key_s[1:] != key_s[:-1]]), dtype=jnp.int32) - 1
    return ranks_s[jnp.searchsorted(key_s, key_P)], ranks_s[-1] + 1


def ranking_method(n_ranks: int, n_rows: int, vocab_size: int) -> str:
    """How refine_ranks can rank n_rows rows whose ranks so far are below n_ranks."""
    if n_ranks * vocab_size <= RANK_TABLE_CELLS or n_rows * vocab_size <= RANK_TABLE_CELLS:
        return "presence"
    return "sort" if n_ranks * vocab_size <= INT32_LIMIT else "pairs"


def suffix_ranks(ngrams_PxN: np.ndarray, vocab_size: int) -> list[jax.Array]:
    """For n = 1..N, each row's last n ids ranked among the distinct ones in suffix order: N arrays (P,).

    One refine_ranks per order, compiled once per row count and method.
    """
    P = ngrams_PxN.shape[0]
    rank_P = jnp.zeros((P,), jnp.int32)
    n_ranks, ranks = 1, []
    for j in range(ngrams_PxN.shape[1] - 1, -1, -1):
        column = jnp.asarray(np.ascontiguousarray(ngrams_PxN[:, j]))
        rank_P, distinct = refine_ranks(rank_P, column, vocab_size, ranking_method(n_ranks, P, vocab_size))
        n_ranks = int(distinct)
        ranks.append(rank_P)
    return ranks


@jax.jit
def _run_sums(runs_NxM: jax.Array, counts_M: jax.Array):
    """Per order n, for rows whose run ids runs_NxM[n − 1] never decrease: which rows start a run,
    each run's summed counts, and how many runs of order n + 1 it holds. Three (N, M) arrays."""
    N, M = runs_NxM.shape
    starts_NxM = jnp.concatenate([jnp.ones((N, 1), bool), runs_NxM[:, 1:] != runs_NxM[:, :-1]], axis=1)
    raw_NxM = jax.vmap(lambda run: jax.ops.segment_sum(counts_M, run, num_segments=M))(runs_NxM)
    finer_NxM = jnp.concatenate([starts_NxM[1:], jnp.ones((1, M), bool)]).astype(jnp.int32)
    distinct_NxM = jax.vmap(lambda run, new: jax.ops.segment_sum(new, run, num_segments=M))(runs_NxM, finer_NxM)
    return starts_NxM, raw_NxM, distinct_NxM


def _bucket(n: int) -> int:
    """n rounded up to 1, 2, 3, 4, 6, 8, 12, 16, 24, ...: few distinct shapes, so few compilations."""
    if n <= 4:
        return max(n, 1)
    p = 1 << (n - 1).bit_length()
    return 3 * p // 4 if n <= 3 * p // 4 else p


def padded_rows(ngrams_PxN: np.ndarray) -> jax.Array:
    """The rows padded with all-boundary rows to a bucketed length (see _bucket), on the device."""
    return jnp.asarray(np.pad(ngrams_PxN, ((0, _bucket(len(ngrams_PxN)) - len(ngrams_PxN)), (0, 0))))


def count_weighted_rows(ngrams_PxN: np.ndarray, weights_P: np.ndarray | None, vocab_size: int, kind: str) -> NgramCounts:
    """The counts of the rows by kind: 'dense', 'keys', 'ranks', or 'sparse' (keys where they fit, else ranks).

    weights_P: each row's weight (how often it occurred), None for once each.
    """
    P, order = ngrams_PxN.shape
    if kind == "sparse":
        kind = sparse_method(vocab_size, order)
    if P == 0:
        return NgramCounts(order, vocab_size, np.zeros((0, order), np.int32), np.zeros((0,), np.int32))
    if kind == "keys":
        return count_by_keys(ngrams_PxN, weights_P, vocab_size)
    if weights_P is None:
        weights_P = np.ones((P,), np.int32)
    rows, weights = _pad_repeating(ngrams_PxN), np.pad(weights_P, (0, _bucket(P) - P))  # padding: weight 0
    if kind == "dense":
        return counts_from_table(np.asarray(dense_counts(jnp.asarray(rows), jnp.asarray(weights), vocab_size)), order, vocab_size)
    # ranks: rank the rows in suffix order one id at a time, then sum the weights per rank
    top = suffix_ranks(rows, vocab_size)[-1]
    n = int(np.asarray(top).max()) + 1
    holder = np.zeros((n,), np.int64)
    holder[np.asarray(top)] = np.arange(len(rows))
    sums = jax.ops.segment_sum(jnp.asarray(weights), top, num_segments=len(rows))
    return NgramCounts(order, vocab_size, rows[holder], np.asarray(sums)[:n].astype(np.int32))


def _pad_repeating(rows: np.ndarray) -> np.ndarray:
    """Rows padded to a bucketed length by repeating the last row (the caller gives the copies weight 0)."""
    return np.pad(rows, ((0, _bucket(len(rows)) - len(rows)), (0, 0)), mode="edge")


def _digits(flat: np.ndarray, order: int, vocab_size: int) -> np.ndarray:
    """The n-grams of flat indices (see flat_index): int32 (len(flat), order)."""
    ngrams = np.empty((flat.size, order), np.int32)
    rest = flat.astype(np.int32 if key_fits(vocab_size, order) else np.int64)
    for j in range(order):
        above = rest // vocab_size  # numpy divides by a scalar with SIMD; its divmod and % do not
        ngrams[:, j] = rest - above * vocab_size
        rest = above
    return ngrams


def counts_from_table(table: np.ndarray, order: int, vocab_size: int) -> NgramCounts:
    """The nonzero cells of a flat dense table, in increasing index, i.e. suffix order."""
    flat = np.flatnonzero(table)
    return NgramCounts(order, vocab_size, _digits(flat, order, vocab_size), table[flat].astype(np.int32))


def count_ngrams(words: Sequence[str], vocab: Vocabulary, order: int, representation: str = "auto") -> NgramCounts:
    """Count the n-grams of every character and end of the words (contexts padded with the boundary).

    representation: 'dense' (a scatter-add into V^order cells), 'sparse'
    (one sort of int32 keys while V^order fits them, else suffix-order ranks
    and a segment sum per rank) or 'auto' (sparse: sorting the keys beats
    filling and reading back a dense table at every order of names.txt). The
    result is the same whichever is used.
    """
    return count_ngram_rows(words_to_ngrams(words, vocab, order), vocab.size, representation)


def count_ngram_rows(ngrams_PxN: np.ndarray, vocab_size: int, representation: str = "auto") -> NgramCounts:
    """count_ngrams from the n-gram rows (P, order) int32, e.g. of ``words_to_ngrams``."""
    order = ngrams_PxN.shape[1]
    kind = "sparse" if representation == "auto" else choose_representation(representation, vocab_size, order)
    return count_weighted_rows(np.asarray(ngrams_PxN, np.int32), None, vocab_size, kind)


def count_ngrams_streaming(
    chunks: Iterable[Sequence[str]], vocab: Vocabulary, order: int, representation: str = "auto"
) -> NgramCounts:
    """count_ngrams of all the words of the chunks (e.g. ``read_word_chunks``), one chunk at a time.

    Memory holds the table and one chunk, never the whole list. Dense: a V^N
    table that each chunk's scatter-add goes into. Sparse: the distinct
    n-grams so far, ranked together with the chunk's n-grams and summed.
    """
    check_order(order)
    kind = choose_representation(representation, vocab.size, order)
    table = np.zeros((vocab.size**order,), np.int32) if kind == "dense" else None
    so_far = NgramCounts(order, vocab.size, np.zeros((0, order), np.int32), np.zeros((0,), np.int32))
    for chunk in chunks:
        ngrams = words_to_ngrams(list(chunk), vocab, order)
        if not len(ngrams):
            continue
        ones = np.ones((len(ngrams),), np.int32)
        if kind == "dense":
            weights = np.pad(ones, (0, _bucket(len(ngrams)) - len(ngrams)))
            table += np.asarray(dense_counts(jnp.asarray(_pad_repeating(ngrams)), jnp.asarray(weights), vocab.size))
        else:
            rows = np.concatenate([so_far.ngrams, ngrams])
            so_far = count_weighted_rows(rows, np.concatenate([so_far.counts, ones]), vocab.size, "sparse")
    return counts_from_table(table, order, vocab.size) if kind == "dense" else so_far


def vocabulary_of_chunks(chunks: Iterable[Sequence[str]]) -> Vocabulary:
    """The vocabulary of all the words of the chunks (a first pass over a list too large to hold)."""
    chars: set[str] = set()
    for chunk in chunks:
        for word in chunk:
            chars.update(word)
    return Vocabulary(tuple(sorted(chars)))


def read_word_chunks(path: str, chunk_words: int) -> Iterator[list[str]]:
    """The words of a UTF-8 file (one per line, as ``data.read_words``), chunk_words at a time.

    Reads line by line: memory holds one chunk, not the file.
    """
    if chunk_words < 1:
        raise MakemoreError(f"chunk size must be >= 1, got {chunk_words}")
    try:
        f = open(path, "rb")
    except OSError as err:
        raise MakemoreError(f"{path}: cannot read ({err.strerror})") from None
    with f:
        chunk: list[str] = []
        for number, line in enumerate(f, start=1):
            if number == 1 and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]
            try:
                word = line.decode("utf-8").strip()
            except UnicodeDecodeError as err:
                raise MakemoreError(f"{path}: line {number} is not valid UTF-8 (byte 0x{line[err.start]:02x})") from None
            if word:
                chunk.append(word)
            if len(chunk) == chunk_words:
                yield chunk
                chunk = []
        if chunk:
            yield chunk


# ---- every order from the top one ------------------------------------------------------


@dataclass(frozen=True)
class Level:
    """The n-grams of one order n.

    ngrams int32 (M, n) in suffix order; raw: how often each occurs;
    continuation: how many distinct ids precede it (at order N, the raw
    count); suffix: the index of ``ngrams[:, 1:]`` in order n − 1 (zeros at
    order 1).
    """

    ngrams: np.ndarray
    raw: np.ndarray
    continuation: np.ndarray
    suffix: np.ndarray


def all_levels(counts: NgramCounts, how: str = "auto") -> list[Level]:
    """Orders 1..N from the order-N counts; levels[n − 1] is order n.

    Order n's n-grams are the distinct last n ids of order N's. The rows are
    in suffix order, so each is a run of neighbours: raw counts add up over
    the run, and the continuation count is the number of order-(n + 1) runs
    in it, i.e. of distinct ids seen before the n-gram. how: 'keys' (the runs
    of int32 keys, key_fits), 'ranks' (the runs of suffix ranks, any
    vocabulary) or 'auto' (keys where they fit); the levels are the same.
    """
    N, M, V = counts.order, len(counts.counts), counts.vocab_size
    if M == 0:
        return [Level(np.zeros((0, n), np.int32), *(np.zeros((0,), np.int32),) * 3) for n in range(1, N + 1)]
    if how == "auto":
        how = sparse_method(V, N)
    return levels_by_keys(counts) if how == "keys" else _levels_by_ranks(counts)


def levels_by_keys(counts: NgramCounts) -> list[Level]:
    """all_levels from the sorted int32 keys, one order at a time from the top (needs key_fits).

    An n-gram's key divided by V is the key of its last n − 1 ids, so order
    n − 1's runs are runs of equal quotients of order n's sorted keys.
    """
    V, N = counts.vocab_size, counts.order
    keys, raw = ngram_keys(counts.ngrams, V), np.asarray(counts.counts, np.int32)
    ngrams, continuation = np.array(counts.ngrams, np.int32), raw
    levels = []
    for n in range(N, 1, -1):
        lower = keys // V  # the key of ngrams[:, 1:]
        first = run_starts(lower)
        sizes = np.diff(first, append=len(lower))  # order n − 1's continuation counts
        levels.append(Level(ngrams, raw, continuation, np.repeat(np.arange(len(first), dtype=np.int32), sizes)))
        ends = np.cumsum(raw, dtype=np.int64)[first + sizes - 1]  # the raw counts summed up to each run's end
        keys = lower[first]
        ngrams, raw, continuation = _digits(keys, n - 1, V), np.diff(ends, prepend=0).astype(np.int32), sizes.astype(np.int32)
    levels.append(Level(ngrams, raw, continuation, np.zeros((len(keys),), np.int32)))
    return levels[::-1]


def _levels_by_ranks(counts: NgramCounts) -> list[Level]:
    """all_levels by suffix_ranks of the rows: for vocabularies whose keys overflow int32."""
    N, M, V = counts.order, len(counts.counts), counts.vocab_size
    rows = _pad_repeating(counts.ngrams)  # the copies join the last row's runs, with count 0
    weights = jnp.asarray(np.pad(counts.counts, (0, len(rows) - M)))
    runs = jnp.stack(suffix_ranks(rows, V))  # in suffix order, so each order's runs are ranks that never decrease
    starts, raw, distinct = (np.asarray(a) for a in _run_sums(runs, weights))
    runs = np.asarray(runs)
    levels = []
    for n in range(1, N + 1):
        first = np.flatnonzero(starts[n - 1, :M])  # the first row of each run
        k = len(first)
        raw_n = raw[n - 1, :k].astype(np.int32)
        levels.append(Level(
            np.ascontiguousarray(counts.ngrams[first, N - n :]),
            raw_n,
            raw_n if n == N else distinct[n - 1, :k].astype(np.int32),
            runs[n - 2, first].astype(np.int32) if n > 1 else np.zeros((k,), np.int32),
        ))
    return levels


# ---- discounts ------------------------------------------------------------------------


def count_of_counts(counts: np.ndarray) -> tuple[int, int, int, int]:
    """n1..n4: how many n-grams have count exactly 1, 2, 3 and 4."""
    small = np.bincount(np.minimum(np.asarray(counts, np.int64), 5), minlength=6)
    return tuple(int(x) for x in small[1:5])


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
    return tuple(d if _usable(d, k + 1) else FALLBACK_DISCOUNTS[k] for k, d in enumerate(raw))


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
    rows = []
    for n in range(1, order + 1):
        counts = levels[n - 1].raw if n == order else levels[n - 1].continuation
        if method == "kn":
            rows.append((discount,) * 3 if discount else (kn_discount(counts) * discount_scale,) * 3)
        else:
            rows.append(tuple(d * discount_scale for d in modified_kn_discounts(counts)))
    return {"discounts": np.minimum(np.asarray(rows, np.float32), np.float32([1, 2, 3]))}


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


def _dense_layout(levels: Sequence[Level], V: int):
    """Order n's rows at dense_offsets[n − 2], row = flat index of the context."""
    offsets, cells = [0], []
    for n, level in enumerate(levels[1:], start=2):
        flat = np.asarray(flat_index(jnp.asarray(level.ngrams[:, :-1]), V)).astype(np.int64)
        cells.append(offsets[-1] + flat * V + level.ngrams[:, -1])
        offsets.append(offsets[-1] + V**n)
    return tuple(cells), {"dense_offsets": np.asarray(offsets, np.int32)}, offsets[-1]


def _sparse_layout(levels: Sequence[Level], V: int):
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


def _search(keys_R: jax.Array, key_B: jax.Array, lo: jax.Array, hi: jax.Array) -> jax.Array:
    """The first position in [lo, hi) of sorted keys_R whose key is >= key_B (hi if none)."""
    last = max(keys_R.shape[0] - 1, 0)

    def halve(_, bounds):
        lo_B, hi_B = bounds
        mid_B = (lo_B + hi_B) // 2
        below_B = (lo_B < hi_B) & (keys_R[jnp.minimum(mid_B, last)] < key_B)
        return jnp.where(below_B, mid_B + 1, lo_B), jnp.where(below_B | (lo_B >= hi_B), hi_B, mid_B)

    bounds = (jnp.full(key_B.shape, lo, jnp.int32), jnp.full(key_B.shape, hi, jnp.int32))
    return jax.lax.fori_loop(0, keys_R.shape[0].bit_length() + 1, halve, bounds)[0]


def fold_orders(tables: dict, contexts_BxC: jax.Array, step, carry, xs_N):
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
            pos_B = _search(keys, key_B, lo, hi)
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


def kn_mix(p_lower, c, total, n1, n2, n3, d1, d2, d3):
    """One order of interpolated (modified) Kneser–Ney, given the next order down.

    (c − D(c) + (D1·N1 + D2·N2 + D3·N3+) · p_lower) / total, with D(0) = 0,
    D(1) = D1, D(2) = D2, D(≥3) = D3; p_lower where the context has no counts.
    Shapes broadcast: whole rows (c (B, V), the rest (B, 1)) or one id per row.
    """
    d = jnp.where(c == 0, 0.0, jnp.where(c == 1, d1, jnp.where(c == 2, d2, d3)))
    mixed = (c - d + (d1 * n1 + d2 * n2 + d3 * n3) * p_lower) / jnp.maximum(total, 1.0)
    return jnp.where(total > 0, mixed, p_lower)


def add_k(c, total, k, vocab_size: int):
    """(c + k) / (total + k·V); uniform where both are 0 (k = 0 and an unseen context)."""
    denominator = total + k * vocab_size
    return jnp.where(denominator > 0, (c + k) / jnp.where(denominator > 0, denominator, 1.0), 1.0 / vocab_size)


def row_stats(counts_BxV: jax.Array) -> tuple[jax.Array, ...]:
    """Σ_w c, N1, N2, N3+ of each row (how many next ids were seen once, twice, three or more times): (B, 1) each."""
    return tuple(
        x.sum(axis=1, keepdims=True).astype(jnp.float32)
        for x in (counts_BxV, counts_BxV == 1, counts_BxV == 2, counts_BxV >= 3)
    )


def probs(params: dict, contexts_BxC: jax.Array) -> jax.Array:
    """p(next id | context) for contexts of N − 1 ids, oldest first: (B, N − 1) -> (B, V), rows sum to 1."""
    N, V = model_order(params), vocab_size_of(params)
    params = jax.tree_util.tree_map(jnp.asarray, params)  # numpy tables cannot be indexed by traced ids
    if contexts_BxC.shape[1] != N - 1:
        raise ValueError(f"an order-{N} model needs contexts of {N - 1} ids, got {contexts_BxC.shape[1]}")
    B = contexts_BxC.shape[0]
    if "add_k" in params:
        top, _ = fold_orders(params, contexts_BxC, lambda _, c, x: (c, None), jnp.zeros((B, V), jnp.int32), jnp.zeros((N,)))
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


# ---- evaluation ---------------------------------------------------------------------------


@partial(jax.jit, static_argnames=("n_groups", "chunk"))
def ngrams_nll(params: dict, ngrams_PxN: jax.Array, group_P: jax.Array, n_groups: int, chunk: int = EVAL_CHUNK):
    """Total −log p(last id | the ids before it) of the rows of each group, and the rows in it.

    Rows with group −1 are padding. The rows go through ``lax.map`` chunk at a
    time, all in one call: (n_groups,) float32 sums and (n_groups,) int32 counts.
    """
    def score(args):
        rows_CxN, group_C = args
        p_CxV = probs(params, rows_CxN[:, :-1])
        nll_C = -jnp.log(jnp.take_along_axis(p_CxV, rows_CxN[:, -1:], axis=1)[:, 0])
        live_C = group_C >= 0
        where_C = jnp.where(live_C, group_C, 0)
        return (
            jax.ops.segment_sum(jnp.where(live_C, nll_C, 0.0), where_C, num_segments=n_groups),
            jax.ops.segment_sum(live_C.astype(jnp.int32), where_C, num_segments=n_groups),
        )

    sums, counts = jax.lax.map(score, in_chunks(ngrams_PxN, group_P, chunk, -1))
    return sums.sum(axis=0), counts.sum(axis=0)


def nll_per_list(params: dict, word_lists: Sequence[Sequence[str]], vocab: Vocabulary) -> list[float | None]:
    """Mean NLL per character of each list of words, each end counting as one (as ``evaluate.split_nll``).

    All lists in one compiled call; None for an empty list; +inf where the
    model gives a character probability 0 (add-k with k = 0). MakemoreError
    for a character outside the vocabulary.
    """
    sums = nll_sums_per_list(params, word_lists, vocab)
    return [float(t) / int(c) if c else None for t, c in sums]


def nll_sums_per_list(params: dict, word_lists: Sequence[Sequence[str]], vocab: Vocabulary) -> np.ndarray:
    """(total NLL, positions) of each list of words: float64 (len(word_lists), 2); see nll_per_list."""
    if any(isinstance(words, str) for words in word_lists):
        raise TypeError("nll_per_list takes lists of words (see words_nll for one list)")
    order = model_order(params)
    ngrams = [words_to_ngrams(words, vocab, order) for words in word_lists]
    group = np.concatenate([np.full((len(g),), i, np.int32) for i, g in enumerate(ngrams)] + [np.zeros((0,), np.int32)])
    rows = np.concatenate([*ngrams, np.zeros((0, order), np.int32)])
    pad = _bucket(len(rows)) - len(rows)
    sums, counts = ngrams_nll(
        params, padded_rows(rows), jnp.asarray(np.pad(group, (0, pad), constant_values=-1)), len(word_lists)
    )
    return np.stack([np.asarray(sums, np.float64), np.asarray(counts, np.float64)], axis=1)


def words_nll(params: dict, words: Sequence[str], vocab: Vocabulary) -> float:
    """Mean NLL per character of one list of words (see nll_per_list); MakemoreError if it is empty."""
    if not words:
        raise MakemoreError("mean NLL of an empty set of words is undefined")
    return nll_per_list(params, [words], vocab)[0]


def word_nll(model, words: Sequence[str]) -> np.ndarray:
    """Total NLL in nats of each word under an n-gram TrainedModel, −log p(c1 … cn, end): (len(words),).

    As ``evaluate.word_nll``, but for words of any length, in one compiled call.
    """
    if len(words) == 0:
        return np.zeros((0,), np.float32)
    rows = words_to_ngrams(words, model.vocab, model_order(model.params))
    word_P = np.repeat(np.arange(len(words), dtype=np.int32), [len(w) + 1 for w in words])
    pad = _bucket(len(rows)) - len(rows)
    sums, _ = ngrams_nll(
        model.params, padded_rows(rows), jnp.asarray(np.pad(word_P, (0, pad), constant_values=-1)), _bucket(len(words))
    )
    return np.asarray(sums)[: len(words)]


def split_nll(model, data, splits=None) -> dict[str, float | None]:
    """Mean NLL of each split of a Dataset under an n-gram TrainedModel (None for an empty split)."""
    splits = list(splits or ("train", "dev", "test"))
    if not data.local_only:
        return dict(zip(splits, nll_per_list(model.params, [data.words[s] for s in splits], data.vocab)))
    # one process's part of a multi-host run: its sums, added over the processes (every process calls this)
    sums = data.combine(nll_sums_per_list(model.params, [data.words[s] for s in splits], data.vocab))
    return {s: float(t / c) if c else None for s, (t, c) in zip(splits, sums)}


# ---- the model as the rest of the package sees it ---------------------------------------


def _init(key, config):
    raise MakemoreError("an n-gram model is counted from words, not initialised (see ngram.fit)")


def apply(params: dict, idx_BxT: jax.Array) -> jax.Array:
    """Next-id log-probabilities at every position of id sequences (idx[:, 0] the start boundary).

    Position t's context is ids t−N+2..t, the boundary before the start:
    (B, T) int32 in, (B, T, V) float32 out, as every model's apply.
    """
    B, T = idx_BxT.shape
    C = model_order(params) - 1
    padded_BxP = jnp.pad(idx_BxT, ((0, 0), (C, 0)), constant_values=BOUNDARY_ID)
    contexts_BxTxC = jnp.stack([padded_BxP[:, 1 + j : 1 + j + T] for j in range(C)], axis=-1)
    logp = jnp.log(probs(params, contexts_BxTxC.reshape(B * T, C).astype(jnp.int32)))
    return logp.reshape(B, T, -1)


def decode_init(params: dict, config, batch: int) -> jax.Array:
    """The decoder state: the last N−1 ids of each name, all boundary before the start."""
    return jnp.zeros((batch, model_order(params) - 1), jnp.int32)


def decode_step(params: dict, context_BxC: jax.Array, token_B: jax.Array, t: jax.Array):
    """Shift the id at position t into the context; the next id's log-probabilities."""
    if context_BxC.shape[1]:  # an order-1 model has no context to keep
        context_BxC = jnp.concatenate([context_BxC[:, 1:], token_B[:, None]], axis=1)
    return jnp.log(probs(params, context_BxC)), context_BxC


# ---- checking saved parameters ----------------------------------------------------------


def expected_arrays(arrays: dict[str, np.ndarray], order: int, vocab_size: int, method: str) -> dict:
    """{'params/...': (shape, dtype)}: what the arrays of an order-`order` model must be.

    The sparse tables' sizes depend on the data: they are read from the arrays,
    once their contents are checked to fit together. MakemoreError says what
    does not fit.
    """
    i32, f32, V = np.dtype("int32"), np.dtype("float32"), vocab_size
    expected = {"params/unigram": ((V,), i32)}
    if "params/dense_offsets" in arrays or "params/dense" in arrays:
        if not dense_fits(V, order):
            raise MakemoreError(f"a dense order-{order} table over {V} ids cannot be right: it has more than {DENSE_MAX_CELLS:,} cells")
        offsets = np.cumsum([0] + [V**n for n in range(2, order + 1)])
        expected.update({"params/dense_offsets": ((order,), i32), "params/dense": ((int(offsets[-1]),), i32)})
        got = np.asarray(arrays.get("params/dense_offsets", offsets))
        if got.shape == offsets.shape and not np.array_equal(got, offsets):
            raise MakemoreError("dense_offsets do not match the order and vocabulary")
    else:
        rows, entries = (np.shape(arrays.get(f"params/{k}", ()))[:1] or (0,) for k in ("ctx_keys", "next_ids"))
        expected.update({
            "params/ctx_keys": (rows, i32), "params/level_rows": ((order,), i32), "params/row_start": ((rows[0] + 1,), i32),
            "params/next_ids": (entries, i32), "params/counts": (entries, i32),
        })
        if all(np.shape(arrays.get(k, ())) == shape for k, (shape, _) in expected.items()):
            _check_sparse({k[len("params/"):]: np.asarray(v) for k, v in arrays.items()}, V)
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


def _check_sparse(t: dict, V: int) -> None:
    levels, keys, start = t["level_rows"].astype(np.int64), t["ctx_keys"].astype(np.int64), t["row_start"]
    fits = (
        levels[0] == 0 and levels[-1] == keys.size and np.all(np.diff(levels) >= 0)
        and np.all(keys >= 0) and all(np.all(np.diff(keys[a:b]) > 0) for a, b in zip(levels[:-1], levels[1:]))
        and start[0] == 0 and start[-1] == t["next_ids"].size and np.all((np.diff(start) >= 1) & (np.diff(start) <= V))
        and np.all((t["next_ids"] >= 0) & (t["next_ids"] < V)) and np.all(t["counts"] >= 0)
    )
    if not fits:
        raise MakemoreError("its sparse count table is inconsistent (context keys, row starts, ids or counts out of order or range)")


# ---- the model as the rest of the package sees it ---------------------------------------------


def count(data, settings, counter) -> dict:
    """The model of settings (order, smoothing) counted from the training split.

    counter.ngram_rows counts here, or over devices and processes (the same table).
    """
    rows = words_to_ngrams(data.words["train"], data.vocab, settings.order)
    counts = counter.ngram_rows(rows, data.vocab.size)
    return build_params(
        all_levels(counts), settings.order, data.vocab.size, settings.smoothing_method, settings.smoothing,
        settings.discount, settings.discount_scale,
    )


def saved_arrays(arrays: dict, settings, vocab_size: int) -> dict:
    return expected_arrays(arrays, settings.order, vocab_size, settings.smoothing_method)


def resolve(given: dict) -> dict:
    """The smoothing flags' rules: --smoothing K means add-k; --discount needs --kn, --discount-scale a KN method."""
    if "smoothing" in given:  # --smoothing K is add-k's k; it excludes --kn and --modified-kn
        given["smoothing_method"] = "add-k"
    method = given.get("smoothing_method", "modified-kn")
    if "discount" in given and method != "kn":
        raise MakemoreError("--discount is plain Kneser-Ney's single discount: use it with --kn")
    if "discount_scale" in given and method == "add-k":
        raise MakemoreError("--discount-scale scales Kneser-Ney discounts: use it with --kn or --modified-kn")
    return given


def describe(settings) -> str:
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
    "ngram", _init, apply, decode_init, decode_step,
    count=count, split_nll=split_nll, word_nll=word_nll, saved_arrays=saved_arrays, any_length=True,
    defaults=(("order", 5), ("smoothing_method", "modified-kn")),
    options=(("order", "--order"), ("smoothing_method", "--kn/--modified-kn"), ("discount", "--discount"),
             ("discount_scale", "--discount-scale")),
    resolve=resolve, describe=describe,
)
MODELS = {"ngram": MODEL_DEF}
