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

from lstmprobe.store._files import check_output
from lstmprobe.store._format import PARTIAL_SUFFIX, final_path

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

STATE_SUFFIX = ".state"
COMPRESSING_SUFFIX = ".compressing"
SHARDS_SUFFIX = ".shards"


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

    @property
    def shards(self) -> Path:
        """The folder of per-shard stores of a distributed recording."""
        return self.store.with_name(self.store.name + SHARDS_SUFFIX)

    def sidecar(self, name: Sidecar) -> Path:
        """The file beside the store that holds a later stage's results (see :data:`SIDECARS`)."""
        return self.store.with_name(f"{self.store.stem}.{SIDECARS[name]}")

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

    def check_writable(self) -> Recording:
        """Check, before any work, that files can be written beside the store; returns self.

        Raises
        ------
        StoreError
            The store's path is a directory, or its directory is missing or not writable.
        """
        check_output(self.store)
        return self
