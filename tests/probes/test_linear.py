"""LinearProbe and LinearProbeCV: the working-set path solver against plain scikit-learn fits
on all units, the estimator protocol, the store adapter."""

from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pytest
from scipy import sparse
from scipy.special import expit
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import ElasticNet, LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.utils.estimator_checks import check_estimator

from lstmprobe.errors import FeatureError
from lstmprobe.probes import BlockSplit, LinearProbe, LinearProbeCV, StoreProbe
from lstmprobe.probes.linear import DEFAULT_GRID
from lstmprobe.probes.metrics import auc

N, P = 3000, 40


def cv_probe(
    l1: float | None = None,
    l1_grid: tuple[float, ...] = DEFAULT_GRID,
    n_blocks: int = 20,
    random_state: int = 0,
    **rest: object,
) -> LinearProbeCV:
    """A LinearProbeCV at one penalty ``l1`` (or choosing from ``l1_grid``) on a block split."""
    grid = l1_grid if l1 is None else (l1,)
    return LinearProbeCV(l1_grid=grid, cv=BlockSplit(n_blocks, random_state=random_state), **rest)  # type: ignore[arg-type]


def data(seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Correlated, off-centre units; two of them carry the signal."""
    rng = np.random.default_rng(seed)
    mix = np.eye(P) + 0.3 * rng.normal(size=(P, P)) / np.sqrt(P)
    X = rng.normal(size=(N, P)) @ mix * rng.uniform(0.5, 3.0, size=P) + rng.normal(size=P) * 4
    signal = (X[:, 3] - X[:, 3].mean()) / X[:, 3].std() - 0.5 * (X[:, 7] - X[:, 7].mean()) / X[
        :, 7
    ].std()
    noisy = signal + 0.8 * rng.normal(size=N)
    return X, (noisy > 0.8).astype(float), noisy


def train_z(probe: LinearProbeCV, X: np.ndarray) -> np.ndarray:
    tr = probe.split_ == 0
    return (X[tr] - probe.mean_) / probe.scale_


def full_fit(
    probe: LinearProbeCV, X: np.ndarray, y: np.ndarray, lam: float, solver: str = "saga"
) -> tuple[np.ndarray, float]:
    """The plain fit: a scikit-learn solver on every standardised unit, tight tolerances."""
    Z, yt = train_z(probe, X), y[probe.split_ == 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if probe.kind_ == "continuous":
            model = ElasticNet(alpha=lam, l1_ratio=probe.l1_ratio, tol=1e-14, max_iter=100_000)
        elif solver == "liblinear":  # the old probe's solver; it penalises the intercept too
            model = LogisticRegression(
                C=1.0 / (lam * len(yt)),
                l1_ratio=1.0,
                solver="liblinear",
                tol=1e-10,
                max_iter=100_000,
                intercept_scaling=1e3,
            )
        else:
            model = LogisticRegression(
                C=1.0 / (lam * len(yt)),
                l1_ratio=probe.l1_ratio,
                solver="saga",
                tol=1e-12,
                max_iter=100_000,
            )
        model.fit(Z, yt)
    return np.ravel(model.coef_), float(np.ravel(model.intercept_)[0])


def objective(
    probe: LinearProbeCV, X: np.ndarray, y: np.ndarray, coef: np.ndarray, b: float
) -> float:
    Z, yt = train_z(probe, X), y[probe.split_ == 0]
    eta = Z @ coef + b
    if probe.kind_ == "binary":
        loss = np.mean(np.logaddexp(0, eta) - yt * eta)
    else:
        loss = 0.5 * np.mean((yt - eta) ** 2)
    r, lam = probe.l1_ratio, probe.l1_
    return float(loss + lam * (r * np.abs(coef).sum() + 0.5 * (1 - r) * coef @ coef))


def kkt_violation(probe: LinearProbeCV, X: np.ndarray, y: np.ndarray) -> float:
    """Largest violation of the optimality conditions of the probe's own solution."""
    Z, yt = train_z(probe, X), y[probe.split_ == 0]
    eta = Z @ probe.coef_ + probe.intercept_
    resid = (expit(eta) - yt) if probe.kind_ == "binary" else (eta - yt)
    lam, r, w = probe.l1_, probe.l1_ratio, probe.coef_
    g = Z.T @ resid / len(yt) + lam * (1 - r) * w
    on = w != 0
    return max(
        abs(resid.mean()),
        float(np.abs(g[on] + lam * r * np.sign(w[on])).max(initial=0.0)),
        float(np.maximum(np.abs(g[~on]) - lam * r, 0).max(initial=0.0)),
    )


@pytest.mark.parametrize(
    ("kind", "l1_ratio", "lam"),
    [
        ("binary", 1.0, 0.05),
        ("binary", 1.0, 0.01),
        ("binary", 1.0, 0.001),
        ("binary", 0.5, 0.02),
        ("binary", 0.5, 0.002),
        ("continuous", 1.0, 0.05),
        ("continuous", 1.0, 0.005),
        ("continuous", 0.5, 0.05),
        ("continuous", 0.5, 0.002),
    ],
)
def test_working_set_solution_equals_the_full_fit(kind: str, l1_ratio: float, lam: float) -> None:
    X, yb, yc = data()
    y = yb if kind == "binary" else yc
    probe = cv_probe(l1=lam, l1_ratio=l1_ratio, n_blocks=20).fit(X, y)
    assert probe.kind_ == kind
    assert 0 < (probe.coef_ != 0).sum() < P or lam < 0.01  # a real working set at large l1
    coef, b = full_fit(probe, X, y, lam)
    assert np.array_equal(probe.coef_ != 0, coef != 0)
    np.testing.assert_allclose(probe.coef_, coef, atol=2e-4)
    assert probe.intercept_ == pytest.approx(b, abs=3e-4)
    assert (
        objective(probe, X, y, probe.coef_, probe.intercept_)
        <= objective(probe, X, y, coef, b) + 1e-9
    )
    assert kkt_violation(probe, X, y) < 1e-6


def test_standardisation_is_the_train_mean_and_std() -> None:
    X, yb, _ = data()
    probe = cv_probe(l1=0.01).fit(X, yb)
    tr = probe.split_ == 0
    np.testing.assert_allclose(probe.mean_, X[tr].mean(0), rtol=1e-12)
    np.testing.assert_allclose(probe.scale_, X[tr].std(0), rtol=1e-10)


@pytest.mark.parametrize("kind", ["binary", "continuous"])
def test_the_path_gives_the_cold_fit_at_the_chosen_l1(kind: str) -> None:
    """Warm starts along the l1 grid change nothing: the chosen l1 refitted alone agrees."""
    X, yb, yc = data(seed=5)
    y = yb if kind == "binary" else yc
    grid = (0.1, 0.03, 0.01, 0.003, 0.001, 0.0003)
    probe = cv_probe(l1_grid=grid).fit(X, y)
    assert list(probe.val_scores_) == list(grid)
    assert probe.l1_ == max(grid, key=lambda lam: (probe.val_scores_[lam], lam))
    cold = cv_probe(l1=probe.l1_).fit(X, y)
    np.testing.assert_allclose(probe.coef_, cold.coef_, atol=1e-6)
    assert probe.intercept_ == pytest.approx(cold.intercept_, abs=1e-6)
    assert probe.test_metrics_ == pytest.approx(cold.test_metrics_, abs=1e-9)
    for lam in grid:
        one = cv_probe(l1=lam).fit(X, y)
        assert kkt_violation(one, X, y) < 1e-6


def test_a_planted_unit_comes_out_on_top_from_float32() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20_000, 64)).astype(np.float32)
    y = ((X[:, 17] + 0.7 * rng.normal(size=len(X))) > 1.0).astype(float)
    probe = cv_probe().fit(X, y)
    assert probe.top_units(1) == ["17"]
    assert probe.test_metrics_["auc"] > 0.9
    assert probe.train_metrics_["auc"] > 0.9
    # float32 input is used as it is; the same solution as from float64
    wide = cv_probe(l1=probe.l1_).fit(X.astype(np.float64), y)
    np.testing.assert_allclose(probe.coef_, wide.coef_, atol=1e-4)


