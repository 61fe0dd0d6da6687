"""Counting n-grams within a memory budget (models/ngram/spill.py): the same counts as counting in memory
whatever spills, the temporary files gone however counting ends, a full disk as one line, --memory's sizes."""

import errno
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from makemore_jax.data.words import Dataset, Vocabulary
from makemore_jax.errors import MakemoreError
from makemore_jax.models import ngram
from makemore_jax.models.ngram import counting, model, spill
from makemore_jax.seeding import seed_key
from makemore_jax.training.config import TrainConfig
from makemore_jax.training.trainer import new_model

from conftest import NAMES, ROOT, snapshot
from conftest import run_inprocess as run

TINY = 2**14  # bytes: pieces of 85 positions, runs of 512 entries in memory, many spills and blocks


@pytest.fixture(scope="module")
def names():
    words = open(NAMES, encoding="utf-8").read().split()
    return words, Vocabulary.from_words(words)


@pytest.fixture(scope="module")
def wide():
    """Words over 200 characters: V = 201, so keys of order >= 5 need int64 (201^5 > 2^31)."""
    rng = np.random.default_rng(0)
    chars = [chr(0x100 + i) for i in range(200)]
    words = ["".join(rng.choice(chars[: 20 + i % 180], size=rng.integers(1, 8))) for i in range(1500)]
    words += ["".join(chars[i : i + 3]) for i in range(0, 198)]  # every character occurs
    return words, Vocabulary.from_words(words)


class Spills:
    """write_run wrapped: what was written, and where."""

    def __init__(self, monkeypatch):
        self.paths = []
        real = spill.write_run

        def recorded(path, keys, counts):
            self.paths.append(path)
            real(path, keys, counts)

        monkeypatch.setattr(spill, "write_run", recorded)

    @property
    def directories(self) -> set:
        return {os.path.dirname(p) for p in self.paths}


# ---- keys and pieces --------------------------------------------------------------------------


@pytest.mark.parametrize("order", [1, 2, 3, 6])
def test_stream_keys_are_the_keys_of_the_rows(names, order):
    words, vocab = names
    stream = vocab.encode_stream(words[:3000])
    rows = counting.ngram_windows(stream, order)
    np.testing.assert_array_equal(
        spill.stream_keys(stream, order, vocab.size, np.int32), ngram.ngram_keys(rows, vocab.size)
    )


def test_stream_keys_in_int64_are_the_keys_of_the_rows(wide):
    words, vocab = wide
    stream = vocab.encode_stream(words)
    rows = counting.ngram_windows(stream, 6).astype(np.int64)
    expected = sum(rows[:, j] * vocab.size**j for j in range(6))
    assert expected.max() > 2**31  # the keys do overflow int32
    np.testing.assert_array_equal(spill.stream_keys(stream, 6, vocab.size, np.int64), expected)


def test_key_dtype_follows_the_size_of_the_keys():
    assert spill.key_dtype(27, 6) == np.int32 and spill.key_dtype(27, 7) == np.int64
    assert spill.key_dtype(27, 13) == np.int64 and spill.key_dtype(27, 14) is None


@pytest.mark.parametrize("most", [1, 7, 50, 10**6])
def test_word_pieces_cover_the_words_in_order_within_the_limit(names, most):
    words = names[0][:500]
    pieces = list(ngram.word_pieces(words, most))
    assert [w for p in pieces for w in p] == words
    for p in pieces:
        assert len(p) == 1 or sum(len(w) + 1 for w in p) <= most
    if most == 10**6:
        assert len(pieces) == 1


# ---- the same counts, whatever spills ---------------------------------------------------------


@pytest.mark.parametrize("order", range(1, 8))
def test_a_tiny_budget_spills_and_merges_to_the_counts_in_memory(names, order, tmp_path, monkeypatch):
    words, vocab = names
    words = words[:4000]
    spills = Spills(monkeypatch)
    got = spill.count_words(words, vocab, order, TINY, str(tmp_path))
    assert got == ngram.count_ngrams(words, vocab, order)
    assert got.counts.dtype == np.int32 and got.ngrams.dtype == np.int32
    if order >= 3:  # a few distinct unigrams and bigrams fit even this budget
        assert len(spills.paths) >= 3, "the budget should have forced several spills"
    assert os.listdir(tmp_path) == []  # the temporary directory is gone


