"""One recording and every file of it: the store, its partial and resume state, and the results
that later stages keep beside it (docs/store-format.md, "The files of a recording").

A recording is named by its store's path, ``runs/acts.h5``. Everything else is derived from that
path here, and only here, so each file has one spelling:

========================  ===============================  ==============================
file                      path                             written by
========================  ===============================  ==============================
the store                 ``runs/acts.h5``                 ``record`` (renamed when done)
the unfinished store      ``runs/acts.h5.partial``         ``record`` while it runs
the exact resume state    ``runs/acts.h5.partial.state``   ``record`` (stream mode)
a compressing copy        ``runs/acts.h5.partial.compressing``  ``record --compression``
shards (Dask)             ``runs/acts.h5.shards/``         ``record --dask``
rankings                  ``runs/acts.rankings.json``      ``find-neurons``
ablations                 ``runs/acts.ablations.h5``       ``ablate``
dynamics                  ``runs/acts.dynamics.json``      ``dynamics``
fixed points              ``runs/acts.fixedpoints.json``   ``dynamics --fixed-points``
patching                  ``runs/acts.patching.h5``        ``patch``
attributions              ``runs/acts.attributions.h5``    ``attribute``
the report                ``runs/acts.report.html``        ``report``
========================  ===============================  ==============================

Derived results are written atomically beside the store, never into it: a crash while writing
into an HDF5 file can corrupt it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from lstmprobe._io import cannot_write
from lstmprobe.errors import StoreError
from lstmprobe.store._files import check_output

#: The results a later stage keeps beside a store: name -> file suffix after the store's stem.
SIDECARS: dict[str, str] = {
    "rankings": "rankings.json",
    "ablations": "ablations.h5",
    "dynamics": "dynamics.json",
    "fixed_points": "fixedpoints.json",
    "patching": "patching.h5",
    "attributions": "attributions.h5",
    "report": "report.html",
}
Sidecar = Literal[
    "rankings", "ablations", "dynamics", "fixed_points", "patching", "attributions", "report"
]

PARTIAL_SUFFIX = ".partial"
STATE_SUFFIX = ".state"
COMPRESSING_SUFFIX = ".compressing"
SHARDS_SUFFIX = ".shards"
#: Every ending of a file name of a recording, spelled here only (tests/test_architecture.py
#: fails on a string that ends in one of them anywhere else in the package).
FILE_SUFFIXES: tuple[str, ...] = (
    *SIDECARS.values(),
    PARTIAL_SUFFIX,
    STATE_SUFFIX,
    COMPRESSING_SUFFIX,
    SHARDS_SUFFIX,
)


def partial_path(path: str | os.PathLike[str]) -> Path:
    """Where the unfinished recording for ``path`` lives (:attr:`Recording.partial`).

    Examples
    --------
    >>> partial_path("runs/acts.h5").as_posix()
    'runs/acts.h5.partial'
    """
    path = Path(path)
    return path.with_name(path.name + PARTIAL_SUFFIX)


def final_path(path: str | os.PathLike[str]) -> Path:
    """``acts.h5.partial`` -> ``acts.h5``; other paths unchanged (:attr:`Recording.store`)."""
    path = Path(path)
    if path.name.endswith(PARTIAL_SUFFIX) and len(path.name) > len(PARTIAL_SUFFIX):
        return path.with_name(path.name[: -len(PARTIAL_SUFFIX)])
    return path


@dataclass(frozen=True)
class Recording:
    """Every file of one recording, named from its store's path.

    Parameters
    ----------
    store : Path
        The store, ``acts.h5``. :meth:`at` takes any path of the recording: its ``.partial``
        path names the same recording.

    Examples
    --------
    >>> rec = Recording.at("runs/acts.h5.partial")
    >>> rec.store.as_posix(), rec.partial.as_posix(), rec.resume_state.as_posix()
    ('runs/acts.h5', 'runs/acts.h5.partial', 'runs/acts.h5.partial.state')
    >>> rec.rankings.as_posix(), rec.report.as_posix()
    ('runs/acts.rankings.json', 'runs/acts.report.html')
    >>> rec.shards.as_posix()
    'runs/acts.h5.shards'
    """

    store: Path

    @classmethod
    def at(cls, path: str | os.PathLike[str]) -> Recording:
        """The recording whose store (or unfinished store) is at ``path``."""
        return cls(final_path(Path(path)))

    @property
    def partial(self) -> Path:
        """The unfinished store: written while recording, renamed to :attr:`store` when done."""
        return self.store.with_name(self.store.name + PARTIAL_SUFFIX)

    @property
    def resume_state(self) -> Path:
        """The exact recurrent state at the last chunk boundaries (stream mode), for resuming."""
        return self.partial.with_name(self.partial.name + STATE_SUFFIX)

    @property
    def compressing(self) -> Path:
        """The compressed copy of the partial store being written before the final rename."""
        return self.partial.with_name(self.partial.name + COMPRESSING_SUFFIX)

    def figure(self, kind: str, fmt: str) -> Path:
        """Where ``lstmprobe plot KIND`` writes by default: ``acts.KIND.FMT`` beside the store."""
        return self.beside(f"{kind}.{fmt}")

    def beside(self, suffix: str) -> Path:
        """A file beside the store, ``acts.<suffix>`` (a ``.partial`` store has the same)."""
        return self.store.with_name(f"{self.store.stem}.{suffix}")

    @property
    def shards(self) -> Path:
        """The folder of per-shard stores of a distributed recording."""
        return self.store.with_name(self.store.name + SHARDS_SUFFIX)

    def sidecar(self, name: Sidecar) -> Path:
        """The file beside the store that holds a later stage's results (see :data:`SIDECARS`)."""
        return self.beside(SIDECARS[name])

    @property
    def rankings(self) -> Path:
        return self.sidecar("rankings")

    @property
    def ablations(self) -> Path:
        return self.sidecar("ablations")

    @property
    def dynamics(self) -> Path:
        return self.sidecar("dynamics")

    @property
    def fixed_points(self) -> Path:
        return self.sidecar("fixed_points")

    @property
    def patching(self) -> Path:
        return self.sidecar("patching")

    @property
    def attributions(self) -> Path:
        return self.sidecar("attributions")

    @property
    def report(self) -> Path:
        return self.sidecar("report")

    def check_writable(self, *sidecars: Sidecar, instead: str = "") -> Recording:
        """Check, before any work, that the store (or the ``sidecars`` named, ``"rankings"``,
        ...) can be written; returns self. ``instead`` (``"`save=False`"``) is what the
        message offers besides fixing the path.

        Raises
        ------
        StoreError
            A path is a directory, or its directory is missing or not writable.
        """
        if not sidecars:
            check_output(self.store)
            return self
        for path in (self.sidecar(s) for s in sidecars):
            reason = cannot_write(path)
            if reason is not None:
                other = f", or pass {instead}" if instead else ""
                raise StoreError(f"cannot write {path}: {reason}{other}")
        return self