def test_fit_makes_no_copy_of_x() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40_000, 100)).astype(np.float32)
    y = ((X[:, 5] + 0.5 * rng.normal(size=len(X))) > 0).astype(float)
    cv_probe(l1=0.01).fit(X[:100], y[:100])  # imports and caches outside the trace
    tracemalloc.start()
    try:
        probe = cv_probe(l1=0.01).fit(X, y)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert probe.top_units(1) == ["5"]
    assert peak < X.nbytes / 2  # the old fit made two float64 copies (4x X)


@pytest.mark.parametrize("kind", ["binary", "continuous"])
def test_a_huge_l1_gives_the_intercept_only_model(kind: str) -> None:
    X, yb, yc = data()
    y = yb if kind == "binary" else yc
    probe = cv_probe(l1=1e3).fit(X, y)
    assert not probe.coef_.any() and probe.top_units() == []
    ytr = y[probe.split_ == 0]
    expected = np.log(ytr.mean() / (1 - ytr.mean())) if kind == "binary" else ytr.mean()
    assert probe.intercept_ == pytest.approx(expected, abs=1e-9)
    metrics = probe.test_metrics_
    assert metrics["auc"] == 0.5 if kind == "binary" else metrics["r2"] <= 0.0
    assert np.allclose(probe.decision_function(X[:5]), probe.intercept_)


