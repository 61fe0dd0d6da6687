"""One seed, independent streams: split, init, batch order, samples, dropout, evaluation words.

Each purpose gets ``fold_in(key(seed), tag)``, so changing e.g. the number of
samples never shifts the data split or the initialisation.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

_TAGS = {"split": 0, "init": 1, "batches": 2, "sample": 3, "dropout": 4, "eval": 5}
MAX_SEED = 2**32 - 1


def seed_key(seed: int, purpose: str) -> jax.Array:
    """The key for one purpose ('split', 'init', 'batches', 'sample', 'dropout' or 'eval') of a seed."""
    return jax.random.fold_in(jax.random.key(seed), _TAGS[purpose])


def permutation(key: jax.Array, n: int) -> np.ndarray:
    """``jax.random.permutation(key, n)`` as an int64 numpy array, the same order, without XLA's sort.

    JAX shuffles by sorting on fresh random 32-bit keys, ceil(3 ln n / ln(2^32 − 1))
    rounds, stably. Here each round draws the same bits and sorts on the host:
    one uint64 per position, bits above the position, so the sort is stable by
    construction. XLA:CPU's sort took 7 s for 4M words; this takes under a second.
    """
    rounds = int(np.ceil(3 * np.log(max(1, n)) / np.log(np.iinfo(np.uint32).max)))
    order = np.arange(n, dtype=np.int64)
    position = np.arange(n, dtype=np.uint64)
    for _ in range(rounds):
        key, sub = jax.random.split(key)
        bits = np.asarray(jax.random.bits(sub, (n,), jnp.uint32)).astype(np.uint64)
        ranked = np.sort((bits << np.uint64(32)) | position)
        order = order[(ranked & np.uint64(0xFFFFFFFF)).astype(np.int64)]
    return order
