"""store.Recording: every file of a recording named from the store's path, once."""

from __future__ import annotations

from pathlib import Path

import pytest

from lstmprobe.errors import StoreError
from lstmprobe.store import SIDECARS, Recording


def test_every_file_is_named_from_the_store(tmp_path: Path) -> None:
    rec = Recording.at(tmp_path / "acts.h5")
    assert Recording.at(rec.partial) == rec
    assert rec.partial.name == "acts.h5.partial"
    assert rec.resume_state.name == "acts.h5.partial.state"
    assert rec.compressing.name == "acts.h5.partial.compressing"
    assert rec.shards.name == "acts.h5.shards"
    names = {rec.sidecar(k).name for k in SIDECARS}  # type: ignore[arg-type]
    assert names == {f"acts.{suffix}" for suffix in SIDECARS.values()}
    assert rec.rankings.name == "acts.rankings.json"
    assert rec.ablations.parent == tmp_path


def test_check_writable_refuses_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        Recording.at(tmp_path / "nowhere" / "acts.h5").check_writable()
    assert Recording.at(tmp_path / "acts.h5").check_writable().store == tmp_path / "acts.h5"


def test_check_writable_offers_what_to_pass_instead(tmp_path: Path) -> None:
    from lstmprobe.errors import for_cli

    rec = Recording.at(tmp_path / "acts.h5")
    rec.rankings.mkdir()
    with pytest.raises(StoreError) as info:
        rec.check_writable("rankings", instead="`save=False`")
    assert for_cli(str(info.value)) == (
        f"cannot write {rec.rankings}: it is a directory; give a file path, or pass --no-save"
    )
