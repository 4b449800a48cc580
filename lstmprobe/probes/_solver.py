"""The sparse probes' solver: a path of penalties on a growing working set of units.

Used by :class:`~lstmprobe.probes.LinearProbe` and :class:`~lstmprobe.probes.LinearProbeCV`.
``X`` is read in its own dtype (float32 stays float32), by runs of rows and in chunks,
standardised on the fly; no full copy is made.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from scipy.special import expit

#: at most this many rows per chunk in a pass over the positions (float32 sums stay short)
CHUNK = 8192
#: values in the temporaries of one chunk: float32 copies, float64 ones (kept in cache)
CHUNK_VALUES, CHUNK_VALUES_64 = 1 << 21, 1 << 19
#: an inactive unit re-enters the working set when its gradient exceeds the penalty by this share
KKT_SLACK = 1e-4
#: Newton stops when the predicted decrease of the objective is below this share of it
NEWTON_TOL = 1e-12


def row_chunks(
    runs: Sequence[tuple[int, int]], width: int = 1, values: int = CHUNK_VALUES
) -> Iterator[tuple[int, int]]:
    """The rows of ``runs`` as (start, stop) pieces, in order, each of at most ``CHUNK`` rows
    and (when possible) at most ``values`` values of ``width`` columns."""
    size = max(16, min(CHUNK, values // max(width, 1)))
    for a, b in runs:
        for s in range(a, b, size):
            yield s, min(b, s + size)


def column_stats(X: np.ndarray, runs: Sequence[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation (ddof 0) of each column over the rows of ``runs``.

    One pass in ``X``'s dtype, chunk by chunk: sums of the values and of their squares after
    subtracting the first chunk's mean (so no cancellation), accumulated in float64.
    """
    chunks = list(row_chunks(runs, X.shape[1]))
    a, b = chunks[0]
    shift = X[a:b].mean(0, dtype=np.float64).astype(X.dtype)
    s1 = np.zeros(X.shape[1])
    s2 = np.zeros(X.shape[1])
    rows = max(b - a for a, b in chunks)
    ones = np.ones(rows, dtype=X.dtype)
    buf = np.empty((rows, X.shape[1]), dtype=X.dtype)
    n = 0
    # a unit beyond ~1e19 (float32) overflows its squares: its scale is inf, so it reads as 0
    with np.errstate(over="ignore", invalid="ignore"):
        for a, b in chunks:
            d = np.subtract(X[a:b], shift, out=buf[: b - a])
            s1 += ones[: b - a] @ d
            np.multiply(d, d, out=d)
            s2 += ones[: b - a] @ d
            n += b - a
        m1 = s1 / n
        return shift + m1, np.sqrt(np.maximum(s2 / n - m1 * m1, 0.0))


def rdot(r: np.ndarray, M: np.ndarray, runs: Sequence[tuple[int, int]]) -> np.ndarray:
    """``r @ M[rows]`` in float64, where ``rows`` are those of ``runs`` in order (chunked)."""
    out = np.zeros(M.shape[1])
    rr = r.astype(M.dtype, copy=False)
    i = 0
    for a, b in row_chunks(runs):
        out += rr[i : i + b - a] @ M[a:b]
        i += b - a
    return out


def standardised(
    X: np.ndarray,
    runs: Sequence[tuple[int, int]],
    cols: np.ndarray,
    mean: np.ndarray,
    scale: np.ndarray,
    out: np.ndarray,
) -> None:
    """Write the standardised columns ``cols`` at the rows of ``runs`` into ``out``."""
    m, s = mean[cols], scale[cols]
    i = 0
    for a, b in row_chunks(runs, len(cols), CHUNK_VALUES_64):
        z = X[a:b].take(cols, axis=1).astype(np.float64)
        z -= m
        z /= s
        out[i : i + b - a] = z
        i += b - a


def linear_scores(
    X: np.ndarray,
    runs: Sequence[tuple[int, int]],
    coef: np.ndarray,
    intercept: float,
    mean: np.ndarray,
    scale: np.ndarray,
) -> np.ndarray:
    """Linear scores (float64) of the rows of ``runs``, reading only the non-zero weights."""
    nz = np.flatnonzero(coef)
    out = np.full(sum(b - a for a, b in runs), float(intercept))
    w, m, s = coef[nz], mean[nz], scale[nz]
    i = 0
    for a, b in row_chunks(runs if nz.size else (), nz.size, CHUNK_VALUES_64):
        z = X[a:b].take(nz, axis=1).astype(np.float64)
        z -= m
        z /= s
        out[i : i + b - a] += z @ w
        i += b - a
    return out


