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


def test_check_writable_checks_the_files_a_stage_will_write(tmp_path: Path) -> None:
    rec = Recording.at(tmp_path / "acts.h5")
    assert rec.check_writable("rankings", "ablations") is rec
    rec.ablations.mkdir()
    with pytest.raises(StoreError, match=r"acts\.ablations\.h5: it is a directory"):
        rec.check_writable("rankings", "ablations")
    rec.check_writable("rankings")
    assert rec.figure("text", "png").name == "acts.text.png"
    assert rec.beside("notes.txt") == tmp_path / "acts.notes.txt"


def test_a_store_names_its_files_through_its_recording(tmp_path: Path) -> None:
    from lstmprobe.store import ActivationStore
    from tests.stores import build_store

    path = build_store(tmp_path / "acts.h5", 'x = "a"\n    y\n' * 20)
    with ActivationStore(path) as store:
        assert store.recording == Recording.at(path) == Recording.at(store.recording.partial)
        assert store.recording.dynamics == tmp_path / "acts.dynamics.json"
        assert store.sibling("rankings.json") == store.recording.rankings
