"""Padding-free batches: the drawn words laid end to end in rows of fixed width.

A padded batch gives every word block_size positions; names average 7 of 16,
so most of a padded step is spent on padding. A packed batch puts the words'
positions one after the other in a stream of ``capacity`` slots, cut into rows
of ``row_len`` slots (row_len >= the longest word + 1). A word may run from
one row into the next, so each row's queries see the keys of that row and the
one before it; a mask keeps every query to the earlier positions of its own
word, and positions restart at 0 at each word. Every real position therefore
sees exactly the context it sees in the padded batch, and the loss, the mean
NLL per character of the drawn words, is the same (float32 rounding apart).

The slots after the last word are idle: each is its own one-slot segment,
never seen by a real position and never counted in the loss. A batch whose
words need more than ``capacity`` slots cannot be packed; the trainer then
runs the padded batch instead (``fits`` says which), so the capacity only
trades speed, never the result.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class Packed(NamedTuple):
    """A packed batch, every array (rows, row_len): jax arrays from pack, numpy ones from pack_words."""

    inputs: jax.Array | np.ndarray  # int32 ids fed to the model
    targets: jax.Array | np.ndarray  # int32 ids to predict
    positions: jax.Array | np.ndarray  # int32 position of each slot within its word (0 = the start boundary)
    segments: jax.Array | np.ndarray  # int32 word of each slot; idle slots have their own ids, >= the batch size
    counted: jax.Array | np.ndarray  # bool, True on the real positions (the loss counts these)
    fits: jax.Array | np.bool_  # bool scalar: the words fit the capacity (else the arrays are not usable)


def pack(tokens_BxL: jax.Array, lengths_B: jax.Array, capacity: int, row_len: int) -> Packed:
    """Lay padded rows ``[0, c1 .. cn, 0, ...]`` (B, block_size + 1) end to end; traceable.

    Word b occupies lengths[b] + 1 slots (its start boundary and characters as
    inputs; its characters and end as targets). capacity is a multiple of
    row_len.
    """
    if capacity % row_len:
        raise ValueError(f"capacity {capacity} is not a multiple of the row length {row_len}")
    n_B = lengths_B.astype(jnp.int32) + 1
    ends_B = jnp.cumsum(n_B)
    starts_B = ends_B - n_B
    slot_N = jnp.arange(capacity, dtype=jnp.int32)
    counted_N = slot_N < ends_B[-1]
    # word of each slot: how many words end at or before it (idle slots clamp to the last word)
    word_N = jnp.minimum(jnp.searchsorted(ends_B, slot_N, side="right"), n_B.shape[0] - 1).astype(jnp.int32)
    pos_N = jnp.where(counted_N, slot_N - starts_B[word_N], 0)
    inputs_N = tokens_BxL[word_N, pos_N]
    targets_N = tokens_BxL[word_N, pos_N + 1]
    segments_N = jnp.where(counted_N, word_N, n_B.shape[0] + slot_N)
    rows = capacity // row_len
    shape = (rows, row_len)
    return Packed(
        inputs_N.reshape(shape),
        targets_N.reshape(shape),
        pos_N.reshape(shape),
        segments_N.reshape(shape),
        counted_N.reshape(shape),
        ends_B[-1] <= capacity,
    )


def capacity_for(lengths: np.ndarray, batch_size: int, row_len: int, sigmas: float = 5.0) -> int:
    """Slots for a batch of batch_size words drawn with replacement from words of these lengths.

    The mean total plus `sigmas` standard deviations (a batch rarely needs
    more; one that does is run padded), rounded up to whole rows, and never
    more than the padded batch's batch_size × row_len.
    """
    n = np.asarray(lengths, np.float64) + 1
    need = batch_size * n.mean() + sigmas * math.sqrt(batch_size) * n.std()
    rows = min(math.ceil(need / row_len), batch_size)
    return max(rows, 1) * row_len


def packed_nll_sum(logits_RxSxV: jax.Array, packed: Packed) -> tuple[jax.Array, jax.Array]:
    """(Sum of −log p(target) over the counted slots, their number): the padded batch's masked sums."""
    logp_RxSxV = jax.nn.log_softmax(logits_RxSxV, axis=-1)
    nll_RxS = -jnp.take_along_axis(logp_RxSxV, packed.targets[..., None], axis=-1)[..., 0]
    return jnp.where(packed.counted, nll_RxS, 0.0).sum(), packed.counted.sum()


