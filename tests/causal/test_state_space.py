"""State space: principal components streamed over a store equal NumPy's over the whole of it;
fixed points are exact where they are known by hand, never called fixed above the tolerance,
and their Jacobians' eigenvalues are those of finite differences."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lstmprobe.causal.state_space import (
    _jacobian,
    _state_keys,
    _step,
    fixed_points,
    principal_components,
    sample_states,
    trajectories,
)
from lstmprobe.errors import DynamicsError
from lstmprobe.models import CharLSTM, ModelConfig
from lstmprobe.store import ActivationStore
from lstmprobe.text import Vocab
from tests.stores import BASE, build_store

VOCAB = Vocab(tuple("abX\n"))


def test_principal_components_streamed_over_chunks_equal_numpys(tmp_path):
    text = BASE * 30
    path = build_store(tmp_path / "acts.h5", text, chunk_positions=64)
    with ActivationStore(path) as s:
        comps = principal_components(s, "layer0/cell")
        values = s.read("layer0/cell").astype(np.float64)
        tr = trajectories(s, "layer0/cell", max_sequences=3)
    cov = np.cov(values, rowvar=False)
    variance, vectors = np.linalg.eigh(cov)
    order = np.argsort(-variance)
    np.testing.assert_allclose(comps.variance, variance[order], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(comps.mean, values.mean(0), atol=1e-9)
    for j in range(2):  # the same directions up to sign
        assert abs(abs(comps.vectors[:, j] @ vectors[:, order[j]]) - 1) < 1e-9
    assert comps.explained.sum() == pytest.approx(1.0)
    assert comps.positions == len(text)
    # one stream: windows of 100 chars, each a path, projected as the components say
    assert tr.sequences == [(0, 100), (100, 200), (200, 300)]
    np.testing.assert_allclose(tr.points, comps.project(values[:300]), atol=1e-9)


def _one_unit_lstm(bi: float, bf: float, bg: float, bo: float) -> CharLSTM:
    """A 1-unit LSTM whose gates do not depend on the state or the input: constants."""
    model = CharLSTM(ModelConfig(len(VOCAB), 1, embedding_dim=2)).eval()
    with torch.no_grad():
        for p in model.rnn.parameters():
            p.zero_()
        model.rnn.bias_ih_l0.copy_(torch.tensor([bi, bf, bg, bo]))
    return model


def test_a_fixed_point_known_by_hand():
    """With constant gates, c* = i g / (1 - f), h* = o tanh(c*); the Jacobian of (h, c) is
    [[0, o (1 - tanh(c')^2) f], [0, f]]: eigenvalues f and 0."""
    bi, bf, bg, bo = 0.3, 1.2, 0.4, -0.5
    model = _one_unit_lstm(bi, bf, bg, bo)
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    i, f, g, o = sig(bi), sig(bf), math.tanh(bg), sig(bo)
    c = i * g / (1 - f)
    h = o * math.tanh(c)
    starts = np.random.default_rng(0).normal(size=(8, 2))
    found = fixed_points(model, VOCAB, "a", starts, tolerance=1e-10, iterations=50)
    assert len(found.points) == 1
    (p,) = found.points
    assert p.residual <= 1e-10 and p.found_from == 8
    np.testing.assert_allclose(p.state, [h, c], atol=1e-9)
    np.testing.assert_allclose(sorted(np.abs(p.eigenvalues)), [0.0, f], atol=1e-9)
    assert p.stable and found.keys == [("layer0/hidden", 1), ("layer0/cell", 1)]
    assert found.part(p.state, "layer0/cell") == pytest.approx([c])


def test_no_point_is_called_fixed_above_the_tolerance():
    """f = 1 exactly (an integrator): the cell grows by i g every step, so nothing is fixed."""
    model = _one_unit_lstm(0.3, 1e4, 0.4, 0.0)
    starts = np.zeros((4, 2))
    with pytest.raises(DynamicsError, match=r"no fixed point for input 'a' .*smallest residuals"):
        fixed_points(model, VOCAB, "a", starts, iterations=50, newton=3)
    found = fixed_points(model, VOCAB, "a", starts, iterations=50, newton=3, require=False)
    assert not found.points and found.slow_points
    assert all(p.residual > found.tolerance for p in found.slow_points)
    # the integrator's direction: eigenvalue 1 at any state
    assert np.abs(found.slow_points[0].eigenvalues).max() == pytest.approx(1.0, abs=1e-9)
    d = found.to_dict()
    assert d["points"] == [] and d["slow_points"][0]["residual"] > d["tolerance"]


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_fixed_points_of_a_two_layer_model_and_their_jacobians(cell):
    torch.manual_seed(1)
    model = CharLSTM(ModelConfig(len(VOCAB), 3, num_layers=2, cell=cell, embedding_dim=2)).eval()  # type: ignore[arg-type]
    keys = _state_keys(model)
    dim = sum(n for _, n in keys)
    starts = np.random.default_rng(1).normal(size=(6, dim)) * 0.5
    found = fixed_points(model, VOCAB, "X", starts, tolerance=1e-9, iterations=150)
    m64 = model.double()
    x = m64.embed(torch.tensor([[VOCAB.index("X")]]))
    for p in found.points:
        s = torch.tensor(p.state)
        with torch.no_grad():
            step = _step(m64, x, s[None], keys)[0]
        assert float((step - s).abs().max()) <= 1e-9  # what residual means
        jac = _jacobian(m64, x, s, keys)
        fd = np.zeros((dim, dim))
        for j in range(dim):
            e = torch.zeros(dim, dtype=torch.float64)
            e[j] = 1e-6
            with torch.no_grad():
                up = _step(m64, x, (s + e)[None], keys)[0]
                down = _step(m64, x, (s - e)[None], keys)[0]
            fd[:, j] = ((up - down) / 2e-6).numpy()
        np.testing.assert_allclose(jac, fd, atol=1e-7)
        np.testing.assert_allclose(
            np.sort(np.abs(p.eigenvalues)), np.sort(np.abs(np.linalg.eigvals(fd))), atol=1e-6
        )
    model.float()


def test_bad_searches_say_what_to_do(tmp_path):
    model = _one_unit_lstm(0.1, 0.1, 0.1, 0.1)
    with pytest.raises(DynamicsError, match="one char"):
        fixed_points(model, VOCAB, "ab", np.zeros((1, 2)))
    with pytest.raises(DynamicsError, match=r"shape \(n, 2\)"):
        fixed_points(model, VOCAB, "a", np.zeros((1, 3)))
    with pytest.raises(DynamicsError, match="`tolerance`"):
        fixed_points(model, VOCAB, "a", np.zeros((1, 2)), tolerance=0)
    path = build_store(tmp_path / "acts.h5", BASE * 3)
    with ActivationStore(path) as s, pytest.raises(DynamicsError, match="did not record"):
        sample_states(s, CharLSTM(ModelConfig(5, 6, num_layers=2, embedding_dim=2)), 4)
