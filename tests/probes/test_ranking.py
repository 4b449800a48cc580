"""Rankings: files and the table."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from lstmprobe.names import Unit
from lstmprobe.probes import (
    Ranking,
    rank_units,
)
from lstmprobe.probes.rows import FeatureSummary, RankingRow


def _rows(feature: str, **columns: object) -> tuple[RankingRow, ...]:
    return (RankingRow(feature, 1, Unit.parse("layer0/cell/0"), **columns),)  # type: ignore[arg-type]


def test_ranking_serialises(store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ranking = rank_units(store, ["quote"], n_boot=20)
    text = ranking.to_json(tmp_path / "r.json")
    again = Ranking.read_json(tmp_path / "r.json")
    assert again.top(3) == ranking.top(3)
    assert json.loads(text)["format"] == "lstmprobe.rankings"
    csv_text = ranking.to_csv()
    assert csv_text.splitlines()[0].startswith("feature,rank,unit,score")
    assert csv_text.splitlines()[1].startswith("quote,1,layer0/cell/4,")
    assert "layer0/cell/4" in ranking.format_table(3)


def test_to_json_returns_the_text_it_writes(tmp_path: Path) -> None:
    ranking = Ranking(_rows("x", score=None), {"x": FeatureSummary("x")})
    text = ranking.to_json(tmp_path / "r.json")
    assert (tmp_path / "r.json").read_text(encoding="utf-8") == text == ranking.to_json()
    assert text.endswith("}\n") and json.loads(text)["rows"][0]["score"] is None


def test_to_json_into_a_missing_directory_is_a_store_error(tmp_path: Path) -> None:
    from lstmprobe.errors import StoreError

    ranking = Ranking(_rows("x"), {"x": FeatureSummary("x")})
    with pytest.raises(StoreError, match=r"cannot write .*choose a directory you can write to"):
        ranking.to_json(tmp_path / "absent" / "r.json")


def test_summary_line_names_the_units_the_probe_used() -> None:
    from lstmprobe.probes.ranking import _summary_line
    from lstmprobe.probes.rows import ProbeSummary

    base = FeatureSummary("quote", "binary", n_defined=100, base_rate=0.3, probe_metric="auc")
    probe = ProbeSummary(test_metric=0.9, control_metric=0.5, selectivity=0.4)
    everything = dataclasses.replace(base, probe=dataclasses.replace(probe, units="all"))
    assert "probe on all units" in _summary_line("quote", everything)
    top = _summary_line(
        "quote", dataclasses.replace(base, probe=dataclasses.replace(probe, units=32))
    )
    assert "probe on top 32 units: held-out auc 0.900" in top


@pytest.mark.slow  # a real process
def test_reading_a_rankings_file_loads_no_scikit_learn(store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    path = tmp_path / "r.json"
    rank_units(store, "quote", probe=False).to_json(path)
    code = (
        "import sys; from lstmprobe.probes import Ranking; "
        f"r = Ranking.read_json({str(path)!r}); print(len(r), r.format_table(3).count(chr(10))); "
        "print(sorted(m for m in ('sklearn', 'numba', 'scipy', 'h5py') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines()[-1] == "[]"


def _file(**changes):  # type: ignore[no-untyped-def]
    obj = {
        "format": "lstmprobe.rankings",
        "format_version": 1,
        "store": "acts.h5",
        "features": {"quote": {"kind": "binary"}, "indent": {"skipped": "constant"}},
        "rows": [
            {"feature": "quote", "rank": 2, "unit": "layer0/cell/1", "score": 0.8},
            {"feature": "quote", "rank": 1, "unit": "layer0/cell/0", "score": 0.9},
        ],
    }
    obj.update(changes)
    return obj


def test_a_strict_read_refuses_what_a_lenient_one_leaves_out(tmp_path: Path) -> None:
    import pytest

    from lstmprobe.errors import StoreError

    rows = [*_file()["rows"], {"feature": "quote", "rank": "3", "unit": "layer0/cell/2"},
            {"feature": "gone", "rank": 1, "unit": "layer0/cell/2"}]  # fmt: skip
    features = {**_file()["features"], "broken": [1, 2]}
    old = _file(rows=rows, features=features)
    del old["format_version"]
    path = tmp_path / "acts.rankings.json"
    path.write_text(json.dumps(old))
    with pytest.raises(StoreError, match=r"acts.rankings.json: a damaged rankings file: format_v"):
        Ranking.read_json(path)
    said: list[str] = []
    ranking = Ranking.read_json(path, lenient=True, warn=said.append)
    assert ranking.feature_names == ["quote", "indent"]
    assert ranking.top(5, "quote") == ["layer0/cell/0", "layer0/cell/1"]  # in rank order
    assert len(said) == 1 and said[0].startswith(f"{path}: ignored what cannot be used: ")
    assert (
        "format_version: missing; features['broken']: [1, 2] is not an object; "
        "rows[2].rank: '3' is not an integer" in said[0]
    )
    assert said[0].endswith("(and 1 more)")
    assert Ranking.read_json(path, lenient=True).rows == ranking.rows  # no warn: quiet


def test_a_lenient_read_of_a_good_or_newer_file(tmp_path: Path) -> None:
    import pytest

    from lstmprobe.errors import StoreError

    said: list[str] = []
    good = Ranking.from_dict(_file(), lenient=True, warn=said.append)
    assert said == [] and good.rows == Ranking.from_dict(_file()).rows  # in rank order
    assert [r.rank for r in good.rows] == [1, 2]
    newer = _file(format_version=99, rows=_file()["rows"][:1], settings=[])
    with pytest.raises(StoreError, match="format version 99; this lstmprobe reads version 1"):
        Ranking.from_dict(newer)
    read = Ranking.from_dict(newer, lenient=True, warn=said.append)
    assert read.top(5, "quote") == ["layer0/cell/1"] and read.settings == {}
    assert said == [
        "ignored what cannot be used: what format version 99 adds (this lstmprobe reads 1); "
        "settings: [] is not an object"
    ]
    for not_rankings in ([], {"format": "other"}):
        with pytest.raises(StoreError, match="not an lstmprobe rankings file"):
            Ranking.from_dict(not_rankings, lenient=True)


def test_merging_with_the_saved_ranking_of_another_recording_replaces_it() -> None:
    same = {"model_sha256": "a", "positions": 10}
    earlier = Ranking(_rows("x"), {"x": FeatureSummary("x")}, recording=same)
    mine = Ranking(_rows("y"), {"y": FeatureSummary("y")}, recording=same)
    said: list[str] = []
    assert mine.merged_with_saved(earlier, warn=said.append).feature_names == ["x", "y"]
    assert said == []
    unnamed = Ranking(earlier.rows, earlier.features)
    assert mine.merged_with_saved(unnamed, path="r.json", warn=said.append) is mine
    assert said == [
        "r.json held rankings of an unnamed recording (x); it is replaced by this ranking"
    ]
    assert mine.merged_with_saved(Ranking((), {}), warn=said.append) is mine and len(said) == 1


def test_save_ranking_merges_by_feature_replaces_another_recording_and_refuses_damage(
    tmp_path: Path,
) -> None:
    from lstmprobe.errors import StoreError, for_cli
    from lstmprobe.probes.ranking import save_ranking, saved_ranking
    from lstmprobe.store import Recording

    rec = Recording.at(tmp_path / "acts.h5")
    assert saved_ranking(rec) is None

    def one(feature: str, positions: int) -> Ranking:
        summary = {feature: FeatureSummary(feature)}
        return Ranking(_rows(feature), summary, recording={"positions": positions})

    assert save_ranking(one("x", 5), rec).feature_names == ["x"]
    assert save_ranking(one("y", 5), tmp_path / "acts.h5").feature_names == ["x", "y"]
    said: list[str] = []
    assert save_ranking(one("z", 6), rec, warn=said.append).feature_names == ["z"]
    assert len(said) == 1 and "another recording (x, y)" in said[0]
    assert Ranking.read_json(rec.rankings).feature_names == ["z"]
    rec.rankings.write_text("{not json", encoding="utf-8")
    with pytest.raises(StoreError, match=r"move it away, or pass `save=False`") as info:
        save_ranking(one("y", 6), rec)
    assert for_cli(str(info.value)).endswith("move it away, or pass --no-save")
    assert rec.rankings.read_text(encoding="utf-8") == "{not json"  # left as it was