@pytest.mark.parametrize("words", [[], ["a"], ["ab"] * 5000])
def test_lists_of_nothing_or_one_word_or_one_word_repeated(names, words, tmp_path):
    vocab = names[1]
    for order in (1, 4, 7):
        assert spill.count_words(words, vocab, order, TINY, str(tmp_path)) == ngram.count_ngrams(words, vocab, order)
    assert os.listdir(tmp_path) == []


def test_chunks_read_from_a_file_count_as_the_whole_list(names, tmp_path):
    words, vocab = names
    path = tmp_path / "words.txt"
    path.write_text("\n".join(words[:3000]) + "\n")
    spills = tmp_path / "spills"
    spills.mkdir()
    got = spill.count_chunks(ngram.read_word_chunks(str(path), 700), vocab, 5, TINY, str(spills))
    assert got == ngram.count_ngrams(words[:3000], vocab, 5)
    assert os.listdir(spills) == []


def test_merging_in_blocks_equals_one_sort(tmp_path):
    """Runs of random keys, merged a few entries at a time, against np.unique of them all."""
    rng = np.random.default_rng(1)
    budget = spill.Budget(2**12, 8)
    for _ in range(20):
        runs = []
        with spill.Runs(budget, np.int64, str(tmp_path)) as store:
            for _ in range(rng.integers(1, 6)):
                keys = np.unique(rng.integers(0, rng.integers(2, 400), size=rng.integers(1, 300)))
                counts = rng.integers(1, 5, size=len(keys)).astype(np.int32)
                runs.append((keys, counts))
                if rng.random() < 0.7:
                    store.spill(keys, counts)
                else:
                    store.in_memory.append((keys, counts))
            keys, counts = spill.merge_sources(store.sources(), int(rng.integers(1, 9)))
        all_keys = np.concatenate([k for k, _ in runs])
        expected, where = np.unique(all_keys, return_inverse=True)
        np.testing.assert_array_equal(keys, expected)
        np.testing.assert_array_equal(counts, np.bincount(where.ravel(), weights=np.concatenate([c for _, c in runs])))
    assert os.listdir(tmp_path) == []


def test_int64_keys_spill_to_the_counts_and_models_of_ranking(wide, tmp_path, monkeypatch):
    words, vocab = wide
    spills = Spills(monkeypatch)
    for order in (5, 6):
        in_memory = ngram.count_ngrams(words, vocab, order)  # the ranks path: the keys overflow int32
        got = spill.count_words(words, vocab, order, TINY, str(tmp_path))
        assert got == in_memory
        for by_keys, by_ranks in zip(ngram.all_levels(got, "keys"), ngram.all_levels(got, "ranks")):  # int64 keys
            for field in ("ngrams", "raw", "continuation", "suffix"):
                a, b = getattr(by_keys, field), getattr(by_ranks, field)
                np.testing.assert_array_equal(a, b, err_msg=field)
                assert a.dtype == b.dtype == np.int32
        for method in ngram.METHODS:
            _assert_same_params(
                ngram.build_params(ngram.all_levels(got), order, vocab.size, method),
                ngram.build_params(ngram.all_levels(in_memory), order, vocab.size, method),
            )
    assert len(spills.paths) >= 3 and os.listdir(tmp_path) == []


def test_keys_beyond_int64_are_counted_in_memory(wide, tmp_path, monkeypatch):
    words, vocab = wide
    spills = Spills(monkeypatch)
    assert spill.key_dtype(vocab.size, 9) is None
    assert spill.count_words(words[:300], vocab, 9, TINY, str(tmp_path)) == ngram.count_ngrams(words[:300], vocab, 9)
    assert spills.paths == []