# --------------------------------------------------------------------------- the solver


class WorkingSetPath:
    """Solutions of the penalised problem for decreasing penalties, on a growing working set.

    Holds the train rows of ``X`` (as runs, never copied), the standardised working-set
    columns ``Z`` (train rows x working set, ``X``'s dtype), the weights on them, the intercept,
    the linear predictor ``eta``, the gradient of the mean loss w.r.t. every unit, and the
    Hessian of the mean loss on the working set (kept while it predicts the steps well).
    """

    def __init__(
        self,
        X: np.ndarray,
        runs: list[tuple[int, int]],
        y: np.ndarray,
        mean: np.ndarray,
        scale: np.ndarray,
        varies: np.ndarray,
        kind: str,
        l1_ratio: float,
        max_iter: int,
    ) -> None:
        self.X, self.runs, self.y, self.mean, self.scale = X, runs, y, mean, scale
        self.varies = varies  # constant units never enter
        self.binary = kind == "binary"
        self.l1_ratio = float(l1_ratio)
        self.max_iter = max(1, int(max_iter))
        self.n = len(y)
        self.cols = np.empty(0, dtype=np.int64)
        self.in_set = np.zeros(X.shape[1], dtype=bool)
        # Z, column-major with room for more columns (unused columns are never touched)
        self._buf = np.empty((self.n, 0), dtype=X.dtype, order="F")
        self.w = np.empty(0)
        ybar = float(y.mean())
        self.b = math.log(ybar / (1 - ybar)) if self.binary else ybar  # the intercept-only fit
        self.eta = np.full(self.n, self.b)
        self.grad = self._full_gradient()
        # Hessian of the mean loss in (w, b): H (weights), h_wb (weights x intercept), h_bb,
        # computed with the per-row weights hv (None: the squared loss, all ones)
        self.H = np.zeros((0, 0))
        self.h_wb = np.zeros(0)
        self.h_bb = 1.0
        self.hv: np.ndarray | None = None
        self._hessian_at_eta = False
        self._factor: tuple[int, _Quadratic] | None = None
        self._version = 0  # bumped whenever H changes

    @property
    def Z(self) -> np.ndarray:
        return self._buf[:, : len(self.cols)]

    # -- the loss (mean over train rows)

    def _loss(self, eta: np.ndarray) -> float:
        if self.binary:
            return float(np.mean(np.logaddexp(0.0, eta) - self.y * eta))
        return 0.5 * float(np.mean((eta - self.y) ** 2))

    def _residual(self, eta: np.ndarray) -> np.ndarray:
        """d loss_i / d eta_i."""
        return (expit(eta) - self.y) if self.binary else (eta - self.y)

    def _full_gradient(self) -> np.ndarray:
        """Gradient of the mean loss w.r.t. every standardised weight: one pass over X."""
        r = self._residual(self.eta)
        return (rdot(r, self.X, self.runs) - self.mean * r.sum()) / self.scale / self.n

    def _update_hessian(self, refresh: bool) -> None:
        """Extend the Hessian to new working-set columns (same row weights), or recompute it
        at the current point when ``refresh``."""
        n, Z = self.n, self.Z
        m = Z.shape[1]
        if refresh and self.binary and not self._hessian_at_eta:
            p = expit(self.eta)
            hv = np.maximum(p * (1 - p), 1e-12)
            self.hv = hv
            self.h_bb = float(hv.mean())
            self.H, self.h_wb = np.zeros((0, 0)), np.zeros(0)
            self._hessian_at_eta = True
        start = self.H.shape[0]
        if start == m:
            return
        sv = None if self.hv is None else np.sqrt(self.hv).astype(Z.dtype)
        new = np.zeros((m - start, m))
        for a, b in row_chunks([(0, n)], m):
            B = Z[a:b] if sv is None else Z[a:b] * sv[a:b, None]
            new += B.T @ B if start == 0 else B[:, start:].T @ B
        new /= n
        H = np.empty((m, m))
        H[:start, :start] = self.H
        H[start:] = new
        H[:start, start:] = new[:, :start].T
        v = np.ones(n) if self.hv is None else self.hv
        self.H = H
        self.h_wb = np.concatenate([self.h_wb, rdot(v, Z[:, start:], [(0, n)]) / n])
        self._version += 1

    def _add(self, new: np.ndarray) -> None:
        """Add units ``new`` to the working set (weight 0)."""
        m, k = len(self.cols), len(new)
        if m + k > self._buf.shape[1]:
            buf = np.empty((self.n, max(2 * (m + k), 16)), dtype=self._buf.dtype, order="F")
            buf[:, :m] = self._buf[:, :m]
            self._buf = buf
        standardised(self.X, self.runs, new, self.mean, self.scale, self._buf[:, m : m + k])
        self.cols = np.concatenate([self.cols, new])
        self.w = np.concatenate([self.w, np.zeros(k)])
        self.in_set[new] = True

    # -- the path

    def solve(self, lam: float) -> tuple[np.ndarray, float]:
        """Solve at ``lam``, warm-started: full-length weights and the intercept."""
        limit = lam * self.l1_ratio * (1 + KKT_SLACK)
        first = True
        while True:
            new = np.flatnonzero((np.abs(self.grad) > limit) & self.varies & ~self.in_set)
            if new.size == 0 and not first:
                break
            self._add(new)
            self._newton(lam)
            self.grad = self._full_gradient()
            first = False
        coef = np.zeros(self.X.shape[1])
        coef[self.cols] = self.w
        return coef, self.b

    def _penalty(self, lam: float, w: np.ndarray) -> float:
        ratio = self.l1_ratio
        return lam * (ratio * float(np.abs(w).sum()) + 0.5 * (1 - ratio) * float(w @ w))

    def _newton(self, lam: float) -> None:
        """Proximal Newton steps on the working set (glmnet's outer loop) with a line search.

        Each step minimises the quadratic model of the loss plus the penalty; the intercept is
        eliminated from the model exactly, which leaves a penalised least-squares problem in
        the working-set weights for scikit-learn's coordinate descent. The Hessian is kept
        (not recomputed) while the full step decreases the objective as the model predicts.
        """
        n, Z = self.n, self.Z
        f = self._loss(self.eta) + self._penalty(lam, self.w)
        tol = NEWTON_TOL * max(abs(f), 1e-12)
        refresh = self.H.shape[0] == 0
        for _ in range(self.max_iter):
            self._update_hessian(refresh)
            H, h_wb, h_bb = self.H, self.h_wb, self.h_bb
            r = self._residual(self.eta)
            g_w = rdot(r, Z, [(0, n)]) / n
            g_b = float(r.mean())
            w_new = self.w
            if self.w.size:
                if self._factor is None or self._factor[0] != self._version:
                    # db minimised out: Hc is the Hessian of the weights alone
                    self._factor = (self._version, _Quadratic(H - np.outer(h_wb, h_wb) / h_bb))
                w_new = self._factor[1].solve(
                    self._factor[1].H @ self.w - (g_w - h_wb * (g_b / h_bb)),
                    self.w,
                    lam,
                    self.l1_ratio,
                    10 * self.max_iter,
                    gap=1e-3 * tol,
                )
            dw = w_new - self.w
            db = -(g_b + float(h_wb @ dw)) / h_bb
            pen = self._penalty(lam, w_new) - self._penalty(lam, self.w)
            decrease = float(g_w @ dw) + g_b * db + pen
            if decrease >= -tol:
                return
            model = decrease + 0.5 * (float(dw @ H @ dw) + 2 * db * float(h_wb @ dw) + h_bb * db**2)
            deta = np.add(Z @ dw.astype(Z.dtype), db, dtype=np.float64) if dw.any() else db
            t = 1.0
            while True:
                eta = self.eta + t * deta
                w = self.w + t * dw
                f_new = self._loss(eta) + self._penalty(lam, w)
                if f_new <= f + 1e-4 * t * decrease:
                    break
                t *= 0.5
                if t < 1e-10:
                    return  # no descent left at this precision
            self.eta, self.w, self.b = eta, w, self.b + t * db
            self._hessian_at_eta = False
            done = f - f_new <= tol
            # a stale Hessian is kept while the full step does what its model predicted
            refresh = t < 1 or not 1.25 * model <= f_new - f <= 0.75 * model
            f = f_new
            if done or (not self.binary and t == 1.0):  # the squared loss is its own model
                return


