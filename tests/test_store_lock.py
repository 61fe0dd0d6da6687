"""The work directory's lock and the CLI where ``fcntl`` does not exist (Windows).

Each run here is a process that first makes ``fcntl`` unavailable (``sys.modules['fcntl']
= None``), so that makemore_jax.store.lock takes its fallback: the ``O_EXCL`` lock file
with a stale-holder rule ("file"), or, with a stand-in ``msvcrt`` module whose
``locking`` is a POSIX record lock (released, like Windows' lock, when its process
ends) given to the lock module, the byte-range lock Windows uses ("msvcrt"); that
variant also takes away the rest of os that Windows lacks on the common path
(os.fchmod, O_DIRECTORY, os.open of a directory). Every command must print what it
prints with fcntl and write the same files; a second writer must be refused with the
one line of the flock lock; a killed holder must block nothing; the lock file must be
gone when a command ends, however it ends.
"""

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from makemore_jax.errors import MakemoreError
from makemore_jax.store import lock

from conftest import ROOT, first_names

ENV = {**os.environ, "PYTHONPATH": ROOT}
FALLBACKS = ["file", "msvcrt"]
LOCK_FILE = ".makemore-lock"

# msvcrt.locking as on Windows (lock nbytes from the file position; OSError EACCES if another
# process holds them), made of fcntl.lockf, which the kernel drops when its process ends
FAKE_MSVCRT = """
import errno, fcntl as _fcntl, os, types
msvcrt = types.ModuleType("msvcrt")
msvcrt.LK_UNLCK, msvcrt.LK_LOCK, msvcrt.LK_NBLCK, msvcrt.LK_RLCK, msvcrt.LK_NBRLCK = 0, 1, 2, 3, 4
def _locking(fd, mode, nbytes):
    if mode == msvcrt.LK_UNLCK:
        _fcntl.lockf(fd, _fcntl.LOCK_UN, nbytes, 0, os.SEEK_CUR)
        return
    try:
        _fcntl.lockf(fd, _fcntl.LOCK_EX | _fcntl.LOCK_NB, nbytes, 0, os.SEEK_CUR)
    except OSError:
        raise OSError(errno.EACCES, "Permission denied") from None
msvcrt.locking = _locking
"""

# what else of os is not there on Windows (before Python 3.13) and on the common path:
# os.fchmod, O_DIRECTORY, and opening a directory with os.open (fails there: EACCES)
WINDOWS_OS = """
import os
del os.fchmod, os.O_DIRECTORY
_posix_open = os.open
def _open(path, flags, mode=0o777, *, dir_fd=None):
    if dir_fd is None and os.path.isdir(path):
        raise PermissionError(13, "Permission denied", path)
    return _posix_open(path, flags, mode, dir_fd=dir_fd)
os.open = _open
"""

# every command, in one process; after each, its exit status and the files of its work directory
SEQUENCE = """
import json, os
from makemore_jax.cli import main
for argv in json.loads(sys.argv[1]):
    print("$", *argv, flush=True)
    code = main(argv)
    sys.stdout.flush()
    print("exit", code, sorted(os.listdir(argv[argv.index("-o") + 1])), flush=True)
"""


def python(backend: str, body: str) -> str:
    """Python source that runs body with the given lock backend in force (and checks that it is)."""
    lines = ["import sys"]
    if backend != "flock":
        if backend == "msvcrt":
            lines += [FAKE_MSVCRT, WINDOWS_OS]
        lines += [
            "sys.modules['fcntl'] = None",
            # JAX's filelock says it once it finds no fcntl; on Windows it has msvcrt and does not
            "import warnings; warnings.filterwarnings('ignore', message='only soft file lock')",
        ]
    lines.append("from makemore_jax.store import lock")
    if backend == "msvcrt":  # lock's alone: others (subprocess) would take the process for a Windows one
        lines.append("lock.msvcrt = msvcrt")
    lines += [f"assert lock.backend() == {backend!r}, lock.backend()", body]
    return "\n".join(lines)


def run(backend: str, body: str, *args, cwd, timeout=300):
    return subprocess.run(
        [sys.executable, "-c", python(backend, body), *map(str, args)],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=cwd,
        timeout=timeout,
    )


