"""State-space dynamics: how the network moves through its states, and where it would rest.

* :func:`principal_components` -- the principal components of one recorded state (``layer0/cell``)
  over the whole recording, from its mean and covariance accumulated chunk by chunk (memory:
  one ``units x units`` matrix, flat in the corpus), and the share of the variance each explains.
  :func:`trajectories` projects each sequence's states on the first two: a path per sequence.
* :func:`fixed_points` -- with one input char held fixed, the states ``s*`` where one step of the
  model returns to the same state, ``F(s*, x) = s*`` (Sussillo & Barak 2013). Starting from
  states sampled from the recording, ``q(s) = 1/2 ||F(s) - s||^2`` is minimised for all of them
  at once (Adam on autograd's gradient, then Newton steps on ``F(s) - s``), in float64 through
  the model's own cell equations. A point counts as **fixed** only when its residual
  ``max_i |F(s)_i - s_i|`` is at most ``tolerance``; the others are reported as slow points,
  with their residuals, never as fixed. At each fixed point, the eigenvalues of the Jacobian
  ``dF/ds`` say how the state moves near it: ``|lambda| < 1`` decays (stable direction),
  ``> 1`` grows; ``|lambda|`` near 1 is a slow mode (a line attractor's direction has one at 1).

The state of a model is every layer's hidden state, and for an LSTM its cell state too, in the
order ``layer0/hidden, layer0/cell, layer1/hidden, ...`` (the keys of :attr:`FixedPoints.keys`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from lstmprobe._io import progress_bar
from lstmprobe.causal.attribution import unroll
from lstmprobe.errors import DynamicsError
from lstmprobe.names import Key
from lstmprobe.record.threads import TorchThreads, check_threads, default_threads

if TYPE_CHECKING:
    from lstmprobe.store import ActivationStore
    from lstmprobe.text import Vocab


# --------------------------------------------------------------------------- principal components


@dataclass(frozen=True)
class Components:
    """Principal components of one recorded state over a recording."""

    key: Key
    mean: np.ndarray  # (units,)
    vectors: np.ndarray  # (units, units): one component per column, by decreasing variance
    variance: np.ndarray  # (units,) the variance along each
    positions: int

    @property
    def explained(self) -> np.ndarray:
        """The share of the total variance along each component."""
        total = float(self.variance.sum())
        return self.variance / total if total > 0 else np.zeros_like(self.variance)

    def project(self, values: np.ndarray, k: int = 2) -> np.ndarray:
        """``values`` (n, units) on the first ``k`` components: (n, k)."""
        return (np.asarray(values, dtype=np.float64) - self.mean) @ self.vectors[:, :k]


def principal_components(store: ActivationStore, key: Key | str) -> Components:
    """The principal components of ``key`` over the whole recording, streamed chunk by chunk
    (sums of values and of their outer products in float64, shifted by the first chunk's mean
    for accuracy)."""
    parsed = Key.parse(key)
    key = str(parsed)
    n = store.n_units(key)
    total = np.zeros(n)
    outer = np.zeros((n, n))
    count = 0
    shift: np.ndarray | None = None
    for _, _, block in store.iter_chunks([key]):
        v = block[key].astype(np.float64)
        if shift is None:
            shift = v.mean(0)
        v = v - shift  # type: ignore[operator]
        total += v.sum(0)
        outer += v.T @ v
        count += len(v)
    if count < 2 or shift is None:
        raise DynamicsError(f"{store.path} holds fewer than 2 positions: no variance to analyse")
    mean = total / count
    cov = (outer - count * np.outer(mean, mean)) / (count - 1)
    variance, vectors = np.linalg.eigh(cov)
    order = np.argsort(-variance)
    vectors = vectors[:, order]
    # a sign convention: each component points where its largest loading is positive
    signs = np.sign(vectors[np.abs(vectors).argmax(0), np.arange(n)])
    vectors = vectors * np.where(signs == 0, 1, signs)
    return Components(parsed, mean + shift, vectors, np.clip(variance[order], 0, None), count)


@dataclass(frozen=True)
class Trajectories:
    """The states of some sequences on the first two principal components."""

    components: Components
    points: np.ndarray  # (n, 2)
    sequences: list[tuple[int, int]]  # [start, end) of each drawn sequence, in ``points``
    positions: np.ndarray  # (n,) the recording's position of each point


def trajectories(
    store: ActivationStore,
    key: Key | str,
    *,
    max_sequences: int = 200,
    max_positions: int = 20_000,
) -> Trajectories:
    """The first ``max_sequences`` sequences of the recording (at most ``max_positions`` chars;
    a single long stream is cut into windows of 100 chars), projected on the first two principal
    components of ``key`` over the whole recording."""
    comps = principal_components(store, key)
    key = str(comps.key)
    seqs = store.sequences
    spans: list[tuple[int, int]] = []
    if len(seqs) == 1:
        a, b = int(seqs[0, 0]), int(seqs[0, 1])
        spans = [(s, min(s + 100, b)) for s in range(a, b, 100)]
    else:
        spans = [(int(a), int(b)) for a, b in seqs]
    chosen, used = [], 0
    for a, b in spans[:max_sequences]:
        if used + (b - a) > max_positions and chosen:
            break
        chosen.append((a, b))
        used += b - a
    points, positions, drawn = [], [], []
    offset = 0
    for a, b in chosen:
        points.append(comps.project(store.read(key, a, b)))
        positions.append(np.arange(a, b))
        drawn.append((offset, offset + b - a))
        offset += b - a
    return Trajectories(comps, np.concatenate(points), drawn, np.concatenate(positions))


# --------------------------------------------------------------------------- fixed points


def state_layout(model: torch.nn.Module) -> list[tuple[str, int]]:
    """The parts of the model's flat state, in order: ``[("layer0/hidden", 10), ("layer0/cell",
    10), ...]``."""
    return _state_keys(model)


def step_jacobian(model: torch.nn.Module, vocab: Vocab, char: str, state: np.ndarray) -> np.ndarray:
    """``dF/ds`` of one step reading ``char`` at the flat ``state`` (:func:`state_layout`), in
    float64: shape (dim, dim)."""
    import copy

    keys = _state_keys(model)
    m64 = copy.deepcopy(model).cpu().double().eval()
    with torch.no_grad():
        x = m64.embed(torch.tensor([[vocab.index(char)]]))  # type: ignore[operator]
    return _jacobian(m64, x, torch.as_tensor(np.asarray(state, dtype=np.float64)), keys)


def _state_keys(model: torch.nn.Module) -> list[tuple[str, int]]:
    rnn: Any = model.rnn  # type: ignore[attr-defined]
    lstm = isinstance(rnn, torch.nn.LSTM)
    out_size = int(rnn.proj_size) if lstm and getattr(rnn, "proj_size", 0) else int(rnn.hidden_size)
    keys = []
    for k in range(int(rnn.num_layers)):
        keys.append((str(Key(k, "hidden")), out_size))
        if lstm:
            keys.append((str(Key(k, "cell")), int(rnn.hidden_size)))
    return keys


def _split(s: torch.Tensor, keys: list[tuple[str, int]]) -> list[tuple[torch.Tensor, Any]]:
    """A flat state (batch, dim) as the per-layer (h, c) of :func:`unroll`."""
    parts, i = {}, 0
    for key, n in keys:
        parts[key] = s[:, i : i + n]
        i += n
    layers = sorted({Key.parse(k).layer for k, _ in keys})
    return [(parts[str(Key(k, "hidden"))], parts.get(str(Key(k, "cell")))) for k in layers]


def _step(
    model: torch.nn.Module, x: torch.Tensor, s: torch.Tensor, keys: list[tuple[str, int]]
) -> torch.Tensor:
    """One step from each flat state ``s`` (batch, dim) reading the input vector ``x``."""
    _, state = unroll(model, x.expand(s.shape[0], 1, -1), _split(s, keys))
    flat = []
    for h, c in state:
        flat.append(h)
        if c is not None:
            flat.append(c)
    return torch.cat(flat, 1)


@dataclass(frozen=True)
class FixedPoint:
    """One state where a step with the input held fixed returns (within ``residual``)."""

    state: np.ndarray = field(repr=False)  # (dim,)
    residual: float  # max_i |F(s)_i - s_i|
    eigenvalues: np.ndarray = field(repr=False)  # (dim,) complex, by decreasing |lambda|
    eigenvectors: np.ndarray = field(repr=False)  # (dim, dim) complex, one per column
    found_from: int  # how many starting states converged to it

    @property
    def stable(self) -> bool:
        return bool(np.abs(self.eigenvalues).max() < 1)

    @property
    def slow(self) -> np.ndarray:
        """The eigenvalues with ``|lambda| >= 0.9``: the slow (or growing) modes."""
        return self.eigenvalues[np.abs(self.eigenvalues) >= 0.9]


@dataclass(frozen=True)
class FixedPoints:
    """What :func:`fixed_points` found for one input char."""

    char: str
    keys: list[tuple[str, int]]  # the state's parts, in order: (key, units)
    points: tuple[FixedPoint, ...]  # residual <= tolerance, distinct
    #: the distinct end points above tolerance, least residual first (never called fixed),
    #: their Jacobians' eigenvalues at the point reached
    slow_points: tuple[FixedPoint, ...]
    tolerance: float
    starts: int
    iterations: int

    def part(self, state: np.ndarray, key: str) -> np.ndarray:
        """The units of ``key`` (``layer0/cell``) in a flat state."""
        i = 0
        for k, n in self.keys:
            if k == key:
                return state[..., i : i + n]
            i += n
        raise DynamicsError(
            f"{key} is not part of this model's state ({', '.join(k for k, _ in self.keys)})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "lstmprobe.fixed_points",
            "input": self.char,
            "keys": [[k, n] for k, n in self.keys],
            "tolerance": self.tolerance,
            "starts": self.starts,
            "iterations": self.iterations,
            "points": [_point_dict(p) for p in self.points],
            "slow_points": [_point_dict(p) for p in self.slow_points],
        }


def _cx(v: complex) -> list[float]:
    return [float(np.real(v)), float(np.imag(v))]


def _point_dict(p: FixedPoint) -> dict[str, Any]:
    return {
        "state": p.state.tolist(),
        "residual": p.residual,
        "stable": p.stable,
        "found_from": p.found_from,
        "eigenvalues": [_cx(v) for v in p.eigenvalues],
        "abs_eigenvalues": np.abs(p.eigenvalues).tolist(),
        "slow_modes": [
            {"eigenvalue": _cx(p.eigenvalues[i]), "vector": np.real(p.eigenvectors[:, i]).tolist()}
            for i in np.flatnonzero(np.abs(p.eigenvalues) >= 0.9)
        ],
    }


def fixed_points(
    model: torch.nn.Module,
    vocab: Vocab,
    char: str,
    starts: np.ndarray,
    *,
    tolerance: float = 1e-6,
    iterations: int = 2000,
    newton: int = 20,
    require: bool = True,
    threads: int | None = None,
    progress: bool = False,
) -> FixedPoints:
    """Fixed points of one step of ``model`` with input ``char``, searched from ``starts``.

    Parameters
    ----------
    model : CharLSTM
    vocab : Vocab
    char : str
        The input held fixed.
    starts : ndarray of shape (n, dim)
        Starting states, flat (:func:`sample_states` takes them from a recording).
    tolerance : float
        The largest residual ``max_i |F(s)_i - s_i|`` of a point called fixed.
    iterations : int
        Adam steps on ``q(s) = 1/2 ||F(s) - s||^2`` (then ``newton`` Newton steps).
    require : bool
        Raise when no start reaches ``tolerance`` (else return the slow points alone).

    Raises
    ------
    DynamicsError
        No start reached ``tolerance`` and ``require`` (the message gives the smallest
        residuals reached).
    """
    if not isinstance(char, str) or len(char) != 1:
        raise DynamicsError(f"the input held fixed is one char, got {char!r}")
    if tolerance <= 0 or not math.isfinite(tolerance):
        raise DynamicsError(f"`tolerance` must be a positive number, got {tolerance}")
    keys = _state_keys(model)
    dim = sum(n for _, n in keys)
    starts = np.asarray(starts, dtype=np.float64)
    if starts.ndim != 2 or starts.shape[1] != dim or not len(starts):
        raise DynamicsError(f"starting states have shape (n, {dim}), got {starts.shape}")
    check_threads(threads, DynamicsError)
    with TorchThreads(default_threads(model, threads, torch.device("cpu")), DynamicsError):
        return _search(
            model, vocab, char, starts, keys, tolerance, iterations, newton, require, progress
        )


def _search(
    model: torch.nn.Module,
    vocab: Vocab,
    char: str,
    starts: np.ndarray,
    keys: list[tuple[str, int]],
    tolerance: float,
    iterations: int,
    newton: int,
    require: bool,
    progress: bool,
) -> FixedPoints:
    import copy

    m64 = copy.deepcopy(model).cpu().double().eval()
    ids = torch.tensor([[vocab.index(char)]])
    with torch.no_grad():
        x = m64.embed(ids)  # type: ignore[operator]
    s = torch.tensor(starts)
    # Adam (lr 0.01, betas 0.9 and 0.999), written out: torch.optim costs seconds to import
    m1, m2 = torch.zeros_like(s), torch.zeros_like(s)
    bar = progress_bar(iterations + newton, desc="fixed points", unit="step", enabled=progress)
    try:
        with torch.enable_grad():
            for it in range(iterations):
                s.requires_grad_(True)
                r = _step(m64, x, s, keys) - s
                (grad,) = torch.autograd.grad(0.5 * (r**2).sum(), [s])
                s = s.detach()
                m1.mul_(0.9).add_(grad, alpha=0.1)
                m2.mul_(0.999).addcmul_(grad, grad, value=0.001)
                unbiased = m1 / (1 - 0.9 ** (it + 1))
                scale = (m2 / (1 - 0.999 ** (it + 1))).sqrt_().add_(1e-8)
                s = s - 1e-2 * unbiased / scale
                if it % 100 == 99:
                    bar.update(100)
                    if float(r.detach().abs().max()) < tolerance * 1e-2:
                        break
            found = s.detach()
            for _ in range(newton):
                found = _newton(m64, x, found, keys)
            bar.update(newton)
    finally:
        bar.close()
    with torch.no_grad():
        residual = (_step(m64, x, found, keys) - found).abs().max(1).values.numpy()
    ok = residual <= tolerance
    states = found.numpy()
    if not ok.any() and require:
        best = ", ".join(f"{r:.2g}" for r in np.sort(residual)[:5])
        raise DynamicsError(
            f"no fixed point for input {char!r} within `tolerance={tolerance:g}` from "
            f"{len(starts)} starts: the smallest residuals reached are {best}; search longer "
            "(more iterations), from other states, or with another input"
        )
    points = _analysed(m64, x, keys, _distinct(states[ok], residual[ok]))
    slow = _analysed(m64, x, keys, _distinct(states[~ok], residual[~ok], radius=1e-2)[:5])
    return FixedPoints(char, keys, points, slow, tolerance, len(starts), iterations)


def _analysed(
    model: torch.nn.Module,
    x: torch.Tensor,
    keys: list[tuple[str, int]],
    found: list[tuple[np.ndarray, float, int]],
) -> tuple[FixedPoint, ...]:
    out = []
    for state, res, count in found:
        values, vectors = np.linalg.eig(_jacobian(model, x, torch.tensor(state), keys))
        order = np.argsort(-np.abs(values), kind="stable")
        out.append(FixedPoint(state, float(res), values[order], vectors[:, order], count))
    return tuple(out)


def _newton(
    model: torch.nn.Module, x: torch.Tensor, s: torch.Tensor, keys: list[tuple[str, int]]
) -> torch.Tensor:
    """One Newton step on ``G(s) = F(s) - s`` for every state at once (a state keeps its value
    where the step does not lower its residual, or its Jacobian is singular)."""
    with torch.no_grad():
        g = _step(model, x, s, keys) - s
    jac = _jacobians(model, x, s, keys)
    eye = torch.eye(s.shape[1], dtype=s.dtype)
    delta, info = torch.linalg.solve_ex(jac - eye, -g)
    cand = s + torch.where((info == 0)[:, None], delta, torch.zeros_like(delta))
    with torch.no_grad():
        before = g.abs().max(1).values
        after = (_step(model, x, cand, keys) - cand).abs().max(1).values
    better = torch.isfinite(after) & (after < before)
    return torch.where(better[:, None], cand, s)


def _jacobians(
    model: torch.nn.Module, x: torch.Tensor, s: torch.Tensor, keys: list[tuple[str, int]]
) -> torch.Tensor:
    """``dF/ds`` at each state of ``s`` (n, dim): (n, dim, dim), by reverse mode, one backward
    pass per output coordinate for all states at once."""
    s = s.detach().requires_grad_(True)
    out = _step(model, x, s, keys)
    rows = []
    for i in range(out.shape[1]):
        (g,) = torch.autograd.grad(out[:, i].sum(), [s], retain_graph=i < out.shape[1] - 1)
        rows.append(g)
    return torch.stack(rows, 1).detach()


def _jacobian(
    model: torch.nn.Module, x: torch.Tensor, s: torch.Tensor, keys: list[tuple[str, int]]
) -> np.ndarray:
    return _jacobians(model, x, s[None], keys)[0].numpy()


def _distinct(
    states: np.ndarray, residuals: np.ndarray, radius: float = 1e-4
) -> list[tuple[np.ndarray, float, int]]:
    """States within ``radius`` (max-abs distance) of each other merged: (the one of least
    residual, its residual, how many merged)."""
    out: list[tuple[np.ndarray, float, int]] = []
    for i in np.argsort(residuals):
        for j, (s, r, n) in enumerate(out):
            if np.abs(states[i] - s).max() <= radius:
                out[j] = (s, r, n + 1)
                break
        else:
            out.append((states[i], float(residuals[i]), 1))
    return out


def sample_states(
    store: ActivationStore, model: torch.nn.Module, n: int, seed: int = 0
) -> np.ndarray:
    """``n`` flat states of the model at random positions of the recording (its recorded
    hidden and cell states, in the order of the model's state), shape (n, dim)."""
    keys = _state_keys(model)
    missing = [k for k, _ in keys if k not in store.keys]
    if missing:
        raise DynamicsError(
            f"{store.path} did not record {', '.join(missing)}, which the state is made of; "
            "record every quantity (the default)"
        )
    for key, units in keys:
        if store.n_units(key) != units:
            raise DynamicsError(
                f"{store.path}'s {key} has {store.n_units(key)} units, the model {units}"
            )
    rng = np.random.default_rng(seed)
    picks = np.sort(rng.choice(store.n_positions, size=min(n, store.n_positions), replace=False))
    parts = [np.stack([store.read(k, int(p), int(p) + 1)[0] for p in picks]) for k, _ in keys]
    return np.concatenate(parts, 1).astype(np.float64)


def key_of(keys: Sequence[tuple[str, int]], key: str) -> slice:
    """Where ``key`` lies in a flat state."""
    Key.parse(key)
    i = 0
    for k, n in keys:
        if k == key:
            return slice(i, i + n)
        i += n
    raise DynamicsError(f"{key} is not part of the model's state ({', '.join(k for k, _ in keys)})")
