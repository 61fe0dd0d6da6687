"""Hostile requests to the command line: each ends in one line and a non-zero exit (or, where valid, does the
right thing), with no traceback and no file changed or created that the user did not ask for.

Rows 5 and 10 of issue 23 and the one exit of every failure (out of memory, overflow, output that fails).
Writers are never aimed at a real device node: output that fails is a stand-in object or a pipe.
"""

from __future__ import annotations

import errno
import io
import os
import subprocess
import sys

import pytest

from conftest import ROOT, first_names, run_inprocess, snapshot


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return first_names(tmp_path_factory, 300)


@pytest.fixture(scope="module")
def counts_dir(tmp_path_factory, small):
    from makemore_jax.cli.commands import main

    out = tmp_path_factory.mktemp("hostile") / "c"
    assert main(["train", "--type", "counts", "-i", small, "-o", str(out), "--num-samples", "0"]) == 0
    return str(out)


def one_error_line(err: str, command: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"makemore {command}: error: "), err
    assert "Traceback" not in err
    return lines[0]


class FailingOutput(io.TextIOBase):
    """A standard output whose writes fail with errno, as a full disk (ENOSPC) or a gone reader (EPIPE)."""

    def __init__(self, err: int):
        self.err = err

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        raise (BrokenPipeError if self.err == errno.EPIPE else OSError)(self.err, os.strerror(self.err))

    def flush(self) -> None:
        pass


@pytest.mark.parametrize("argv", [["sample", "-n", "5"], ["eval"], ["export", "{tmp}/c.arpa"]])
def test_a_full_disk_on_stdout_is_one_line(counts_dir, small, tmp_path, capsys, monkeypatch, argv):
    from makemore_jax.cli.commands import main

    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    argv[1:1] = ["-o", counts_dir] + (["-i", small] if argv[0] == "eval" else [])
    before = snapshot(counts_dir)
    monkeypatch.setattr(sys, "stdout", FailingOutput(errno.ENOSPC))
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2
    assert "No space left on device" in one_error_line(err, argv[0])
    assert snapshot(counts_dir) == before


def test_a_full_disk_during_train_leaves_no_work_directory(small, tmp_path, capsys, monkeypatch):
    from makemore_jax.cli.commands import main

    monkeypatch.setattr(sys, "stdout", FailingOutput(errno.ENOSPC))
    code = main(["train", "--type", "counts", "-i", small, "-o", str(tmp_path / "w")])
    assert code == 2
    one_error_line(capsys.readouterr().err, "train")
    assert not (tmp_path / "w").exists()


def test_a_reader_that_leaves_early_ends_quietly(counts_dir, capsys, monkeypatch):
    from makemore_jax.cli.commands import main

    monkeypatch.setattr(sys, "stdout", FailingOutput(errno.EPIPE))
    assert main(["sample", "-o", counts_dir, "-n", "5"]) == 0
    assert capsys.readouterr().err == ""


def _makemore(*args, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "makemore_jax", *args], capture_output=True, text=True, cwd=ROOT, timeout=120, **kwargs
    )


def test_closed_stdout_in_a_real_process(counts_dir, tmp_path):
    """`makemore ... >&-`: refused in one line before any work; no file takes stdout's number."""
    import shlex

    work = tmp_path / "w"
    for args, command in (
        (["sample", "-o", counts_dir, "-n", "3"], "sample"),
        (["train", "--type", "counts", "-o", str(work)], "train"),
    ):
        line = shlex.join([sys.executable, "-m", "makemore_jax", *args])
        proc = subprocess.run(
            ["sh", "-c", f"exec {line} >&-"], stderr=subprocess.PIPE, text=True, cwd=ROOT, timeout=120
        )
        assert proc.returncode == 2
        assert "standard output is closed" in one_error_line(proc.stderr, command)
    assert not work.exists()