def popen(backend: str, body: str, *args, cwd, **kw):
    return subprocess.Popen(
        [sys.executable, "-c", python(backend, body), *map(str, args)], text=True, env=ENV, cwd=cwd, **kw
    )


def makemore(backend: str, *argv, cwd):
    return run(backend, "from makemore_jax.cli import main; sys.exit(main(sys.argv[1:]))", *argv, cwd=cwd)


def in_use(workdir, pid, host=""):
    on = f" on {host}" if host else ""
    return (
        f"{workdir} is in use by another makemore run (process {pid}{on}); one run at a time writes to a "
        "work directory: wait for it to end, or choose another -o"
    )


def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture(scope="module")
def small_names(tmp_path_factory):
    return first_names(tmp_path_factory, 200)


# ---- every command, with and without fcntl ---------------------------------------------


def every_command(names):
    train = ["-i", names, "-q"]
    return [
        ["train", "-o", "c", "--type", "counts", *train],
        ["train", "-o", "b", "--steps", "20", "--eval-every", "10", *train],
        ["train", "-o", "b", "--resume", "--steps", "30", *train],
        ["train", "-o", "empty", "--resume", *train],  # an error after the lock is taken
        ["train", "-o", "empty", "--type", "counts", *train],  # ... which must not block the next run
        ["tune", "--type", "ngram", "-o", "t", "-i", names, "--max-order", "2", "--num-samples", "3"],
        ["mix", "-o", "m", "c", "b", "--num-samples", "3"],
        ["sample", "-o", "m", "-n", "5", "--seed", "1"],
        ["sample", "-o", "b", "-n", "5"],
        ["eval", "-o", "b", "-i", names],
        ["eval", "-o", "m", "-i", names],
        ["plot", "loss", "-o", "b", "--format", "svg", "--save", "b/loss.svg"],
    ]


def run_every_command(backend, names, where):
    where.mkdir()
    (where / "empty").mkdir()
    proc = run(backend, SEQUENCE, json.dumps(every_command(names)), cwd=where)
    assert proc.returncode == 0, proc.stderr
    out = re.sub(r" in \d+(\.\d+)? s;", " in (time) s;", proc.stdout)  # tune's time to score the grid
    files = {}
    for dirpath, _, names_ in os.walk(where):
        for name in names_:
            path = os.path.join(dirpath, name)
            data = open(path, "rb").read()
            if name == "metrics.jsonl":  # the same but for the speed
                data = [
                    {k: v for k, v in json.loads(line).items() if k not in ("steps_per_s", "compile_s")}
                    for line in data.splitlines()
                ]
            files[os.path.relpath(path, where)] = (oct(os.stat(path).st_mode), data)
    return out, proc.stderr, files


@pytest.fixture(scope="module")
def with_fcntl(tmp_path_factory, small_names):
    return run_every_command("flock", small_names, tmp_path_factory.mktemp("flock") / "run")


@pytest.mark.parametrize("backend", FALLBACKS)
def test_every_command_runs_without_fcntl_and_does_what_it_does_with_it(backend, tmp_path, small_names, with_fcntl):
    out, err, files = run_every_command(backend, small_names, tmp_path / "run")
    ref_out, ref_err, ref_files = with_fcntl
    assert out == ref_out
    assert err == ref_err
    assert files == ref_files
    # it did run everything, and released the lock after each command, the failed one too
    assert out.count("$ ") == len(every_command(small_names)) == out.count("\nexit ")
    assert "exit 2 []\n" in out and out.count("exit 0 ") == out.count("$ ") - 1
    assert LOCK_FILE not in out and not any(LOCK_FILE in path for path in files)


# ---- one writer at a time --------------------------------------------------------------

HOLDER = """
lock.hold(sys.argv[1])
print("held", flush=True)
sys.stdin.read()  # until the test closes stdin (or kills this process)
"""


