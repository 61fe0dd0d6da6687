"""Write a large word list for the scaling runs: words sampled from the bigram counts of names.txt.

    python -m benchmarks.make_words 1000000 /tmp/words-1m.txt [--seed 0]

The same count and seed give the same file, byte for byte, on any machine
(numpy's PCG64 stream, one uniform draw per character, no JAX). The words
look like names (a 1M-word list is about 6 MB, no word longer than names.txt's 15 characters) and use names.txt's 26
letters, so every model sees the vocabulary it sees on names.txt. Files are
not committed: the `scaling` task writes what it needs into a temporary folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from makemore_jax.errors import MakemoreError
from makemore_jax.store.userfile import check_user_file, write_user_file

NAMES = Path(__file__).resolve().parent.parent / "names.txt"
BATCH = 1 << 20  # words drawn at once
MAX_LEN = 15  # the longest name in names.txt: longer draws are dropped, so models keep names.txt's shape


def bigram_cdf(names_path: Path = NAMES) -> tuple[np.ndarray, list[str]]:
    """The row-wise cumulative bigram probabilities of the names (27×27, '.' = 0) and the alphabet."""
    words = names_path.read_text(encoding="utf-8").split()
    alphabet = sorted(set("".join(words)))
    index = {c: i + 1 for i, c in enumerate(alphabet)}
    counts = np.zeros((len(alphabet) + 1,) * 2, np.int64)
    for w in words:
        ids = [0] + [index[c] for c in w] + [0]
        np.add.at(counts, (ids[:-1], ids[1:]), 1)
    cdf = np.cumsum(counts / counts.sum(1, keepdims=True), axis=1)
    cdf[:, -1] = 1.0
    return cdf, alphabet


def sample_words(n: int, seed: int = 0, names_path: Path = NAMES) -> bytes:
    """n words, one per line, as UTF-8 bytes: each a walk of the bigram chain from '.' back to '.'."""
    cdf, alphabet = bigram_cdf(names_path)
    letters = np.frombuffer(("\n" + "".join(alphabet)).encode("ascii"), np.uint8)  # id 0 ends a line
    rng = np.random.Generator(np.random.PCG64(seed))
    out, have = [], 0
    while have < n:
        b = BATCH
        ids = np.zeros((b, MAX_LEN + 1), np.int8)  # characters, then the end (0)
        state = np.zeros(b, np.int64)
        for t in range(MAX_LEN + 1):
            u = rng.random(b)
            nxt = (cdf[state] < u[:, None]).sum(1)
            if t:
                nxt[state == 0] = 0  # an ended word stays ended
            ids[:, t] = nxt
            state = nxt
        good = (ids[:, 0] != 0) & (ids[:, MAX_LEN] == 0)  # not empty, and ended within MAX_LEN characters
        ids = ids[good][: n - have]
        have += len(ids)
        ended = np.maximum.accumulate(ids == 0, axis=1)  # at and after the first end
        first_end = np.concatenate([np.zeros((len(ids), 1), bool), ended[:, :-1]], axis=1)
        out.append(letters[ids[~first_end]].tobytes())  # each word's characters and its end, row by row
    return b"".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.make_words", description=__doc__.splitlines()[0])
    p.add_argument("count", type=int, help="how many words")
    p.add_argument("output", help="the file to write")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.count < 1:
        print("make_words: count must be >= 1", file=sys.stderr)
        return 2
    try:  # checked before the words are made, written as every user-named file is (never over a device or FIFO)
        check_user_file(args.output, "output")
        write_user_file(args.output, sample_words(args.count, args.seed), "output")
    except MakemoreError as err:
        print(f"make_words: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
