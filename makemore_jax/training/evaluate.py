"""Mean NLL of whole splits, one compiled call per split.

Table models (counts, bigram) are scored from the split's count matrix, V×V
work. Sequence models are scored by distinct prefixes (``data.prefixes``):
each distinct (prefix, next symbol) pair once, weighted by how many words
hold it, which is the same sum as over every position of every word. A model
whose ModelDef has ``apply_trie`` (the Transformer) runs over the split's
prefix tree, every distinct prefix computed once (on names.txt 72k slots
against 228k positions); the others over the split's leaves, padded words of
``EVAL_CHUNK`` rows. Either way the rows go through the model in fixed-size
groups of chunks, one compiled call per group (``lax.map`` over its chunks),
so every split of every size runs the same compiled program.
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
from ..data.words import BOUNDARY_ID, Dataset, encode_padded
from ..errors import MakemoreError
from ..models import Params, bigram
from ..models.counts import count_matrix
from ..models.losses import nll_from_counts
from .fitted import FittedModel

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


@partial(jax.jit, static_argnames=("apply", "chunk"))
def sequence_nll_sum(
    apply: Apply, params: Params, tokens_WxL: jax.Array, lengths_W: jax.Array, chunk: int = EVAL_CHUNK
) -> tuple[jax.Array, jax.Array]:
    """(Total NLL, number of positions) of all words (characters and ends), in one call."""

    def score(args):
        toks, lens = args
        return masked_nll_sum(apply(params, toks[:, :-1]), toks[:, 1:], lens)

    sums, counts = jax.lax.map(score, in_chunks(tokens_WxL, lengths_W, chunk, -1))
    return sums.sum(), counts.sum()


def sequence_nll_sums(
    model: FittedModel, tokens_WxL: np.ndarray, lengths_W: np.ndarray, progress: GroupProgress | None = None
) -> tuple[float, int]:
    """(Total NLL, positions) of padded words under a model: through its prefix tree
    (``prefixes.trie``) where its ModelDef has ``apply_trie``, else by its leaves
    (``prefixes.leaves``), padded; one compiled call per GROUP chunks.
    progress(done, total), if given, hears how many groups are scored."""
    apply_trie = getattr(getattr(model, "model_def", None), "apply_trie", None)
    if apply_trie is not None:
        row_len = max(TRIE_ROW, model.block_size)
        tr = prefixes.trie(tokens_WxL, lengths_W, row_len)
        rows = max(1, TRIE_ROWS * TRIE_ROW // row_len)
        arrays = [
            np.reshape(_whole(a, rows), (-1, rows, row_len))
            for a in (tr.ids, tr.depths, tr.ends, tr.parents, tr.counts, tr.words)
        ]
        return _in_groups(partial(_trie_group, apply_trie, model.params), arrays, progress), tr.positions
    lv = prefixes.leaves(tokens_WxL, lengths_W)
    chunks = [np.reshape(_whole(a, EVAL_CHUNK), (-1, EVAL_CHUNK, a.shape[1])) for a in (lv.tokens, lv.natural, lv.end)]
    return _in_groups(partial(_padded_group, model.apply, model.params), chunks, progress), lv.positions


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


def sequence_nll(
    apply: Apply, params: Params, tokens_WxL: jax.Array, lengths_W: jax.Array, chunk: int = EVAL_CHUNK
) -> jax.Array:
    """Mean NLL per position (characters and ends) of all words, in one call."""
    total, count = sequence_nll_sum(apply, params, tokens_WxL, lengths_W, chunk)
    return total / count


def table_nll(logits_VxV: jax.Array, xs: np.ndarray, ys: np.ndarray) -> jax.Array:
    """Mean NLL of pairs under a bigram logits table, via their count matrix."""
    if len(xs) == 0:
        raise MakemoreError("mean NLL of an empty set of pairs is undefined")
    counts = count_matrix(jnp.asarray(xs), jnp.asarray(ys), logits_VxV.shape[0])
    return nll_from_counts(jax.nn.log_softmax(logits_VxV, axis=-1), counts)


def split_nll(
    model: FittedModel,
    data: Dataset,
    splits: Sequence[str] | None = None,
    progress: SplitProgress | None = None,
) -> dict[str, float | None]:
    """Mean NLL of each split under a model (None for an empty split).

    Where the data is one process's part (data.hosts.SlicedDataset) each
    process sums its own words and the sums are added over the processes:
    every process must call this. A model with its own scoring (its
    ModelDef's split_nll, e.g. the n-grams) is scored by that; every other one
    by ``sequence_split_nll``, telling progress(split, done, total) if given.
    """
    own = getattr(model.model_def, "split_nll", None)
    return own(model, data, splits) if own else sequence_split_nll(model, data, splits, progress)


def sequence_split_nll(
    model: FittedModel,
    data: Dataset,
    splits: Sequence[str] | None = None,
    progress: SplitProgress | None = None,
) -> dict[str, float | None]:
    """split_nll through the model's table or its apply over the words, whatever the model."""
    if not data.local_only:
        return _split_nll_whole(model, data, splits, progress)
    splits = list(splits or ("train", "dev", "test"))
    sums = np.zeros((len(splits), 2), np.float64)  # (total NLL, positions) of each split, this process's part
    for i, split in enumerate(splits):
        if not data.words[split]:
            continue
        if model.table is not None:
            xs, ys = data.pairs(split)
            counts = count_matrix(jnp.asarray(xs), jnp.asarray(ys), model.table.shape[0])
            total = -(counts * jax.nn.log_softmax(model.table, axis=-1)).sum()
            sums[i] = float(total), len(xs)
        else:
            tokens, lengths = data.padded(split, model.block_size)
            sums[i] = sequence_nll_sums(model, tokens, lengths)
    return {s: float(t / c) if c else None for s, (t, c) in zip(splits, data.combine(sums))}


def _split_nll_whole(
    model: FittedModel,
    data: Dataset,
    splits: Sequence[str] | None = None,
    progress: SplitProgress | None = None,
) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for split in splits or ("train", "dev", "test"):
        if not data.words[split]:
            out[split] = None
        elif model.table is not None:
            out[split] = float(table_nll(model.table, *data.pairs(split)))
        else:
            tokens, lengths = data.padded(split, model.block_size)
            total, count = sequence_nll_sums(model, tokens, lengths, progress and partial(progress, split))
            out[split] = total / count
    return out


@partial(jax.jit, static_argnames=("apply", "chunk"))
def sequence_nll_per_word(
    apply: Apply, params: Params, tokens_WxL: jax.Array, lengths_W: jax.Array, chunk: int = EVAL_CHUNK
) -> jax.Array:
    """Total NLL of each word (its characters and its end), (W,) float32, in one call.

    The same chunked pass as ``sequence_nll``, summing each row apart.
    """

    def score(args):
        toks, lens = args
        nll_BxT, _ = masked_position_nll(apply(params, toks[:, :-1]), toks[:, 1:], lens)
        return nll_BxT.sum(axis=1)

    return jax.lax.map(score, in_chunks(tokens_WxL, lengths_W, chunk, -1)).reshape(-1)[: tokens_WxL.shape[0]]


def word_nll(model: FittedModel, words: Sequence[str]) -> np.ndarray:
    """Total NLL in nats of each word under a trained model: −log p(c1 … cn, end), shape (len(words),).

    The log-probability of a word is minus this; divided by len(word) + 1 it is
    the word's mean NLL per character, the figure ``split_nll`` averages.
    Raises MakemoreError for a character outside the vocabulary, or a word
    longer than a sequence model was built for. Bigram tables score words of
    any length, and so does a model with its own scoring (ModelDef.word_nll).
    """
    own = getattr(model.model_def, "word_nll", None)
    return (own or sequence_word_nll)(model, words)


def sequence_word_nll(model: FittedModel, words: Sequence[str]) -> np.ndarray:
    """word_nll through the model's table or its apply over the words, whatever the model."""
    if len(words) == 0:
        return np.zeros((0,), np.float32)
    apply: Apply
    params: Params
    if model.table is not None:
        width = max(len(w) for w in words) + 1
        apply, params = bigram.apply, {"W": model.table}
    else:
        width = model.block_size
        apply, params = model.apply, model.params
    tokens, lengths = encode_padded(words, model.vocab, width)
    # one compiled shape per power of two up to EVAL_CHUNK, so ten names do not pay for 512
    chunk = min(EVAL_CHUNK, 1 << (len(words) - 1).bit_length())
    return np.asarray(sequence_nll_per_word(apply, params, jnp.asarray(tokens), jnp.asarray(lengths), chunk))
