"""Work directories written by earlier code still load (issue 14): checkpoint format 1 and 2.

tests/fixtures/store/ holds small work directories written by the code of two
commits (its README says which and how): format1/ by the last code that wrote
checkpoint format 1 (NAME.json without meta_sha256), format2/ by the code
writing format 2; each has a counting model, a neural bigram, a Transformer,
an n-gram model and a mixture. Every check copies a work directory out of the
repository and runs the command line on the copy, nothing else: ``makemore
sample``, ``makemore eval`` and, where a run can be continued, ``makemore train
--resume``; what they print must be what expected.json recorded.

Only the CLI is used (its flags and outputs are the stable contract; the
modules behind it may move). The work directories record the absolute path
of the file they were trained on, which does not exist here: eval and
--resume are given the copied word list with -i, and sample runs with
--no-report, so no check depends on that path.
"""

import hashlib
import json
import os
import re
import shutil

import numpy as np
import pytest

STORE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "store")
with open(os.path.join(STORE, "expected.json"), encoding="utf-8") as _f:
    EXPECTED = json.load(_f)["fixtures"]

NUMBER = re.compile(r"-?\d+\.\d+")  # printed NLLs (4 decimals); integers stay part of the text
TOLERANCE = 1e-3  # room for another CPU's rounding, far below what a changed parameter moves


@pytest.fixture(autouse=True)
def keep_default_device():
    """--device makes its device JAX's default for the process; give the other tests theirs back."""
    import jax

    before = jax.config.jax_default_device
    yield
    jax.config.update("jax_default_device", before)


def makemore(capsys, *args):
    """Run `makemore ARGS` in this process: (exit code, stdout, stderr)."""
    from makemore_jax.cli import main

    try:
        code = main([str(a) for a in args])
    except SystemExit as exit:
        code = exit.code
    out, err = capsys.readouterr()
    return code, out, err


def copy_fixture(tmp_path, fixture: str):
    """A copy of the fixture's work directory and of the word list it was trained on."""
    workdir, words = tmp_path / "workdir", tmp_path / "words.txt"
    shutil.copytree(os.path.join(STORE, fixture), workdir)
    shutil.copy(os.path.join(STORE, "words.txt"), words)
    return workdir, words


def run_check(capsys, workdir, words, args):
    """Run one recorded check on a copy: (exit code, stdout lines with the paths as placeholders, stderr)."""
    argv = [a.format(workdir=workdir, words=words) for a in args]
    code, out, err = makemore(capsys, *argv)
    out = out.replace(str(words), "{words}").replace(str(workdir), "{workdir}")
    return code, out.splitlines(), err


def differences(got: list[str], want: list[str]) -> list[str]:
    """The lines that differ: the text exactly, the decimal numbers within TOLERANCE."""
    if len(got) != len(want):
        return [f"{len(got)} lines, expected {len(want)}: {got!r}"]
    found = []
    for g, w in zip(got, want):
        gn, wn = NUMBER.findall(g), NUMBER.findall(w)
        if NUMBER.sub("#", g) != NUMBER.sub("#", w) or any(
            abs(float(a) - float(b)) > TOLERANCE for a, b in zip(gn, wn)
        ):
            found.append(f"{g!r}, expected {w!r}")
    return found


CASES = [
    pytest.param(fixture, check, id=f"{fixture}-{check}")
    for fixture, entry in EXPECTED.items()
    for check in entry["checks"]
]


@pytest.mark.parametrize("fixture, check", CASES)
def test_work_directory_loads_as_recorded(tmp_path, capsys, fixture, check):
    workdir, words = copy_fixture(tmp_path, fixture)
    want = EXPECTED[fixture]["checks"][check]
    code, out, err = run_check(capsys, workdir, words, want["args"])
    assert code == want["returncode"] == 0, err
    assert differences(out, want["stdout"]) == []


@pytest.mark.parametrize("fmt", ["format1", "format2"])
def test_fixtures_are_of_their_format(fmt):
    """Every checkpoint of format1/ is a format-1 file (no digest), every one of format2/ a format-2 file."""
    metas = []
    for root, _, files in os.walk(os.path.join(STORE, fmt)):
        metas += [os.path.join(root, n) for n in files if n in ("model.json", "last.json")]
    assert len(metas) == 8  # counts, bigram and transformer (model and last), ngram, the mixture's 2 members
    for path in metas:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
        assert meta["format"] == "makemore-jax"
        assert meta["format_version"] == int(fmt[-1])
        assert ("meta_sha256" in meta) == (fmt == "format2"), path


def one_error_line(err: str) -> str:
    """The one `makemore CMD: error: ...` line of stderr (other lines may be JAX's own logging), no traceback."""
    errors = [line for line in err.splitlines() if line.startswith("makemore ") and ": error: " in line]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


def edit_json(path, **fields):
    with open(path, encoding="utf-8") as f:
        meta = json.load(f)
    meta.update(fields)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2)


SAMPLE = EXPECTED["format2/bigram"]["checks"]["sample"]["args"]
EVAL = EXPECTED["format2/bigram"]["checks"]["eval"]["args"]


def test_format2_edited_by_hand_is_refused_with_one_line(tmp_path, capsys):
    workdir, words = copy_fixture(tmp_path, "format2/bigram")
    edit_json(workdir / "model.json", step=21)  # a well-formed edit: only the digest can tell
    for args in (SAMPLE, EVAL):
        code, out, err = run_check(capsys, workdir, words, args)
        assert code != 0 and out == []
        assert "meta_sha256" in one_error_line(err)


def test_format1_has_no_digest_and_still_loads_when_edited(tmp_path, capsys):
    """The same edit of a format-1 file goes unnoticed: format 1 carries no digest of its fields."""
    workdir, words = copy_fixture(tmp_path, "format1/bigram")
    edit_json(workdir / "model.json", step=21)
    for check in ("sample", "eval"):
        want = EXPECTED["format1/bigram"]["checks"][check]
        code, out, err = run_check(capsys, workdir, words, want["args"])
        assert code == 0, err
        assert differences(out, want["stdout"]) == []


def test_damaged_arrays_of_format2_are_refused(tmp_path, capsys):
    workdir, words = copy_fixture(tmp_path, "format2/transformer")
    (arrays,) = workdir.glob("model-*.npz")
    payload = bytearray(arrays.read_bytes())
    payload[len(payload) // 2] ^= 0xFF
    arrays.write_bytes(bytes(payload))
    code, out, err = run_check(capsys, workdir, words, SAMPLE)
    assert code != 0 and out == []
    assert "checksum does not match" in one_error_line(err)


def test_changed_parameters_do_not_match_the_record(tmp_path, capsys):
    """The comparison can fail: a format-1 bigram whose weights were halved, its arrays checksum
    updated to match (format 1 has nothing else to catch it), loads but prints other names and NLL."""
    workdir, words = copy_fixture(tmp_path, "format1/bigram")
    meta_path = workdir / "model.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    arrays = workdir / meta["arrays_file"]
    with np.load(arrays, allow_pickle=False) as npz:
        params = {name: npz[name] for name in npz.files}
    (name,) = [n for n, a in params.items() if a.dtype.kind == "f"]
    params[name] = params[name] * np.float32(0.5)
    np.savez(arrays, **params)
    edit_json(meta_path, arrays_sha256=hashlib.sha256(arrays.read_bytes()).hexdigest())
    for check in ("sample", "eval"):
        want = EXPECTED["format1/bigram"]["checks"][check]
        code, out, err = run_check(capsys, workdir, words, want["args"])
        assert code == 0, err
        assert differences(out, want["stdout"]) != [], check