@pytest.mark.parametrize("kind", ["binary", "continuous"])
def test_one_unit(kind: str) -> None:
    X, yb, yc = data()
    y = yb if kind == "binary" else yc
    probe = cv_probe(l1=0.003).fit(X[:, 3:4], y)
    assert probe.coef_.shape == (1,) and probe.coef_[0] > 0
    coef, b = full_fit(probe, X[:, 3:4], y, 0.003)
    np.testing.assert_allclose(probe.coef_, coef, atol=2e-5)
    assert probe.intercept_ == pytest.approx(b, abs=2e-5)
    grid = cv_probe().fit(X[:, 3:4], y)
    assert grid.top_units() == ["0"] and len(grid.val_scores_) == 5


def test_constant_and_duplicate_units() -> None:
    X, yb, yc = data()
    X = np.hstack([X, X[:, [3, 7]], np.full((N, 1), 2.5)])  # copies of the signal, a constant
    for y in (yb, yc):
        probe = cv_probe(l1=0.003).fit(X, y)
        assert probe.coef_[-1] == 0 and probe.scale_[-1] == 1.0
        assert kkt_violation(probe, X, y) < 1e-6
        # the weight may be shared between copies; the optimum is the full fit's
        coef, b = full_fit(probe, X, y, 0.003)
        assert objective(probe, X, y, probe.coef_, probe.intercept_) == pytest.approx(
            objective(probe, X, y, coef, b), abs=1e-7
        )


def test_decision_function_and_predictions() -> None:
    X, yb, _ = data()
    probe = cv_probe(l1=0.003).fit(X, yb)
    expected = (X - probe.mean_) / probe.scale_ @ probe.coef_ + probe.intercept_
    np.testing.assert_allclose(probe.decision_function(X), expected, rtol=1e-10, atol=1e-10)
    assert np.array_equal(probe.predict(X), (expected > 0).astype(float))
    np.testing.assert_allclose(probe.predict_proba(X)[:, 1], expit(expected), atol=1e-12)
    te = probe.split_ == 2
    assert probe.test_metrics_["auc"] == pytest.approx(roc_auc_score(yb[te], expected[te]))


def test_clone_and_refit_are_deterministic() -> None:
    X, yb, _ = data()
    probe = cv_probe(l1_ratio=0.5, l1_grid=(0.05, 0.005), n_blocks=10, random_state=2)
    twin = clone(probe)
    assert twin.get_params() == probe.get_params()
    probe.fit(X, yb)
    assert not hasattr(clone(probe), "coef_")
    twin.fit(X, yb)
    assert np.array_equal(probe.coef_, twin.coef_) and probe.l1_ == twin.l1_


def test_undefined_labels_are_dropped() -> None:
    X, _, yc = data()
    y = yc.copy()
    y[::9] = np.nan
    probe = cv_probe(l1=0.01).fit(X, y)
    assert (probe.split_[::9] == -1).all() and (probe.split_[1::9] >= 0).all()
    kept = ~np.isnan(y)
    again = cv_probe(l1=0.01).fit(X[kept], y[kept])
    np.testing.assert_allclose(probe.coef_, again.coef_, atol=1e-12)


def test_bad_settings_say_so() -> None:
    X, yb, _ = data()
    with pytest.raises(FeatureError, match="l1_ratio must be between 0 and 1"):
        LinearProbe(l1_ratio=1.5).fit(X, yb)
    with pytest.raises(FeatureError, match="l1 must be"):
        LinearProbe(l1=-0.1).fit(X, yb)
    bad = X.copy()
    bad[:, 2] = np.nan
    with pytest.raises(FeatureError, match="X holds NaN or infinite values"):
        LinearProbe(l1=0.01).fit(bad, yb)


