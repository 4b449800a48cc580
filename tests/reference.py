"""An independent, deliberately simple per-step LSTM/GRU written from the equations.

It shares no code with lstmprobe.record.cells: the tests compare the two.
"""

from __future__ import annotations

import torch


def _set(v, t, edits, quantity):
    """v with the units of every edit of ``quantity`` set where its mask holds at step t.

    ``values`` is one value per unit, or a per-step table of shape (time, units) (a patch)."""
    for q, units, values, mask in edits:
        if q != quantity or (mask is not None and not bool(mask[t])):
            continue
        v = v.clone()
        row = values[t] if getattr(values, "ndim", 1) == 2 else values
        for u, value in zip(units, row):
            v[u] = value
    return v


def lstm_steps(x, w_ih, w_hh, b_ih, b_hh, h, c, w_hr=None, edits=()):
    """x [time, input]; returns a dict of per-step vectors stacked over time.

    ``edits`` (interventions) is a list of (quantity, units, values, mask), mask a per-step
    sequence of bools or None (every step); the state is edited in place of the step's value,
    so later steps read the edited value. No edits: the plain equations."""
    out = {
        k: [] for k in ("input_gate", "forget_gate", "candidate", "output_gate", "cell", "hidden")
    }
    for t in range(x.shape[0]):
        z = w_ih @ x[t] + w_hh @ h
        if b_ih is not None:
            z = z + b_ih + b_hh
        n = z.shape[0] // 4
        i = _set(1 / (1 + torch.exp(-z[:n])), t, edits, "input_gate")
        f = _set(1 / (1 + torch.exp(-z[n : 2 * n])), t, edits, "forget_gate")
        g = _set(torch.tanh(z[2 * n : 3 * n]), t, edits, "candidate")
        o = _set(1 / (1 + torch.exp(-z[3 * n :])), t, edits, "output_gate")
        c = _set(f * c + i * g, t, edits, "cell")
        h = o * torch.tanh(c)
        if w_hr is not None:
            h = w_hr @ h
        h = _set(h, t, edits, "hidden")
        for k, v in zip(out, (i, f, g, o, c, h)):
            out[k].append(v)
    return {k: torch.stack(v) for k, v in out.items()}


def gru_steps(x, w_ih, w_hh, b_ih, b_hh, h, edits=()):
    out = {k: [] for k in ("reset_gate", "update_gate", "candidate", "hidden")}
    for t in range(x.shape[0]):
        a = w_ih @ x[t]
        b = w_hh @ h
        if b_ih is not None:
            a, b = a + b_ih, b + b_hh
        n3 = a.shape[0] // 3
        r = _set(torch.sigmoid(a[:n3] + b[:n3]), t, edits, "reset_gate")
        z = _set(torch.sigmoid(a[n3 : 2 * n3] + b[n3 : 2 * n3]), t, edits, "update_gate")
        cand = _set(torch.tanh(a[2 * n3 :] + r * b[2 * n3 :]), t, edits, "candidate")
        h = _set((1 - z) * cand + z * h, t, edits, "hidden")
        for k, v in zip(out, (r, z, cand, h)):
            out[k].append(v)
    return {k: torch.stack(v) for k, v in out.items()}
