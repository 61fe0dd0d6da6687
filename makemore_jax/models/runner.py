"""How a fitted model is run: the one interface that sampling, mixtures and evaluation use.

Every fitted model (counted, trained, or a mixture of them) hands out a
``Runner``: its parameters as its functions take them, and

- ``apply(params, idx_BxT) -> logits_BxTxV``: next-id logits at every
  position of id sequences (causal; idx[:, 0] the start boundary);
- ``decoder``: a ``Decoder`` that runs it one position at a time for
  sampling, ``init(params, config, n) -> state`` and
  ``step(params, state, token_N, t) -> (logits_NxV, state)``: a key/value
  cache, a carried state, an n-gram context, or a row of a table (then
  ``decoder.table`` gives the whole V×V table, and the sampler inverts each
  row once); ``recompute_decoder(apply)`` is the plain path beside it;
- ``scoring``: how evaluation scores it, the layout it prefers: ``"table"``
  (from the split's pair counts, V×V work), ``"trie"`` (every distinct prefix
  once, through ``apply_trie``), ``"leaves"`` (the split's distinct words,
  padded, through ``apply``) or ``"own"`` (its own ``split_nll`` /
  ``word_nll``, the n-gram's).

A model supplies only what it has; a Runner's unset fields default to the
general path. The table models build theirs in ``bigram.table_runner``, the
n-grams in ``ngram.model.runner``, the neural models through
``ModelDef.runner`` from their (apply, decode_init, decode_step, apply_trie),
and a mixture composes its members' runners (``mixture.Mixture.runner``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

if TYPE_CHECKING:
    from ..data.words import Dataset

Params = Any  # a model's parameters: a pytree (nested dicts) of arrays
State = Any  # a decoder's state: a pytree of arrays (a key/value cache, a carried state, the ids so far)
Apply = Callable[[Params, jax.Array], jax.Array]  # (params, ids_BxT) -> logits_BxTxV
ApplyTrie = Callable[[Params, jax.Array, jax.Array, jax.Array], jax.Array]  # (params, ids, depths, ends) -> logits
Scoring = Literal["table", "trie", "leaves", "own"]


class Decoder(NamedTuple):
    """How a model runs one position at a time (hashable: a static argument of the sampler's jit)."""

    init: Callable[[Params, Any, int], State]  # (params, the model's config: any its init reads, batch)
    step: Callable[[Params, State, jax.Array, jax.Array], tuple[jax.Array, State]]
    # For models whose next id depends on the current id alone: params -> logits_VxV.
    # The sampler then inverts each row of the table once, instead of every name's logits at every step.
    table: Callable[[Params], jax.Array] | None = None


@cache
def recompute_decoder(apply: Apply) -> Decoder:
    """The plain path: keep the ids so far (config.block_size of them), run apply on all of them, read position t."""

    def init(params, config, n):
        return jnp.zeros((n, config.block_size), jnp.int32)

    def step(params, buf_NxT, token_N, t):
        buf_NxT = buf_NxT.at[:, t].set(token_N)
        return jnp.take(apply(params, buf_NxT), t, axis=1), buf_NxT

    return Decoder(init, step)


@dataclass(frozen=True, eq=False)
class Runner:
    """A fitted model, ready to run (see the module docstring).

    params: what apply, decoder and apply_trie take (a table model's: its
    table). config: what decoder.init reads (a ModelConfig, a mixture's
    config; None where it reads nothing). block_size: the longest id sequence
    it was built for. any_length: its decoder and scoring go on past
    block_size (a table, an n-gram, a mixture of such). sample_len: how many
    characters a name may have when the caller sets no bound (None:
    block_size − 1). split_nll(data, splits) and word_nll(words): its own
    scoring, where the general one does not fit it.
    """

    params: Params
    apply: Apply
    decoder: Decoder
    config: Any
    block_size: int
    any_length: bool = False
    sample_len: int | None = None
    apply_trie: ApplyTrie | None = None
    split_nll: Callable[[Dataset, Sequence[str] | None], dict[str, float | None]] | None = None
    word_nll: Callable[[Sequence[str]], np.ndarray] | None = None

    @property
    def table(self) -> jax.Array | None:
        """The V×V next-id logits of a model whose next id depends on the current one alone; None otherwise."""
        return None if self.decoder.table is None else self.decoder.table(self.params)

    @property
    def scoring(self) -> Scoring:
        """The layout evaluation scores it by: its own, its table, its prefix tree, or its padded leaves."""
        if self.split_nll is not None:
            return "own"
        if self.decoder.table is not None:
            return "table"
        return "trie" if self.apply_trie is not None else "leaves"

    def sampler(self, fast: bool = True) -> tuple[Decoder, bool]:
        """(the decoder to sample with, whether it goes on past block_size).

        fast: its own decoder; else ``recompute_decoder(apply)``, bounded by
        the block (it holds block_size ids). A table's decoder reads one row:
        there is no slower path to check it against, so it is used either way.
        """
        if fast or self.decoder.table is not None:
            return self.decoder, self.any_length
        return recompute_decoder(self.apply), False

    def word_width(self, longest: int) -> int:
        """The padded width (ids per word, the start included) its words are scored at, the longest word
        having `longest` characters: its block; a table's, tied to no block, fits the longest word."""
        return longest + 1 if self.decoder.table is not None else self.block_size

    @property
    def longest_sample(self) -> int:
        """Characters a name may have where the caller sets no bound."""
        return self.block_size - 1 if self.sample_len is None else self.sample_len
