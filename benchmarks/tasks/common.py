"""names.txt as the lecture sees it (words, stoi) and as makemore_jax sees it (id pairs)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from makemore_jax.data import words as data

from ..context import Context

QUICK_WORDS = 300  # --quick: the first 300 names (about 2,000 pairs)


@dataclass(frozen=True)
class BigramData:
    words: list[str]
    vocab: data.Vocabulary
    stoi: dict[str, int]  # the lecture's table, "." for the boundary
    xs_N: np.ndarray  # int32 previous ids
    ys_N: np.ndarray  # int32 next ids

    @property
    def V(self) -> int:
        return self.vocab.size


def load_bigram_data(ctx: Context) -> BigramData:
    """All of the bundled names.txt (first QUICK_WORDS names with --quick), vocabulary from all."""
    words = data.read_words(data.bundled_names_path())
    vocab = data.Vocabulary.from_words(words)
    if ctx.quick:
        words = words[:QUICK_WORDS]
    if data.BOUNDARY in vocab.chars:
        raise ValueError("the lecture's '.' boundary is also a character of names.txt")
    stoi = {ch: i for i, ch in enumerate(vocab.chars, start=1)}
    stoi[data.BOUNDARY] = data.BOUNDARY_ID
    xs_N, ys_N = data.bigram_pairs(words, vocab)
    return BigramData(words, vocab, stoi, xs_N, ys_N)