def _assert_same_params(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert np.asarray(a[name]).dtype == np.asarray(b[name]).dtype, name
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


@pytest.mark.parametrize(
    "order,method", [(1, "add-k"), (3, "kn"), (5, "modified-kn"), (7, "modified-kn"), (6, "add-k")]
)
def test_a_model_counted_within_1M_is_the_model_counted_in_memory(names, order, method, tmp_path, monkeypatch):
    words, vocab = names
    monkeypatch.setattr(spill.tempfile, "tempdir", str(tmp_path))
    spills = Spills(monkeypatch)
    data = Dataset.build(words, seed_key(0, "split"))
    fields = dict(order=order, smoothing_method=method)
    budgeted = new_model(TrainConfig.create("ngram", **fields, memory="1M"), data)
    rows = ngram.words_to_ngrams(data.words["train"], vocab, order)
    expected = ngram.build_params(ngram.all_levels(ngram.count_ngram_rows(rows, vocab.size)), order, vocab.size, method)
    _assert_same_params(budgeted.params, expected)
    if order >= 5:
        assert spills.paths  # names.txt's 5-grams outgrow 1M
    assert os.listdir(tmp_path) == []


# ---- the temporary files, however counting ends -----------------------------------------------


@pytest.mark.parametrize("stop", [RuntimeError("boom"), KeyboardInterrupt()])
def test_the_temporary_directory_goes_when_counting_fails_midway(names, tmp_path, monkeypatch, stop):
    words, vocab = names
    spills = Spills(monkeypatch)
    real, calls = spill.piece_run, []

    def failing(*args):
        calls.append(1)
        if len(calls) == 40:  # well after the first spills
            raise stop
        return real(*args)

    monkeypatch.setattr(spill, "piece_run", failing)
    with pytest.raises(type(stop)):
        spill.count_words(words[:4000], vocab, 5, TINY, str(tmp_path))
    assert spills.paths and all(not os.path.exists(d) for d in spills.directories)
    assert os.listdir(tmp_path) == []


def test_the_temporary_directory_goes_when_interrupted_while_merging(names, tmp_path, monkeypatch):
    words, vocab = names
    spills = Spills(monkeypatch)

    def interrupted(self, block):
        raise KeyboardInterrupt

    monkeypatch.setattr(spill._FileRun, "read", interrupted)
    with pytest.raises(KeyboardInterrupt):
        spill.count_words(words[:4000], vocab, 5, TINY, str(tmp_path))
    assert spills.paths and os.listdir(tmp_path) == []


def _disk_full(path, keys, counts):
    with open(path, "wb") as f:
        f.write(b"\0" * 10)
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_is_one_line_that_names_the_directory(names, tmp_path, monkeypatch):
    words, vocab = names
    monkeypatch.setattr(spill, "write_run", _disk_full)
    with pytest.raises(MakemoreError) as err:
        spill.count_words(words[:4000], vocab, 5, TINY, str(tmp_path))
    message = str(err.value)
    assert len(message.splitlines()) == 1 and str(tmp_path) in message and "--memory" in message
    assert "no space left" in message
    assert os.listdir(tmp_path) == []


def test_train_on_a_full_disk_exits_2_with_one_line_and_leaves_the_work_directory(names, tmp_path, capsys, monkeypatch):
    words, _ = names
    small = tmp_path / "small.txt"
    small.write_text("\n".join(words[:2000]) + "\n")
    d = str(tmp_path / "w")
    code, _, err = run(
        capsys, "train", "--type", "ngram", "--order", "2", "-i", str(small), "-o", d, "--num-samples", "0"
    )
    assert code == 0, err
    before = snapshot(d)
    spill_dir = tmp_path / "tmp"
    spill_dir.mkdir()
    monkeypatch.setattr(spill.tempfile, "tempdir", str(spill_dir))
    monkeypatch.setattr(spill, "write_run", _disk_full)
    code, out, err = run(
        capsys, "train", "--type", "ngram", "--order", "6", "--memory", "1M", "-o", d, "--num-samples", "0"
    )
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("makemore train: error: no space left in ") and str(spill_dir) in lines[0]
    assert snapshot(d) == before
    assert os.listdir(spill_dir) == []


# ---- --memory ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec,expected",
    [
        ("512M", 512 * 2**20),
        ("2G", 2 * 2**30),
        ("2g", 2 * 2**30),
        ("1.5G", 3 * 2**29),
        ("2GiB", 2 * 2**30),
        ("768MB", 768 * 2**20),
        ("1048576", 2**20),
        ("4096K", 2**22),
        (" 1T ", 2**40),
        (2**21, 2**21),
    ],
)
def test_memory_sizes(spec, expected):
    assert spill.memory_bytes(spec) == expected


