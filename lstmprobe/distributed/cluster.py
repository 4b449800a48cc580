"""Reaching a Dask cluster: ``local:N`` starts a LocalCluster, anything else is a scheduler's
address; Dask itself is imported here, on first use, with one line telling how to install it
where it is missing."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from lstmprobe.errors import DistributedError, one_line

#: What ``--dask`` takes, for messages.
ADDRESSES = (
    "local:N (a LocalCluster of N worker processes) or a scheduler's address (tcp://host:8786)"
)


def require_distributed() -> Any:
    """The ``distributed`` module; one :class:`DistributedError` line where it is missing."""
    try:
        import distributed
    except ImportError:
        raise DistributedError(
            '`dask` needs Dask distributed, which is not installed: pip install "lstmprobe[dask]"'
        ) from None
    return distributed


def local_workers(address: str) -> int | None:
    """N for ``local:N`` (``local`` alone: one per CPU), None for a scheduler's address.

    Examples
    --------
    >>> local_workers("local:4"), local_workers("tcp://10.0.0.1:8786")
    (4, None)
    """
    if address != "local" and not address.startswith("local:"):
        return None
    count = address.partition(":")[2]
    if not count:
        return os.cpu_count() or 1
    if not count.isdigit() or int(count) < 1:
        raise DistributedError(f"`dask` takes {ADDRESSES}; got {address!r}")
    return int(count)


@contextlib.contextmanager
def connect(address: str | Any, *, timeout: float | None = None) -> Iterator[Any]:
    """A Dask client for ``address``, closed (with its LocalCluster) when the block ends.

    Parameters
    ----------
    address : str or distributed.Client
        ``local:N``: a LocalCluster of N worker processes of one thread each, started here;
        ``tcp://host:8786`` (any address ``distributed.Client`` takes): a running scheduler.
        A client is used as it is (and left open).
    timeout : float, optional
        Seconds to wait for the scheduler (default: Dask's ``distributed.comm.timeouts.connect``,
        30 s unless configured, e.g. ``DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT=10s``).

    Raises
    ------
    DistributedError
        Dask is not installed, or the scheduler does not answer within the timeout.
    """
    if not isinstance(address, str):
        yield address
        return
    distributed = require_distributed()
    workers = local_workers(address)
    if workers is not None:
        cluster = distributed.LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        )
        try:
            with distributed.Client(cluster) as client:
                yield client
        finally:
            cluster.close()
        return
    try:
        client = distributed.Client(address, **({} if timeout is None else {"timeout": timeout}))
    except Exception as exc:  # OSError, TimeoutError, ValueError for a malformed address
        raise DistributedError(
            f"cannot reach the Dask scheduler at {address} ({one_line(exc)[:160]}); start one "
            "(`dask scheduler`, then `dask worker ADDRESS` on each machine) or check the address"
        ) from None
    try:
        yield client
    finally:
        client.close()


def slots_of(client: Any) -> int:
    """How many tasks the cluster runs at once now: its workers' threads (at least 1)."""
    return max(1, sum(client.nthreads().values()))


#: Spans per slot of the cluster when the store is not sharded (a sharded store: about one span
#: per shard): enough to balance the workers, few enough that the merge stays small.
SPANS_PER_SLOT = 4


def task_spans(store: Any, rows: int, slots: int) -> list[tuple[int, int]]:
    """The spans of a pass's tasks: ``SPANS_PER_SLOT`` per slot of the cluster, each starting
    on the window grid (a multiple of ``rows``); a sharded store's spans start at shards
    (one per shard when there are fewer shards than that), so that a task reads few shards.

    Examples
    --------
    >>> class Store:
    ...     n_positions, shards = 10_000, []
    >>> task_spans(Store(), 1024, 2)
    [(0, 1024), (1024, 2048), (2048, 4096), (4096, 5120), (5120, 6144), (6144, 7168), (7168, 9216), (9216, 10000)]
    """
    n, count = store.n_positions, SPANS_PER_SLOT * slots
    if store.shards:
        starts = [s.start for s in store.shards]
        targets = [starts[i] for i in np.linspace(0, len(starts), min(count, len(starts)),
                                                  endpoint=False).astype(int)]  # fmt: skip
    else:
        targets = np.linspace(0, n, count + 1)[:-1].tolist()
    starts = sorted({round(t / rows) * rows for t in targets} | {0})
    starts = [a for a in starts if a < n]
    return list(zip(starts, [*starts[1:], n]))
