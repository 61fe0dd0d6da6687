import os

import pytest

from makemore_jax import data
from makemore_jax.counts import count_matrix

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMES = os.path.join(ROOT, "names.txt")


@pytest.fixture(scope="session")
def names():
    return data.read_words(NAMES)


@pytest.fixture(scope="session")
def vocab(names):
    return data.Vocabulary.from_words(names)


@pytest.fixture(scope="session")
def pairs(names, vocab):
    return data.bigram_pairs(names, vocab)


@pytest.fixture(scope="session")
def counts(pairs, vocab):
    xs, ys = pairs
    return count_matrix(xs, ys, vocab.size)
