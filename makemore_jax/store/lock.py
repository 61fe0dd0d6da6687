"""One writer per work directory: an exclusive ``flock`` on the directory itself.

``makemore train`` and ``makemore tune`` take it before they read a checkpoint
to continue or write anything, and hold it until they end. A second run into
the same directory is refused with one line naming the holder. The kernel
drops a flock when the process holding it dies, however it dies (SIGKILL
included), so a crashed run never leaves the directory locked; and since the
lock is on the directory, no lock file is left behind either.
"""

from __future__ import annotations

import fcntl
import os

from ..errors import MakemoreError

_held: dict[str, int] = {}  # real path of a work directory -> the descriptor holding its lock


def hold(workdir: str) -> None:
    """Create workdir if needed and lock it until ``release_all``; MakemoreError if another process has it."""
    key = os.path.realpath(workdir)
    if key in _held:
        return
    try:
        os.makedirs(workdir, exist_ok=True)
        fd = os.open(workdir, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as err:
        raise MakemoreError(f"cannot create the work directory {workdir}: {err.strerror or err}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        by = f" (process {holder})" if holder else ""
        raise MakemoreError(
            f"{workdir} is in use by another makemore run{by}; one run at a time writes to a work "
            "directory: wait for it to end, or choose another -o"
        ) from None
    except OSError as err:
        os.close(fd)
        raise MakemoreError(f"cannot lock the work directory {workdir}: {err.strerror or err}") from None
    _held[key] = fd


def release_all() -> None:
    """Drop every lock this process holds (the CLI calls this when a command ends)."""
    while _held:
        _, fd = _held.popitem()
        os.close(fd)  # closing the last descriptor releases the flock


def _holder(fd: int) -> int | None:
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
