"""Writing files safely: exclusive temporaries beside the target, then an atomic rename.

Every file lstmprobe writes goes through :func:`atomic_write` (or, for HDF5 files, through
:func:`create_exclusive`): the temporary is created with ``O_CREAT | O_EXCL`` in the target's
directory, so a symbolic link planted at its name is never followed, and it gets the permissions
a new file of the user normally gets (``0o666`` less the umask).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

_UMASK_LOCK = threading.Lock()


def umask() -> int:
    """The process's umask, read without changing it where the system allows."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o22)
        os.umask(mask)
    return mask


def new_file_mode() -> int:
    """The mode of a new file: ``0o666`` less the umask (what ``open(path, "w")`` gives)."""
    return 0o666 & ~umask()


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename inside ``path``'s directory durable (best effort; POSIX only)."""
    if os.name != "posix":
        return
    parent = Path(path).parent
    try:
        fd = os.open(parent if str(parent) else ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def create_exclusive(path: str | os.PathLike[str]) -> int:
    """Create ``path`` as a new, empty file and return a read-write descriptor to it.

    Fails with ``FileExistsError`` when anything is at ``path`` already, a symbolic link
    included: lstmprobe never writes through a link it did not create.
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    return os.open(path, flags, 0o666)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb", **kwargs: Any) -> Iterator[IO]:
    """Write ``path`` through a temporary beside it, renamed over ``path`` on success.

    The temporary is created exclusively (``tempfile.mkstemp``: ``O_EXCL``, a random name),
    given the permissions of a new file, flushed and fsynced before the rename; on an error it
    is removed and ``path`` is left as it was.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> with atomic_write(d / "out.txt", "w", encoding="utf-8") as fh:
    ...     _ = fh.write("hello")
    >>> (d / "out.txt").read_text(), sorted(p.name for p in d.iterdir())
    ('hello', ['out.txt'])
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, new_file_mode())
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path)