def test_memory_shares_and_the_default_follow_physical_memory(monkeypatch):
    monkeypatch.setattr(spill, "physical_memory", lambda: 16 * 2**30)
    assert spill.memory_bytes("80%") == int(16 * 2**30 * 0.8)
    assert spill.memory_bytes("") == spill.memory_bytes(0) == spill.default_memory() == 4 * 2**30
    monkeypatch.setattr(spill, "physical_memory", lambda: None)
    assert spill.default_memory() == spill.FALLBACK_MEMORY
    with pytest.raises(MakemoreError, match="physical memory is unknown"):
        spill.memory_bytes("50%")


def test_physical_memory_is_what_the_os_says():
    total = spill.physical_memory()
    assert total is None or total == os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.parametrize("spec", ["abc", "12X", "-1G", "1e9", "G", "150%", "0%", "100", "0.5M", "2 G B"])
def test_bad_memory_sizes_are_refused(spec):
    with pytest.raises(MakemoreError, match="memory"):
        spill.memory_bytes(spec)


def test_memory_is_a_resource_not_saved_with_the_model():
    cfg = TrainConfig.create("ngram", order=4, memory="2G").validate()
    assert cfg.memory == "2G" and cfg == TrainConfig.create("ngram", order=4)  # it makes no other model
    saved = cfg.to_json()
    assert "memory" not in saved
    assert TrainConfig.from_json(json.loads(json.dumps(saved))).memory == ""
    with pytest.raises(MakemoreError, match="memory must be a size"):
        TrainConfig.create("ngram", memory="lots").validate()


@pytest.mark.parametrize(
    "args,message",
    [
        (
            ["--type", "ngram", "--memory", "lots"],
            "memory must be a size such as 512M, 2G, 80% or a number of bytes, got 'lots'",
        ),
        (["--type", "ngram", "--memory", "100K"], "memory 100K is too small: counting needs at least 1M"),
        (["--type", "ngram", "--memory", "120%"], "a share of physical memory must be in (0, 100]%"),
        (["--type", "mlp", "--memory", "1G"], "memory: the mlp model does not take this setting (only for ngram)"),
        (["--memory", "1G"], "memory: the bigram model does not take this setting (only for ngram)"),
    ],
)
def test_bad_memory_flags_are_one_line_and_exit_2(tmp_path, capsys, args, message):
    d = tmp_path / "w"
    code, out, err = run(capsys, "train", *args, "-o", str(d))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in err, err
    assert not d.exists()


# ---- progress -----------------------------------------------------------------------------------


def test_progress_shows_only_after_two_seconds_then_twice_a_second_at_most():
    now, shown = [0.0], []
    tick = spill.Ticker(shown.append, clock=lambda: now[0])
    for t in (0.5, 1.9, 2.0, 2.2, 2.6, 2.7, 3.2):
        now[0] = t
        tick(lambda: f"at {now[0]}")
    assert shown == ["at 2.0", "at 2.6", "at 3.2"]
    spill.Ticker(None)(lambda: 1 / 0)  # no callback: the text is never built


def test_a_long_count_reports_its_phases(names, monkeypatch):
    words, vocab = names
    now = [0.0]

    def clock():
        now[0] += 1.0  # every look at the clock: a second later
        return now[0]

    monkeypatch.setattr(spill.time, "monotonic", clock)
    shown = []
    spill.count_words(words[:4000], vocab, 4, TINY, progress=shown.append)
    assert any(s.startswith("counting 4-grams: ") and "positions" in s for s in shown), shown
    assert any(s.startswith("merging ") for s in shown), shown


