import os

import pytest

from makemore_jax import data
from makemore_jax.counts import count_matrix

def run_inprocess(capsys, *args):
    """Run `makemore ARGS` in this process; (exit code, stdout, stderr)."""
    from makemore_jax.cli import main

    try:
        code = main(list(args))
    except SystemExit as exit:
        code = exit.code
    out, err = capsys.readouterr()
    return code, out, err


def snapshot(d):
    """Every file of a directory, name -> bytes."""
    return {name: open(os.path.join(d, name), "rb").read() for name in sorted(os.listdir(d))}


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
