"""An independent, deliberately simple per-step LSTM/GRU written from the equations.

It shares no code with lstmprobe.cells: the tests compare the two.
"""

from __future__ import annotations

import torch


def lstm_steps(x, w_ih, w_hh, b_ih, b_hh, h, c, w_hr=None):
    """x [time, input]; returns dict of lists of per-step vectors."""
    out = {
        k: [] for k in ("input_gate", "forget_gate", "candidate", "output_gate", "cell", "hidden")
    }
    for t in range(x.shape[0]):
        z = w_ih @ x[t] + w_hh @ h
        if b_ih is not None:
            z = z + b_ih + b_hh
        n = z.shape[0] // 4
        i = 1 / (1 + torch.exp(-z[:n]))
        f = 1 / (1 + torch.exp(-z[n : 2 * n]))
        g = torch.tanh(z[2 * n : 3 * n])
        o = 1 / (1 + torch.exp(-z[3 * n :]))
        c = f * c + i * g
        h = o * torch.tanh(c)
        if w_hr is not None:
            h = w_hr @ h
        for k, v in zip(out, (i, f, g, o, c, h)):
            out[k].append(v)
    return {k: torch.stack(v) for k, v in out.items()}


def gru_steps(x, w_ih, w_hh, b_ih, b_hh, h):
    out = {k: [] for k in ("reset_gate", "update_gate", "candidate", "hidden")}
    for t in range(x.shape[0]):
        a = w_ih @ x[t]
        b = w_hh @ h
        if b_ih is not None:
            a, b = a + b_ih, b + b_hh
        n3 = a.shape[0] // 3
        r = torch.sigmoid(a[:n3] + b[:n3])
        z = torch.sigmoid(a[n3 : 2 * n3] + b[n3 : 2 * n3])
        cand = torch.tanh(a[2 * n3 :] + r * b[2 * n3 :])
        h = (1 - z) * cand + z * h
        for k, v in zip(out, (r, z, cand, h)):
            out[k].append(v)
    return {k: torch.stack(v) for k, v in out.items()}
