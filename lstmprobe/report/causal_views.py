"""The report's views of ``lstmprobe ablate`` and ``lstmprobe dynamics``.

Two files beside a recording feed them (docs/causal.md):

* ``acts.ablations.h5`` -- the per-char loss difference of each ablated condition. The report
  shows, per condition, its verdict numbers (the change of bits/char where the feature is on and
  off, against random same-size sets: mean ± sd, p) and passages of text coloured char by char by
  the loss difference: each char is coloured by the change of the loss of *predicting it* (the
  loss at position t is that of char t+1), on a symmetric diverging scale ±max|Δ| over the shown
  passages, **red where the intervention made the prediction worse** (more bits), blue where
  better. A file made from another recording (its model or corpus hash, or its length, differs)
  is ignored with a warning.
* ``acts.dynamics.json`` -- per unit the forget-gate timescale, how much of each update is kept
  vs written, and the strongest recurrent drivers. The report shows them in the explorer's unit
  card (drivers link to their units), the per-layer timescale distribution, and for a few top
  units the keep ``f ⊙ c(t−1)`` and write ``i ⊙ g`` terms char by char over a passage, computed
  here from the recorded gates and cell (:func:`keep_write`; GRU: ``z ⊙ h(t−1)`` and
  ``(1 − z) ⊙ n``).

Everything reads windows of the store; the ablations file is read whole (one float32 per position
and condition, twice, and one for the baseline).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lstmprobe.errors import StoreError, UnitError
from lstmprobe.report.data import (
    KeyStats,
    check_span,
    check_unit,
    passage,
    pick_changes,
    require_quantities,
    top_spans,
)
from lstmprobe.store import ActivationStore, parse_unit

#: Chars per ablation passage, and passages per condition of each kind.
PASSAGE = 160
N_EFFECT_PASSAGES = 2
N_CHANGE_PASSAGES = 2
#: Units whose keep/write terms are drawn in the Dynamics section, and chars per passage.
N_DYNAMICS_UNITS = 3
DYNAMICS_PASSAGE = 100

Warn = Callable[[str], None] | None


# --------------------------------------------------------------------------- ablations


def load_ablations(
    store: ActivationStore, path: str | os.PathLike[str] | None = None, warn: Warn = None
) -> dict[str, Any] | None:
    """The ablations beside ``store`` (``acts.ablations.h5``, or ``path``), or None.

    A file of another recording -- its model or corpus hash differs from the store's, or it
    covers another number of positions -- is ignored with a warning, as is an unreadable one.
    """
    from lstmprobe.store.ablations import read_ablations

    path = Path(path) if path is not None else store.sibling("ablations.h5")
    if not path.exists():
        return None

    def ignore(why: str) -> None:
        if warn is not None:
            warn(
                f"ignoring {path}: {why}; run `lstmprobe ablate MODEL CORPUS --store {store.path}` "
                "with the recorded model and corpus"
            )

    try:
        abl = read_ablations(path)
    except (StoreError, OSError, KeyError, ValueError) as exc:
        ignore(f"it cannot be read ({exc})")
        return None
    if abl.get("model_sha256") and abl["model_sha256"] != store.model_sha256:
        ignore("its model hash differs from this recording's")
        return None
    if abl.get("corpus_sha256") != store.corpus_sha256:
        ignore("its corpus hash differs from this recording's")
        return None
    if len(abl["base_bits"]) != store.n_positions:
        ignore(
            f"it covers {len(abl['base_bits']):,} positions, the recording {store.n_positions:,}"
        )
        return None
    return abl


def _effect_windows(delta: np.ndarray, length: int, k: int) -> list[int]:
    """Starts of the ``k`` disjoint windows of ``length`` with the largest summed loss increase."""
    d = np.nan_to_num(np.asarray(delta, dtype=np.float64))
    n = len(d)
    if n == 0:
        return []
    length = min(length, n)
    c = np.concatenate([[0.0], np.cumsum(d)])
    sums = c[length:] - c[:-length]  # sums[a] = d[a:a+length]
    out: list[int] = []
    for a in np.argsort(-sums, kind="stable"):
        a = int(a)
        if all(abs(a - b) >= length for b in out):
            out.append(a)
        if len(out) == k:
            break
    return out


def _predicted(values: np.ndarray | None, a: int, b: int) -> list[float | None] | None:
    """Per char of ``[a, b)``: the value at the position that predicts it (t - 1), None where
    nothing predicts it (a sequence's first char) or the value is undefined."""
    if values is None:
        return None
    out: list[float | None] = []
    for t in range(a - 1, b - 1):
        v = float(values[t]) if t >= 0 else float("nan")
        out.append(None if not np.isfinite(v) else float(f"{v:.4g}"))
    return out


def ablation_sections(store: ActivationStore, abl: dict[str, Any]) -> dict[str, Any]:
    """The payload of the Ablations section and of the unit cards (JSON-ready)."""
    n = store.n_positions
    on = abl.get("feature_on")
    feature = abl.get("feature") or None
    changes: list[int] = []
    if on is not None and feature:
        o = np.asarray(on, dtype=np.int8)
        flip = np.flatnonzero((o[1:] != o[:-1]) & (o[1:] >= 0) & (o[:-1] >= 0)) + 1
        changes = [int(t) + 1 for t in pick_changes(flip, N_CHANGE_PASSAGES)]  # the char t+1
    summaries = abl.get("summary") or []
    conditions = []
    by_unit: dict[str, list[int]] = {}
    for ci, cond in enumerate(abl["conditions"]):
        summary = summaries[ci] if ci < len(summaries) else {}
        delta = cond["delta_bits"]
        rand = cond.get("random_mean_delta_bits")
        spans: list[tuple[str, int, int]] = []
        for a in _effect_windows(delta, PASSAGE, N_EFFECT_PASSAGES):
            # the window [a, a+L) of losses colours the chars [a+1, a+L+1)
            pa, pb = passage(store, min(n - 1, a + 1 + PASSAGE // 2), PASSAGE, before=0.5)
            spans.append(("effect", pa, pb))
        for c in changes:
            pa, pb = passage(store, min(n - 1, c), PASSAGE, before=0.5)
            spans.append(("change", pa, pb))
        passages = []
        biggest = 0.0
        for kind, pa, pb in spans:
            d = _predicted(delta, pa, pb)
            biggest = max([biggest, *(abs(x) for x in d or [] if x is not None)])
            passages.append(
                {
                    "kind": kind,
                    "start": pa,
                    "text": store.read_text(pa, pb),
                    "delta": d,
                    "random": _predicted(rand, pa, pb),
                    "on": None
                    if on is None
                    else [
                        None if v is None or v < 0 else int(v) for v in _predicted(on, pa, pb) or []
                    ],
                }
            )
        m = float(f"{biggest:.3g}") if biggest >= 1e-3 else 1e-3
        r = summary.get("random", {}) if isinstance(summary, dict) else {}
        keys = ("delta", "delta_on", "delta_off", "positions", "positions_on", "positions_off",
                "bits", "base_bits")  # fmt: skip
        conditions.append(
            {
                "units": list(cond["units"]),
                "mode": cond["mode"],
                "value": cond.get("value"),
                "feature": feature,
                "verdict": cond.get("verdict", ""),
                **{k: summary.get(k) for k in keys},
                "random": {
                    k: r.get(k)
                    for k in (
                        "n",
                        "delta_on_mean",
                        "delta_on_sd",
                        "delta_off_mean",
                        "delta_off_sd",
                        "delta_mean",
                        "delta_sd",
                        "p_value",
                        "p_value_of",
                    )
                },
                "range": m,
                "passages": passages,
            }
        )
        for u in cond["units"]:
            by_unit.setdefault(u, []).append(ci)
    return {
        "feature": feature,
        "reset": abl.get("reset"),
        "created": abl.get("created"),
        "conditions": conditions,
        "by_unit": by_unit,
    }


# --------------------------------------------------------------------------- dynamics


def load_dynamics(
    store: ActivationStore, path: str | os.PathLike[str] | None = None, warn: Warn = None
) -> dict[str, Any] | None:
    """The gate dynamics beside ``store`` (``acts.dynamics.json``, or ``path``), or None.

    Ignored with a warning when it is not a dynamics file, names units the store lacks, or was
    computed over another number of positions.
    """
    path = Path(path) if path is not None else store.sibling("dynamics.json")
    if not path.exists():
        return None

    def ignore(why: str) -> None:
        if warn is not None:
            warn(f"ignoring {path}: {why}; run `lstmprobe dynamics --store {store.path}`")

    try:
        dyn = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        ignore(f"it cannot be read ({exc})")
        return None
    if not isinstance(dyn, dict) or dyn.get("format") != "lstmprobe.dynamics":
        ignore("it is not an lstmprobe dynamics file")
        return None
    for layer, info in (dyn.get("layers") or {}).items():
        if info.get("positions") != store.n_positions:
            ignore(f"its {layer} covers {info.get('positions')} positions, not {store.n_positions}")
            return None
    for name in dyn.get("units") or {}:
        try:
            check_unit(store, name)
        except UnitError:
            ignore(f"it names unit {name}, which this recording lacks")
            return None
    return dyn


def state_unit(store: ActivationStore, name: str) -> str:
    """The state unit whose dynamics a unit shares: ``layer0/forget_gate/3`` -> ``layer0/cell/3``
    (GRU: ``layer0/hidden/3``)."""
    key, index = check_unit(store, name)
    layer = key.split("/")[0]
    state = "cell" if "cell" in store.quantities(layer) else "hidden"
    return f"{layer}/{state}/{index}"


@dataclass(frozen=True)
class KeepWrite:
    """A unit's update split into kept and written parts over ``[start, stop)``.

    ``keep[t] + write[t] == state[t]``: for an LSTM ``keep = f ⊙ c(t−1)``, ``write = i ⊙ g``,
    ``state = c``; for a GRU ``keep = z ⊙ h(t−1)``, ``write = (1 − z) ⊙ n``, ``state = h``. The
    previous state is 0 at a sequence's first position.
    """

    unit: str
    kind: str
    start: int
    stop: int
    text: str
    keep: np.ndarray
    write: np.ndarray
    state: np.ndarray
    keep_gate: np.ndarray


def keep_write(store: ActivationStore, unit: str, start: int, stop: int) -> KeepWrite:
    """The keep and write terms of ``unit`` (any quantity of it) over ``[start, stop)``.

    Examples
    --------
    >>> kw = keep_write(store, "layer0/cell/3", 0, 100)  # doctest: +SKIP
    >>> np.allclose(kw.keep + kw.write, kw.state, atol=1e-3)  # doctest: +SKIP
    True
    """
    name = state_unit(store, unit)
    layer, state_q, index_s = name.split("/")
    index = int(index_s)
    kind = "lstm" if state_q == "cell" else "gru"
    wanted = (
        ("forget_gate", "input_gate", "candidate", "cell")
        if kind == "lstm"
        else ("update_gate", "candidate", "hidden")
    )
    require_quantities(store, layer, wanted, "the keep/write view")
    a, b = check_span(store, start, stop - start)
    lo = max(0, a - 1)

    def read(q: str, x: int = a) -> np.ndarray:
        return store.read(f"{layer}/{q}", x, b, units=[index])[:, 0].astype(np.float64)

    state_all = read(state_q, lo)
    state = state_all[a - lo :]
    prev = state_all[:-1].copy() if a > 0 else np.concatenate([[0.0], state[:-1]])
    starts = np.asarray(store.sequences[:, 0])
    prev[np.isin(np.arange(a, b), starts)] = 0.0
    if kind == "lstm":
        f = read("forget_gate")
        write = read("input_gate") * read("candidate")
    else:
        f = read("update_gate")
        write = (1.0 - f) * read("candidate")
    return KeepWrite(name, kind, a, b, store.read_text(a, b), f * prev, write, state, f)


def _dynamics_units(
    store: ActivationStore, dyn: dict[str, Any], preferred: Sequence[str], k: int
) -> list[str]:
    """Up to ``k`` state units to draw: the ranked ones first, then the longest timescales."""
    units = dyn.get("units") or {}
    out: list[str] = []
    for u in preferred:
        try:
            s = state_unit(store, u)
        except UnitError:
            continue
        if s in units and s not in out:
            out.append(s)
    by_scale = sorted(
        units, key=lambda u: -(units[u].get("timescale") or float("inf"))
    )  # infinite first
    for u in by_scale:
        if len(out) >= k:
            break
        if u not in out:
            out.append(u)
    return out[:k]


def dynamics_sections(
    store: ActivationStore,
    dyn: dict[str, Any],
    stats: dict[str, KeyStats],
    preferred: Sequence[str] = (),
    figures: bool = True,
) -> dict[str, Any]:
    """The payload of the Dynamics section and of the unit cards (JSON-ready)."""
    fields = ("timescale", "mean_keep_gate", "mean_write_gate", "write_share", "mean_abs_keep",
              "mean_abs_write", "held", "reset", "writes_at", "resets_at", "drivers")  # fmt: skip
    units = {
        u: {k: d.get(k) for k in fields if k in d} for u, d in (dyn.get("units") or {}).items()
    }
    out: dict[str, Any] = {
        "layers": {
            layer: {"kind": info.get("kind"), "timescales": info.get("timescales")}
            for layer, info in (dyn.get("layers") or {}).items()
        },
        "units": units,
        "figures": [],
    }
    if not figures:
        return out
    from lstmprobe.report import figures as F
    from lstmprobe.report.html import _png

    out["figures"].append(
        {
            "id": "timescales",
            "title": "Forget-gate timescales per layer",
            "src": _png(F.timescales(dyn)),
            "caption": "Per layer, how many units have each timescale −1/ln(mean forget gate) "
            "(GRU: update gate): the steps over which the unit's state decays by 1/e if the gate "
            "sat at its mean. ∞: a mean gate that rounds to 1.",
        }
    )
    for u in _dynamics_units(store, dyn, preferred, N_DYNAMICS_UNITS):
        key, index = parse_unit(u)
        spans = (
            top_spans(store, stats[key], index, 1.0, 1, DYNAMICS_PASSAGE) if key in stats else []
        )
        a, b = (
            (spans[0][0], spans[0][1]) if spans else (0, min(DYNAMICS_PASSAGE, store.n_positions))
        )
        try:
            fig = F.keep_write(store, u, a, b - a)
        except UnitError:
            continue
        ts = units.get(u, {}).get("timescale")
        out["figures"].append(
            {
                "id": f"keepwrite-{u.replace('/', '-')}",
                "unit": u,
                "title": f"Keep vs write: {u}",
                "src": _png(fig),
                "caption": f"{u} at positions {a}..{b} (where it is most active), timescale "
                f"{'∞' if ts is None else f'{ts:.3g}'} steps: each bar is the state after a char, "
                "split into the part kept from before (f ⊙ c(t−1)) and the part written now "
                "(i ⊙ g), stacked so that the bar ends at c(t) (the dot).",
            }
        )
    return out


def causal_payload(
    store: ActivationStore,
    stats: dict[str, KeyStats],
    preferred: Sequence[str] = (),
    figures: bool = True,
    warn: Warn = None,
) -> dict[str, Any]:
    """``{"ablations": ..., "dynamics": ...}`` for the report: None where a file is absent."""
    abl = load_ablations(store, warn=warn)
    dyn = load_dynamics(store, warn=warn)
    return {
        "ablations": ablation_sections(store, abl) if abl is not None else None,
        "dynamics": dynamics_sections(store, dyn, stats, preferred, figures)
        if dyn is not None
        else None,
    }


# --------------------------------------------------------------------------- the page's part

STYLE = """
.lpr-abl-cond{margin:10px 0 18px}.lpr-abl-cond table{border-collapse:collapse;font-size:13px}
.lpr-abl-cond td,.lpr-abl-cond th{padding:1px 8px;border-bottom:1px solid #eee;text-align:right}
.lpr-abl-cond td:first-child,.lpr-abl-cond th:first-child{text-align:left}
.lpr-abl-text span.na{background:#f0f0f0;color:#999}
.lpr-dyn-fig img{max-width:100%;border:1px solid #eee}
"""

SCRIPT = r"""
function lstmprobeCausal(root, D, api) {
  "use strict";
  var esc = api.esc, fmt = api.fmt, rgb = api.rgb, ink = api.ink, tip = root.querySelector(".lpr-tip");
  function sgn(x, d) { return x === null || x === undefined ? "\u2013" : (x >= 0 ? "+" : "\u2212") + fmt(Math.abs(x), d || 3); }
  function code(d, m) { return Math.max(0, Math.min(255, Math.round((1 - d / m) / 2 * 255))); }  // +m (worse) = red end
  function bar(m) {
    var stops = []; for (var i = 0; i <= 8; i++) stops.push(rgb("diverging", 255 - Math.round(i * 255 / 8)));
    return "<span>\u2212" + fmt(m) + " bits (better)</span><span class='lpr-bar' style='background:linear-gradient(to right," + stops.join(",") + ")'></span><span>+" + fmt(m) + " bits (worse)</span>" +
      "<span>diverging, symmetric, range \u00b1" + fmt(m) + " bits = max |\u0394| over these passages; red: the intervention made predicting that char worse</span>";
  }
  var A = D.ablations, Y = D.dynamics;
  function condName(c) { var u = c.units.length === 1 ? c.units[0] : c.units.length + " units"; return (c.mode === "clamp" ? "clamp to " + c.value : c.mode) + ": " + u; }
  var box = root.querySelector(".lpr-ablations");
  if (box && A && A.conditions && A.conditions.length) {
    var h = "<h2>Ablations</h2><p class='lpr-note'>From acts.ablations.h5 (`lstmprobe ablate`" + (A.feature ? ", feature " + esc(A.feature) : "") + "): the change of the next-char loss in bits when the units are intervened on, against random same-size sets of units of the same layer and quantity. " +
      "Each char is coloured by the change of the loss of predicting it; grey: nothing predicts it (a sequence's first char).</p>";
    A.conditions.forEach(function (c, ci) {
      var r = c.random || {};
      h += "<div class='lpr-abl-cond' data-c='" + ci + "'><h3>" + esc(condName(c)) + "</h3><p class='lpr-note'>" + c.units.map(function (u) { return "<a class='lpr-unit' data-unit='" + esc(u) + "'>" + esc(u) + "</a>"; }).join(", ") + "</p><table class='lpr-abl-table'><tr><th></th><th>\u0394 bits/char</th><th>chars</th><th>random sets (n = " + (r.n || 0) + ")</th></tr>";
      if (c.feature) {
        h += "<tr><td>" + esc(c.feature) + " on</td><td>" + sgn(c.delta_on) + "</td><td>" + (c.positions_on || 0).toLocaleString() + "</td><td>" + (r.n ? sgn(r.delta_on_mean) + " \u00b1 " + fmt(r.delta_on_sd) : "\u2013") + "</td></tr>";
        h += "<tr><td>" + esc(c.feature) + " off</td><td>" + sgn(c.delta_off) + "</td><td>" + (c.positions_off || 0).toLocaleString() + "</td><td>" + (r.n ? sgn(r.delta_off_mean) + " \u00b1 " + fmt(r.delta_off_sd) : "\u2013") + "</td></tr>";
      } else {
        h += "<tr><td>all chars</td><td>" + sgn(c.delta) + "</td><td>" + (c.positions || 0).toLocaleString() + "</td><td>" + (r.n ? sgn(r.delta_mean) + " \u00b1 " + fmt(r.delta_sd) : "\u2013") + "</td></tr>";
      }
      h += "</table><p class='lpr-note lpr-abl-p'>p = " + (r.p_value === null || r.p_value === undefined ? "\u2013 (no random sets)" : fmt(r.p_value) + " (of " + esc(r.p_value_of || "") + ": the share of random sets at least as costly, counting the chosen one)") + "</p>" +
        "<p class='lpr-note'>" + esc(c.verdict || "") + "</p><div class='lpr-scale'>" + bar(c.range) + "</div><div class='lpr-passages lpr-abl-passages'></div></div>";
    });
    box.innerHTML = h;
    A.conditions.forEach(function (c, ci) {
      var holder = box.querySelector(".lpr-abl-cond[data-c='" + ci + "'] .lpr-abl-passages");
      c.passages.forEach(function (p) {
        var div = document.createElement("div"), cap = document.createElement("div"), pre = document.createElement("pre");
        cap.className = "lpr-pcap"; pre.className = "lpr-text lpr-abl-text";
        cap.textContent = (p.kind === "effect" ? "largest loss increase" : (c.feature || "feature") + " changes") + " \u00b7 positions " + p.start + ".." + (p.start + p.text.length) + (p.on ? " \u00b7 underlined: " + (c.feature || "feature") + " on at that char" : "");
        var labels = p.on ? p.on.slice() : null; if (labels) labels.binary = true;
        var spans = api.makeText(pre, p.text, p.start, labels);
        for (var i = 0; i < spans.length; i++) {
          var d = p.delta[i];
          if (d === null || d === undefined) { spans[i].className += " na"; continue; }
          var q = code(d, c.range); spans[i].style.background = rgb("diverging", q); spans[i].style.color = ink("diverging", q);
          spans[i].dataset.delta = d;
        }
        pre.addEventListener("mousemove", function (e) {
          var t = e.target; if (!t.dataset || t.dataset.i === undefined) { tip.hidden = true; return; }
          var i = +t.dataset.i, ch = p.text[i], d = p.delta[i], rr = p.random ? p.random[i] : null;
          tip.textContent = "char " + JSON.stringify(ch) + "\nposition " + (p.start + i) + "\n\u0394 loss predicting it = " + (d === null ? "n/a" : sgn(d, 4) + " bits") +
            (rr !== null && rr !== undefined ? "\nrandom sets, mean \u0394 = " + sgn(rr, 4) + " bits" : "") + (p.on && p.on[i] !== null ? "\n" + (c.feature || "feature") + " = " + p.on[i] : "");
          tip.hidden = false; tip.style.left = Math.min(e.clientX + 14, window.innerWidth - 260) + "px"; tip.style.top = (e.clientY + 16) + "px";
        });
        pre.addEventListener("mouseleave", function () { tip.hidden = true; });
        div.appendChild(cap); div.appendChild(pre); holder.appendChild(div);
      });
    });
  }
  var dbox = root.querySelector(".lpr-dynamics");
  if (dbox && Y) {
    var g = "<h2>Dynamics</h2><p class='lpr-note'>From acts.dynamics.json (`lstmprobe dynamics`): when each unit's state is kept, written or reset. ";
    Object.keys(Y.layers || {}).forEach(function (l) { var t = (Y.layers[l] || {}).timescales || {}; g += esc(l) + ": timescale median " + fmt(t.median) + " steps [q25 " + fmt(t.q25) + ", q75 " + fmt(t.q75) + ", max " + fmt(t.max) + "], " + (t.infinite || 0) + " infinite. "; });
    g += "</p>";
    (Y.figures || []).forEach(function (f) {
      g += "<div class='lpr-fig lpr-dyn-fig' id='" + esc(f.id) + "'><h3>" + esc(f.title) + (f.unit ? " <a class='lpr-unit' data-unit='" + esc(f.unit) + "'>(explore)</a>" : "") + "</h3><img alt='" + esc(f.title) + "' src='" + f.src + "'><p class='lpr-note'>" + esc(f.caption) + "</p></div>";
    });
    dbox.innerHTML = g;
  }
  function stateOf(u) {
    if (!Y || !Y.units) return null;
    var l = u.key.layer, c = l + "/cell/" + u.index, hd = l + "/hidden/" + u.index;
    return Y.units[c] ? [c, Y.units[c]] : Y.units[hd] ? [hd, Y.units[hd]] : null;
  }
  function pct(x) { return x === null || x === undefined ? "\u2013" : fmt(100 * x, 3) + "%"; }
  function card(u) {
    var h = "";
    var idx = A && A.by_unit ? A.by_unit[u.name] : null;
    if (idx && idx.length) {
      h += "<h4 class='lpr-card-abl'>Ablation effect</h4><table>";
      idx.forEach(function (ci) {
        var c = A.conditions[ci], r = c.random || {};
        var what = (c.units.length === 1 ? "alone" : "with " + (c.units.length - 1) + " more") + " (" + esc(c.mode) + ")";
        var main = c.feature ? "on " + sgn(c.delta_on) + ", off " + sgn(c.delta_off) : sgn(c.delta);
        var rand = r.n ? (c.feature ? sgn(r.delta_on_mean) + " \u00b1 " + fmt(r.delta_on_sd) : sgn(r.delta_mean) + " \u00b1 " + fmt(r.delta_sd)) + ", p " + fmt(r.p_value) : "no random sets";
        h += "<tr><td>" + what + "</td><td>" + main + " bits/char; random " + rand + "</td></tr>";
      });
      h += "</table>";
    }
    var s = stateOf(u);
    if (s) {
      var d = s[1];
      h += "<h4 class='lpr-card-dyn'>Dynamics of " + esc(s[0]) + "</h4><table>" +
        "<tr><td>timescale</td><td>" + (d.timescale === null || d.timescale === undefined ? "\u221e" : fmt(d.timescale)) + " steps (mean keep gate " + fmt(d.mean_keep_gate, 4) + ")</td></tr>" +
        "<tr><td>keep vs write</td><td>write share " + fmt(d.write_share) + " (mean |keep| " + fmt(d.mean_abs_keep) + ", |write| " + fmt(d.mean_abs_write) + ")</td></tr>" +
        "<tr><td>held, reset</td><td>" + pct(d.held) + ", " + pct(d.reset) + "</td></tr>";
      if (d.writes_at && d.writes_at.length) h += "<tr><td>written at</td><td>" + d.writes_at.map(function (w) { return esc(w.char) + " (" + sgn(w.mean_write, 2) + ")"; }).join(" ") + "</td></tr>";
      if (d.resets_at && d.resets_at.length) h += "<tr><td>reset at</td><td>" + d.resets_at.map(function (w) { return esc(w.char) + " (" + fmt(w.mean_keep_gate, 2) + ")"; }).join(" ") + "</td></tr>";
      h += "</table>";
      if (d.drivers && d.drivers.length) {
        h += "<h4>Strongest recurrent drivers</h4><table class='lpr-drivers'><tr><td>from</td><td>into</td><td>weight</td></tr>";
        d.drivers.forEach(function (x) { h += "<tr><td><a class='lpr-unit lpr-driver' data-unit='" + esc(x.from) + "'>" + esc(x.from) + "</a></td><td>" + esc(x.gate) + "</td><td>" + sgn(x.weight) + "</td></tr>"; });
        h += "</table>";
      }
    }
    return h;
  }
  return {card: card};
}
"""
