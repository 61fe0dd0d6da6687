"""Every size is checked before it is used (issue 23, rows 3, 4 and the n-gram messages of row 10).

Orders, batch sizes, block sizes and model sizes that cannot be held are refused at once, in one line,
exit 2, before any counting, compiling or work directory; the message states the bound that applies.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from makemore_jax.errors import MakemoreError

from conftest import NAMES, ROOT, run_inprocess

QUICK_S = 30  # what "at once" allows on a loaded 2-core machine, JAX's start included; the hangs ran for minutes


@pytest.fixture(scope="module")
def words_file(tmp_path_factory) -> str:
    """The first 200 names of names.txt (27 ids: int64 keys up to order 13, counted in memory beyond)."""
    path = tmp_path_factory.mktemp("sizes") / "names200.txt"
    with open(NAMES) as f:
        path.write_text("".join(f.readline() for _ in range(200)))
    return str(path)


def train_positions(path: str) -> int:
    """Σ (len + 1) over the training split (seed 0, 80/10/10) of the words of path."""
    from makemore_jax.data.words import Dataset, read_words
    from makemore_jax.seeding import seed_key

    data = Dataset.build(read_words(path), seed_key(0, "split"), (0.8, 0.1, 0.1))
    return sum(len(w) + 1 for w in data.words["train"])


def refused(capsys, tmp_path, *args: str, command: str = "train") -> str:
    """Run `makemore ARGS -o tmp_path/w` in process; assert a quick one-line refusal that made no work
    directory, and return the message after 'makemore COMMAND: error: '."""
    work = tmp_path / "w"
    t0 = time.perf_counter()
    code, out, err = run_inprocess(capsys, command, *args, "-o", str(work), "--num-samples", "0")
    elapsed = time.perf_counter() - t0
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"makemore {command}: error: "), err
    assert elapsed < QUICK_S, f"refused only after {elapsed:.0f} s"
    assert not work.exists()
    return lines[0][len(f"makemore {command}: error: ") :]


def refused_in_a_subprocess(tmp_path, *args: str, command: str = "train") -> str:
    """As refused, in a child process: a hang (V**order computed exactly) is cut at 60 s and fails the test."""
    work = tmp_path / "w"
    proc = subprocess.run(
        [sys.executable, "-m", "makemore_jax", command, *args, "-o", str(work), "--num-samples", "0"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith(f"makemore {command}: error: "), proc.stderr
    assert not work.exists()
    return lines[0][len(f"makemore {command}: error: ") :]


# ---- n-gram orders (row 3) ---------------------------------------------------------------------


@pytest.mark.parametrize("order", ["99999999999999999999", "100000000"])
def test_a_huge_order_is_refused_at_once_not_counted_for_minutes(tmp_path, words_file, order):
    """Both ran on for minutes, memory growing (V**order formed as an exact integer before any check)."""
    message = refused_in_a_subprocess(tmp_path, "--type", "ngram", "--order", order, "-i", words_file)
    assert message.startswith(f"order {int(order):,} is too large to count: at most order 64 ")


def test_a_huge_max_order_is_refused_at_once(tmp_path, words_file):
    message = refused_in_a_subprocess(
        tmp_path, "--type", "ngram", "--max-order", "99999999999999999999", "-i", words_file, command="tune"
    )
    assert message.startswith("order 99,999,999,999,999,999,999 is too large to count: at most order 64 ")


@pytest.mark.parametrize("order", ["65", "10000000"])
def test_orders_past_the_maximum_are_refused_from_the_settings(capsys, tmp_path, words_file, order):
    """65 trained for seconds past any use; 10^7 was refused only after 26 s, naming a budget that did not apply."""
    message = refused(capsys, tmp_path, "--type", "ngram", "--order", order, "-i", words_file)
    assert message.startswith(f"order {int(order):,} is too large to count: at most order 64 ")
    assert "256 MiB" not in message


def test_an_order_counted_in_memory_is_held_to_the_memory_given(capsys, tmp_path, words_file):
    """Order 40 over 27 ids has keys beyond int64: it is counted in memory, and --memory is what bounds that."""
    message = refused(capsys, tmp_path, "--type", "ngram", "--order", "40", "--memory", "1M", "-i", words_file)
    assert "the counting budget (--memory) of 1 MiB" in message, message
    assert message.endswith(f"at most order {2**20 // (train_positions(words_file) * 32)} fits")  # 32 bytes per id


def test_tune_holds_its_orders_to_the_memory_given(capsys, tmp_path, words_file):
    message = refused(
        capsys, tmp_path, "--type", "ngram", "--max-order", "64", "--memory", "1M", "-i", words_file, command="tune"
    )
    assert "the counting budget (--memory) of 1 MiB" in message
    assert message.endswith(f"at most order {2**20 // (train_positions(words_file) * 32)} fits")


def test_an_order_whose_tables_pass_physical_memory_is_refused_before_counting(
    capsys, tmp_path, words_file, monkeypatch
):
    from makemore_jax.models import ngram

    monkeypatch.setattr(ngram, "physical_memory", lambda: 2**20)  # a machine of 1 MiB
    message = refused(capsys, tmp_path, "--type", "ngram", "--order", "30", "-i", words_file)
    assert "more than this machine's 1.0 MiB of memory" in message, message
    fits = ngram.largest_order_within(train_positions(words_file), 27, 2**20)
    assert message.endswith(f"at most order {fits} fits") and 1 <= fits < 30


def test_memory_0_is_refused_as_the_help_says(capsys, tmp_path, words_file):
    message = refused(capsys, tmp_path, "--type", "ngram", "--memory", "0", "-i", words_file)
    assert message.startswith("memory 0 is too small: counting needs at least 1M")


def test_table_sizes_are_computed_without_forming_v_to_the_order():
    from makemore_jax.models import ngram
    from makemore_jax.models.ngram.counting import key_dtype

    for V, N, limit in [(27, 6, 2**31), (27, 7, 2**31), (2, 63, 2**63), (2, 64, 2**63), (0, 5, 1), (1, 100, 1)]:
        assert ngram.power_fits(V, N, limit) == (V**N <= limit)
    t0 = time.perf_counter()
    assert ngram.power_fits(1, 10**20, 1) and not ngram.power_fits(27, 10**20, 2**63)
    assert key_dtype(27, 10**20) is None
    assert not ngram.dense_fits(27, 10**20) and not ngram.key_fits(27, 10**20)
    assert ngram.table_bytes(100, 27, 10**20) == 4 * (
        27 * 4 + 100 * (10**20 * (10**20 + 1) // 2 - 1 + 3 * (10**20 - 1))
    )
    assert time.perf_counter() - t0 < 1


# ---- neural sizes (row 4) ----------------------------------------------------------------------


def test_a_batch_past_int32_is_refused_from_the_settings(capsys, tmp_path, words_file):
    message = refused(capsys, tmp_path, "--type", "mlp", "--batch-size", "99999999999", "-i", words_file)
    assert (
        message == "batch_size must be at most 2,147,483,647 (JAX counts steps and indexes arrays with int32),"
        " got 99,999,999,999"
    )


def test_a_batch_that_cannot_fit_says_how_large_one_does(capsys, tmp_path, words_file):
    message = refused(capsys, tmp_path, "--type", "mlp", "--batch-size", "2000000000", "-i", words_file)
    assert message.startswith("mlp training with a batch of 2,000,000,000 words at block size 10 needs at least "), (
        message
    )
    assert "at most a batch of about " in message and "words fits" in message


def test_a_block_size_that_cannot_fit_is_refused_before_any_work(capsys, tmp_path, words_file):
    message = refused(capsys, tmp_path, "--type", "transformer", "--block-size", "99999999", "-i", words_file)
    assert message.startswith("transformer training with a batch of 32 words at block size 99,999,999 needs at least ")
    assert "give a smaller --batch-size, --block-size or model" in message


@pytest.mark.parametrize("flags", [["--n-layer", "2000000000"], ["--n-embd", "2000000000", "--n-head", "1"]])
def test_a_model_too_large_to_hold_is_refused_before_it_is_initialised(capsys, tmp_path, words_file, flags):
    message = refused(capsys, tmp_path, "--type", "transformer", *flags, "-i", words_file)
    assert "needs at least" in message and "parameters" in message


def test_the_python_api_refuses_what_the_command_line_refuses(names):
    import makemore_jax

    words = names[:200]
    t0 = time.perf_counter()
    with pytest.raises(MakemoreError, match="at most order 64"):
        makemore_jax.train(words, type="ngram", order=10**20)
    with pytest.raises(MakemoreError, match="at most a batch of about"):
        makemore_jax.train(words, type="mlp", batch_size=2_000_000_000)
    with pytest.raises(MakemoreError, match="needs at least"):
        makemore_jax.train(words, type="transformer", block_size=99_999_999)
    assert time.perf_counter() - t0 < QUICK_S


# ---- tuning on too few words (row 10) ------------------------------------------------------------


def test_tune_on_one_word_says_the_words_are_too_few(capsys, tmp_path):
    one = tmp_path / "one.txt"
    one.write_text("emma\n")
    message = refused(capsys, tmp_path, "--type", "ngram", "-i", str(one), command="tune")
    assert message == (
        "tuning needs a dev split, and 1 word is too few for one: the split 0.8,0.1,0.1 gives dev 10% "
        "of the words, rounded down to 0; give at least 10 words"
    )
    assert "give it a share with --split" not in message  # the split had one already


def test_tune_without_a_dev_share_still_asks_for_one(capsys, tmp_path, words_file):
    message = refused(capsys, tmp_path, "--type", "ngram", "--split", "1,0,0", "-i", words_file, command="tune")
    assert message == "tuning needs a dev split: give it a share with --split (e.g. 80,10,10)"


def test_sizes_that_fit_still_train(capsys, tmp_path, words_file):
    """A batch larger than the training split is drawn with replacement, as before; an order past the longest word
    trains; the bounds refuse only what cannot be held."""
    for args in (
        [
            "--type",
            "mlp",
            "--batch-size",
            "500",
            "--steps",
            "2",
            "--eval-every",
            "2",
            "--n-embd",
            "4",
            "--n-embd2",
            "8",
        ],
        ["--type", "ngram", "--order", "20"],
    ):
        work = tmp_path / args[1]
        code, out, err = run_inprocess(capsys, "train", *args, "-i", words_file, "-o", str(work), "--num-samples", "0")
        assert code == 0, err
        assert work.is_dir()
