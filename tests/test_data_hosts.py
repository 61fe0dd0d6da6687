"""Cutting a word list into per-process parts, and the dataset a process builds from its part.

The two-process runs themselves are in test_sharding; these need one process.
"""

import hashlib

import jax
import numpy as np
import pytest

from makemore_jax.data import hosts as hostdata
from makemore_jax.data.words import Dataset, parse_words, read_words
from makemore_jax.seeding import seed_key

FILES = {
    "lf": b"emma\nolivia\nava\nisabella\nsophia\n",
    "crlf, no final newline": b"emma\r\nolivia\r\nava\r\n\r\nisabella\r\nsophia",
    "lone cr in the middle": b"emma\nolivia\rava\nisabella\n",
    "bom and blank lines": "\ufeffemma\n\n  olivia \n\n\nava\n".encode(),
    "lines longer than a read block": b"abcdefghijklmnopqrst\nbb\nabcdefghijk\n",
    "no newline at all": b"emma olivia ava",
    "empty": b"",
}


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("count", [1, 2, 3, 7, 40])
def test_parts_are_whole_lines_that_cover_the_file_once(tmp_path, monkeypatch, name, count):
    monkeypatch.setattr(hostdata, "BLOCK", 4)  # a line's start is looked for across several reads
    raw = FILES[name]
    path = tmp_path / "words.txt"
    path.write_bytes(raw)
    parts = [hostdata.read_part(str(path), i, count) for i in range(count)]
    assert b"".join(p for p, _, _ in parts) == raw
    assert [s for _, s, _ in parts] == [0] + [e for _, _, e in parts[:-1]]  # each part starts where the last ended
    for part, start, end in parts:
        assert len(part) == end - start
        assert start in (0, len(raw)) or raw[start - 1 : start] == b"\n"  # a cut is always just after a line break
    if raw.strip():  # the words of the parts, in order, are the words of the file
        words = [
            w for i, (p, s, _) in enumerate(parts) for w in parse_words(p, allow_empty=True, byte_order_mark=s == 0)
        ]
        assert words == parse_words(raw)


def test_a_byte_order_mark_counts_only_at_the_start_of_the_file():
    assert parse_words("\ufeffab\n".encode()) == ["ab"]
    assert parse_words("\ufeffab\n".encode(), byte_order_mark=False) == ["\ufeffab"]
    assert parse_words(b"\n \n", allow_empty=True) == []


def test_the_sha256_is_the_whole_file_s(tmp_path):
    path = tmp_path / "w.txt"
    raw = b"x\n" * (1 << 20)  # more than one read block
    path.write_bytes(raw)
    assert hostdata.file_sha256(str(path)) == hashlib.sha256(raw).hexdigest()


@pytest.mark.parametrize("devices", [1, 3])
def test_one_process_builds_the_split_of_a_whole_dataset(devices):
    from conftest import NAMES as names_path

    key = seed_key(4, "split")
    whole = Dataset.build(read_words(names_path), key, (0.8, 0.1, 0.1))
    part = hostdata.build(names_path, key, (0.8, 0.1, 0.1), devices)
    assert jax.process_count() == 1
    assert part.local_only and part.vocab == whole.vocab and part.max_word_len == whole.max_word_len
    assert part.words == whole.words and part.sizes == whole.sizes
    for split in ("train", "dev", "test"):
        np.testing.assert_array_equal(part.rows[split], np.arange(whole.sizes[split]))
    # one process holds every training row, in row order, in a block the devices divide
    np.testing.assert_array_equal(part.row_of, np.arange(whole.sizes["train"]))
    assert part.held_per_process % devices == 0 and part.held_per_process >= whole.sizes["train"]
    assert part.parsed == (32033, 0, 228145)
