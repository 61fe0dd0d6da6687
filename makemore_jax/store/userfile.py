"""Files the user names (``export``'s FILE, ``plot --save``): written whole, never over what is not ours.

A command that writes a file the user named replaces at most a regular file, or
creates a new one. Everything else is refused in one line (MakemoreError), and
before any work, so a refused command changes nothing:

- an empty name, a directory, a file in a directory that does not exist;
- a character or block device, a FIFO, a socket (os.replace would put a plain
  file in their place; run as root, even a device node of /dev);
- a file of a work directory, its own or another's: a checkpoint (``model.json``,
  ``last.json``), its array file (``model-<sha>.npz``), ``mixture.json``,
  ``metrics.jsonl``, the lock file or a writer's temporary file.

A symbolic link is written through: its target is checked as above, the new
file is made in the target's real directory and renamed onto the target, so the
link stays a link. The write itself is ``checkpoint.atomic_write`` (a temporary
file, then ``os.replace``): a reader sees the old file or the new one.

Nothing here opens the named file to test it (opening a FIFO blocks until a
writer comes): every test is os.stat, os.lstat or a listing of the directory.
"""

from __future__ import annotations

import os
import re
import stat

from ..errors import MakemoreError
from . import checkpoint
from .lock import LOCK_FILE

CHECKPOINT_NAMES = ("model", "last")  # the checkpoints checkpoint.save writes (see its module docstring)
WORKDIR_FILES = frozenset(
    [f"{name}.json" for name in CHECKPOINT_NAMES] + [checkpoint.MIXTURE_FILE, checkpoint.METRICS_FILE, LOCK_FILE]
)
ARRAY_FILE = re.compile(rf"({'|'.join(CHECKPOINT_NAMES)})-[0-9a-f]{{16}}\.npz")  # NAME-<sha>.npz

_KINDS = (  # (test of st_mode, what it is called in the message)
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
)


def workdir_role(name: str) -> str | None:
    """What a file called name (no directory) is in a work directory, or None if none of its own files."""
    if name in (f"{n}.json" for n in CHECKPOINT_NAMES):
        return "a checkpoint"
    if ARRAY_FILE.fullmatch(name):
        return "a checkpoint's array file"
    if name == checkpoint.MIXTURE_FILE:
        return "a mixture's checkpoint"
    if name == checkpoint.METRICS_FILE:
        return "the training metrics"
    if name.startswith(LOCK_FILE):
        return "the writer's lock"
    if name.startswith(checkpoint.TEMP_PREFIX):
        return "a writer's temporary file"
    return None


def holds_workdir(directory: str) -> bool:
    """True if directory holds a work directory's files: a checkpoint, its arrays, metrics or the lock.

    A directory that cannot be listed counts as none (writing into it fails anyway).
    """
    try:
        names = os.listdir(directory)
    except OSError:
        return False
    return any(name in WORKDIR_FILES or ARRAY_FILE.fullmatch(name) for name in names)


def _workdir_role(path: str) -> str | None:
    """What path (absolute) is in the work directory that holds it ("a checkpoint", ...), or None if nothing."""
    directory, name = os.path.split(path)
    role = workdir_role(name)
    return role if role is not None and holds_workdir(directory) else None


def _kind(mode: int) -> str | None:
    """What a file of this st_mode is called if it must not be replaced; None for a regular file."""
    for test, called in _KINDS:
        if test(mode):
            return called
    return None if stat.S_ISREG(mode) else "not a regular file"


def check_user_file(path: str, what: str = "FILE", *, make_parents: bool = False) -> str:
    """The real path to write for the file the user named path; MakemoreError (one line) if it must not be written.

    Args:
      path: the name as the user gave it (relative, absolute, or a symbolic link).
      what: how the message names the argument when path is empty ("FILE", "--save").
      make_parents: the caller creates missing directories (plot does), so a
        missing directory is no error.

    Returns:
      The absolute path with every symbolic link resolved: the file to replace,
      so that a link is written through and stays a link.
    """
    if not path:
        raise MakemoreError(f"{what} is empty: name the file to write")
    given = os.path.abspath(path)
    real = os.path.realpath(given)
    # a link in a directory above the file is no concern; the message names the file's own link
    linked = real != os.path.join(os.path.realpath(os.path.dirname(given)), os.path.basename(given))
    named = f"{path} is a symbolic link to {real}, " if linked else f"{path} is "
    try:
        st = os.stat(real)
    except FileNotFoundError:
        st = None
    except OSError as err:  # a loop of links, a component that is no directory, no permission
        raise MakemoreError(f"{path}: cannot be examined ({err.strerror or err})") from None
    if st is None:
        if not make_parents and not os.path.isdir(os.path.dirname(real)):
            if linked:
                raise MakemoreError(f"{named}in a directory that does not exist")
            directory = os.path.dirname(given)
            raise MakemoreError(f"{path}: directory {os.path.dirname(path) or directory} does not exist")
    elif stat.S_ISDIR(st.st_mode):
        raise MakemoreError(f"{named}a directory: name a file to write")
    elif (kind := _kind(st.st_mode)) is not None:
        raise MakemoreError(f"{named}{kind}: name a regular file to write")
    # the name as given and the file it resolves to: either may be a work directory's own file
    for candidate in dict.fromkeys((given, real)):
        role = _workdir_role(candidate)
        if role is not None:
            where = named if linked and candidate == real else f"{path} is "
            workdir = (os.path.dirname(path) or ".") if candidate == given else os.path.dirname(candidate)
            raise MakemoreError(
                f"{where}{role} of the work directory {workdir}: writing it would damage that model; name another file"
            )
    return real


def write_user_file(path: str, payload: bytes, what: str = "FILE", *, make_parents: bool = False) -> str:
    """Write payload (bytes) to the file the user named path, atomically; returns the real path written.

    The same checks as ``check_user_file`` run again just before the write (the
    file may have changed since the command checked it first). make_parents
    creates missing directories first. MakemoreError (one line) if the file
    is refused or cannot be written; what was there before is then kept.
    """
    real = check_user_file(path, what, make_parents=make_parents)
    try:
        if make_parents:
            os.makedirs(os.path.dirname(real), exist_ok=True)
        checkpoint.atomic_write(real, payload)
    except OSError as err:
        raise MakemoreError(f"{path}: cannot write ({err.strerror or err})") from None
    return real
