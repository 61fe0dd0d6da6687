"""One writer per work directory, on every OS JAX runs on.

``makemore train``, ``tune`` and ``mix`` take the lock before they read a
checkpoint to continue or write anything, and hold it until they end. A second
run into the same directory is refused with one line naming the holder. How
the lock is held depends on what the platform offers:

``flock`` (where ``fcntl`` exists: Linux, macOS, every POSIX system)
    An exclusive ``flock`` on the directory itself. The kernel drops it when the
    process holding it dies, however it dies (SIGKILL included), so a crashed run
    never leaves the directory locked; and since the lock is on the directory, no
    lock file is left behind either. The holder is named from /proc/locks.

``msvcrt`` (Windows)
    A byte-range lock (``msvcrt.locking``) on one byte of ``WORKDIR/.makemore-lock``,
    at offset ``RECORD_BYTES``, past the holder's record ("pid host") at the start
    of the file, which others read to name the holder. Windows drops the lock
    when the holding process ends, however it ends. The file is removed on release;
    Windows refuses to remove a file another process has open, so it stays only if
    another run is opening it at that moment, and then blocks nothing.

``file`` (neither: the lock file alone)
    ``WORKDIR/.makemore-lock`` is created with ``O_CREAT | O_EXCL`` and holds
    "pid host token"; its existence is the lock, and release removes it (at exit
    too). A run that finds it judges its holder:

    - a process that still runs on this host, or any process of another host
      (which cannot be checked from here): the lock is held, the run is refused;
    - a process that no longer runs on this host (a killed run): the lock is
      stale and is taken over. The taker first creates, with ``O_EXCL``, a claim
      named after the stale file's content (``.makemore-lock.takeover-<hash>``),
      so of several runs finding the same stale lock exactly one takes it over;
      the claimant checks that the lock file still holds what it judged stale and
      replaces it with its own record by ``os.replace`` (atomic); the others find
      the claim and are refused, or, if they come later, find the new holder;
    - a file without a readable record is a run that is writing it: held, unless
      it is older than ``UNREADABLE_STALE_S`` seconds (its writer died between
      creating and writing it), then stale like the above.
"""

from __future__ import annotations

import atexit
import errno
import hashlib
import importlib
import os
import socket
import time
from collections.abc import Callable
from types import ModuleType

from ..errors import MakemoreError


def _optional_module(name: str) -> ModuleType | None:
    """The module, or None where this platform has none."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


fcntl = _optional_module("fcntl")  # None on Windows
msvcrt = _optional_module("msvcrt")  # None everywhere but Windows

LOCK_FILE = ".makemore-lock"  # not .tmp-*: prepare_workdir removes those
RECORD_BYTES = 1024  # msvcrt: the holder's record lies before this offset, the locked byte at it
UNREADABLE_STALE_S = 10.0
_ATTEMPTS = 20  # file: rounds of create / judge / take over before giving up
_O_BINARY = getattr(os, "O_BINARY", 0)  # Windows: no newline translation

_held: dict[str, Callable[[], None]] = {}  # real path of a work directory -> what releases its lock
_atexit_registered = False
_created: dict[str, str] = {}  # real path -> path as given, of the work directories this process created


def backend() -> str:
    """How this platform's lock is held: "flock", "msvcrt" or "file" (see the module's docstring)."""
    if fcntl is not None:
        return "flock"
    return "msvcrt" if msvcrt is not None else "file"


def hold(workdir: str) -> None:
    """Create workdir if needed and lock it until ``release_all``; MakemoreError if another process has it."""
    key = os.path.realpath(workdir)
    if key in _held:
        return
    if not os.path.lexists(workdir):
        _created[key] = workdir
    if fcntl is not None:  # backend() == "flock" (the module itself, so that the type checker knows it is there)
        _held[key] = _hold_flock(workdir, fcntl)
        return
    try:
        os.makedirs(workdir, exist_ok=True)
    except OSError as err:
        raise MakemoreError(f"cannot create the work directory {workdir}: {err.strerror or err}") from None
    _held[key] = _hold_msvcrt(workdir, msvcrt) if msvcrt is not None else _hold_file(workdir)
    global _atexit_registered
    if not _atexit_registered:  # a lock file must not outlive its process (the CLI releases it earlier)
        atexit.register(release_all)
        _atexit_registered = True


def release_all(remove_created_if_empty: bool = False) -> None:
    """Drop every lock this process holds (the CLI calls this when a command ends).

    remove_created_if_empty: a work directory that this process created and that is still empty is
    removed too (a command that failed leaves no trace); it is removed before its lock is dropped,
    so that no other run can have started there in between.
    """
    while _held:
        _release(next(iter(_held)), remove_created_if_empty)
    _created.clear()


def release(workdir: str, remove_created_if_empty: bool = False) -> None:
    """Drop this process's lock on workdir (nothing if it holds none), as release_all does."""
    key = os.path.realpath(workdir)
    if key in _held:
        _release(key, remove_created_if_empty)


