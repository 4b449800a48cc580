"""Compiled: per-unit AUC, Spearman and mutual information from joint (label pattern x bin)
counts, the second half of the scoring pass (:meth:`lstmprobe.probes._kernels.Sweeper.joint_stats`
runs it on blocks of units; tests/probes/test_kernels.py holds it equal to scikit-learn and SciPy
on the binned values)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(nogil=True, cache=True, fastmath={"reassoc", "contract"})
def joint_stats(totals, recent, codes, n_labels, mi_bins, a, e, auc, rho, mi):  # type: ignore[no-untyped-def]
    """AUC, Spearman and MI of units ``[a, e)`` against F features from their (patterns x bins)
    counts ``totals + recent`` (an :class:`Accumulator`'s); each unit's counts are read once
    for all the features.

    ``codes[f, p]`` is feature f's label bin in pattern p (-1: undefined there) and
    ``n_labels[f]`` its number of label bins; ``auc``, ``rho`` and ``mi`` are (F, units). Per
    unit and feature the patterns are folded into a (labels x bins) table; bins and labels are
    ranked by midranks (ties share their mean rank); AUC (two labels only) counts ties within a
    bin as one half; MI is the plug-in estimate in bits between ``mi_bins`` equal-mass groups
    of bins (contiguous runs of bins) and the labels. The bins' ranks and groups depend only on
    the positions where the feature is defined, so features defined at every pattern share
    them. Sums are reassociated (vectorised): the results do not depend on the thread count.
    """
    n_feat, n_pat, nb = codes.shape[0], totals.shape[1], totals.shape[2]
    width = max(n_labels.max(), 1)
    counts = np.zeros((n_pat, nb))
    joint = np.zeros((width, nb))
    px = np.zeros(nb)
    py = np.zeros(width)
    rx = np.zeros(nb)
    ry = np.zeros(width)
    coarse = np.zeros((mi_bins, width))
    bounds = np.zeros(mi_bins + 1, dtype=np.int64)
    everywhere = np.zeros(n_feat, dtype=np.bool_)
    for f in range(n_feat):
        everywhere[f] = (codes[f] >= 0).all()
    for j in range(a, e):
        settled, more = totals[j], recent[j]
        for p in range(n_pat):
            for b in range(nb):
                counts[p, b] = np.float64(settled[p, b]) + np.float64(more[p, b])
        shared = False  # px, rx, n, mx, vx, bounds hold the marginal of all the patterns
        n = mx = vx = 0.0
        for f in range(n_feat):
            nl = n_labels[f]
            joint[:nl] = 0.0
            for p in range(n_pat):
                c = codes[f, p]
                if c >= 0:
                    row, src = joint[c], counts[p]
                    for b in range(nb):
                        row[b] += src[b]
            for c in range(nl):
                py[c] = joint[c].sum()
            if not (shared and everywhere[f]):
                # the bins' marginal, midranks and equal-mass groups
                px[:] = 0.0
                for c in range(nl):
                    row = joint[c]
                    for b in range(nb):
                        px[b] += row[b]
                n = px.sum()
                if n > 0:
                    cum = 0.0
                    g = 0
                    for b in range(nb):
                        rx[b] = cum + (px[b] + 1.0) / 2.0
                        # bin b's group: where its middle position falls among mi_bins
                        mid = min(int((cum + px[b] / 2.0) / n * mi_bins), mi_bins - 1)
                        while g < mid:
                            g += 1
                            bounds[g] = b
                        cum += px[b]
                    while g < mi_bins:
                        g += 1
                        bounds[g] = nb
                    bounds[0] = 0
                    mx = 0.0
                    for b in range(nb):
                        mx += px[b] * rx[b]
                    mx /= n
                    vx = 0.0
                    for b in range(nb):
                        vx += px[b] * (rx[b] - mx) ** 2
                shared = everywhere[f]
            if n == 0:
                auc[f, j], rho[f, j], mi[f, j] = 0.5, 0.0, 0.0
                continue
            cum = 0.0
            for c in range(nl):
                ry[c] = cum + (py[c] + 1.0) / 2.0
                cum += py[c]
            my = 0.0
            for c in range(nl):
                my += py[c] * ry[c]
            my /= n
            cov = 0.0
            vy = 0.0
            for c in range(nl):
                row = joint[c]
                dot = 0.0
                for b in range(nb):
                    dot += row[b] * (rx[b] - mx)
                cov += dot * (ry[c] - my)
                vy += py[c] * (ry[c] - my) ** 2
            r = cov / np.sqrt(vx * vy) if vx > 0 and vy > 0 else 0.0
            rho[f, j] = min(1.0, max(-1.0, r))
            if nl == 2:
                below = 0.0
                total = 0.0
                neg, pos = joint[0], joint[1]
                for b in range(nb):
                    total += pos[b] * (below + 0.5 * neg[b])
                    below += neg[b]
                auc[f, j] = total / (py[0] * py[1]) if py[0] > 0 and py[1] > 0 else 0.5
            for c in range(nl):
                row = joint[c]
                for g in range(mi_bins):
                    part = 0.0
                    for b in range(bounds[g], bounds[g + 1]):
                        part += row[b]
                    coarse[g, c] = part
            info = 0.0
            for g in range(mi_bins):
                pg = coarse[g, :nl].sum() / n
                for c in range(nl):
                    pgc = coarse[g, c] / n
                    if pgc > 0:
                        info += pgc * np.log2(pgc / (pg * (py[c] / n)))
            mi[f, j] = max(info, 0.0)
