"""Writing files safely: exclusive temporaries beside the target, then an atomic rename.

Every file lstmprobe writes goes through :func:`atomic_write` or :func:`atomic_path` (or, for
the recording's HDF5 files, through :func:`create_exclusive`): the temporary is created with ``O_CREAT | O_EXCL`` in the target's
directory, so a symbolic link planted at its name is never followed, and it gets the permissions
a new file of the user normally gets (``0o666`` less the umask).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

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


def cannot_write(path: str | os.PathLike[str]) -> str | None:
    """Why a file cannot be created at ``path`` (with the fix), or None when it can.

    The one check of an output, made before long work so that nothing computed is thrown away:
    the path is no directory, its directory exists, and a file can be created there (tried:
    permissions, read-only file systems and ACLs leave no other true test).

    Examples
    --------
    >>> cannot_write("/") is not None, cannot_write("no/such/dir/acts.h5")
    (True, 'the directory no/such/dir does not exist; create it first')
    """
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        return "it is a directory; give a file path"
    if not parent.is_dir():
        what = "does not exist" if not parent.exists() else "is not a directory"
        return f"the directory {parent} {what}; create it first"
    try:
        fd, probe = tempfile.mkstemp(dir=parent, prefix=".lstmprobe-write-test-")
    except OSError as exc:
        return (
            f"the directory {parent} is not writable ({exc.strerror or type(exc).__name__}); "
            "choose a directory you can write to"
        )
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    return None


def create_exclusive(path: str | os.PathLike[str]) -> int:
    """Create ``path`` as a new, empty file and return a read-write descriptor to it.

    Fails with ``FileExistsError`` when anything is at ``path`` already, a symbolic link
    included: lstmprobe never writes through a link it did not create.
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    return os.open(path, flags, 0o666)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a new, empty temporary file beside ``path``; on success it replaces ``path``.

    For writers that want a file name rather than a file object (HDF5, matplotlib). The
    temporary is created exclusively (``tempfile.mkstemp``: ``O_EXCL``, a random name) with the
    permissions of a new file (:func:`new_file_mode`); after the body it is fsynced, renamed over
    ``path`` and the directory is fsynced. On an error it is removed and ``path`` is left as it
    was.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> with atomic_path(d / "out.bin") as part:
    ...     _ = part.write_bytes(b"hello")
    >>> (d / "out.bin").read_bytes(), sorted(p.name for p in d.iterdir())
    (b'hello', ['out.bin'])
    """
    path = Path(path)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        try:
            os.fchmod(fd, new_file_mode())
        finally:
            os.close(fd)
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not exc.filename and exc.errno:
            # a write error (a full disk) names no file: it is the one the caller asked for
            raise type(exc)(exc.errno, exc.strerror, str(path)) from None
        raise
    fsync_dir(path)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb", **kwargs: Any) -> Iterator[IO]:
    """Write ``path`` through a temporary beside it, renamed over ``path`` on success.

    The file object writes the temporary of :func:`atomic_path` (created exclusively, with the
    permissions of a new file, fsynced before the rename); on an error it is removed and
    ``path`` is left as it was.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> with atomic_write(d / "out.txt", "w", encoding="utf-8") as fh:
    ...     _ = fh.write("hello")
    >>> (d / "out.txt").read_text(), sorted(p.name for p in d.iterdir())
    ('hello', ['out.txt'])
    """
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh


def write_failed(path: str | os.PathLike[str] | None, exc: OSError) -> str:
    """One line for an error while writing ``path``: a full disk (or quota) says so and names
    the file; anything else says what the system said.

    Examples
    --------
    >>> write_failed("acts.report.html", OSError(28, "No space left on device"))
    'no space left on device while writing acts.report.html; free space (or write elsewhere) and run it again'
    """
    where = f" {os.fspath(path)}" if path else ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        what = (exc.strerror or "no space left on device").lower()
        return f"{what} while writing{where}; free space (or write elsewhere) and run it again"
    return f"cannot write{where}: {exc.strerror or exc}; choose a directory you can write to"


def json_default(obj: Any) -> Any:
    """The ``default`` of ``json.dumps`` for numpy scalars and arrays, paths and sets."""
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (Path, os.PathLike)):
        return os.fspath(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically (temporary file beside it + ``os.replace``).

    The temporary is created exclusively (a link at its name is never followed) and the file gets
    the permissions of a new file (``0o666`` less the umask).

    Derived results (rankings, dynamics) go beside a recording with this function, never into it.
    numpy scalars and arrays are converted to plain JSON.

    Parameters
    ----------
    path : str or PathLike
        The JSON file to write, e.g. ``store.recording.rankings``.
    obj : object
        Anything ``json`` can write, plus numpy scalars/arrays, paths and sets.

    Returns
    -------
    Path
        ``path``.

    Examples
    --------
    >>> import tempfile, json
    >>> tmp = tempfile.TemporaryDirectory()
    >>> p = write_json_atomic(Path(tmp.name) / "acts.rankings.json", {"top": [np.int64(3)]})
    >>> json.loads(p.read_text())
    {'top': [3]}
    >>> tmp.cleanup()
    """
    path = Path(path)
    text = json_text(obj)
    with atomic_write(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    return path


def json_text(obj: Any) -> str:
    """The text :func:`write_json_atomic` writes for ``obj`` (indented, ending in a newline).

    Examples
    --------
    >>> json_text({"top": np.int64(3)}).splitlines(), json_text({}).endswith(chr(10))
    (['{', '  "top": 3', '}'], True)
    """
    return json.dumps(obj, indent=2, ensure_ascii=False, default=json_default) + "\n"


def on_terminal(stream: Any) -> bool:
    """Whether ``stream`` is an interactive terminal (False for a file, a pipe, a closed one)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def progress_bar(
    total: int,
    *,
    desc: str,
    unit: str,
    enabled: bool = True,
    initial: int = 0,
    unit_scale: bool = False,
    leave: bool = True,
) -> Any:
    """The progress bar of long work: a ``tqdm`` on stderr (stdout stays for results), hidden
    when ``enabled`` is false or stderr is not a terminal (a log file or a pipe would collect
    thousands of ``\r``-separated fragments). Every stage's bar is made here, so that all of
    them look alike."""
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit=unit,
        unit_scale=unit_scale,
        leave=leave,
        disable=not (enabled and on_terminal(sys.stderr)),
        file=sys.stderr,
        dynamic_ncols=True,
    )
