"""An export's output directory: every file staged in a temporary directory beside it, then moved
into place, so that a failed export leaves nothing half-written behind."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from lstmprobe._io import fsync_dir, umask
from lstmprobe.errors import InteropError


def check_target(path: Path, *, force: bool) -> None:
    """Refuse, before any work, an output directory that cannot take an export.

    A new or empty directory takes one; a non-empty one only with ``force`` (and then only the
    files the export writes are replaced); a file, or a parent that does not exist, never.
    """
    if path.exists() and not path.is_dir():
        raise InteropError(f"{path} is a file; an export writes a directory: give `outdir=DIR`")
    parent = path.parent
    if not parent.is_dir():
        raise InteropError(
            f"the directory {parent} does not exist; create it first or choose another `outdir`"
        )
    if path.is_dir() and not force:
        entries = sorted(p.name for p in path.iterdir())
        if entries:
            shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
            raise InteropError(
                f"{path} is not empty ({len(entries)} entries: {shown}); export into a new or "
                "empty directory, or pass `force=True` to replace the files the export writes "
                "there (others are left as they are)"
            )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InteropError(f"cannot write in {parent}; choose another `outdir`")


class Stage:
    """The temporary directory an export writes into; :meth:`file` names each file in the
    order it is to be moved into place (the one a reader opens first comes last)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.names: list[str] = []

    def file(self, name: str) -> Path:
        """The staged path of the export's file ``name``."""
        if name in self.names:
            raise ValueError(f"{name} is staged twice")
        self.names.append(name)
        return self.dir / name


@contextlib.contextmanager
def staged(path: str | os.PathLike[str], *, force: bool = False) -> Iterator[Stage]:
    """Write an export into a temporary directory beside ``path``; on success it becomes ``path``.

    A new or empty ``path`` is replaced by the finished directory in one rename. Into a
    non-empty ``path`` (only with ``force``) each file is moved with its own atomic rename, in
    the order they were staged, and nothing else there is touched. On an error the temporary
    directory is removed and ``path`` is left as it was.

    Examples
    --------
    >>> d = Path(tempfile.mkdtemp()) / "project"
    >>> with staged(d) as stage:
    ...     _ = stage.file("a.txt").write_text("a")
    >>> sorted(p.name for p in d.iterdir()), sorted(p.name for p in d.parent.iterdir())
    (['a.txt'], ['project'])
    """
    path = Path(path)
    check_target(path, force=force)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".export"))
    try:
        stage = Stage(tmp)
        yield stage
        _commit(stage, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _commit(stage: Stage, path: Path) -> None:
    taken = [n for n in stage.names if (path / n).is_dir() and not (path / n).is_symlink()]
    if taken:  # checked before anything moves: a directory cannot be replaced by a file
        raise InteropError(
            f"{path / taken[0]} is a directory; the export writes a file there: move it away"
        )
    for name in stage.names:
        with open(stage.dir / name, "rb") as fh:
            os.fsync(fh.fileno())
    os.chmod(stage.dir, 0o777 & ~umask())
    empty = path.is_dir() and not path.is_symlink() and not any(path.iterdir())
    if (not path.exists() and not path.is_symlink()) or empty:
        try:
            os.replace(stage.dir, path)  # onto nothing, or onto an empty directory
            fsync_dir(path)
            return
        except OSError:
            if not path.is_dir():
                raise
    for name in stage.names:  # a non-empty directory (force): each file atomically
        os.replace(stage.dir / name, path / name)
    if stage.names:
        fsync_dir(path / stage.names[-1])
    shutil.rmtree(stage.dir, ignore_errors=True)
