"""The counting direction of a counter model and the eigenvalues of one step's Jacobian along it
(docs/causal.md, "The 10-unit counter"): at the fixed points that `lstmprobe dynamics
--fixed-points --json` found, and along the recorded a-phase of a line with the largest N.

    python benchmarks/counting_direction.py counter.pt counter.h5 fp.b.json fp.X.json

The counting direction is ``w`` of the least-squares fit ``count:a ~ w . cell + b`` over the
recording; an eigenvector is "along" it by the |cos| of its cell part with ``w``.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from lstmprobe.causal.state_space import state_layout, step_jacobian
from lstmprobe.features import get_feature
from lstmprobe.models import load_model
from lstmprobe.store import ActivationStore


def main() -> None:
    model_path, store_path, *found = sys.argv[1:]
    loaded = load_model(model_path)
    layout = state_layout(loaded.model)
    cell_at = sum(n for k, n in layout[: [k for k, _ in layout].index("layer0/cell")])
    n_cell = dict(layout)["layer0/cell"]
    with ActivationStore(store_path) as s:
        cell = s.read("layer0/cell").astype(float)
        hidden = s.read("layer0/hidden").astype(float)
        count = get_feature("count:a").labels(s.text, s.sequences)
        text = s.text
    design = np.c_[cell, np.ones(len(cell))]
    coef = np.linalg.lstsq(design, count, rcond=None)[0]
    w = coef[:-1]
    r2 = 1 - ((design @ coef - count) ** 2).sum() / ((count - count.mean()) ** 2).sum()
    print(f"count:a ~ w . cell + b: R^2 {r2:.4f}; w / max|w| = {np.round(w / np.abs(w).max(), 2)}")

    def report(where: str, state: np.ndarray, char: str) -> None:
        values, vectors = np.linalg.eig(step_jacobian(loaded.model, loaded.vocab, char, state))
        best, lam, share = -1.0, 0j, 0.0
        for i in range(len(values)):
            part = np.real(vectors[cell_at : cell_at + n_cell, i])
            cos = abs(part @ w) / (np.linalg.norm(part) * np.linalg.norm(w) + 1e-300)
            if cos > best:
                best, lam = cos, values[i]
                share = np.linalg.norm(vectors[cell_at : cell_at + n_cell, i]) / np.linalg.norm(
                    vectors[:, i]
                )
        print(
            f"  {where}: lambda along the counting direction {lam.real:.4f}{lam.imag:+.4f}i "
            f"(|cos| {best:.2f}, cell share {share:.2f}); largest |lambda| {np.abs(values).max():.4f}"
        )

    for path in found:
        with open(path, encoding="utf-8") as fh:
            fp = json.load(fh)
        for i, p in enumerate(fp["points"]):
            report(
                f"fixed point {i} of {fp['input']!r} (residual {p['residual']:.1g})",
                np.array(p["state"]),
                fp["input"],
            )
    longest = max(len(line) for line in text.splitlines())
    start = 0
    for line in text.splitlines(keepends=True):
        if len(line.rstrip("\n")) == longest:
            break
        start += len(line)
    n = text[start:].index("X")
    for k in range(n):
        state = (
            np.r_[hidden[start + k], cell[start + k]] if layout[0][0] == "layer0/hidden" else None
        )
        report(f"after a #{k + 1} (count {count[start + k]:.0f}), input 'a'", state, "a")  # type: ignore[arg-type]
    steps = np.diff(cell[start : start + n] @ w)
    print("  change of the counting coordinate w . cell per 'a':", np.round(steps, 3))


if __name__ == "__main__":
    main()
