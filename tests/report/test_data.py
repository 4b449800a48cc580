from __future__ import annotations

import json

import numpy as np
import pytest

from lstmprobe.errors import StoreError, UnitError, for_cli
from lstmprobe.report import data
from lstmprobe.store import ActivationStore


def test_summaries_stream_to_the_same_numbers_as_the_whole_array(planted):
    with ActivationStore(planted) as store:
        assert store.n_positions > 10 * store.chunk_positions
        stats = data.summarize(store)
        for key in store.keys:
            full = store.read(key)
            s = stats[key]
            np.testing.assert_allclose(s.mean, full.mean(0), rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(s.std, full.std(0), rtol=1e-4, atol=1e-6)
            np.testing.assert_array_equal(s.min, full.min(0))
            np.testing.assert_array_equal(s.max, full.max(0))


def test_gate_saturation_is_the_fraction_below_and_above(lstm_store):
    with ActivationStore(lstm_store) as store:
        stats = data.summarize(store, ["layer0/forget_gate", "layer0/cell"])
        full = store.read("layer0/forget_gate")
        s = stats["layer0/forget_gate"]
        np.testing.assert_allclose(s.low, (full < 0.1).mean(0))
        np.testing.assert_allclose(s.high, (full > 0.9).mean(0))
        assert stats["layer0/cell"].low.sum() == 0  # only gates saturate


def test_top_spans_hold_the_unit_peaks(planted):
    with ActivationStore(planted) as store:
        stats = data.summarize(store, ["layer0/cell"])
        values = store.read("layer0/cell")[:, 4]
        spans = data.top_spans(store, stats["layer0/cell"], 4, sign=1, k=3, length=40)
        assert len(spans) == 3
        assert spans[0][2] == int(np.argmax(values))
        assert all(a <= p < b and b - a == 40 for a, b, p in spans)
        low = data.top_spans(store, stats["layer0/cell"], 4, sign=-1, k=1, length=40)
        assert low[0][2] == int(np.argmin(values))


def test_bad_units_and_spans_say_what_exists(lstm_store):
    with ActivationStore(lstm_store) as store:
        with pytest.raises(UnitError, match=r"layer0/cell has units 0\.\.2"):
            data.check_unit(store, "layer0/cell/9")
        with pytest.raises(UnitError, match=r"datasets: layer0/input_gate \(units 0\.\.2\)"):
            data.check_unit(store, "layer5/cell/0")
        n = store.n_positions
        with pytest.raises(StoreError, match=f"positions 0..{n - 1}"):
            data.check_span(store, n + 5, 10)
        with pytest.raises(StoreError, match=f"use `length={n - 10}` or less") as info:
            data.check_span(store, 10, n)
        assert f"use --length {n - 10} or less" in for_cli(str(info.value))


def test_a_default_span_stops_at_the_corpus_end(lstm_store):
    with ActivationStore(lstm_store) as store:
        n = store.n_positions
        assert data.default_span(store, 10, None, 300) == (10, 310)
        assert data.default_span(store, n - 5, None, 300) == (n - 5, n)
        assert data.default_span(store, 10, 20, 300) == (10, 30)
        with pytest.raises(StoreError, match="outside the corpus"):
            data.default_span(store, n, None, 300)


def test_layer_kind_from_what_was_recorded(lstm_store, gru_store):
    with ActivationStore(lstm_store) as store:
        assert [data.layer_kind(store, layer) for layer in store.layers] == ["lstm", "lstm"]
    with ActivationStore(gru_store) as store:
        assert data.layer_kind(store, "layer0") == "gru"


def test_separator_values_at_the_first_x_grouped_by_first_char(task_store):
    with ActivationStore(task_store) as store:
        sep = data.separator_values(store, "layer0/hidden", "X")
        text = store.text
        assert len(sep.positions) == len(store.sequences) == 10
        assert all(text[p] == "X" for p in sep.positions)
        assert sorted(set(sep.groups)) == ["p", "q"]
        np.testing.assert_array_equal(sep.values, store.read("layer0/hidden")[sep.positions])
        counts = data.separator_values(store, "layer0/hidden", "X", group_by="count")
        assert sorted({int(g) for g in counts.groups}) == [2, 3, 4, 5, 6]  # p/q + n a's
        with pytest.raises(UnitError, match="does not occur"):
            data.separator_values(store, "layer0/hidden", "Z")


def test_rankings_of_another_store_are_ignored_with_a_warning(lstm_store, bare_store, tmp_path):
    other = json.loads(lstm_store.with_name("acts.rankings.json").read_text())
    assert other["store"]  # names the recording it ranks
    path = tmp_path / "acts.rankings.json"
    path.write_text(json.dumps(other))
    warnings = []
    with ActivationStore(bare_store) as store:
        assert data.load_rankings(store, path, warnings.append) is None
        assert "ignoring" in warnings[0] and str(lstm_store) in warnings[0]
        assert data.load_rankings(store) is None  # none beside it: no warning
        assert len(warnings) == 1
    with ActivationStore(lstm_store) as store:
        assert data.load_rankings(store).feature_names == ["quote", "indent"]


def test_a_ranking_of_another_recording_whose_store_is_gone_is_ignored(lstm_store, tmp_path):
    ranked = json.loads(lstm_store.with_name("acts.rankings.json").read_text())
    ranked["store"] = str(tmp_path / "gone.h5")  # nothing to compare the file with
    for field, value, said in [
        ("corpus_sha256", "f" * 64, "of another corpus"),
        ("model_sha256", "e" * 64, "of another model"),
        ("positions", 7, "of another length"),
    ]:
        other = {**ranked, "recording": {**ranked["recording"], field: value}}
        path = tmp_path / f"{field}.rankings.json"
        path.write_text(json.dumps(other))
        warnings: list[str] = []
        with ActivationStore(lstm_store) as store:
            assert data.load_rankings(store, path, warnings.append) is None
        assert len(warnings) == 1 and said in warnings[0]
    same = tmp_path / "same.rankings.json"
    same.write_text(json.dumps(ranked))
    with ActivationStore(lstm_store) as store:
        assert data.load_rankings(store, same).feature_names == ["quote", "indent"]


def test_missing_quantities_name_the_record_flag(lstm_store):
    with ActivationStore(lstm_store) as store:
        data.require_quantities(store, "layer0", ["cell", "hidden"], "x")
    with (
        pytest.raises(UnitError, match="`quantities=") as info,
        ActivationStore(lstm_store) as store,
    ):
        data.require_quantities(store, "layer0", ["reset_gate"], "plot gates")
    assert "record again with --quantities input_gate," in for_cli(str(info.value))


def test_an_old_or_partial_rankings_file_is_read_as_far_as_it_goes(lstm_store, tmp_path):
    saved = json.loads(lstm_store.with_name("acts.rankings.json").read_text())
    del saved["format_version"]  # an older file
    saved["rows"][1]["rank"] = None  # and a damaged row
    path = tmp_path / "partial.rankings.json"
    path.write_text(json.dumps(saved))
    warnings: list[str] = []
    with ActivationStore(lstm_store) as store:
        ranking = data.load_rankings(store, path, warnings.append)
    assert ranking is not None and ranking.feature_names == ["quote", "indent"]
    assert len(ranking.rows) == len(saved["rows"]) - 1
    assert warnings == [
        f"{path}: ignored what cannot be used: format_version: missing; rows[1].rank: missing"
    ]
    path.write_text("{not json")
    again = r"not valid JSON.*rank the recording again: `rank_units"
    with ActivationStore(lstm_store) as store, pytest.raises(StoreError, match=again):
        data.load_rankings(store, path)


def test_the_report_command_opens_a_partial_rankings_file_and_says_what_it_left_out(
    lstm_store, tmp_path
):
    from click.testing import CliRunner

    from lstmprobe.cli import main

    saved = json.loads(lstm_store.with_name("acts.rankings.json").read_text())
    saved["rows"][0]["rank"] = "first"  # a row that cannot be ordered
    path = tmp_path / "partial.rankings.json"
    path.write_text(json.dumps(saved))
    out = tmp_path / "r.html"
    args = ["report", "--store", str(lstm_store), "--rankings", str(path), "-o", str(out)]
    result = CliRunner().invoke(main, [*args, "--no-figures", "--max-chars", "200", "--json", "-q"])
    assert result.exit_code == 0, result.output
    assert result.stderr.strip() == (
        f"warning: {path}: ignored what cannot be used: rows[0].rank: 'first' is not an integer"
    )
    assert json.loads(result.stdout)["features"] == ["quote", "indent"] and out.exists()


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_the_sweeps_bins_equal_the_plain_reference(dtype):
    from lstmprobe.report._sweep import N_BINS, abs_bins, sweep

    rng = np.random.default_rng(3)
    x = (rng.standard_cauchy(size=(1500, 5)) * 3).astype(dtype)
    x[0, 0], x[1, 1], x[2, 2], x[3, 3], x[4, 4] = np.inf, -np.inf, np.nan, 0.0, 1e-30
    x[5, 0] = -0.0
    u = x.shape[1]
    acc = [np.zeros(u), np.zeros(u), np.zeros(u, np.int64), np.zeros(u, np.int64),
           np.empty(u, np.float32), np.empty(u, np.float32)]  # fmt: skip
    bad = (np.zeros(u, np.int64), np.zeros(u, np.int64), np.zeros(u, np.int64))
    hist = np.zeros((2 * N_BINS, u), dtype=np.int64)
    sweep(x[:700], False, 0.1, *acc, bad, hist)  # two chunks
    sweep(x[700:], False, 0.1, *acc, bad, hist)
    for j in range(u):  # the finite values only: ±inf and NaN are counted apart
        v = x[:, j].astype(np.float32)
        want = np.bincount(abs_bins(v[np.isfinite(v)]), minlength=2 * N_BINS)
        np.testing.assert_array_equal(hist[:, j], want)
    assert [b.sum() for b in bad] == [1, 1, 1]
    gates = np.zeros((2 * N_BINS, u), dtype=np.int64)
    sweep(x, True, 0.1, *acc, bad, gates)
    assert gates.sum() == 0  # a gate's range is [0, 1]: no bins


def test_a_percentile_level_is_within_one_bin_of_the_exact_one():
    from lstmprobe.report._sweep import N_BINS, abs_bins, level

    rng = np.random.default_rng(5)
    v = np.concatenate([rng.exponential(2.0, 5000), -rng.exponential(0.3, 3000)]).astype(np.float32)
    hist = np.bincount(abs_bins(v), minlength=2 * N_BINS)
    below, above = level(hist, 99.0, float(v.min()), float(v.max()))
    exact_above = np.percentile(v[v >= 0], 99, method="higher")
    exact_below = np.percentile(-v[v < 0], 99, method="higher")
    assert exact_above <= above <= exact_above * (1 + 1 / 8)
    assert exact_below <= below <= exact_below * (1 + 1 / 8)
    assert level(hist, 100.0, float(v.min()), float(v.max())) == (-float(v.min()), float(v.max()))