class _Quadratic:
    """argmin_w 1/2 w'Hw - q'w + lam * (l1_ratio |w|_1 + (1 - l1_ratio) / 2 |w|^2), for any q.

    ``H`` (positive semi-definite) is factorised once as A'A / k with k rows; each problem is
    then the elastic net on (A, b) with A'b / k = q, solved by scikit-learn's coordinate descent
    (:func:`sklearn.linear_model.enet_path`).
    """

    def __init__(self, H: np.ndarray) -> None:
        self.H = H
        self.A: np.ndarray | None = None  # None: H is 0, every weight is 0
        self.L: np.ndarray | None = None  # H = L L' (Cholesky) ...
        self.root = self.vecs = np.empty(0)  # ... or H ~ vecs diag(root^2) vecs' (eigen)
        top = float(np.max(np.diag(H)))
        if top <= 0:
            return
        try:
            L = np.linalg.cholesky(H)
            if float(np.min(np.diag(L))) ** 2 > 1e-10 * top:
                self.L, self.k = L, len(H)
                self.A = math.sqrt(self.k) * L.T
        except np.linalg.LinAlgError:
            pass
        if self.A is None:  # singular (duplicate units): keep the range of H
            vals, vecs = np.linalg.eigh(H)
            keep = vals > 1e-10 * top
            self.k = int(keep.sum())
            self.root, self.vecs = np.sqrt(vals[keep]), vecs[:, keep]
            self.A = np.asfortranarray(math.sqrt(self.k) * (self.root[:, None] * self.vecs.T))
        self.gram = np.ascontiguousarray(self.A.T @ self.A)

    def solve(
        self, q: np.ndarray, w0: np.ndarray, lam: float, l1_ratio: float, max_iter: int, gap: float
    ) -> np.ndarray:
        """The minimiser, warm-started at ``w0``; coordinate descent stops when its duality gap
        (per row, in the units of the objective) is below ``gap``."""
        from scipy.linalg import solve_triangular
        from sklearn import config_context
        from sklearn.linear_model import enet_path

        if self.A is None:
            return np.zeros_like(w0)
        if self.L is not None:
            b = math.sqrt(self.k) * solve_triangular(self.L, q, lower=True)
        else:
            b = math.sqrt(self.k) * (self.vecs.T @ q) / self.root
        # enet_path's tolerance is relative to |b|^2, its gap summed over the k rows
        tol = min(1e-4, max(1e-13, gap * self.k / max(float(b @ b), 1e-300)))
        # the inputs are built here, valid by construction: skipping scikit-learn's checks
        # makes a call much cheaper, which matters for small probes (hundreds of calls)
        with warnings.catch_warnings(), config_context(skip_parameter_validation=True):
            warnings.simplefilter("ignore")  # a ConvergenceWarning leaves the last iterate
            _, coefs, _ = enet_path(
                self.A,
                b,
                l1_ratio=l1_ratio,
                alphas=[lam],  # pyright: ignore[reportArgumentType]
                precompute=self.gram,  # pyright: ignore[reportArgumentType]
                Xy=self.A.T @ b,
                coef_init=w0.copy(),  # updated in place by the solver
                max_iter=max_iter,
                tol=tol,
                check_input=False,
            )
        return np.asarray(coefs, dtype=np.float64)[:, 0]


