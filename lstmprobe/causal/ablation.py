"""Does a unit matter? The next-char loss with and without an intervention, against random units.

For a set of units (a *condition*) the model reads the corpus twice -- as it is, and with the
units set to zero, their mean or a constant at every position (:class:`~lstmprobe.Intervention`)
-- and the loss in bits of each next char is compared. Position t predicts char t+1, so the
feature that says where the units should matter is read at the predicted char: the loss at t
counts as *on* where the feature is on at t+1 (binary: 1; continuous: any value but 0), *off*
where it is 0, and not at all where it is undefined or t has no next char in its sequence.

Every condition is run again on ``n_random`` random sets of units of the same layers and
quantities and of the same sizes (seeded, drawn from the units of no condition, distinct sets).
The p-value is the rank of the condition's effect among them:
``(1 + #{random delta >= chosen delta}) / (1 + n_random)`` -- with 20 draws the smallest possible
value is 1/21 = 0.048. With ``task=True`` (a corpus of the synthetic tasks) the exact greedy
completion accuracy is measured the same way (p: the share of random sets whose accuracy is at
most the chosen one's). docs/causal.md has the definitions and the limits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
import torch

from lstmprobe._io import progress_bar
from lstmprobe.errors import CorpusError, FeatureError, LstmprobeError, UnitError
from lstmprobe.record import Intervention, Recorder, layout
from lstmprobe.text import sequences as text_sequences

MODES: tuple[str, ...] = ("zero", "mean", "clamp")
#: below this many multiply-adds per char a forward runs on one thread (as ``record`` does)
SMALL_MODEL_MACS = 1_000_000
LN2 = math.log(2.0)


class AblationError(LstmprobeError, ValueError):
    """An ablation that cannot be measured as asked."""


# --------------------------------------------------------------------------- the loss


def unit_means(store: Any, keys: Sequence[str]) -> dict[str, np.ndarray]:
    """Mean of every unit of each dataset over the whole recording, streamed chunk by chunk.

    Returns
    -------
    dict of key -> ndarray of shape (n_units,), float64
    """
    out: dict[str, np.ndarray] = {}
    for key in dict.fromkeys(keys):
        total = np.zeros(store.n_units(key), dtype=np.float64)
        for _, _, block in store.iter_chunks([key]):
            total += block[key].sum(0, dtype=np.float64)
        out[key] = total / max(1, store.n_positions)
    return out


def _batches(seqs: np.ndarray, batch_chars: int) -> list[np.ndarray]:
    groups, i = [], 0
    while i < len(seqs):
        j, longest = i, 0
        while j < len(seqs):
            length = int(seqs[j, 1] - seqs[j, 0])
            if j > i and max(longest, length) * (j - i + 1) > batch_chars:
                break
            longest = max(longest, length)
            j += 1
        groups.append(seqs[i:j])
        i = j
    return groups


@torch.inference_mode()
def next_char_bits(
    model: torch.nn.Module,
    tokens: np.ndarray,
    seqs: np.ndarray,
    interventions: Sequence[Intervention] = (),
    *,
    chunk_size: int = 4096,
    batch_chars: int = 65536,
    method: str = "auto",
) -> np.ndarray:
    """``-log2 p(actual next char)`` at every position, with ``interventions`` applied.

    One sequence (``reset="none"``) is read in chunks of ``chunk_size`` with the state carried
    exactly; several (``reset="line"``) are batched from the zero state, padded at the end.

    Returns
    -------
    bits : ndarray of shape (n_positions,), float64, NaN where a position has no next char
    """
    n = len(tokens)
    out = np.full(n, np.nan, dtype=np.float64)
    ids_all = torch.from_numpy(np.asarray(tokens, dtype=np.int64))
    dev = next(model.parameters()).device
    recorder = Recorder(model, interventions=interventions, keep=False, method=method)
    with recorder:
        if len(seqs) == 1:
            start_seq, end_seq = int(seqs[0, 0]), int(seqs[0, 1])
            state = None
            for a in range(start_seq, end_seq, chunk_size):
                b = min(a + chunk_size, end_seq)
                logits, state = model(ids_all[a:b].to(dev).unsqueeze(0), state)
                m = min(b, end_seq - 1) - a  # positions with a next char
                if m > 0:
                    logp = torch.log_softmax(logits[0, :m].float(), -1)
                    target = ids_all[a + 1 : a + 1 + m].to(dev)
                    picked = logp.gather(1, target.unsqueeze(1)).squeeze(1)
                    out[a : a + m] = (-picked / LN2).double().cpu().numpy()
            return out
        for group in _batches(seqs, batch_chars):
            lengths = group[:, 1] - group[:, 0]
            longest = int(lengths.max())
            batch = np.zeros((len(group), longest), dtype=np.int64)
            for row, (s, e) in enumerate(group):
                batch[row, : e - s] = tokens[s:e]
            ids = torch.from_numpy(batch).to(dev)
            logits, _ = model(ids)
            logp = torch.log_softmax(logits[:, :-1].float(), -1)
            picked = logp.gather(2, ids[:, 1:].unsqueeze(2)).squeeze(2).cpu().numpy()
            for row, (s, e) in enumerate(group):
                if e - s > 1:
                    out[s : e - 1] = -picked[row, : e - s - 1] / LN2
    return out


def feature_on_off(feature: Any, text: str, seqs: np.ndarray) -> np.ndarray:
    """Where the feature is on at the predicted char: int8 per position, 1 on, 0 off, -1 where
    it is undefined or the position has no next char in its sequence."""
    labels = feature.labels(text, seqs)
    kind = feature.infer_kind(labels)
    nxt = np.full(len(text), np.nan, dtype=np.float64)
    nxt[:-1] = labels[1:]
    for _, end in seqs:
        nxt[end - 1] = np.nan
    out = np.full(len(text), -1, dtype=np.int8)
    defined = ~np.isnan(nxt)
    on = nxt > 0.5 if kind == "binary" else nxt != 0
    out[defined & on] = 1
    out[defined & ~on] = 0
    return out


# --------------------------------------------------------------------------- conditions


@dataclass(frozen=True)
class Condition:
    """A set of units to intervene on together (names like ``layer0/cell/17``)."""

    units: tuple[str, ...]

    @property
    def by_key(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for name in self.units:
            key, _, index = name.rpartition("/")
            out.setdefault(key, []).append(int(index))
        return out


def check_units(model: torch.nn.Module, names: Sequence[str]) -> dict[str, int]:
    """The model's datasets (``layer0/cell -> n_units``); unknown units raise a
    :class:`UnitError` listing what exists."""
    datasets = layout(model)
    for name in names:
        key, _, index = name.rpartition("/")
        if key not in datasets or not index.isdecimal():
            raise UnitError(
                f"unit {name} does not exist in this model; it has "
                + ", ".join(f"{k}/0..{n - 1}" for k, n in datasets.items())
            )
        if int(index) >= datasets[key]:
            raise UnitError(f"unit {name} does not exist: {key} has units 0..{datasets[key] - 1}")
    return datasets


def _interventions(
    units: Sequence[str], mode: str, clamp: float | None, means: dict[str, np.ndarray] | None
) -> list[Intervention]:
    out = []
    for key, idx in Condition(tuple(units)).by_key.items():
        if mode == "zero":
            out.append(Intervention(key, "zero", units=idx))
        elif mode == "mean":
            if means is None:
                raise AblationError("--mode mean needs the units' means (give --store)")
            out.append(
                Intervention(key, "mean", value=[float(means[key][i]) for i in idx], units=idx)
            )
        else:
            out.append(Intervention(key, "constant", value=clamp, units=idx))
    return out


def draw_random(
    condition: Condition,
    pools: dict[str, list[int]],
    n: int,
    seed: int,
) -> list[tuple[str, ...]]:
    """``n`` distinct random unit sets with ``condition``'s sizes per dataset, from ``pools``."""
    if n == 0:
        return []
    sizes = {k: len(v) for k, v in condition.by_key.items()}
    possible = 1
    for key, k in sizes.items():
        m = len(pools[key])
        possible *= math.comb(m, k)
        if math.comb(m, k) < n and len(sizes) == 1:
            raise AblationError(
                f"--random {n} asks for {n} distinct random sets of {k} {key} unit"
                f"{'s' if k > 1 else ''}, but only {m} other {key} units exist "
                f"({math.comb(m, k)} sets); use --random {math.comb(m, k)} or fewer"
            )
    if possible < n:
        raise AblationError(
            f"--random {n} asks for more distinct random unit sets than exist ({possible}); use "
            f"--random {possible} or fewer"
        )
    rng = np.random.default_rng([seed, *(len(v) for v in condition.by_key.values())])
    if possible <= 4 * n:
        per_key = [
            [tuple(f"{key}/{u}" for u in c) for c in combinations(pools[key], k)]
            for key, k in sizes.items()
        ]
        every: list[tuple[str, ...]] = [()]
        for options in per_key:
            every = [a + b for a in every for b in options]
        picked = rng.choice(len(every), size=n, replace=False)
        return [every[i] for i in sorted(picked)]
    seen: dict[frozenset[str], tuple[str, ...]] = {}
    while len(seen) < n:
        draw: tuple[str, ...] = ()
        for key, k in sizes.items():
            chosen = rng.choice(pools[key], size=k, replace=False)
            draw += tuple(f"{key}/{int(u)}" for u in sorted(chosen))
        seen.setdefault(frozenset(draw), draw)
    return list(seen.values())


