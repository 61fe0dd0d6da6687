"""The sampler keeps its promises (issue 23): bounded chunks that give the names of one batch, --min-len that
holds, a report whose "new" is --new-only's, --unique / --new-only that keep the plain names and stay
prefix-stable, and a Python API that refuses what the command line refuses, in one line."""

import re
import sys
import warnings

import numpy as np
import pytest

import makemore_jax
from makemore_jax import sampling
from makemore_jax.errors import MakemoreError
from makemore_jax.models import bigram
from makemore_jax.sampling import generate, name_chunks, plan, sample_ids, steering
from makemore_jax.seeding import seed_key

from conftest import first_names, run_inprocess

SEEDS = (0, 1, 2, 3)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return first_names(tmp_path_factory, 2000)


def _train(tmp_path_factory, small, name, *flags):
    d = str(tmp_path_factory.mktemp("promises") / name)
    assert _main("train", "-i", small, "-o", d, "-q", "--num-samples", "0", *flags) == 0
    return d


def _main(*args) -> int:
    """`makemore ARGS` in this process, outside capsys (module fixtures): the exit code."""
    from makemore_jax.cli.commands import main

    try:
        return main(list(args))
    except SystemExit as exit:
        return exit.code


@pytest.fixture(scope="module")
def counts_dir(tmp_path_factory, small):
    return _train(tmp_path_factory, small, "counts", "--type", "counts")


@pytest.fixture(scope="module")
def ngram_dir(tmp_path_factory, small):
    return _train(tmp_path_factory, small, "ng4", "--type", "ngram", "--order", "4")


@pytest.fixture(scope="module")
def transformer_dir(tmp_path_factory, small):
    return _train(
        tmp_path_factory,
        small,
        "tf",
        "--type",
        "transformer",
        "--steps",
        "20",
        "--n-layer",
        "1",
        "--n-head",
        "2",
        "--n-embd",
        "16",
    )


@pytest.fixture(scope="module")
def stuck_dir(tmp_path_factory):
    """Counts without smoothing of 'ab' and 'cde': after 'ab' only the end has mass, so --min-len 3 sticks there."""
    words = tmp_path_factory.mktemp("stuck") / "words.txt"
    words.write_text("ab\ncde\n" * 10)
    return _train(tmp_path_factory, str(words), "stuck", "--type", "counts", "--smoothing", "0")


# ---- 1. streaming in bounded chunks: the names of one batch --------------------------------------


@pytest.mark.parametrize("which", ["counts_dir", "ngram_dir", "transformer_dir"])
def test_chunks_give_exactly_the_names_of_one_batch(request, monkeypatch, which):
    """Names drawn 7 at a time (chunk boundaries at 7, 14, ...) are the names of one call of sample_ids for all
    of them, through name_chunks, Model.sample and the command line (which prints each chunk as it comes)."""
    d = request.getfixturevalue(which)
    model = makemore_jax.load(d)
    n, key = 23, seed_key(5, "sample")
    steer = steering(model.vocab, "a", 2)
    decoder, config, params, max_len = plan(model.fitted, None)
    ids, _ = sample_ids(decoder, config, params, key, n, max_len, np.float32(1.0), 0, steer)
    one_batch = sampling.decode_rows(ids, model.vocab)

    monkeypatch.setattr(sampling, "CHUNK_MAX", 7)
    chunks = [names for names, _ in name_chunks(model.fitted, key, n, steer=steer)]
    assert [len(c) for c in chunks] == [7, 7, 7, 2]
    assert sum(chunks, []) == one_batch
    assert model.sample(n, seed=5, prefix="a", min_len=2) == one_batch
    assert model.sample(9, seed=5, prefix="a", min_len=2) == one_batch[:9]  # the first names do not move

    class Recorder:
        """stdout that remembers what was flushed when."""

        def __init__(self):
            self.lines, self.flushed = [], []

        def write(self, text):
            self.lines += text.splitlines()

        def flush(self):
            self.flushed.append(len(self.lines))

    out = Recorder()
    monkeypatch.setattr(sys, "stdout", out)
    code = _main("sample", "-o", d, "-n", str(n), "--seed", "5", "--prefix", "a", "--min-len", "2", "--no-report")
    assert code == 0 and out.lines == one_batch
    assert out.flushed[:4] == [7, 14, 21, 23]  # printed chunk by chunk, not all at the end


