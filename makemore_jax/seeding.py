"""One seed, independent streams: split, init, batch order, samples, dropout, evaluation words.

Each purpose gets ``fold_in(key(seed), tag)``, so changing e.g. the number of
samples never shifts the data split or the initialisation.
"""

from __future__ import annotations

import jax

_TAGS = {"split": 0, "init": 1, "batches": 2, "sample": 3, "dropout": 4, "eval": 5}
MAX_SEED = 2**32 - 1


def seed_key(seed: int, purpose: str) -> jax.Array:
    """The key for one purpose ('split', 'init', 'batches', 'sample', 'dropout' or 'eval') of a seed."""
    return jax.random.fold_in(jax.random.key(seed), _TAGS[purpose])