# --------------------------------------------------------------------------- the run


@dataclass
class AblationResult:
    """What :func:`run_ablation` measured: one JSON-ready dict per condition, and per char."""

    conditions: list[dict[str, Any]]
    base_bits: np.ndarray
    deltas: list[np.ndarray]
    random_deltas: list[np.ndarray | None]
    feature_on: np.ndarray | None
    base_task: dict[str, Any] | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "lstmprobe.ablations",
            "settings": self.settings,
            "base_task_accuracy": None if self.base_task is None else self.base_task["accuracy"],
            "conditions": self.conditions,
        }


def _summary(bits: np.ndarray, base: np.ndarray, on: np.ndarray | None) -> dict[str, Any]:
    valid = ~np.isnan(base)
    delta = bits - base
    out: dict[str, Any] = {
        "bits": float(np.nanmean(bits[valid])) if valid.any() else None,
        "base_bits": float(np.nanmean(base[valid])) if valid.any() else None,
        "delta": float(np.nanmean(delta[valid])) if valid.any() else None,
        "positions": int(valid.sum()),
    }
    if on is not None:
        for name, sel in (("on", on == 1), ("off", on == 0)):
            out[f"bits_{name}"] = float(bits[sel].mean()) if sel.any() else None
            out[f"base_bits_{name}"] = float(base[sel].mean()) if sel.any() else None
            out[f"delta_{name}"] = float(delta[sel].mean()) if sel.any() else None
            out[f"positions_{name}"] = int(sel.sum())
    return out


