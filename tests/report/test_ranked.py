from __future__ import annotations

import base64

import numpy as np
import pytest

from lstmprobe.report import data
from lstmprobe.report.ranked import N_CHANGE_PASSAGES, N_TOP_PASSAGES, feature_sections
from lstmprobe.store import ActivationStore


@pytest.fixture(scope="module")
def sections(lstm_store):
    with ActivationStore(lstm_store) as store:
        ranking = data.load_rankings(store)
        top_rows = {f: ranking.for_feature(f)[:2] for f in ("indent", "quote")}
        stats = data.summarize(store)
        return top_rows, stats, *feature_sections(store, ranking, top_rows, stats)


def test_one_section_per_feature_in_the_order_asked(sections):
    top_rows, _, out, _ = sections
    assert [s["name"] for s in out] == ["indent", "quote"]
    for s in out:
        assert [r["unit"]["name"] for r in s["rows"]] == [r.name for r in top_rows[s["name"]]]
        assert s["curve"] is None  # the ranking was made without probes: no curve to draw
        assert s["kind"] in s["summary"]


def test_passages_hold_the_changes_and_each_top_units_peaks(sections, lstm_store):
    top_rows, stats, out, _ = sections
    quote = out[1]
    changes = [p for p in quote["passages"] if p["kind"] == "change"]
    tops = [p for p in quote["passages"] if p["kind"] == "top"]
    assert 0 < len(changes) <= N_CHANGE_PASSAGES
    assert len(tops) <= N_TOP_PASSAGES * len(top_rows["quote"])
    with ActivationStore(lstm_store) as store:
        for p in quote["passages"]:
            a, b = p["start"], p["start"] + len(p["text"])
            assert p["text"] == store.read_text(a, b) and a <= p["at"] < b
            for unit, packed in p["values"].items():
                key, index = data.check_unit(store, unit)
                q = np.frombuffer(base64.b64decode(packed), np.uint8)
                expected = (
                    stats[key].scale(index).quantize(store.read(key, a, b, units=[index])[:, 0])
                )
                np.testing.assert_array_equal(q, expected)
        best = top_rows["quote"][0]
        key, index = data.check_unit(store, best.name)
        v = store.read(key)[:, index]
        peak = int(np.argmax(v) if (best.sign or 1) > 0 else np.argmin(v))
        assert any(p["at"] == peak for p in tops if p["values"].keys() == {best.name})


def test_thresholds_for_the_binary_features_units_only(sections):
    top_rows, _, out, thresholds = sections
    assert set(thresholds) == {r.name for r in top_rows["quote"]}
    assert all(set(by_feature) == {"quote"} for by_feature in thresholds.values())
    rows = {r["unit"]["name"]: r["threshold"] for r in out[1]["rows"]}
    for unit, t in thresholds.items():
        assert rows[unit]["value"] == pytest.approx(t["quote"]["threshold"], rel=1e-4)
        assert 0.0 <= t["quote"]["fpr"] <= t["quote"]["tpr"] <= 1.0