def test_a_huge_n_is_drawn_a_bounded_chunk_at_a_time(transformer_dir):
    model = makemore_jax.load(transformer_dir)
    stream = model.sample_chunks(10**7, seed=1)
    first = next(stream)  # the first chunk comes without the other ten million being drawn
    stream.close()
    assert 0 < len(first) <= sampling.CHUNK_MAX and first == model.sample(len(first), seed=1)
    decoder, config, params, max_len = plan(model.fitted, None)
    size = sampling.chunk_size(decoder, config, params, max_len, model.vocab.size)
    assert size == len(first)
    long = sampling.chunk_size(bigram.DECODER, None, {"W": np.zeros((27, 27))}, sampling.MAX_SAMPLE_LEN, 27)
    assert long * 8 * sampling.MAX_SAMPLE_LEN <= sampling.CHUNK_BYTES  # ids and uniforms of a chunk stay bounded


@pytest.mark.parametrize(
    "flags, message",
    [
        (["-n", "99999999999999999999"], "at most 4,294,967,296 names can be drawn with one seed"),
        (["-n", str(2**32 + 1)], "32-bit unsigned integer"),
        (["--max-len", "3000000000"], "maximum length must be at most 10,000 characters, got 3,000,000,000"),
    ],
)
def test_sizes_past_the_bounds_are_refused_in_one_line_before_any_work(capsys, tmp_path, flags, message):
    missing = str(tmp_path / "not-there")  # checked before the work directory is even read
    code, out, err = run_inprocess(capsys, "sample", "-o", missing, *flags)
    assert code == 2 and out == "" and message in err and err.count("\n") == 1 and "Traceback" not in err