def _completion(
    model: Any, vocab: Any, lines: list[str], spec: Any, ivs: Sequence[Intervention]
) -> dict[str, Any]:
    from lstmprobe.lm import task_completion

    with Recorder(model, interventions=ivs, keep=False):
        done = task_completion(model, vocab, lines, spec)
    by_n = {str(k): c / n for k, (n, c) in sorted(done.by_key.items())}
    return {"accuracy": done.accuracy, "by_n": by_n}


def _p_value(chosen: float | None, draws: list[float | None], larger: bool = True) -> float | None:
    vals = [d for d in draws if d is not None]
    if chosen is None or not vals:
        return None
    hits = sum(1 for d in vals if (d >= chosen if larger else d <= chosen))
    return (1 + hits) / (1 + len(vals))


def _mean_sd(values: list[float | None]) -> tuple[float | None, float | None]:
    vals = [v for v in values if v is not None]
    if not vals:
        return None, None
    return float(np.mean(vals)), float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0


def run_ablation(
    model: torch.nn.Module,
    vocab: Any,
    text: str,
    conditions: Sequence[Sequence[str]],
    *,
    feature: Any = None,
    mode: str = "zero",
    clamp: float | None = None,
    means: dict[str, np.ndarray] | None = None,
    reset: str = "none",
    n_random: int = 20,
    seed: int = 0,
    task: bool = False,
    method: str = "auto",
    threads: int | None = None,
    progress: bool = False,
) -> AblationResult:
    """Measure each condition's effect on the next-char loss (and task accuracy) vs random units.

    Parameters
    ----------
    model : CharLSTM
        A model with a decoder.
    vocab : Vocab
    text : str
        The corpus.
    conditions : list of lists of unit names
        Each is one set of units intervened on together.
    feature : Feature, optional
        Splits the positions into on and off (at the predicted char).
    mode : {"zero", "mean", "clamp"}
        ``mean`` needs ``means`` (:func:`unit_means`), ``clamp`` needs ``clamp``.
    reset : {"none", "line"}
        How the model reads the corpus (as it was recorded).
    n_random : int
        Random unit sets per condition.
    task : bool
        Also measure exact greedy completion on a synthetic-task corpus.
    threads : int, optional
        torch threads while measuring (default: 1 for a model under ``SMALL_MODEL_MACS``
        multiply-adds per char, else torch's setting).

    Returns
    -------
    AblationResult
    """
    if getattr(model, "decoder", True) is None:
        raise AblationError(
            "this model has no decoder, so it predicts no next char: loss and task effects "
            "cannot be measured; interventions still change its states (Recorder(model, "
            "interventions=...)) and `lstmprobe dynamics` still describes its gates"
        )
    if mode not in MODES:
        raise AblationError(f"--mode is zero, mean or clamp:V, got {mode!r}")
    if mode == "mean" and means is None:
        raise AblationError("--mode mean needs the units' means: give the recording (--store)")
    if mode == "clamp" and clamp is None:
        raise AblationError("--mode clamp needs a value: clamp:V, e.g. clamp:0.5")
    if not conditions:
        raise AblationError("give at least one unit (--unit) or --top K with a feature")
    conds = [Condition(tuple(dict.fromkeys(c))) for c in conditions]
    datasets = check_units(model, [u for c in conds for u in c.units])
    tokens = vocab.encode(text)
    seqs = text_sequences(text, reset)
    on = None
    if feature is not None:
        on = feature_on_off(feature, text, seqs)
        n_on, n_off = int((on == 1).sum()), int((on == 0).sum())
        if n_on == 0 or n_off == 0:
            which = "never" if n_on == 0 else "always"
            raise FeatureError(
                f"feature {feature.name!r} is {which} on at the predicted chars of this corpus, "
                "so its on and off positions cannot be compared; pick a feature that varies "
                "here (or leave out -f for the overall effect)"
            )
    spec, lines = None, None
    if task:
        from lstmprobe.lm import tasks

        lines = text.splitlines(keepends=True)
        spec = tasks.detect(lines)
        if spec is None:
            raise CorpusError(
                "--task needs a corpus of one of the synthetic tasks (lstmprobe tasks NAME); "
                "this corpus's lines are not of one task's form"
            )
    chosen_all = {u for c in conds for u in c.units}
    pools = {
        key: [i for i in range(n) if f"{key}/{i}" not in chosen_all] for key, n in datasets.items()
    }
    draws = [draw_random(c, pools, n_random, seed) for c in conds]
    if mode == "mean":
        missing = {k for c in conds for k in c.by_key} - set(means or {})
        if missing:
            raise AblationError(f"no means for {', '.join(sorted(missing))} in the recording")
    todo = list(dict.fromkeys([c.units for c in conds] + [d for ds in draws for d in ds]))
    bar = _progress(len(todo) + 1, progress)
    cache: dict[tuple[str, ...], tuple[dict[str, Any], Any, dict[str, Any] | None]] = {}
    chosen = {c.units for c in conds}
    users: dict[tuple[str, ...], list[int]] = {}
    for ci, ds in enumerate(draws):
        for d in ds:
            users.setdefault(d, []).append(ci)
    rsums = [np.zeros(len(tokens), dtype=np.float64) for _ in conds]
    threads_before = torch.get_num_threads()
    # a small model's forward of one sequence gains nothing from more threads (as in record)
    macs = sum(p.numel() for name, p in model.named_parameters() if "weight_" in name)
    if threads is None and macs < SMALL_MODEL_MACS:
        threads = 1
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        base = next_char_bits(model, tokens, seqs, method=method)
        base_task = _completion(model, vocab, lines or [], spec, []) if task else None
        bar.update(1)
        for units in todo:
            ivs = _interventions(units, mode, clamp, means)
            bits = next_char_bits(model, tokens, seqs, ivs, method=method)
            comp = _completion(model, vocab, lines or [], spec, ivs) if task else None
            delta = (bits - base).astype(np.float32)
            # per-char differences are kept for the chosen units only; a random draw's go into
            # the running sums of the conditions that drew it (memory: one array per condition)
            for ci in users.get(units, ()):
                rsums[ci] += np.nan_to_num(delta)
            cache[units] = (_summary(bits, base, on), delta if units in chosen else None, comp)
            bar.update(1)
    finally:
        bar.close()
        torch.set_num_threads(threads_before)
    results, deltas, rdeltas = [], [], []
    metric = "delta_on" if on is not None else "delta"
    for cond, ds in zip(conds, draws):
        summary, delta, comp = cache[cond.units]
        rand = [cache[d] for d in ds]
        entry: dict[str, Any] = {
            "units": list(cond.units),
            "mode": mode,
            "value": clamp if mode == "clamp" else None,
            "feature": None if feature is None else feature.name,
            **summary,
        }
        r_on, r_on_sd = _mean_sd([r[0].get(metric) for r in rand])
        r_off, r_off_sd = _mean_sd([r[0].get("delta_off") for r in rand])
        r_all, r_all_sd = _mean_sd([r[0]["delta"] for r in rand])
        random_part: dict[str, Any] = {
            "n": len(rand),
            "delta_on_mean": r_on if on is not None else None,
            "delta_on_sd": r_on_sd if on is not None else None,
            "delta_off_mean": r_off,
            "delta_off_sd": r_off_sd,
            "delta_mean": r_all,
            "delta_sd": r_all_sd,
            "p_value": _p_value(summary.get(metric), [r[0].get(metric) for r in rand]),
            "p_value_of": metric,
            "seed": seed,
            "draws": [
                {
                    "units": list(d),
                    "delta": r[0]["delta"],
                    "delta_on": r[0].get("delta_on"),
                    "delta_off": r[0].get("delta_off"),
                    **({"task_accuracy": r[2]["accuracy"]} if r[2] is not None else {}),
                }
                for d, r in zip(ds, rand)
            ],
        }
        if comp is not None and base_task is not None:
            entry["base_task_accuracy"] = base_task["accuracy"]
            entry["base_task_accuracy_by_n"] = base_task["by_n"]
            entry["task_accuracy"] = comp["accuracy"]
            entry["task_accuracy_by_n"] = comp["by_n"]
            accs = [r[2]["accuracy"] for r in rand if r[2] is not None]
            m, sd = _mean_sd(accs)
            random_part["task_accuracy_mean"] = m
            random_part["task_accuracy_sd"] = sd
            random_part["task_p_value"] = _p_value(comp["accuracy"], accs, larger=False)
            keys = sorted({k for r in rand if r[2] for k in r[2]["by_n"]}, key=int)
            random_part["task_accuracy_by_n_mean"] = {
                k: float(np.mean([r[2]["by_n"].get(k, np.nan) for r in rand if r[2]])) for k in keys
            }
        entry["random"] = random_part
        entry["verdict"] = verdict(entry)
        results.append(entry)
        deltas.append(delta)
        if rand:
            mean_delta = (rsums[len(rdeltas)] / len(rand)).astype(np.float32)
            mean_delta[np.isnan(base)] = np.nan
            rdeltas.append(mean_delta)
        else:
            rdeltas.append(None)
    settings = {
        "mode": mode,
        "value": clamp,
        "reset": reset,
        "n_random": n_random,
        "seed": seed,
        "feature": None if feature is None else feature.name,
        "positions": len(tokens),
        "task": None if spec is None else spec.name,
    }
    return AblationResult(results, base, deltas, rdeltas, on, base_task, settings)


