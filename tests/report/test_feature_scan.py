from __future__ import annotations

import numpy as np

from lstmprobe.features import get_feature
from lstmprobe.report import data, feature_scan
from lstmprobe.store import ActivationStore


def test_scan_finds_changes_and_an_roc_threshold_that_separates(planted):
    with ActivationStore(planted) as store:
        stats = data.summarize(store)
        scans = feature_scan.scan_features(
            store,
            {"quote": [("layer0/cell/4", 1), ("layer0/cell/0", 1)]},
            stats,
            {"quote": "binary"},
        )
        y = get_feature("quote").labels(store.text, store.sequences)
        scan = scans["quote"]
        assert len(scan.changes) > 0
        assert all(y[p] != y[p - 1] for p in scan.changes)
        good, noise = scan.thresholds["layer0/cell/4"], scan.thresholds["layer0/cell/0"]
        assert good.youden > 0.8 and noise.youden < 0.3
        v = store.read("layer0/cell")[:, 4]
        on = v >= good.threshold
        tpr, fpr = on[y == 1].mean(), on[y == 0].mean()
        assert abs(tpr - good.tpr) < 0.02 and abs(fpr - good.fpr) < 0.02


def test_a_continuous_feature_has_changes_and_no_threshold(planted):
    with ActivationStore(planted) as store:
        stats = data.summarize(store, ["layer0/cell"])
        scans = feature_scan.scan_features(
            store, {"indent": [("layer0/cell/4", 1)]}, stats, {"indent": "continuous"}
        )
        y = get_feature("indent").labels(store.text, store.sequences)
        starts = set(store.sequences[:, 0].tolist())
        assert scans["indent"].thresholds == {}
        changes = scans["indent"].changes
        assert len(changes) > 0 and not starts & set(changes.tolist())
        assert all(y[p] != y[p - 1] for p in changes)


def test_a_negative_unit_is_on_below_its_threshold(planted):
    with ActivationStore(planted) as store:
        stats = data.summarize(store, ["layer0/cell"])
        scans = feature_scan.scan_features(
            store, {"quote": [("layer0/cell/4", -1)]}, stats, {"quote": "binary"}
        )
        t = scans["quote"].thresholds["layer0/cell/4"]
        assert t.sign == -1
        y = get_feature("quote").labels(store.text, store.sequences)
        on = store.read("layer0/cell")[:, 4] <= t.threshold
        assert abs(on[y == 1].mean() - t.tpr) < 0.02 and abs(on[y == 0].mean() - t.fpr) < 0.02


def test_changes_are_picked_evenly_over_the_recording():
    changes = np.arange(100, 200)
    assert feature_scan.pick_changes(changes, 3) == [100, 150, 199]
    assert feature_scan.pick_changes(changes[:2], 5) == [100, 101]
    assert feature_scan.pick_changes(np.zeros(0, np.int64), 3) == []