def test_a_huge_temperature_draws_quietly(capsys, counts_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a numpy or JAX overflow warning fails the test
        code, out, err = run_inprocess(
            capsys, "sample", "-o", counts_dir, "-n", "5", "-t", "1e308", "--top-k", "3", "--no-report"
        )
    assert code == 0 and err == "" and len(out.splitlines()) == 5
    model = makemore_jax.load(counts_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert model.sample(5, temperature=1e308) == model.sample(5, temperature=sampling.TEMPERATURE_CAP)


def test_a_mixture_of_tables_honours_max_len(counts_dir, tmp_path_factory, small):
    """Two table models mixed sample past the shortest block (row 10: --max-len 40 was lowered to 15)."""
    bigram = makemore_jax.load(_train(tmp_path_factory, small, "bigram", "--steps", "5"))
    counts = makemore_jax.load(counts_dir)
    from makemore_jax.models.mixture import Mixture

    mix = makemore_jax.api.Model(Mixture((counts.fitted, bigram.fitted), np.array([0.5, 0.5])))
    block = mix.fitted.block_size
    names = mix.sample(300, seed=0, max_len=block + 25, temperature=4.0)
    assert block - 1 < max(map(len, names)) <= block + 25
    assert len(max(mix.sample(300, seed=0, temperature=4.0), key=len)) <= block - 1  # the default stays the block's


# ---- 2. --min-len holds, or the request is refused ------------------------------------------------


def test_min_len_is_refused_where_the_model_cannot_make_such_names(capsys, stuck_dir):
    code, out, err = run_inprocess(capsys, "sample", "-o", stuck_dir, "-n", "2", "--min-len", "4")
    assert code == 2 and out == ""
    assert "the model gives no name of at least 4 characters" in err and err.count("\n") == 1
    code, out, err = run_inprocess(capsys, "sample", "-o", stuck_dir, "-n", "6", "--min-len", "2", "--no-report")
    assert code == 0 and set(out.split()) <= {"ab", "cde"}


@pytest.mark.parametrize("seed", SEEDS)
def test_stuck_names_are_skipped_in_stream_order(stuck_dir, seed):
    """'ab' cannot grow to 3 characters: those names are left out, the others keep their order in the stream."""
    model = makemore_jax.load(stuck_dir)
    steer = steering(model.vocab, min_len=3)
    raw, _ = generate(model.fitted, seed_key(seed, "sample"), 60, steer=steer)
    assert "ab" in raw  # the draw did stick
    expected = [name for name in raw if len(name) >= 3][:8]
    assert model.sample(8, seed=seed, min_len=3) == expected == ["cde"] * 8


# ---- 3. the report: "new" is what --new-only means; dev counted; singular and plural --------------

REPORT = re.compile(
    r"(\d+) of (\d+) samples? (?:is|are) in the training set, (\d+) in the dev set, (\d+) in the test "
    r"set, (\d+) (?:is|are) new"
)


def test_the_report_counts_dev_and_new_means_in_no_split(capsys, ngram_dir):
    model = makemore_jax.load(ngram_dir)
    code, out, err = run_inprocess(capsys, "sample", "-o", ngram_dir, "-n", "400", "-t", "0.6", "--seed", "1")
    names = out.split("\n")[:-1]
    found = REPORT.search(err)
    assert code == 0 and found, err
    train, total, dev, test, new = map(int, found.groups())
    assert total == 400 and train + dev + test + new == 400
    assert new == sum(name not in model.known_words() for name in names)  # --new-only's meaning
    assert dev > 0 and new > 0, err  # an order-4 model's cold samples are often known words, of every split


def test_singular_where_there_is_one(capsys, counts_dir, stuck_dir):
    code, out, err = run_inprocess(capsys, "sample", "-o", counts_dir, "-n", "1")
    assert code == 0 and re.search(r"\d of 1 sample is in the training set, .* (is|are) new", err)
    code, out, err = run_inprocess(capsys, "sample", "-o", stuck_dir, "-n", "5", "--unique", "--min-len", "3")
    assert code == 2 and out == "cde\n"
    assert "found only 1 unique name of at least 3 characters in" in err


# ---- 4. --unique and --new-only keep the plain names and stay prefix-stable -----------------------


def _first_qualifying(stream, n, keep):
    seen, out = set(), []
    for name in stream:
        if keep(name, seen):
            seen.add(name)
            out.append(name)
            if len(out) == n:
                break
    return out


def test_unique_and_new_only_keep_the_plain_names_where_they_qualify(ngram_dir):
    model = makemore_jax.load(ngram_dir)
    known = model.known_words()
    kept_plain = {"unique": 0, "new_only": 0}
    for seed in range(8):
        stream = model.sample(2200, seed=seed)  # the positions -n 10 may walk
        plain = stream[:10]
        unique = model.sample(10, seed=seed, unique=True)
        new = model.sample(10, seed=seed, new_only=True)
        assert unique == _first_qualifying(stream, 10, lambda name, seen: name not in seen)
        assert new == _first_qualifying(stream, 10, lambda name, seen: name not in known)
        if len(set(plain)) == 10:
            assert unique == plain
            kept_plain["unique"] += 1
        if not set(plain) & known:
            assert new == plain
            kept_plain["new_only"] += 1
    assert all(kept_plain.values()), kept_plain  # the seeds held cases where the plain names qualify


@pytest.mark.parametrize("seed", SEEDS)
def test_unique_and_new_only_are_prefix_stable_with_redraws(ngram_dir, capsys, seed):
    """At -t 0.25 most names repeat: -n k is the first k of -n 40, which are the first 40 distinct (new) names
    of the plain stream."""
    model = makemore_jax.load(ngram_dir)
    known = model.known_words()
    stream = model.sample(2800, seed=seed, temperature=0.25)  # the positions -n 40 may walk
    assert len(set(stream[:40])) < 30  # redraws were needed
    for options, keep in [
        (dict(unique=True), lambda name, seen: name not in seen),
        (dict(new_only=True), lambda name, seen: name not in known),
        (dict(unique=True, new_only=True), lambda name, seen: name not in seen and name not in known),
    ]:
        many = model.sample(40, seed=seed, temperature=0.25, **options)
        assert many == _first_qualifying(stream, 40, keep)
        for k in (1, 7, 20):
            assert model.sample(k, seed=seed, temperature=0.25, **options) == many[:k]
    code, out, _ = run_inprocess(
        capsys, "sample", "-o", ngram_dir, "-n", "20", "--seed", str(seed), "-t", "0.25", "--unique", "--no-report"
    )
    assert code == 0 and out.split("\n")[:-1] == model.sample(40, seed=seed, temperature=0.25, unique=True)[:20]


# ---- 5. the Python API refuses what the command line refuses --------------------------------------


@pytest.mark.parametrize(
    "words, message",
    [
        (["em\nma"], r"word 'em\\nma' holds a line break \('\\n'\)"),
        (["emma", "ol\rivia"], r"word 'ol\\rivia' holds a line break"),
        ([" emma"], r"word ' emma' has whitespace at an end"),
        (["emma\t"], r"word 'emma\\t' has whitespace at an end"),
        (["zoë"], r"character 'ë' \(U\+00EB\) in word 'zoë' is not in the model's vocabulary"),
        (["Emma"], r"character 'E' \(U\+0045\) in word 'Emma'"),
        (["emma", 5], r"word 2 is not a str: 5"),
        ("emma", r"words must be a list of words, got one str"),
    ],
)
@pytest.mark.parametrize("which", ["counts_dir", "ngram_dir", "transformer_dir", "mixture"])
def test_scoring_refuses_a_word_the_command_line_could_not_read(request, tmp_path_factory, words, message, which):
    if which == "mixture":
        from makemore_jax.models.mixture import Mixture

        members = tuple(makemore_jax.load(request.getfixturevalue(d)).fitted for d in ("counts_dir", "ngram_dir"))
        model = makemore_jax.api.Model(Mixture(members, np.array([0.5, 0.5])))
    else:
        model = makemore_jax.load(request.getfixturevalue(which))
    for score in (model.log_prob, model.nll, model.perplexity):
        with pytest.raises(MakemoreError, match=message) as err:
            score(words)
        assert "\n" not in str(err.value)  # one line
    assert np.isfinite(model.log_prob(["emma", "ava"])).all()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(n="10"), "n must be an integer >= 0, got '10'"),
        (dict(n=2.5), "n must be an integer >= 0, got 2.5"),
        (dict(n=True), "n must be an integer >= 0, got True"),
        (dict(n=None), "n must be an integer >= 0, got None"),
        (dict(n=-1), "n must be an integer >= 0, got -1"),
        (dict(n=2**32 + 1), "at most 4,294,967,296 names can be drawn with one seed"),
        (dict(seed=2**32), "seed must be an integer in 0..4294967295, got 4294967296"),
        (dict(seed=-1), "seed must be an integer in 0..4294967295"),
        (dict(seed=1.0), "seed must be an integer"),
        (dict(temperature=float("nan")), "temperature must be a finite number >= 0, got nan"),
        (dict(temperature=float("inf")), "temperature must be a finite number >= 0"),
        (dict(temperature="1"), "temperature must be a finite number >= 0, got '1'"),
        (dict(temperature=None), "temperature must be a finite number >= 0, got None"),
        (dict(temperature=-0.5), "temperature must be a finite number >= 0"),
        (dict(top_p=0), "top_p must be a number in (0, 1], got 0"),
        (dict(top_p=1.5), "top_p must be a number in (0, 1]"),
        (dict(top_p=float("nan")), "top_p must be a number in (0, 1]"),
        (dict(top_k=-1), "top_k must be an integer >= 0"),
        (dict(top_k=2.5), "top_k must be an integer >= 0"),
        (dict(top_k=None), "top_k must be an integer >= 0"),
        (dict(min_len="3"), "min_len must be an integer >= 0, got '3'"),
        (dict(min_len=False), "min_len must be an integer >= 0, got False"),
        (dict(max_len=0), "max_len must be an integer >= 1, got 0"),
        (dict(max_len=7.0), "max_len must be an integer >= 1"),
        (dict(max_len=3_000_000_000), "maximum length must be at most 10,000 characters"),
        (dict(prefix=None), "prefix must be a str, got None"),
        (dict(prefix=5), "prefix must be a str"),
        (dict(unique="yes"), "unique must be True or False, got 'yes'"),
        (dict(new_only=None), "new_only must be True or False, got None"),
    ],
)
def test_sample_refuses_arguments_of_the_wrong_type_or_range(counts_dir, kwargs, message):
    model = makemore_jax.load(counts_dir)
    with pytest.raises(MakemoreError) as err:
        model.sample(**{"n": 3, **kwargs})
    assert message in str(err.value) and "\n" not in str(err.value)


def test_sample_takes_numpy_scalars_like_python_numbers(counts_dir):
    model = makemore_jax.load(counts_dir)
    assert model.sample(np.int64(4), seed=np.uint32(2), temperature=np.float32(1.0)) == model.sample(4, seed=2)