def _release(key: str, remove_created_if_empty: bool) -> None:
    release_lock = _held.pop(key)
    created = _created.pop(key, None)
    if remove_created_if_empty and created is not None and backend() == "flock":
        _remove_if_empty(created)
    release_lock()
    if remove_created_if_empty and created is not None and backend() != "flock":
        _remove_if_empty(created)  # its lock file is gone only now


def _remove_if_empty(workdir: str) -> None:
    try:
        os.rmdir(workdir)  # fails, and so keeps it, if anything is in it
    except OSError:
        pass


def _in_use(workdir: str, pid: int | None, host: str | None = None) -> MakemoreError:
    where = f" on {host}" if host and host != socket.gethostname() else ""
    by = f" (process {pid}{where})" if pid else ""
    return MakemoreError(
        f"{workdir} is in use by another makemore run{by}; one run at a time writes to a work "
        "directory: wait for it to end, or choose another -o"
    )


def _cannot_lock(workdir: str, err: OSError) -> MakemoreError:
    return MakemoreError(f"cannot lock the work directory {workdir}: {err.strerror or err}")


# ---- flock ----------------------------------------------------------------------------


def _hold_flock(workdir: str, fcntl: ModuleType) -> Callable[[], None]:
    try:
        os.makedirs(workdir, exist_ok=True)
        fd = os.open(workdir, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as err:
        raise MakemoreError(f"cannot create the work directory {workdir}: {err.strerror or err}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _flock_holder(fd)
        os.close(fd)
        raise _in_use(workdir, holder) from None
    except OSError as err:
        os.close(fd)
        raise _cannot_lock(workdir, err) from None
    return lambda: os.close(fd)  # closing the last descriptor releases the flock


def _flock_holder(fd: int) -> int | None:
    """The process holding a flock on fd's file, from /proc/locks (Linux); None if unknown."""
    st = os.fstat(fd)
    exact, same_inode = [], []
    try:
        with open("/proc/locks") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) < 6 or fields[1] != "FLOCK":  # waiters are listed with "->" and are not holders
            continue
        try:
            pid = int(fields[4])
            major, minor, inode = fields[5].split(":")
            dev = (int(major, 16), int(minor, 16))
            ino = int(inode)
        except ValueError:
            continue
        if ino == st.st_ino:
            same_inode.append(pid)
            if dev == (os.major(st.st_dev), os.minor(st.st_dev)):
                exact.append(pid)
    # overlay file systems may report another device number: the inode alone then decides
    found = exact or same_inode
    return found[0] if len(found) == 1 else None


# ---- records: "pid host [token]" ------------------------------------------------------


def _record(token: str = "") -> str:
    return " ".join(filter(None, (str(os.getpid()), socket.gethostname(), token))) + "\n"


def _parse(text: str | None) -> tuple[int, str] | None:
    """(pid, host) of a record; None if it is not one (empty, half written, damaged)."""
    text = text or ""
    fields = text.split()
    if len(fields) < 2 or not fields[0].isdigit() or not text.endswith("\n"):
        return None
    pid = int(fields[0])
    return (pid, fields[1]) if 0 < pid < 2**31 else None


# ---- msvcrt ---------------------------------------------------------------------------


def _hold_msvcrt(workdir: str, msvcrt: ModuleType) -> Callable[[], None]:
    path = os.path.join(workdir, LOCK_FILE)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | _O_BINARY, 0o666)
    except OSError as err:
        raise _cannot_lock(workdir, err) from None
    try:
        os.lseek(fd, RECORD_BYTES, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError as err:
        busy = err.errno in (errno.EACCES, getattr(errno, "EDEADLOCK", errno.EDEADLK))
        record = _parse(_read_fd(fd)) if busy else None
        os.close(fd)
        if busy:
            raise _in_use(workdir, *(record or (None,))) from None
        raise _cannot_lock(workdir, err) from None
    # the record, padded over any longer one a killed holder left (no truncation under a lock)
    text = _record().encode("utf-8")[: RECORD_BYTES - 1]
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, text.rstrip(b"\n").ljust(RECORD_BYTES - 1) + b"\n")
    except OSError as err:
        os.close(fd)  # drops the lock too
        raise _cannot_lock(workdir, err) from None

    def release() -> None:
        try:
            os.lseek(fd, RECORD_BYTES, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        except OSError:  # closing drops it anyway
            pass
        os.close(fd)
        try:
            os.unlink(path)
        except OSError:  # another run has it open (and may hold it now), or it is gone: it blocks nothing
            pass

    return release


def _read_fd(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, RECORD_BYTES).decode("utf-8", "replace")


# ---- file: O_EXCL with a stale-holder rule --------------------------------------------


def _hold_file(workdir: str) -> Callable[[], None]:
    path = os.path.join(workdir, LOCK_FILE)
    mine = _record(os.urandom(8).hex())
    try:
        for _ in range(_ATTEMPTS):
            try:
                _create(path, mine)
                break
            except FileExistsError:
                pass
            found = _read(path)
            if found is None:  # released meanwhile
                continue
            if not _stale(path, found):
                raise _in_use(workdir, *(_parse(found) or (None,)))
            if _take_over(workdir, path, found, mine):
                break
        else:
            raise MakemoreError(f"cannot lock the work directory {workdir}: {path} keeps changing")
    except OSError as err:
        raise _cannot_lock(workdir, err) from None

    def release() -> None:
        try:
            if _read(path) == mine:  # still ours (it always is: nobody takes over a live holder's lock)
                _unlink(path)
        except OSError:  # the directory went away or became unreadable: a file left is stale, taken over next time
            pass

    return release


def _create(path: str, text: str) -> None:
    """Create path with text; FileExistsError if it exists."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY, 0o666)
    try:
        os.write(fd, text.encode("utf-8"))
    finally:
        os.close(fd)


def _read(path: str) -> str | None:
    """path's text; None if it does not exist."""
    try:
        with open(path, "rb") as f:
            return f.read(RECORD_BYTES).decode("utf-8", "replace")
    except FileNotFoundError:
        return None


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _stale(path: str, text: str) -> bool:
    """Whether the lock file holding text belongs to no running process (see the module's docstring)."""
    record = _parse(text)
    if record is None:
        try:
            return time.time() - os.stat(path).st_mtime > UNREADABLE_STALE_S
        except FileNotFoundError:
            return False  # gone: the caller starts again
    pid, host = record
    if host != socket.gethostname():
        return False  # another host's process: cannot be checked from here
    if pid == os.getpid():
        return True  # not one of this process's locks (hold returns early for those): an earlier process's, dead
    return not _running(pid)


def _running(pid: int) -> bool:
    if os.name == "nt":  # not reached (Windows has msvcrt); os.kill(pid, 0) would end the process there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # runs, as another user
        return True
    return True


def _take_over(workdir: str, path: str, stale: str, mine: str) -> bool:
    """Replace the stale lock file (content ``stale``) with ours; False to start again."""
    claim = f"{path}.takeover-{hashlib.sha256(stale.encode('utf-8')).hexdigest()[:16]}"
    try:
        _create(claim, mine)
    except FileExistsError:
        claimant = _read(claim)
        if claimant is None:
            return False
        if not _stale(claim, claimant):  # another run is taking it over now
            raise _in_use(workdir, *(_parse(claimant) or (None,))) from None
        _unlink(claim)  # its claimant died taking over
        return False
    ours = f"{path}.{mine.split()[-1]}"
    try:
        if _read(path) != stale:  # taken over, or released, since it was judged
            return False
        with open(ours, "wb") as f:
            f.write(mine.encode("utf-8"))
        os.replace(ours, path)
        return True
    finally:
        _unlink(ours)
        _unlink(claim)