def _units_text(units: Sequence[str]) -> str:
    return units[0] if len(units) == 1 else f"{len(units)} units ({', '.join(units)})"


def verdict(c: dict[str, Any]) -> str:
    """One readable line for a condition, e.g. ``ablating layer0/cell/34 (zero) costs ...``."""
    how = {"zero": "zeroing", "mean": "mean-ablating", "clamp": f"clamping to {c.get('value')}"}
    what = f"{how.get(c['mode'], c['mode'])} {_units_text(c['units'])}"
    r = c["random"]
    if c.get("feature"):
        line = (
            f"{what} costs {c['delta_on']:+.3f} bits/char where {c['feature']} is on "
            f"({c['positions_on']:,} chars), {c['delta_off']:+.3f} where off; "
        )
        rand_mean, rand_sd = r.get("delta_on_mean"), r.get("delta_on_sd")
    else:
        line = f"{what} costs {c['delta']:+.3f} bits/char ({c['positions']:,} chars); "
        rand_mean, rand_sd = r.get("delta_mean"), r.get("delta_sd")
    if r["n"]:
        line += (
            f"{r['n']} random same-size sets cost {rand_mean:+.3f} ± {rand_sd:.3f}; "
            f"p = {r['p_value']:.3f}"
        )
    else:
        line += "no random units compared (--random 0)"
    if "task_accuracy" in c:
        line += f"; task accuracy {c['base_task_accuracy']:.1%} -> {c['task_accuracy']:.1%}"
        if r["n"]:
            line += (
                f" (random sets: {r['task_accuracy_mean']:.1%} ± {r['task_accuracy_sd']:.1%}, "
                f"p = {r['task_p_value']:.3f})"
            )
    return line


