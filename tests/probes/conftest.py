"""Fixtures of the probes' tests: a small recording with planted units."""

from __future__ import annotations

from pathlib import Path

import pytest

from lstmprobe.store import ActivationStore
from tests.stores import BASE, build_store


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_store(tmp_path_factory.mktemp("probes") / "acts.h5", BASE * 40)


@pytest.fixture
def store(store_path: Path):  # type: ignore[no-untyped-def]
    with ActivationStore(store_path) as s:
        yield s
