"""Scoring a fitted model: the mean NLL of whole splits, and each word's NLL.

A model is scored through its runner (``models.runner``), in the layout the
runner prefers (``Runner.scoring``):

- ``"table"`` (counts, bigram): from the split's count matrix, V×V work;
- ``"trie"`` (the Transformer, through ``apply_trie``): over the split's
  prefix tree, every distinct prefix computed once (on names.txt 72k slots
  against 228k positions);
- ``"leaves"`` (the other neural models, mixtures): over the split's leaves,
  each distinct (prefix, next symbol) pair once, weighted by how many words
  hold it, padded words of ``EVAL_CHUNK`` rows (``data.prefixes``);
- ``"own"`` (the n-grams): the runner's own split_nll and word_nll.

Either sequence layout sums the same terms as every position of every word,
and goes through the model in fixed-size groups of chunks, one compiled call
per group (``lax.map`` over its chunks), so every split of every size runs
the same compiled program. ``word_nlls`` is the plain per-word pass, every
position of every padded word, which the others are tested against.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ..data import prefixes
from ..data.packing import EVAL_CHUNK, in_chunks
from ..data.words import BOUNDARY_ID, SPLITS, Dataset, encode_padded
from ..models import Params, Runner
from ..models.counts import count_matrix
from ..models.losses import nll_from_counts
from .fitted import AnyFitted

Apply = Callable[[Params, jax.Array], jax.Array]  # a model's apply: (params, ids (B, T)) -> logits (B, T, V)
GroupProgress = Callable[[int, int], None]  # (groups done, groups in all)
SplitProgress = Callable[[str, int, int], None]  # (split, groups done, groups in all)

TRIE_ROW = 32  # slots per row of a prefix tree (at least the block size)
TRIE_ROWS = 32  # rows of TRIE_ROW slots per forward pass
GROUP = 16  # chunks per compiled call (trie: 512 rows; padded: 8,192 words)
PROGRESS_EVERY = 8  # calls between progress reports
STREAMS = 2  # threads scoring groups side by side (see _in_groups)
# Measured on 2 Xeon cores with the makemore Transformer on 400k words: rows of 32 or 64 slots, 8 to
# 64 rows a pass, all scored ~250k slots/s (within the machine's noise); packed words end to end
# had measured 86k positions/s at 32 rows a pass and 48k/s at 256 (the activations fall out of cache).


def masked_position_nll(
    logits_BxTxV: jax.Array, targets_BxT: jax.Array, lengths_B: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """(-log p(target) at each position, 0 where it does not count; the mask). Position t counts while t <= length."""
    logp_BxTxV = jax.nn.log_softmax(logits_BxTxV, axis=-1)
    nll_BxT = -jnp.take_along_axis(logp_BxTxV, targets_BxT[..., None], axis=-1)[..., 0]
    mask_BxT = jnp.arange(targets_BxT.shape[1])[None, :] <= lengths_B[:, None]
    return jnp.where(mask_BxT, nll_BxT, 0.0), mask_BxT


def masked_nll_sum(
    logits_BxTxV: jax.Array, targets_BxT: jax.Array, lengths_B: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """(sum of -log p(target), number of counted positions); position t counts while t <= length."""
    nll_BxT, mask_BxT = masked_position_nll(logits_BxTxV, targets_BxT, lengths_B)
    return nll_BxT.sum(), mask_BxT.sum()


def nll_sum(
    run: Runner, tokens_WxL: np.ndarray, lengths_W: np.ndarray, progress: GroupProgress | None = None
) -> tuple[float, int]:
    """(Total NLL, positions) of padded words under a runner, by its prefix tree (``prefixes.trie``) where it
    scores by "trie", else by its leaves (``prefixes.leaves``), padded; one compiled call per GROUP chunks.
    progress(done, total), if given, hears how many groups are scored."""
    if run.apply_trie is not None:
        row_len = max(TRIE_ROW, run.block_size)
        tr = prefixes.trie(tokens_WxL, lengths_W, row_len)
        rows = max(1, TRIE_ROWS * TRIE_ROW // row_len)
        arrays = [
            np.reshape(_whole(a, rows), (-1, rows, row_len))
            for a in (tr.ids, tr.depths, tr.ends, tr.parents, tr.counts, tr.words)
        ]
        return _in_groups(partial(_trie_group, run.apply_trie, run.params), arrays, progress), tr.positions
    lv = prefixes.leaves(tokens_WxL, lengths_W)
    chunks = [np.reshape(_whole(a, EVAL_CHUNK), (-1, EVAL_CHUNK, a.shape[1])) for a in (lv.tokens, lv.natural, lv.end)]
    return _in_groups(partial(_padded_group, run.apply, run.params), chunks, progress), lv.positions


def _whole(a: np.ndarray, n: int) -> np.ndarray:
    """a padded with zero rows to a whole number of n-row blocks (zero weight: they count for nothing)."""
    return np.pad(a, ((0, -len(a) % n),) + ((0, 0),) * (a.ndim - 1))


def _in_groups(
    score: Callable[..., jax.Array], arrays: list[np.ndarray], progress: GroupProgress | None = None
) -> float:
    """Σ score(*group) over the arrays cut along axis 0 into GROUP blocks, the last padded with zeros.

    Every call has the same shapes, so it compiles once whatever the number of
    words. STREAMS threads share the groups out (group g to thread g mod
    STREAMS): XLA:CPU runs calls from different threads side by side, where
    one call alone keeps the cores busy only part of the time (on 2 cores, two
    streams scored 1.75× the positions per second of one). The groups' sums
    are added in group order, so the total does not depend on the threads.
    """
    arrays = [_whole(a, GROUP) for a in arrays]
    starts = list(range(0, len(arrays[0]), GROUP))
    sums: dict[int, jax.Array] = {}  # by group
    done = [0]
    lock = threading.Lock()

    def stream(first: int) -> None:
        for g in range(first, len(starts), STREAMS):
            group_sum = sums[g] = score(*(a[starts[g] : starts[g] + GROUP] for a in arrays))
            if progress is not None and g % PROGRESS_EVERY == 0:
                group_sum.block_until_ready()
                with lock:
                    done[0] = max(done[0], g)
                    progress(done[0], len(starts))

    if STREAMS > 1 and len(starts) > 1:
        with ThreadPoolExecutor(STREAMS) as pool:
            list(pool.map(stream, range(STREAMS)))  # list(): a thread's exception is raised here
    else:
        stream(0)
    return float(np.asarray(jnp.stack([sums[g] for g in range(len(starts))]), np.float64).sum()) if starts else 0.0


def _weighted_nll(
    logits_BxTxV: jax.Array, targets_BxT: jax.Array, natural_BxT: jax.Array, end_BxT: jax.Array
) -> jax.Array:
    """Σ natural · −log p(target) + end · −log p(end): a chunk's share of its words' total NLL."""
    logp_BxTxV = jax.nn.log_softmax(logits_BxTxV, axis=-1)
    nll_BxT = -jnp.take_along_axis(logp_BxTxV, targets_BxT[..., None], axis=-1)[..., 0]
    return (natural_BxT * nll_BxT).sum() - (end_BxT * logp_BxTxV[..., BOUNDARY_ID]).sum()


@partial(jax.jit, static_argnames=("apply",))
def _padded_group(apply, params, tokens_GxBxL, natural_GxBxT, end_GxBxT):
    def score(chunk):
        toks, natural, end = chunk
        return _weighted_nll(apply(params, toks[:, :-1]), toks[:, 1:], natural, end)

    return jax.lax.map(score, (tokens_GxBxL, natural_GxBxT, end_GxBxT)).sum()


@partial(jax.jit, static_argnames=("apply_trie",))
def _trie_group(apply_trie, params, ids, depths, ends, parents, counts, words):
    def score(chunk):
        i, d, e, p, c, w = chunk
        logp_RxSxV = jax.nn.log_softmax(apply_trie(params, i, d, e), axis=-1)
        R, S, V = logp_RxSxV.shape
        # each slot's own id, predicted at its parent's slot; the end, at its own
        own_RxS = jnp.take_along_axis(logp_RxSxV.reshape(R, S * V), p * V + i, axis=1)
        return -(c * own_RxS).sum() - (w * logp_RxSxV[..., BOUNDARY_ID]).sum()

    return jax.lax.map(score, (ids, depths, ends, parents, counts, words)).sum()


def split_nll(
    model: AnyFitted,
    data: Dataset,
    splits: Sequence[str] | None = None,
    progress: SplitProgress | None = None,
) -> dict[str, float | None]:
    """Mean NLL of each split under a model (None for an empty split), in the layout its runner prefers.

    Where the data is one process's part (data.hosts.SlicedDataset) each
    process sums its own words and the sums are added over the processes:
    every process must call this. progress(split, done, total), if given,
    hears how the scoring of a whole split goes.
    """
    run = model.runner
    if run.split_nll is not None:
        return run.split_nll(data, splits)
    splits = list(splits or SPLITS)
    sums = np.zeros((len(splits), 2), np.float64)  # (total NLL, positions) of each split: this process's part
    for i, split in enumerate(splits):
        if data.words[split]:
            tell = progress and not data.local_only and partial(progress, split)
            sums[i] = split_nll_sum(run, data, split, tell or None)
    return {s: float(t / c) if c else None for s, (t, c) in zip(splits, data.combine(sums))}


def split_nll_sum(run: Runner, data: Dataset, split: str, progress: GroupProgress | None = None) -> tuple[float, int]:
    """(Total NLL, positions) of a non-empty split: from its pair counts for a table, else by ``nll_sum``."""
    table = run.table
    if table is None:
        tokens, lengths = data.padded(split, run.block_size)
        return nll_sum(run, tokens, lengths, progress)
    xs, ys = data.pairs(split)
    counts_VxV = count_matrix(jnp.asarray(xs), jnp.asarray(ys), table.shape[0])
    # the mean by rows is the more exact float32 sum (see nll_from_counts); times the pairs, it is the total
    return float(nll_from_counts(jax.nn.log_softmax(table, axis=-1), counts_VxV)) * len(xs), len(xs)


@partial(jax.jit, static_argnames=("apply", "chunk"))
def word_nlls(
    apply: Apply, params: Params, tokens_WxL: jax.Array, lengths_W: jax.Array, chunk: int = EVAL_CHUNK
) -> jax.Array:
    """Total NLL of each padded word (its characters and its end) under apply, (W,) float32, in one call:
    every position of every word, chunk words at a time (``lax.map``)."""

    def score(args):
        toks, lens = args
        nll_BxT, _ = masked_position_nll(apply(params, toks[:, :-1]), toks[:, 1:], lens)
        return nll_BxT.sum(axis=1)

    return jax.lax.map(score, in_chunks(tokens_WxL, lengths_W, chunk, -1)).reshape(-1)[: tokens_WxL.shape[0]]


def word_nll(model: AnyFitted, words: Sequence[str]) -> np.ndarray:
    """Total NLL in nats of each word under a fitted model: −log p(c1 … cn, end), shape (len(words),).

    The log-probability of a word is minus this; divided by len(word) + 1 it is
    the word's mean NLL per character, the figure ``split_nll`` averages.
    Raises MakemoreError for a character outside the vocabulary, or a word
    longer than a sequence model was built for (``Runner.word_width``): tables
    and n-grams score words of any length.
    """
    run = model.runner
    if run.word_nll is not None:
        return run.word_nll(words)
    if len(words) == 0:
        return np.zeros((0,), np.float32)
    tokens, lengths = encode_padded(words, model.vocab, run.word_width(max(len(w) for w in words)))
    # one compiled shape per power of two up to EVAL_CHUNK, so ten names do not pay for 512
    chunk = min(EVAL_CHUNK, 1 << (len(words) - 1).bit_length())
    return np.asarray(word_nlls(run.apply, run.params, jnp.asarray(tokens), jnp.asarray(lengths), chunk))
