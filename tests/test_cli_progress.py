"""Training progress: a live line on a terminal, the plain lines everywhere else."""

import io
import re

import pytest

from makemore_jax.cli import progress
from makemore_jax.cli.commands import main

from conftest import first_names


class Terminal(io.StringIO):
    def isatty(self):
        return True


RECORD = {
    "step": 50,
    "compile_s": 0.2963,
    "loss": 2.66139,
    "steps_per_s": 58602.2,
    "train_nll": 2.50056,
    "dev_nll": 2.49438,
    "dev_ppl": 12.1142,
}


def test_plain_line_is_the_format_logs_and_the_readme_show():
    assert progress.plain_line(RECORD, 500) == (
        "step      50/500  loss 2.6614  train 2.5006  dev 2.4944 (ppl 12.11)  (58,602 steps/s, compiled in 0.30 s)"
    )
    between_evals = {"step": 12000, "loss": 2.0, "steps_per_s": 812.4}
    assert progress.plain_line(between_evals, 20000) == "step  12,000/20,000  loss 2.0000  (812 steps/s)"


@pytest.mark.parametrize(
    "seconds,shown", [(0.4, "0 s"), (59.4, "59 s"), (187, "3:07"), (3723, "1:02:03"), (float("inf"), "?")]
)
def test_duration(seconds, shown):
    assert progress.duration(seconds) == shown


def test_which_reporter():
    tty, log = Terminal(), io.StringIO()
    assert isinstance(progress.reporter(10, out=tty, err=tty), progress.LiveLine)
    assert type(progress.reporter(10, out=log, err=tty)) is progress.PlainLines  # stdout to a file: lines in the file
    assert type(progress.reporter(10, out=tty, err=log)) is progress.PlainLines
    assert type(progress.reporter(10, out=tty, err=tty, plain=True)) is progress.PlainLines  # --log-every
    assert type(progress.reporter(10, out=tty, err=tty, quiet=True)) is progress.Silent
    assert tty.getvalue().count("\r") == 1  # only the live one drew ("compiling...")


def test_live_line_redraws_in_place_with_speed_and_time_left():
    now = [0.0]
    screen = io.StringIO()
    with progress.LiveLine(1000, screen, clock=lambda: now[0], width=200) as line:
        assert screen.getvalue() == "\rstep 0/1,000  compiling..."
        now[0] = 5.0  # the first chunk, compilation included: its own rate
        line.record({"step": 100, "loss": 3.0, "steps_per_s": 400.0, "compile_s": 4.7})
        assert "400 steps/s" in screen.getvalue() and "2 s left" in screen.getvalue()
        now[0] = 6.0
        line.record({"step": 200, "loss": 2.5, "steps_per_s": 400.0, "dev_nll": 2.41, "train_nll": 2.4})
        now[0] = 7.0
        line.record({"step": 300, "loss": 2.25, "steps_per_s": 400.0})  # 200 steps in 2 s on the wall clock
        assert "\n" not in screen.getvalue()
        last = screen.getvalue().split("\r")[-1]
        assert re.fullmatch(
            r"\[#{6}\.{14}\] step\s+300/1,000  loss 2\.2500  dev 2\.4100 @200  100 steps/s  7 s left\s*", last
        )
        now[0] = 14.0
        line.record({"step": 1000, "loss": 2.0, "steps_per_s": 400.0, "dev_nll": 2.3})
    out = screen.getvalue()
    assert out.endswith("14 s total\n") and out.count("\n") == 1
    frames = out.rstrip("\n").split("\r")[1:]
    assert all(len(f) == max(len(g) for g in frames[: k + 1]) for k, f in enumerate(frames)), (
        "a shorter line must blank the longer one"
    )


def test_live_line_fits_a_narrow_terminal():
    screen = io.StringIO()
    line = progress.LiveLine(10_000, screen, clock=lambda: 1.0, width=40)
    line.record({"step": 5000, "loss": 2.0, "steps_per_s": 12345.0, "dev_nll": 2.1})
    assert all(len(frame) <= 39 for frame in screen.getvalue().split("\r"))
    assert "[" not in screen.getvalue()  # no bar on a narrow terminal
    line.close()
    line.close()
    assert screen.getvalue().count("\n") == 1


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return first_names(tmp_path_factory, 200)


def train_on(monkeypatch, capsys, tmp_path, small, *flags, terminal=True):
    if terminal:
        out, err = Terminal(), Terminal()
        monkeypatch.setattr("sys.stdout", out)
        monkeypatch.setattr("sys.stderr", err)
    code = main(
        [
            "train",
            "-i",
            small,
            "-o",
            str(tmp_path / "w"),
            "--steps",
            "100",
            "--eval-every",
            "50",
            "--num-samples",
            "0",
            *flags,
        ]
    )
    if terminal:
        monkeypatch.undo()
        return code, out.getvalue(), without_phases(err.getvalue())
    return (code, *capsys.readouterr())


PHASE = re.compile(r"\r(reading|initialising|counting|scoring)[^\r]*(?:\r\1[^\r]*)*\r +\r")


def without_phases(err: str) -> str:
    """The terminal's stderr without the notes of the phases before and after training, each drawn and then wiped."""
    assert PHASE.findall(err) in (["reading"], ["reading", "initialising"], ["reading", "initialising", "scoring"]), err
    return PHASE.sub("", err)


def test_status_notes_show_on_a_terminal_only_and_are_wiped():
    screen, log = Terminal(), io.StringIO()
    for stream in (screen, log):
        with progress.Status(stream).phase("scoring") as update:
            update(3, 4, "dev")
    assert screen.getvalue() == "\rscoring ...\rscoring dev 75%\r" + " " * len("scoring dev 75%") + "\r"
    assert log.getvalue() == ""


def test_train_on_a_terminal_draws_one_live_line(monkeypatch, capsys, tmp_path, small):
    code, out, err = train_on(monkeypatch, capsys, tmp_path, small)
    assert code == 0
    assert not [line for line in out.splitlines() if line.startswith("step")]  # no plain lines
    assert err.startswith("\rstep 0/100  compiling...") and err.endswith("total\n")
    assert err.count("\r") == 1 + 100 // 50 and "dev " in err
    assert "bigram (best by dev, step 100)" in out


def test_log_every_or_a_log_file_gets_plain_lines(monkeypatch, capsys, tmp_path, small):
    code, out, err = train_on(monkeypatch, capsys, tmp_path, small, "--log-every", "25")
    assert code == 0 and "\r" not in err + out
    assert [line.split("/")[0] for line in out.splitlines() if line.startswith("step")] == [
        f"step {s:>7}" for s in (25, 50, 75, 100)
    ]
    code, out, err = train_on(monkeypatch, capsys, tmp_path, small, terminal=False)
    assert code == 0 and "\r" not in err + out
    steps = [line for line in out.splitlines() if line.startswith("step")]
    assert len(steps) == 2 and steps[0].startswith("step      50/100  loss ") and "compiled in" in steps[0]


def test_quiet_on_a_terminal_prints_no_progress(monkeypatch, capsys, tmp_path, small):
    code, out, err = train_on(monkeypatch, capsys, tmp_path, small, "--quiet")
    assert code == 0 and err == "" and not [line for line in out.splitlines() if line.startswith("step")]


def test_a_failing_run_ends_the_live_line_before_the_error(monkeypatch, capsys, tmp_path, small):
    code, out, err = train_on(monkeypatch, capsys, tmp_path, small, "--lr", "1e30")
    assert code == 2
    live, message = err.rsplit("\n", 2)[:2]
    assert live.startswith("\rstep 0/100") and message.startswith("makemore train: error: loss became")