def test_input_is_validated_as_in_scikit_learn() -> None:
    X, yb, yc = data()
    probe = LinearProbe(l1=0.01).fit(X, yb)
    with pytest.raises(
        ValueError, match=f"X has 3 features, but LinearProbe is expecting {X.shape[1]}"
    ):
        probe.predict(X[:, :3])
    with pytest.raises(ValueError, match="Reshape your data"):
        probe.predict(X[0])
    with pytest.raises(ValueError, match="Complex data not supported"):
        LinearProbe().fit(X + 1j, yb)
    with pytest.raises(ValueError, match="0 sample"):
        LinearProbe().fit(X[:0], yb[:0])
    with pytest.raises(ValueError, match="1 sample"):
        LinearProbe().fit(X[:1], yb[:1])
    with pytest.raises(TypeError, match="Sparse data"):
        LinearProbe().fit(sparse.csr_matrix(X), yb)
    with pytest.raises(NotFittedError):
        LinearProbe().predict(X)
    assert not hasattr(LinearProbe(l1=0.01).fit(X, yc), "predict_proba")  # continuous


def test_scikit_learn_estimator_checks() -> None:
    # a plain estimator on arrays: every check passes (the block split is LinearProbeCV's)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(LinearProbe(l1=0.01), on_fail=None)
    failed = [
        (r["check_name"], str(r["exception"])[:200]) for r in results if r["status"] == "failed"
    ]
    assert not failed
    assert len(results) > 30


@pytest.mark.parametrize("kind", ["binary", "continuous"])
def test_the_plain_probe_fits_every_row(kind: str) -> None:
    X, yb, yc = data()
    y = yb if kind == "binary" else yc
    probe = LinearProbe(l1=0.01).fit(X, y)
    np.testing.assert_allclose(probe.mean_, X.mean(0), rtol=1e-12)
    np.testing.assert_allclose(probe.scale_, X.std(0), rtol=1e-10)
    # LinearProbeCV's solution is the plain probe's on its train blocks
    held_out = cv_probe(l1=0.01).fit(X, y)
    tr = held_out.split_ == 0
    on_train = LinearProbe(l1=0.01).fit(X[tr], y[tr])
    np.testing.assert_allclose(on_train.coef_, held_out.coef_, atol=1e-8)
    assert probe.top_units(2, names=[f"u{i}" for i in range(P)]) == ["u3", "u7"]
    assert not hasattr(probe, "test_metrics_") and not hasattr(probe, "split_")


def test_block_split_is_a_scikit_learn_splitter() -> None:
    from sklearn.model_selection import GridSearchCV

    X, yb, _ = data()
    search = GridSearchCV(
        LinearProbe(), {"l1": [0.1, 0.01]}, cv=BlockSplit(10), scoring="roc_auc"
    ).fit(X, yb)
    assert search.best_params_["l1"] in (0.1, 0.01)
    assert BlockSplit(10).get_n_splits() == 1
    # the validation blocks LinearProbeCV chooses on are the ones the splitter hands out
    probe = LinearProbeCV(l1_grid=(0.1, 0.01), cv=BlockSplit(10)).fit(X, yb)
    ((train, val),) = BlockSplit(10).split(X)
    assert (probe.split_[train] == 0).all() and (probe.split_[val] == 1).all()
    assert (probe.split_[BlockSplit(10).test(X)] == 2).all()


@pytest.mark.parametrize("kind", ["binary", "continuous"])
def test_wide_problems_are_solved_on_all_units_directly(kind: str) -> None:
    # more units than train rows: the working-set path would fill up; the direct fit must still
    # find the planted unit and generalise
    rng = np.random.default_rng(5)
    X = rng.normal(size=(400, 500)).astype(np.float32)
    signal = X[:, 123] + 0.3 * rng.normal(size=400)
    y = (signal > 0).astype(float) if kind == "binary" else signal
    probe = cv_probe(n_blocks=10).fit(X, y)
    assert probe.top_units(1) == ["123"]
    metric = probe.test_metrics_["auc"] if kind == "binary" else probe.test_metrics_["r2"]
    assert metric > 0.8
    assert (probe.coef_ != 0).sum() < 100  # still sparse


# --- a probe fitted on a store remembers it ---------------------------------------------------


def _store(path, text: str, seed: int, model: str, width: int = 6):  # type: ignore[no-untyped-def]
    """A real small recording with planted layer0/cell/4 (quote), of ``model``'s hash."""
    from lstmprobe.features import get_feature
    from lstmprobe.store import RecordingSpec, StoreWriter
    from lstmprobe.text import Vocab, sequences

    rng = np.random.default_rng(seed)
    vocab = Vocab.from_text(text)
    cell = rng.normal(size=(len(text), width)).astype(np.float32)
    planted = min(4, width - 1)
    cell[:, planted] = 2 * get_feature("quote").labels(text) - 1 + 0.4 * cell[:, planted]
    writer = StoreWriter(path, RecordingSpec(tokens=vocab.encode(text), sequences=sequences(text), vocab=vocab, layout={"layer0/cell": width}, dtype="float32", model_summary={}, model_sha256=model * 64, corpus_sha256="0" * 64, has_next_logprob=False, run_config={}))  # fmt: skip
    writer.write(0, {"layer0/cell": cell})
    return writer.finish()


