"""End-to-end tests of the `makemore` command, as a user runs it."""

import contextlib
import io
import math
import os
import shutil
import subprocess
import sys

import pytest

from makemore_jax.cli.commands import main

from conftest import NAMES, ROOT, first_names, run_inprocess, snapshot, tiny_flags


def run(*args, cwd=None):
    """Run the real command in a fresh process; returns (exit code, stdout, stderr)."""
    env = {**os.environ, "PYTHONPATH": ROOT}
    proc = subprocess.run(
        [sys.executable, "-m", "makemore_jax", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300
    )
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A bigram trained on names.txt, in this process (the tests of real processes are below)."""
    d = str(tmp_path_factory.mktemp("work") / "model")
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(["train", "-o", d, "--steps", "100", "--num-samples", "3", "--quiet"])
    assert code == 0, err.getvalue()
    return d


def test_train_sample_eval_from_any_directory(tmp_path, capsys, monkeypatch):
    code, out, err = run("train", "-o", "w", "--steps", "200", cwd=tmp_path)
    assert code == 0, err
    assert "32,033 words (train 25,627 / dev 3,203 / test 3,203), vocabulary of 27" in out
    assert "step     200/200" in out
    nll_line = next(line for line in out.splitlines() if line.startswith("bigram (best by dev, step 200): train NLL"))
    assert "dev NLL 2.4" in nll_line and "test NLL 2.4" in nll_line
    printed = out.split("samples (makemore sample -o w --seed 0):\n")[1].split()
    assert len(printed) == 10
    files = sorted(os.listdir(tmp_path / "w"))
    assert [f for f in files if not f.endswith(".npz")] == ["last.json", "metrics.jsonl", "model.json"]
    assert len([f for f in files if f.endswith(".npz")]) == 2

    code, out1, err = run("sample", "-o", "w", "-n", "10", "--seed", "0", cwd=tmp_path)
    assert code == 0 and out1.split() == printed  # the same seed gives the names training showed
    assert "of 10 samples are in the training set" in err
    # two real processes above; the rest in this one (a fresh process each costs seconds), from the same directory
    monkeypatch.chdir(tmp_path)
    code, out2, _ = run_inprocess(capsys, "sample", "-o", "w", "-n", "10", "--seed", "1")
    assert code == 0 and out2.split() != printed

    code, out, err = run_inprocess(capsys, "eval", "-o", "w")
    assert code == 0, err
    assert "mean NLL 2.4" in out and "228,146 characters (32,033 words)" in out


def test_counting_model_on_all_words_reproduces_the_lecture_number(tmp_path, capsys):
    d = str(tmp_path / "c")
    code, out, err = run_inprocess(
        capsys, "train", "--type", "counts", "--smoothing", "0", "--split", "1,0,0", "-o", d, "--num-samples", "0"
    )
    assert code == 0, err
    line = next(x for x in out.splitlines() if x.startswith("counts: train NLL 2.4540 (ppl "))
    ppl = float(line.split("(ppl ")[1].split(")")[0])
    assert abs(ppl - math.exp(2.4540)) < 0.01 and line.endswith(")  dev NLL n/a  test NLL n/a")  # perplexity = exp(NLL)
    code, out, err = run_inprocess(capsys, "eval", "-o", d, "-i", NAMES)
    assert code == 0 and "mean NLL 2.4540" in out
    code, out, err = run_inprocess(
        capsys, "train", "--type", "counts", "--smoothing", "1", "--split", "1,0,0", "-o", d, "--num-samples", "0"
    )
    code, out, err = run_inprocess(capsys, "eval", "-o", d, "-i", NAMES)
    assert code == 0 and "mean NLL 2.4546" in out


def test_eval_of_unseen_pair_without_smoothing_is_inf(tmp_path, capsys):
    d = str(tmp_path / "c")
    words = tmp_path / "w.txt"
    words.write_text("ab\nba\n")
    assert (
        run_inprocess(
            capsys, "train", "--type", "counts", "--smoothing", "0", "--split", "1,0,0", "-i", str(words), "-o", d
        )[0]
        == 0
    )
    other = tmp_path / "o.txt"
    other.write_text("aa\n")
    code, out, _ = run_inprocess(capsys, "eval", "-o", d, "-i", str(other))
    assert code == 0 and "mean NLL inf" in out


def test_temperature_zero_is_greedy_and_repeatable(workdir, capsys):
    code, out, _ = run_inprocess(capsys, "sample", "-o", workdir, "-n", "3", "--temperature", "0", "--seed", "4")
    assert code == 0 and len(set(out.split())) == 1


def test_sample_count_and_max_len(workdir, capsys):
    code, out, _ = run_inprocess(capsys, "sample", "-o", workdir, "-n", "7", "--max-len", "2")
    assert code == 0
    names = out.splitlines()
    assert len(names) == 7 and all(len(n) <= 2 for n in names)


@pytest.mark.parametrize("sub", [[], ["train"], ["sample"], ["eval"]])
def test_help_on_every_subcommand(capsys, sub):
    code, out, _ = run_inprocess(capsys, *sub, "--help")
    assert code == 0 and out.startswith("usage: makemore")


def test_console_script_is_installed():
    exe = shutil.which("makemore")
    assert exe, "the makemore console script is not on PATH (pip install the package)"
    proc = subprocess.run([exe, "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("makemore-jax ")


def _bad_inputs(tmp):
    (tmp / "empty.txt").write_text("")
    (tmp / "blank.txt").write_text("\n   \n\t\n")
    (tmp / "latin1.txt").write_bytes(b"anna\nbob\nren\xe9e\n")
    (tmp / "accents.txt").write_text("anna\nzoë\n")
    (tmp / "notjson").mkdir()
    (tmp / "notjson" / "model.json").write_text("{oops")
    return [
        (["train", "-i", str(tmp / "missing.txt")], "missing.txt: no such file"),
        (["train", "-i", str(tmp / "empty.txt")], "no words"),
        (["train", "-i", str(tmp / "blank.txt")], "no words"),
        (["train", "-i", str(tmp / "latin1.txt")], "line 3 is not valid UTF-8"),
        (["eval", "-i", str(tmp / "accents.txt")], "character 'ë' (U+00EB) in word 'zoë'"),
        (["eval", "-i", str(tmp / "missing.txt")], "no such file"),
        (["sample", "-o", str(tmp / "nowhere")], "no such work directory"),
        (["eval", "-o", str(tmp / "notjson")], "not a valid checkpoint"),
        (["sample", "-o", str(tmp)], "model.json is missing"),
        (["train", "--type", "gpt5"], "invalid choice: 'gpt5'"),
        (["train", "--type", "counts", "--smoothing", "-1"], "smoothing must be a finite number >= 0, got -1.0"),
        (["train", "--smoothing", "1"], "smoothing: the bigram model does not take this setting"),
        (["train", "--l2", "-0.5"], "l2 must be a finite number >= 0, got -0.5"),
        (["train", "--lr", "-3"], "lr must be a finite number >= 0, got -3.0"),
        (["train", "--lr", "nan"], "lr must be a finite number >= 0, got nan"),
        (["train", "--steps", "-10"], "steps must be an integer >= 0, got -10"),
        (["train", "--steps", "ten"], "steps must be an integer >= 0, got 'ten'"),
        (["train", "--split", "80,20"], "split must be three numbers"),
        (["sample", "--temperature", "-1"], "--temperature/-t: must be a number >= 0"),
        (["sample", "-n", "-5"], "-n/--num-samples: must be an integer >= 0"),
        (["sample", "--seed", "abc"], "expected an integer"),
    ]


def test_bad_input_gets_one_line_exit_2_and_leaves_workdir_alone(workdir, tmp_path, capsys):
    before = snapshot(workdir)
    for args, message in _bad_inputs(tmp_path):
        if "-o" not in args:
            args = [*args, "-o", workdir]
        code, out, err = run_inprocess(capsys, *args)
        assert code == 2, (args, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1, (args, err)
        assert message in lines[0], (args, lines[0])
        assert "Traceback" not in err
        assert snapshot(workdir) == before, args


@pytest.mark.parametrize(
    "args,message",
    [
        (["train", "-i", "/nonexistent/names.txt"], "no such file"),
        (["train", "--type", "nope"], "invalid choice"),
        (["sample", "--temperature", "-2"], "must be a number >= 0"),
    ],
)
def test_bad_input_in_a_real_process(workdir, args, message):
    before = snapshot(workdir)
    code, out, err = run(*args, "-o", workdir)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and message in err and "Traceback" not in err
    assert snapshot(workdir) == before


def test_workdir_that_is_a_file_is_refused_before_training(tmp_path, capsys):
    target = tmp_path / "afile"
    target.write_text("keep me")
    code, _, err = run_inprocess(capsys, "train", "-o", str(target), "--steps", "1")
    assert code == 2 and "not a directory" in err
    assert target.read_text() == "keep me"


# ---- the model family from the command line ------------------------------------

TINY_FLAGS = tiny_flags("transformer")
MLP_FLAGS = tiny_flags("mlp")


@pytest.fixture(scope="module")
def small_names(tmp_path_factory):
    return first_names(tmp_path_factory, 400)


def test_resume_continues_exactly(tmp_path, capsys, small_names):
    common = ["--type", "mlp", "-i", small_names, *MLP_FLAGS]
    assert run_inprocess(capsys, "train", "-o", str(tmp_path / "a"), "--steps", "40", *common)[0] == 0
    assert run_inprocess(capsys, "train", "-o", str(tmp_path / "b"), "--steps", "20", *common)[0] == 0
    code, out, err = run_inprocess(
        capsys, "train", "-o", str(tmp_path / "b"), "--resume", "--steps", "40", "-i", small_names
    )
    assert code == 0, err
    assert "step      30/40" in out and "step      10/" not in out
    a = snapshot(tmp_path / "a")
    b = snapshot(tmp_path / "b")
    assert {k: v for k, v in a.items() if k.startswith("last-")} == {
        k: v for k, v in b.items() if k.startswith("last-")
    }
    assert a["metrics.jsonl"].count(b"\n") == b["metrics.jsonl"].count(b"\n") == 4


def test_resume_refuses_what_does_not_match(tmp_path, capsys, small_names):
    d = str(tmp_path / "w")
    assert (
        run_inprocess(capsys, "train", "-o", d, "--type", "mlp", "--steps", "10", "-i", small_names, *MLP_FLAGS)[0] == 0
    )
    before = snapshot(d)
    other = tmp_path / "other.txt"
    other.write_text("zed\nzora\n")
    cases = [
        (["--type", "gru"], "holds an mlp model, not gru"),
        (["--lr", "0.5"], "resume: lr 0.5 differs from the saved run's 0.0005"),
        (["--n-layer", "2"], "n_layer: the mlp model does not take this setting"),
        (["-i", str(other)], "is not the input this run was trained on"),
    ]
    for extra, message in cases:
        code, _, err = run_inprocess(capsys, "train", "-o", d, "--resume", "-i", small_names, *extra)
        assert code == 2 and message in err, (extra, err)
        assert snapshot(d) == before
    code, _, err = run_inprocess(capsys, "train", "-o", str(tmp_path / "empty"), "--resume")
    assert code == 2 and "no such work directory" in err


def test_steps_zero_and_resuming_a_counted_model_say_what_happened(tmp_path, capsys, small_names):
    d = str(tmp_path / "w")
    code, _, err = run_inprocess(capsys, "train", "-o", d, "--type", "mlp", "--steps", "0", "-i", small_names)
    assert code == 2 and "steps 0: nothing to train" in err and err.count("\n") == 1
    assert not os.path.exists(d)  # refused before anything is written
    for kind in ("counts", "ngram"):
        w = str(tmp_path / kind)
        assert run_inprocess(capsys, "train", "-o", w, "--type", kind, "-i", small_names)[0] == 0
        before = snapshot(w)
        for extra in ([], ["--type", kind]):
            code, _, err = run_inprocess(capsys, "train", "-o", w, "--resume", "-i", small_names, *extra)
            assert code == 2 and "nothing to resume" in err and "last.json" not in err, (kind, extra, err)
            assert snapshot(w) == before
    code, _, err = run_inprocess(
        capsys, "train", "-o", str(tmp_path / "c"), "--type", "counts", "--steps", "0", "-i", small_names
    )
    assert code == 2 and "steps: the counts model does not take this setting" in err  # it is counted: no steps


def test_sizes_that_do_not_fit_are_refused(tmp_path, capsys, small_names):
    cases = [
        (["--type", "transformer", "--n-embd", "10", "--n-head", "4"], "divisible by n_head"),
        (["--type", "transformer", "--block-size", "4"], "block size 4 is too small"),
        (["--type", "mlp", "--n-embd", "0"], "n_embd must be an integer >= 1, got 0"),
        (["--type", "rnn", "--optimizer", "adam9"], "optimizer must be one of sgd, adamw, got 'adam9'"),
    ]
    for extra, message in cases:
        code, _, err = run_inprocess(
            capsys, "train", "-o", str(tmp_path / "w"), "-i", small_names, "--steps", "1", *extra
        )
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (extra, err)
        assert not (tmp_path / "w").exists()


def test_family_model_trains_samples_and_evaluates(tmp_path, capsys, small_names):
    d = str(tmp_path / "t")
    code, out, err = run_inprocess(
        capsys, "train", "-o", d, "--type", "transformer", "--steps", "30", "-i", small_names, *TINY_FLAGS
    )
    assert code == 0, err
    assert "transformer (best by dev, step" in out
    code, out, err = run_inprocess(capsys, "sample", "-o", d, "-n", "4", "--top-k", "5", "--seed", "2")
    assert code == 0 and len(out.splitlines()) == 4 and "samples are in the training set" in err
    code, out, err = run_inprocess(capsys, "eval", "-o", d, "-i", small_names)
    assert code == 0 and "mean NLL" in out
    long_word = tmp_path / "long.txt"
    long_word.write_text("a" * 40 + "\n")
    code, _, err = run_inprocess(capsys, "eval", "-o", d, "-i", str(long_word))
    assert code == 2 and "has 40 characters; the model handles at most" in err


def test_steered_sampling_flags_refuse_bad_input_in_one_line(tmp_path, capsys, small_names):
    d = str(tmp_path / "w")
    assert run_inprocess(capsys, "train", "-o", d, "--type", "counts", "-i", small_names)[0] == 0
    before = snapshot(d)
    cases = [
        (["--prefix", "Zé"], "not in the model's vocabulary"),
        (["--top-p", "0"], "must be a number in (0, 1]"),
        (["--top-p", "1.5"], "must be a number in (0, 1]"),
        (["--top-p", "x"], "expected a number in (0, 1]"),
        (["--min-len", "-1"], "must be an integer >= 0"),
        (["--min-len", "9", "--max-len", "5"], "minimum length 9 is more than the maximum length 5"),
        (["--prefix", "abcdef", "--max-len", "5"], "the prefix has 6 characters, more than the maximum length 5"),
    ]
    for extra, message in cases:
        code, out, err = run_inprocess(capsys, "sample", "-o", d, "-n", "3", *extra)
        assert code == 2 and message in err and err.count("\n") == 1 and out == "", (extra, err)
        assert snapshot(d) == before
    code, out, err = run_inprocess(capsys, "sample", "-o", d, "-n", "100", "--unique", "--max-len", "1", "--no-report")
    assert code == 2 and "found only 27 unique names in" in err and err.count("\n") == 1
    assert len(out.splitlines()) == 27 and len(set(out.splitlines())) == 27  # what was found, then why not more
    code, out, err = run_inprocess(
        capsys, "sample", "-o", d, "-n", "5", "--prefix", "an", "--min-len", "5", "--seed", "2"
    )
    assert code == 0 and all(n.startswith("an") and len(n) >= 5 for n in out.split())
    assert snapshot(d) == before
