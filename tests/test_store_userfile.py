"""store/userfile.py: a file the user names (export's FILE, plot --save) never replaces what is not ours (issue 23).

Refused in one line, exit 2, every file as it was: a FIFO, a device node, a
socket, a directory, a symbolic link to any of them, and a file of a work
directory (its own model or another's checkpoint, array file or metrics). A
symbolic link to a regular file, or to a file not yet made, is written through
and stays a link.

The tests run as root. No writer is ever aimed at a real device: the device
node is one the test makes in its own temporary folder, and every FIFO has a
reader that drains it, so a writer that wrongly opens one fails the test
instead of hanging it.
"""

import os
import select
import shutil
import socket
import stat
import threading
import time

import pytest

from makemore_jax.cli.commands import main
from makemore_jax.errors import MakemoreError
from makemore_jax.store import userfile

from conftest import NAMES
from conftest import run_inprocess as run


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """200 names, a counting model of them in c/ and a 2-step neural bigram in b/ (with last.json and metrics)."""
    root = tmp_path_factory.mktemp("userfile")
    with open(NAMES) as f:
        (root / "small.txt").write_text("".join(f.readline() for _ in range(200)))
    common = ["-i", str(root / "small.txt"), "--num-samples", "0"]
    assert main(["train", "--type", "counts", "-o", str(root / "c"), *common]) == 0
    assert main(["train", "--type", "bigram", "--steps", "2", "--quiet", "-o", str(root / "b"), *common]) == 0
    assert {"last.json", "metrics.jsonl"} <= set(os.listdir(root / "b"))
    return root


@pytest.fixture
def work(trained, tmp_path, capsys):
    """A fresh copy of the trained work directories and words in tmp_path (a failing test damages only its own)."""
    for name in ("c", "b"):
        shutil.copytree(trained / name, tmp_path / name)
    shutil.copy(trained / "small.txt", tmp_path / "small.txt")
    capsys.readouterr()
    return tmp_path


class DrainedFifo:
    """A FIFO with a reader that drains it in a thread: a writer that opens it neither blocks nor goes unseen."""

    def __init__(self, path):
        self.path = str(path)
        os.mkfifo(self.path)
        self.fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        self.received = b""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self):
        while not self._stop.is_set():
            if select.select([self.fd], [], [], 0.05)[0]:
                try:
                    chunk = os.read(self.fd, 1 << 16)
                except BlockingIOError:
                    chunk = b""
                if chunk:
                    self.received += chunk
                else:
                    time.sleep(0.01)  # no writer: select says readable, read says end of file

    def close(self):
        self._stop.set()
        self._thread.join()
        os.close(self.fd)


@pytest.fixture
def fifo():
    """fifo(path): a DrainedFifo at path, closed after the test."""
    made = []

    def make(path):
        made.append(DrainedFifo(path))
        return made[-1]

    yield make
    for f in made:
        f.close()


