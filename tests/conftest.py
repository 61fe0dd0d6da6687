import os

import pytest

from makemore_jax.data import words as data
from makemore_jax.models.counts import count_matrix

def run_inprocess(capsys, *args):
    """Run `makemore ARGS` in this process; (exit code, stdout, stderr)."""
    from makemore_jax.cli.commands import main

    try:
        code = main(list(args))
    except SystemExit as exit:
        code = exit.code
    out, err = capsys.readouterr()
    return code, out, err


def snapshot(d):
    """Every file of a directory, name -> bytes."""
    return {name: open(os.path.join(d, name), "rb").read() for name in sorted(os.listdir(d))}


def first_names(tmp_path_factory, n: int) -> str:
    """A file of the first n names of names.txt, for tests that train small models quickly."""
    path = tmp_path_factory.mktemp("data") / "small.txt"
    with open(NAMES) as f:
        path.write_text("".join(f.readline() for _ in range(n)))
    return str(path)


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