# --------------------------------------------------------------------------- data for probes


def direct_solutions(
    X: np.ndarray,
    y: np.ndarray,
    mean: np.ndarray,
    scale: np.ndarray,
    kind: str,
    lams: list[float],
    l1_ratio: float,
    max_iter: int,
) -> dict[float, tuple[np.ndarray, float]]:
    """Solutions for each penalty by scikit-learn on all (standardised) units at once."""
    from sklearn.linear_model import ElasticNet, LogisticRegression

    Z = (np.asarray(X, dtype=np.float64) - mean) / scale
    out: dict[float, tuple[np.ndarray, float]] = {}
    for lam in lams:
        if kind == "binary":
            # C scales the summed loss: mean loss + lam * penalty <=> C = 1 / (lam * n);
            # liblinear penalises the intercept too, so it gets a large scaling
            pure = l1_ratio >= 1.0
            model: Any = LogisticRegression(
                C=1.0 / (lam * len(y)),
                l1_ratio=float(l1_ratio),
                solver="liblinear" if pure else "saga",
                intercept_scaling=100,
                max_iter=max_iter,
                tol=1e-4,
            )
        else:
            model = ElasticNet(
                alpha=lam,
                l1_ratio=float(l1_ratio),
                max_iter=max_iter * 10,
                tol=1e-4,
                precompute=True,
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a ConvergenceWarning leaves the last iterate
            model.fit(Z, y)
        coef = np.asarray(model.coef_, dtype=np.float64).reshape(-1)
        out[lam] = (coef, float(np.asarray(model.intercept_).reshape(-1)[0]))
    return out