def entries(root) -> dict:
    """Every entry under root, never opening anything but regular files: path -> (kind, content)."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                found[path] = ("link", os.readlink(path))
            elif stat.S_ISREG(st.st_mode):
                found[path] = ("file", open(path, "rb").read())
            elif stat.S_ISDIR(st.st_mode):
                found[path] = ("dir", None)
            else:
                found[path] = (stat.S_IFMT(st.st_mode), st.st_rdev)
    return found


def refused(result, *words):
    """Assert a (code, out, err) is one line on stderr, exit 2, no traceback, mentioning words."""
    code, out, err = result
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and out == ""
    for word in words:
        assert word in err, err
    return err


def device_node(path):
    """A character device node (the null device's numbers) made in the test's own folder; skip without the right."""
    try:
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("making a device node needs root (CAP_MKNOD)")
    return path


# ---- export: FIFOs, devices, links ---------------------------------------------------------


def test_export_onto_a_fifo_is_refused_and_the_fifo_kept(work, capsys, fifo):
    f = fifo(work / "f.arpa")
    before = entries(work)
    refused(run(capsys, "export", "-o", str(work / "c"), f.path), "FIFO")
    assert stat.S_ISFIFO(os.lstat(f.path).st_mode)
    assert f.received == b""
    assert entries(work) == before


def test_the_fifo_is_refused_before_the_model_is_loaded(work, capsys, fifo):
    f = fifo(work / "f.arpa")
    err = refused(run(capsys, "export", "-o", str(work / "nothing"), f.path), "FIFO")
    assert "work directory" not in err
    assert not (work / "nothing").exists()


def test_export_writes_through_a_symlink_to_a_regular_file(work, capsys):
    (work / "real").mkdir()
    (work / "links").mkdir()
    target, link = work / "real" / "out.arpa", work / "links" / "out.arpa"
    target.write_text("old\n")
    os.symlink(target, link)
    code, out, err = run(capsys, "export", "-o", str(work / "c"), str(link))
    assert code == 0, err
    assert os.path.islink(link) and os.readlink(link) == str(target)
    assert run(capsys, "export", "-o", str(work / "c"), str(work / "plain.arpa"))[0] == 0
    assert target.read_bytes() == (work / "plain.arpa").read_bytes()
    assert target.read_text().startswith("\\data\\\n")
    # the temporary file was made beside the target and renamed onto it: nothing left over anywhere
    assert os.listdir(work / "links") == ["out.arpa"] and os.listdir(work / "real") == ["out.arpa"]


def test_export_through_a_relative_dangling_symlink_creates_its_target(work, capsys):
    os.symlink("new.arpa", work / "link.arpa")  # relative, to a file not yet made
    code, out, err = run(capsys, "export", "-o", str(work / "c"), str(work / "link.arpa"))
    assert code == 0, err
    assert os.path.islink(work / "link.arpa")
    assert (work / "new.arpa").read_text().startswith("\\data\\\n")


def test_export_onto_a_symlink_to_a_fifo_is_refused(work, capsys, fifo):
    f = fifo(work / "f.arpa")
    os.symlink(f.path, work / "link.arpa")
    before = entries(work)
    refused(run(capsys, "export", "-o", str(work / "c"), str(work / "link.arpa")), "symbolic link", "FIFO")
    assert entries(work) == before
    assert f.received == b""


@pytest.mark.parametrize("through_link", [False, True], ids=["node", "link-to-node"])
def test_export_onto_a_device_node_is_refused(work, capsys, through_link):
    node = device_node(str(work / "dev"))
    aimed = node
    if through_link:
        aimed = str(work / "link.arpa")
        os.symlink(node, aimed)
    before = entries(work)
    refused(run(capsys, "export", "-o", str(work / "c"), aimed), "character device")
    st = os.lstat(node)
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)
    assert entries(work) == before


# ---- export: the files of work directories -------------------------------------------------


def test_export_onto_its_own_model_is_refused(work, capsys):
    own = sorted(os.listdir(work / "c"))  # model.json and its array file
    before = entries(work)
    for name in own:
        refused(run(capsys, "export", "-o", str(work / "c"), str(work / "c" / name)), "work directory")
    refused(run(capsys, "export", "-o", str(work / "c"), str(work / "c" / "last.json")), "work directory")  # not made
    assert entries(work) == before
    code, out, err = run(capsys, "sample", "-o", str(work / "c"), "-n", "3")
    assert code == 0, err


def test_export_onto_another_work_directorys_files_is_refused(work, capsys):
    theirs = sorted(os.listdir(work / "b"))  # model.json, last.json, both array files, metrics.jsonl
    assert len(theirs) == 5
    os.symlink(work / "b" / "model.json", work / "link.json")
    before = entries(work)
    for name in theirs:
        refused(run(capsys, "export", "-o", str(work / "c"), str(work / "b" / name)), "work directory")
    refused(run(capsys, "export", "-o", str(work / "c"), str(work / "link.json")), "symbolic link", "work directory")
    assert entries(work) == before


def test_a_new_file_inside_a_work_directory_is_still_written(work, capsys):
    code, out, err = run(capsys, "export", "-o", str(work / "c"), str(work / "c" / "model.arpa"))
    assert code == 0, err
    assert (work / "c" / "model.arpa").read_text().startswith("\\data\\\n")


# ---- plot --save ---------------------------------------------------------------------------


def test_plot_save_onto_a_fifo_is_refused(work, capsys, fifo):
    pytest.importorskip("matplotlib")
    f = fifo(work / "f.png")
    os.symlink(f.path, work / "link.png")
    before = entries(work)
    for aimed in (f.path, str(work / "link.png")):
        refused(run(capsys, "plot", "counts", "-i", str(work / "small.txt"), "--save", aimed), "FIFO")
    refused(
        run(
            capsys,
            "plot",
            "counts",
            "-i",
            str(work / "small.txt"),
            "--save",
            str(work / "c" / "model.json"),
            "--format",
            "png",
        ),
        "work directory",
    )
    assert entries(work) == before
    assert f.received == b""


def test_plot_save_writes_through_a_symlink(work, capsys):
    pytest.importorskip("matplotlib")
    (work / "pictures").mkdir()
    os.symlink(work / "pictures" / "counts.png", work / "link.png")
    code, out, err = run(capsys, "plot", "counts", "-i", str(work / "small.txt"), "--save", str(work / "link.png"))
    assert code == 0, err
    assert os.path.islink(work / "link.png")
    assert (work / "pictures" / "counts.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---- the rules, one by one -----------------------------------------------------------------


def test_check_user_file_rules(work):
    check = userfile.check_user_file
    (work / "adir").mkdir()
    os.symlink(work / "adir", work / "link-to-dir")
    os.symlink(work / "loop-a", work / "loop-b")
    os.symlink(work / "loop-b", work / "loop-a")
    os.symlink(work / "no" / "such" / "x", work / "dangling")
    cases = [
        ("", "--save is empty"),
        (str(work / "adir"), "is a directory"),
        (str(work / "link-to-dir"), "a directory"),
        (str(work / "loop-a"), "cannot be examined"),
        (str(work / "dangling"), "directory that does not exist"),
        (str(work / "no" / "x.arpa"), "does not exist"),
    ]
    for path, message in cases:
        with pytest.raises(MakemoreError, match=message):
            check(path, "--save")
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(work / "s"))
    except OSError:
        pass  # a path too long for a socket's address: nothing to test
    else:
        with pytest.raises(MakemoreError, match="a socket"):
            check(str(work / "s"))
    finally:
        sock.close()
    # plot makes missing directories, so for it a missing directory is no error
    assert check(str(work / "no" / "x.png"), make_parents=True) == os.path.realpath(work / "no" / "x.png")
    os.symlink("c/model.arpa", work / "rel")
    assert check(str(work / "rel")) == os.path.realpath(work / "c" / "model.arpa")


def test_write_user_file_checks_again_and_replaces_a_regular_file(work, fifo):
    """write_user_file checks at the write too: a file that became a FIFO since the command's check is refused."""
    f = fifo(work / "late")
    with pytest.raises(MakemoreError, match="FIFO"):
        userfile.write_user_file(f.path, b"x")
    assert stat.S_ISFIFO(os.lstat(f.path).st_mode) and f.received == b""
    (work / "ok.txt").write_bytes(b"old")
    assert userfile.write_user_file(str(work / "ok.txt"), b"new") == os.path.realpath(work / "ok.txt")
    assert (work / "ok.txt").read_bytes() == b"new"


def test_the_benchmarks_writers_refuse_a_fifo_too(tmp_path, fifo, capsys):
    """The word-list maker and the results writer of benchmarks/ write user-named files the same way."""
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if root not in sys.path:
        sys.path.insert(0, root)
    from benchmarks import make_words, report

    f = fifo(tmp_path / "words.txt")
    assert make_words.main(["10", f.path]) == 2
    assert "FIFO" in capsys.readouterr().err
    with pytest.raises(MakemoreError, match="FIFO"):
        report.atomic_write_text(f.path, "x")
    assert stat.S_ISFIFO(os.lstat(f.path).st_mode) and f.received == b""
    assert make_words.main(["10", str(tmp_path / "ok.txt")]) == 0
    assert len((tmp_path / "ok.txt").read_text().splitlines()) == 10