def start_holder(backend, workdir, cwd):
    holder = popen(backend, HOLDER, workdir, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert holder.stdout.readline() == "held\n"
    return holder


@pytest.mark.parametrize("backend", FALLBACKS)
def test_a_second_writer_is_refused_and_a_killed_holder_blocks_nothing(backend, tmp_path, small_names):
    work = tmp_path / "w"
    holder = start_holder(backend, work, tmp_path)
    try:
        assert os.listdir(work) == [LOCK_FILE]
        second = makemore(backend, "train", "-o", work, "-i", small_names, "--type", "counts", cwd=tmp_path)
        assert second.returncode == 2, second.stderr
        assert second.stderr == f"makemore train: error: {in_use(work, holder.pid)}\n"
        assert os.listdir(work) == [LOCK_FILE]  # untouched
        assert holder.poll() is None
    finally:
        holder.kill()
        holder.wait()
    assert os.listdir(work) == [LOCK_FILE]  # killed: the file stays, with its holder gone
    again = makemore(backend, "train", "-o", work, "-i", small_names, "--type", "counts", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert LOCK_FILE not in os.listdir(work)


@pytest.mark.parametrize("backend", FALLBACKS)
def test_the_lock_is_released_at_exit_and_when_a_signal_stops_training(backend, tmp_path, small_names):
    work = tmp_path / "w"
    holder = start_holder(backend, work, tmp_path)
    holder.communicate(input="", timeout=60)  # ends without release_all: atexit releases
    assert holder.returncode == 0
    assert os.listdir(work) == []

    train = [
        "train",
        "-o",
        work,
        "-i",
        small_names,
        "--type",
        "bigram",
        "--optimizer",
        "adamw",
        "--lr",
        "0.05",
        "--batch-size",
        "16",
        "--steps",
        "1000000",
        "--eval-every",
        "10",
        "--log-every",
        "10",
    ]
    body = "from makemore_jax.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = popen(backend, body, *train, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline().startswith("data:")
        while not proc.stdout.readline().startswith("step"):  # training (holding the lock)
            assert proc.poll() is None, proc.stderr.read()
        assert LOCK_FILE in os.listdir(work)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 128 + signal.SIGTERM, err
    stopped = re.search(r"stopped by SIGTERM at step ([\d,]+); saved", err)
    assert stopped, err
    assert LOCK_FILE not in os.listdir(work)
    steps = int(stopped.group(1).replace(",", "")) + 10
    resumed = makemore(
        backend, "train", "-o", work, "--resume", "-i", small_names, "-q", "--steps", steps, cwd=tmp_path
    )
    assert resumed.returncode == 0, resumed.stderr
    assert LOCK_FILE not in os.listdir(work)


# ---- the lock file's rules, in this process (fcntl and msvcrt hidden from the module) ---


@pytest.fixture
def file_lock(monkeypatch, tmp_path):
    monkeypatch.setattr(lock, "fcntl", None)
    monkeypatch.setattr(lock, "msvcrt", None)
    assert lock.backend() == "file"
    yield tmp_path / "w"
    lock.release_all()


def plant(work, text, age_s=0.0):
    work.mkdir(exist_ok=True)
    path = work / LOCK_FILE
    path.write_text(text)
    if age_s:
        then = time.time() - age_s
        os.utime(path, (then, then))
    return path


def holds(work) -> bool:
    """Whether this process's record is in work's lock file (the lock is ours)."""
    record = (work / LOCK_FILE).read_text().split()
    return record[:2] == [str(os.getpid()), socket.gethostname()]


def test_lock_file_is_created_exclusively_and_removed_on_release(file_lock):
    lock.hold(str(file_lock))
    assert holds(file_lock)
    lock.hold(str(file_lock))  # this process has it already
    lock.release_all()
    assert os.listdir(file_lock) == []


def test_a_live_holder_is_refused_and_a_dead_one_taken_over(file_lock):
    live = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        path = plant(file_lock, f"{live.pid} {socket.gethostname()} 0123\n")
        with pytest.raises(MakemoreError) as refused:
            lock.hold(str(file_lock))
        assert str(refused.value) == in_use(file_lock, live.pid)
        assert path.read_text() == f"{live.pid} {socket.gethostname()} 0123\n"
    finally:
        live.communicate(input=b"")
    # the same pid, now ended: stale
    lock.hold(str(file_lock))
    assert holds(file_lock)
    assert sorted(os.listdir(file_lock)) == [LOCK_FILE]  # no claim or temporary file left


def test_another_hosts_holder_is_never_judged_stale(file_lock):
    plant(file_lock, f"{dead_pid()} elsewhere.example 0123\n")
    with pytest.raises(MakemoreError) as refused:
        lock.hold(str(file_lock))
    assert "(process " in str(refused.value) and " on elsewhere.example)" in str(refused.value)


def test_a_half_written_lock_file_is_held_until_it_is_old(file_lock):
    path = plant(file_lock, "")
    with pytest.raises(MakemoreError, match=r"is in use by another makemore run; one run at a time"):
        lock.hold(str(file_lock))
    plant(
        file_lock, f"{os.getpid()} {socket.gethostname()}", age_s=2 * lock.UNREADABLE_STALE_S
    )  # no newline: cut short
    lock.hold(str(file_lock))
    assert holds(file_lock) and path.read_text().endswith("\n")


def test_a_run_taking_over_blocks_others_and_a_dead_claimant_does_not(file_lock):
    stale = f"{dead_pid()} {socket.gethostname()} 0123\n"
    path = plant(file_lock, stale)
    claim = file_lock / f"{LOCK_FILE}.takeover-{hashlib.sha256(stale.encode()).hexdigest()[:16]}"
    live = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        claim.write_text(f"{live.pid} {socket.gethostname()} 4567\n")
        with pytest.raises(MakemoreError) as refused:
            lock.hold(str(file_lock))
        assert str(refused.value) == in_use(file_lock, live.pid)
        assert path.read_text() == stale
    finally:
        live.communicate(input=b"")
    lock.hold(str(file_lock))  # its claimant is gone now
    assert holds(file_lock)
    assert sorted(os.listdir(file_lock)) == [LOCK_FILE]


def test_a_lock_taken_over_between_a_look_and_a_takeover_is_left_alone(file_lock, monkeypatch):
    # this run looks and sees a dead holder's lock; before it takes it over, another run does
    live = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        now = f"{live.pid} {socket.gethostname()} 4567\n"
        path = plant(file_lock, now)
        read, looks = lock._read, []

        def first_look_stale(p):
            if p == str(path) and not looks:
                looks.append(p)
                return f"{dead_pid()} {socket.gethostname()} 0123\n"
            return read(p)

        monkeypatch.setattr(lock, "_read", first_look_stale)
        with pytest.raises(MakemoreError) as refused:
            lock.hold(str(file_lock))
        assert str(refused.value) == in_use(file_lock, live.pid)
        assert path.read_text() == now
        assert sorted(os.listdir(file_lock)) == [LOCK_FILE]
    finally:
        live.communicate(input=b"")


def test_release_leaves_a_lock_file_that_is_not_ours(file_lock):
    lock.hold(str(file_lock))
    other = f"{os.getpid()} {socket.gethostname()} not-ours\n"
    (file_lock / LOCK_FILE).write_text(other)
    lock.release_all()
    assert (file_lock / LOCK_FILE).read_text() == other


RACER = """
import time
while not os.path.exists(sys.argv[2]):
    time.sleep(0.001)
try:
    lock.hold(sys.argv[1])
except Exception as err:
    print("refused", err, flush=True)
else:
    print("held", flush=True)
    time.sleep(1.0)  # hold it while the others try
"""


def test_of_runs_finding_the_same_stale_lock_exactly_one_takes_it_over(tmp_path):
    for round_ in range(3):
        work = tmp_path / f"w{round_}"
        plant(work, f"{dead_pid()} {socket.gethostname()} 0123\n")
        go = tmp_path / f"go{round_}"
        racers = [
            popen("file", "import os\n" + RACER, work, go, cwd=tmp_path, stdout=subprocess.PIPE) for _ in range(6)
        ]
        time.sleep(1.0)  # all started and waiting
        go.touch()
        outs = [r.communicate(timeout=120)[0] for r in racers]
        assert sorted(out.split()[0] for out in outs) == ["held"] + ["refused"] * 5, outs
        assert os.listdir(work) == []