def pack_words(tokens_WxL: np.ndarray, lengths_W: np.ndarray, row_len: int, rows_per_chunk: int) -> Packed:
    """A whole split packed on the host: arrays (chunks, rows_per_chunk, row_len), ``fits`` True.

    Words run from row to row within a chunk but never from one chunk into the
    next, so each chunk can be scored on its own (a word that would cross
    starts the next chunk; that chunk's tail stays idle).
    """
    n_W = np.asarray(lengths_W, np.int64) + 1
    word_of, pos, slot, size = _slots(n_W, row_len, rows_per_chunk)
    inputs, targets, positions = (np.zeros(size, np.int32) for _ in range(3))
    segments = (len(n_W) + np.arange(size)).astype(np.int32)  # idle: a segment each
    counted = np.zeros(size, bool)
    tokens = np.asarray(tokens_WxL)
    inputs[slot], targets[slot] = tokens[word_of, pos], tokens[word_of, pos + 1]
    positions[slot], segments[slot], counted[slot] = pos, word_of, True
    shape = (size // (rows_per_chunk * row_len), rows_per_chunk, row_len)
    return Packed(
        inputs.reshape(shape),
        targets.reshape(shape),
        positions.reshape(shape),
        segments.reshape(shape),
        counted.reshape(shape),
        np.bool_(True),
    )


def _slots(n_W: np.ndarray, row_len: int, rows_per_chunk: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(word, position in the word, slot) of every real position of words of n_W slots each, and the
    number of slots in all: whole chunks, no word crossing from one chunk into the next."""
    per_chunk = rows_per_chunk * row_len
    if len(n_W) and n_W.max() > row_len:
        raise ValueError(f"a word needs {int(n_W.max())} slots; rows hold {row_len}")
    ends = np.cumsum(n_W)
    first_slot = np.zeros(len(n_W), np.int64)  # where each word starts in the chunked slot space
    word, chunk = 0, 0
    while word < len(n_W):  # one pass per chunk, each a vectorised searchsorted
        before = ends[word - 1] if word else 0
        last = int(np.searchsorted(ends, before + per_chunk, side="right"))  # words word..last-1 fit
        first_slot[word:last] = chunk * per_chunk + (ends[word:last] - n_W[word:last] - before)
        word, chunk = last, chunk + 1
    word_of = np.repeat(np.arange(len(n_W)), n_W)
    pos = np.arange(int(n_W.sum())) - np.repeat(ends - n_W, n_W)
    return word_of, pos, first_slot[word_of] + pos, max(chunk, 1) * per_chunk


# ---- rows in fixed-size chunks, for lax.map over a whole split ----------------------------

EVAL_CHUNK = 512  # words per forward pass: bounds memory, whatever the split's size


def in_chunks(rows_WxL: jax.Array, fill_W: jax.Array, chunk: int, fill_value: float) -> tuple[jax.Array, jax.Array]:
    """Rows (W, L) and a per-row value (W,) padded to whole chunks: (n_chunks, chunk, L), (n_chunks, chunk).

    The padding rows are zeros and their per-row value is fill_value (a length
    of -1, a group of -1: whatever makes them count for nothing).
    """
    n_rows, width = rows_WxL.shape
    n_chunks = -(-n_rows // chunk)
    pad = n_chunks * chunk - n_rows
    rows = jnp.pad(rows_WxL, ((0, pad), (0, 0))).reshape(n_chunks, chunk, width)
    fill = jnp.pad(fill_W, (0, pad), constant_values=fill_value).reshape(n_chunks, chunk)
    return rows, fill
