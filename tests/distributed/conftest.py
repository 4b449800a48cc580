"""One real Dask cluster for the tests of lstmprobe.distributed: a LocalCluster of two worker
processes of one thread each, started once per test session (about 2 s, more on a busy
machine), and recordings that use it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from lstmprobe.models import LoadedModel, save_checkpoint
from lstmprobe.text import Corpus, Vocab
from tests.conftest import CORPUS, make_model


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test here is slow (docs/development.md): the cluster is two worker processes that
    each import torch, and they share the cores with the other tests. The fast loop keeps the
    sharded store (tests/store/test_shards.py) and the span sums (tests/probes/) without it."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def cluster():  # type: ignore[no-untyped-def]
    from distributed import LocalCluster

    with LocalCluster(
        processes=True,
        n_workers=2,
        threads_per_worker=1,
        dashboard_address=":0",
        silence_logs=logging.ERROR,
    ) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def client(cluster):  # type: ignore[no-untyped-def]
    from distributed import Client

    with Client(cluster) as client:
        yield client


def files_corpus(count: int = 10, repeat: int = 1) -> Corpus:
    """``count`` files of the test corpus's text, of different lengths."""
    return Corpus.of_files(
        [(f"src/f{i:02d}.py", CORPUS[i * 5 :] * (1 + (i % 3) + repeat - 1)) for i in range(count)]
    )


@pytest.fixture(scope="session")
def loaded() -> LoadedModel:
    vocab = Vocab.from_text(CORPUS)
    return LoadedModel(make_model(vocab), vocab, "checkpoint", sha256="1" * 64)


@pytest.fixture(scope="session")
def model_file(tmp_path_factory, loaded) -> Path:  # type: ignore[no-untyped-def]
    return save_checkpoint(
        tmp_path_factory.mktemp("model") / "model.pt", loaded.model, loaded.vocab
    )