def test_a_probe_fitted_on_a_store_checks_the_store_it_is_applied_to(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from lstmprobe.errors import UnitError
    from lstmprobe.probes import ProbeStoreWarning
    from lstmprobe.store import ActivationStore
    from tests.stores import BASE

    fitted_on = _store(tmp_path / "a.h5", BASE * 10, 0, "a")
    same_model = _store(tmp_path / "b.h5", BASE * 6, 1, "a")  # held-out text, same model
    other_model = _store(tmp_path / "c.h5", BASE * 6, 2, "c")
    narrower = _store(tmp_path / "d.h5", BASE * 6, 3, "a", width=4)
    with ActivationStore(fitted_on) as s:
        units = ["layer0/cell/4", "layer0/cell/1"]
        probe = StoreProbe.fit(s, "quote", units=units, estimator=cv_probe(n_blocks=10))
    assert probe.store_["path"] == str(fitted_on)
    assert probe.store_["layout"] == {"layer0/cell": 6}
    with ActivationStore(same_model) as s:
        scores = probe.decision_function(s)
        assert scores.shape == (s.n_positions,)
        quote = s.read_text()
    from lstmprobe.features import get_feature

    assert auc((get_feature("quote").labels(quote) > 0.5), scores) > 0.9
    with ActivationStore(other_model) as s, pytest.warns(ProbeStoreWarning, match="another model"):
        probe.predict(s)
    with ActivationStore(narrower) as s, pytest.raises(UnitError, match=r"has 4 units here, 6"):
        probe.predict(s)
    assert probe.top_units(1) == ["layer0/cell/4"] and probe.test_metrics_["auc"] > 0.9
    array_probe = cv_probe(n_blocks=10).fit(np.random.default_rng(0).normal(size=(100, 2)),
                                            np.arange(100) % 2)  # fmt: skip
    assert not hasattr(array_probe, "store_")
    with ActivationStore(same_model) as s, pytest.raises(FeatureError, match="takes arrays"):
        array_probe.predict(s)


# --- LinearProbeCV on small data and on a store ----------------------------------------------------------------------------


def test_linear_probe_is_a_sklearn_estimator() -> None:
    probe = LinearProbeCV(l1_grid=(0.01,), cv=BlockSplit(n_blocks=10))
    assert clone(probe).get_params() == probe.get_params()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1000, 6))
    y = (X[:, 3] + 0.3 * rng.normal(size=1000) > 0).astype(float)
    assert probe.fit(X, y) is probe
    assert int(np.argmax(np.abs(probe.coef_))) == 3
    assert probe.test_metrics_["auc"] > 0.9 and probe.l1_ == 0.01
    assert probe.predict_proba(X[:3]).shape == (3, 2)
    assert set(np.unique(probe.split_).tolist()) == {0, 1, 2}


def test_linear_probe_chooses_l1_on_validation_and_is_sparse() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(2000, 20))
    y = X[:, 5] * 2 - X[:, 7] + 0.1 * rng.normal(size=2000)
    probe = LinearProbeCV(cv=BlockSplit(n_blocks=20)).fit(X, y)
    assert probe.kind_ == "continuous"
    assert len(probe.val_scores_) == 5 and probe.l1_ in probe.val_scores_
    assert probe.test_metrics_["r2"] > 0.95
    assert probe.top_units(2) == ["5", "7"]


def test_linear_probe_one_class_message() -> None:
    X = np.zeros((100, 2))
    y = np.zeros(100)
    y[:5] = 1
    with pytest.raises(FeatureError, match="blocks hold no positives"):
        LinearProbeCV(cv=BlockSplit(n_blocks=10, random_state=0)).fit(
            X + np.arange(100)[:, None], y
        )


def test_linear_probe_on_a_store(store) -> None:  # type: ignore[no-untyped-def]
    units = ["layer0/cell/0", "layer0/cell/4", "layer0/hidden/1"]
    probe = StoreProbe.fit(
        store, "quote", units=units, estimator=LinearProbeCV(cv=BlockSplit(n_blocks=10))
    )
    assert probe.units == units
    assert probe.top_units(1) == ["layer0/cell/4"]
    assert probe.test_metrics_["auc"] > 0.95