def test_a_pipe_closed_early_exits_quietly_in_a_real_process(counts_dir):
    proc = subprocess.Popen(
        [sys.executable, "-m", "makemore_jax", "sample", "-o", counts_dir, "-n", "20000", "--no-report"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    proc.stdout.readline()
    proc.stdout.close()  # as `| head -1` does
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0
    assert err == b""


def _exhausted(*args, **kwargs):
    """A real out-of-memory error from XLA: an allocation no machine has (16 TiB)."""
    import jax.numpy as jnp

    jnp.zeros((2**42,), jnp.float32).block_until_ready()


def test_out_of_memory_from_xla_is_one_line_and_leaves_no_work_directory(small, tmp_path, capsys, monkeypatch):
    from makemore_jax.runs import training

    monkeypatch.setattr(training, "fit", _exhausted)
    code, out, err = run_inprocess(capsys, "train", "--type", "bigram", "-i", small, "-o", str(tmp_path / "w"))
    assert code == 2
    assert "out of memory" in one_error_line(err, "train")
    assert not (tmp_path / "w").exists()


def test_out_of_memory_in_an_existing_work_directory_keeps_it(counts_dir, small, tmp_path, capsys, monkeypatch):
    from makemore_jax.runs import training

    work = tmp_path / "w"
    work.mkdir()
    (work / "mine.txt").write_text("kept")
    monkeypatch.setattr(training, "fit", _exhausted)
    code, _, err = run_inprocess(capsys, "train", "-i", small, "-o", str(work))
    assert code == 2 and "out of memory" in one_error_line(err, "train")
    assert snapshot(work) == {"mine.txt": b"kept"}


def test_overflow_is_one_line(counts_dir, capsys, monkeypatch):
    from makemore_jax.cli import commands

    def overflow(args):
        import numpy as np

        np.int32(2**40)

    monkeypatch.setattr(commands, "cmd_eval", overflow)
    code, _, err = run_inprocess(capsys, "eval", "-o", counts_dir)
    assert code == 2
    assert "too large" in one_error_line(err, "eval")


def test_a_bug_keeps_its_traceback(counts_dir, capsys, monkeypatch):
    """Only expected failures become one line: a mistake in the code must still show where it is."""
    from makemore_jax.cli import commands

    def bug(args):
        raise KeyError("a bug")

    monkeypatch.setattr(commands, "cmd_eval", bug)
    with pytest.raises(KeyError):
        commands.main(["eval", "-o", counts_dir])


@pytest.mark.parametrize(
    "argv,named",
    [
        (["sample", "--bogus"], "makemore sample"),
        (["train", "--bogus", "1"], "makemore train"),
        (["plot", "loss", "--bogus"], "makemore plot loss"),
        (["export", "a", "b"], "makemore export"),
    ],
)
def test_an_unknown_argument_points_at_its_own_subcommand(capsys, argv, named):
    code, _, err = run_inprocess(capsys, *argv)
    assert code == 2
    assert err.strip().startswith(f"{named}: error: unrecognized arguments")
    assert err.strip().endswith(f"(see {named} --help)")


def test_a_work_directory_that_is_a_file_is_called_a_file(tmp_path, capsys):
    path = tmp_path / "names.txt"
    path.write_text("emma\n")
    for argv in (["sample", "-o", str(path)], ["eval", "-o", str(path)]):
        code, _, err = run_inprocess(capsys, *argv)
        assert code == 2
        line = one_error_line(err, argv[0])
        assert "is a file, not a work directory" in line and "no such" not in line
    assert path.read_text() == "emma\n"


def test_counts_are_said_in_the_singular_and_models_with_their_article(counts_dir, tmp_path, capsys):
    one = tmp_path / "one.txt"
    one.write_text("emma\n")
    code, out, _ = run_inprocess(capsys, "eval", "-o", counts_dir, "-i", str(one))
    assert code == 0 and out.rstrip().endswith("over 5 characters (1 word)")
    code, _, err = run_inprocess(capsys, "train", "--resume", "--type", "ngram", "-o", counts_dir)
    assert code == 2 and "an ngram model" in one_error_line(err, "train")


def test_a_model_has_its_article():
    from makemore_jax.models import MODEL_TYPES, a_model

    said = {t: a_model(t) for t in MODEL_TYPES}
    assert said["ngram"] == "an ngram model" and said["mlp"] == "an mlp model" and said["lstm"] == "an lstm model"
    assert said["counts"] == "a counts model" and said["transformer"] == "a transformer model"
    assert said["gru"] == "a gru model"


def test_resume_without_input_reads_the_recorded_input(tmp_path, capsys):
    """--resume without -i continues on the file the run recorded (not the bundled names), and says so
    when that file is gone or changed, leaving the work directory as it was."""
    words = tmp_path / "words.txt"
    words.write_text(
        "".join(
            f"{w}\n"
            for w in (
                "emma",
                "olivia",
                "ava",
                "isabella",
                "sophia",
                "mia",
                "amelia",
                "harper",
                "evelyn",
                "abigail",
                "emily",
                "ella",
            )
        )
    )
    work = str(tmp_path / "w")
    common = ["--num-samples", "0", "-q"]
    assert (
        run_inprocess(
            capsys,
            "train",
            "--type",
            "mlp",
            "--steps",
            "2",
            "--eval-every",
            "1",
            "-i",
            str(words),
            "-o",
            work,
            "--n-embd",
            "4",
            "--n-embd2",
            "8",
            *common,
        )[0]
        == 0
    )
    code, out, _ = run_inprocess(capsys, "train", "--resume", "-o", work, "--steps", "3", *common)
    assert code == 0 and out.startswith(f"data: {words}: 12 words")
    before = snapshot(work)
    words.write_text(words.read_text() + "zed\n")
    code, _, err = run_inprocess(capsys, "train", "--resume", "-o", work, "--steps", "4", *common)
    assert code == 2 and f"the run's input {words} changed since training" in one_error_line(err, "train")
    words.unlink()
    code, _, err = run_inprocess(capsys, "train", "--resume", "-o", work, "--steps", "4", *common)
    assert code == 2 and f"the run's input {words} is gone" in one_error_line(err, "train")
    assert snapshot(work) == before


def test_one_word_is_said_in_the_singular_on_the_data_line(tmp_path, capsys):
    one = tmp_path / "one.txt"
    one.write_text("emma\n")
    code, out, _ = run_inprocess(
        capsys,
        "train",
        "--type",
        "counts",
        "--split",
        "1,0,0",
        "-i",
        str(one),
        "-o",
        str(tmp_path / "w"),
        "--num-samples",
        "0",
    )
    assert code == 0 and f"data: {one}: 1 word (train 1 / dev 0 / test 0)" in out


def test_the_help_states_the_bounds_the_code_holds(capsys):
    """The bounds are written in the help without loading JAX (the lazy start): this keeps them equal."""
    from makemore_jax.models.ngram import MAX_ORDER
    from makemore_jax.sampling import MAX_SAMPLE_LEN

    code, out, _ = run_inprocess(capsys, "sample", "--help")
    assert code == 0 and f"at most {MAX_SAMPLE_LEN:,}" in " ".join(out.split())
    code, out, _ = run_inprocess(capsys, "train", "--help")
    assert code == 0 and f"order − 1; at most {MAX_ORDER})" in " ".join(out.split())
