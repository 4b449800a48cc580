"""An export's directory: staged beside the target, moved into place whole or not at all."""

from __future__ import annotations

import pytest

from lstmprobe.errors import InteropError
from lstmprobe.interop._outdir import check_target, staged


def test_a_failure_leaves_the_target_as_it_was(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), staged(out) as stage:
        stage.file("a").write_text("half")
        raise RuntimeError("stop")
    assert list(tmp_path.iterdir()) == []
    out.mkdir()
    (out / "a").write_text("old")
    with pytest.raises(RuntimeError), staged(out, force=True) as stage:
        stage.file("a").write_text("new")
        raise RuntimeError("stop")
    assert (out / "a").read_text() == "old" and list(tmp_path.iterdir()) == [out]


def test_files_are_moved_in_the_order_they_were_staged(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep").write_text("k")
    with staged(out, force=True) as stage:
        for name in ("b", "a"):
            stage.file(name).write_text(name)
    assert sorted(p.name for p in out.iterdir()) == ["a", "b", "keep"]


def test_what_cannot_take_an_export_is_refused_first(tmp_path):
    with pytest.raises(InteropError, match="does not exist"):
        check_target(tmp_path / "no" / "out", force=False)
    (tmp_path / "f").write_text("")
    with pytest.raises(InteropError, match="is a file"):
        check_target(tmp_path / "f", force=True)


def test_a_directory_in_the_way_stops_the_export_before_anything_moves(tmp_path):
    out = tmp_path / "out"
    (out / "b").mkdir(parents=True)
    (out / "a").write_text("old")
    with pytest.raises(InteropError, match="is a directory"), staged(out, force=True) as stage:
        stage.file("a").write_text("new")
        stage.file("b").write_text("new")
    assert (out / "a").read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == [
        "out"
    ]