def test_the_trainer_counter_passes_progress_on_and_is_silent_without(names, monkeypatch, capsys):
    from makemore_jax.training.trainer import Counter

    words, vocab = names
    now = [0.0]
    monkeypatch.setattr(spill.time, "monotonic", lambda: now.__setitem__(0, now[0] + 1.0) or now[0])
    expected = ngram.count_ngrams(words[:4000], vocab, 4)
    shown = []
    assert Counter(progress=shown.append).ngram_words(words[:4000], vocab, 4, TINY) == expected
    assert any(s.startswith("counting 4-grams: ") for s in shown)
    assert Counter().ngram_words(words[:4000], vocab, 4, TINY) == expected
    assert capsys.readouterr() == ("", "")


# ---- scoring long lists -------------------------------------------------------------------------


@pytest.mark.parametrize("order,method", [(1, "add-k"), (3, "modified-kn"), (6, "kn")])
def test_a_long_list_is_scored_by_its_distinct_contexts_to_the_same_nll(names, order, method, monkeypatch):
    words, vocab = names
    params = ngram.fit(words[:20000], vocab, order, method)
    lists = [words[20000:], words[:3000]]
    whole = model.nll_sums_per_list(params, lists, vocab)  # one call: float32 sums on the device
    monkeypatch.setattr(model, "SCORE_ROWS", 1000)  # every list is long now
    distinct = model.nll_sums_per_list(params, lists, vocab)
    np.testing.assert_array_equal(distinct[:, 1], whole[:, 1])
    np.testing.assert_allclose(distinct[:, 0], whole[:, 0], rtol=2e-5)  # float32 sums of ~200,000 terms
    for words_i, (total, _) in zip(lists, distinct):  # every position's own −log p, added in float64
        rows = ngram.words_to_ngrams(words_i, vocab, order)
        logp = np.asarray(ngram.next_logprobs(params, rows[:, :-1]))
        assert total == pytest.approx(-logp[np.arange(len(rows)), rows[:, -1]].astype(np.float64).sum(), rel=1e-7)


def test_a_long_split_is_counted_within_the_models_memory_setting(names, monkeypatch):
    """split_nll of a long split counts its n-grams within the run's --memory, not the default budget."""
    words, vocab = names
    data = Dataset.build(words[:6000], seed_key(0, "split"))
    fields = {"order": 3, "smoothing_method": "kn"}
    budgets = []
    real = model.count_words
    monkeypatch.setattr(
        model, "count_words", lambda w, v, order, memory: (budgets.append(memory), real(w, v, order, memory))[1]
    )
    monkeypatch.setattr(model, "SCORE_ROWS", 1000)  # every split is long now
    for memory, expected in (("1M", 2**20), ("", spill.default_memory())):
        budgets.clear()
        fitted = new_model(TrainConfig.create("ngram", **fields, memory=memory), data)
        nll = model.split_nll(fitted, data)
        assert budgets == [expected] * 3 and all(0 < v < 5 for v in nll.values())


# ---- several devices ------------------------------------------------------------------------------


def test_counting_over_four_devices_gives_the_table_of_one():
    """Dense (order 2) and sparse (order 4) tables over four simulated devices equal the budgeted count's."""
    script = f"""
import json
from makemore_jax.data.words import Vocabulary
from makemore_jax.models import ngram
from makemore_jax.training import parallel
words = open({NAMES!r}).read().split()[:3000]
vocab = Vocabulary.from_words(words)
four = parallel.DataParallel.over(parallel.select_devices("cpu", 4))
print(json.dumps({{str(n): ngram.count_ngrams(words, vocab, n)
                          == parallel.count_ngram_words(words, vocab, n, 2**14, four)
                   for n in (2, 4)}}))
"""
    env = {
        **os.environ,
        "PYTHONPATH": ROOT,
        "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=4".strip(),
        "JAX_PLATFORMS": "cpu",
    }
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"2": True, "4": True}