def _progress(total: int, enabled: bool) -> Any:
    return progress_bar(total, desc="ablate", unit="run", enabled=enabled)


def ranking_effects(
    ranking: Any,
    model: torch.nn.Module,
    vocab: Any,
    text: str,
    k: int,
    *,
    reset: str = "none",
    n_random: int = 20,
    seed: int = 0,
    progress: bool = False,
    warn: Any = None,
) -> dict[tuple[str, str], dict[str, Any]]:
    """Zero each of the top ``k`` units of every scored feature of ``ranking`` alone and measure
    its effect where the feature is on, against ``n_random`` random units (``find-neurons
    --ablate``). Returns the columns to add, keyed by (feature, unit)."""
    from lstmprobe.features import get_feature

    out: dict[tuple[str, str], dict[str, Any]] = {}
    for name, summary in ranking.features.items():
        if "skipped" in summary:
            continue
        units = ranking.top(k, feature=name)
        try:
            result = run_ablation(
                model,
                vocab,
                text,
                [[u] for u in units],
                feature=get_feature(name),
                reset=reset,
                n_random=n_random,
                seed=seed,
                progress=progress,
            )
        except FeatureError as exc:
            if warn is not None:
                warn(f"feature {name!r}: no causal columns: {exc}")
            continue
        for unit, c in zip(units, result.conditions):
            out[(name, unit)] = {
                "causal_delta_on": c["delta_on"],
                "causal_delta_off": c["delta_off"],
                "causal_random_mean": c["random"]["delta_on_mean"],
                "causal_p_value": c["random"]["p_value"],
            }
    return out
