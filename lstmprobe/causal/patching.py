"""Interchange interventions: does a unit carry the information? Patch its state from a source
run into a target run and see whether the prediction follows the source (docs/causal.md).

A *patch* sets units of the target run to their values in a source run of the same model
(:class:`~lstmprobe.record.interventions.Intervention` with ``mode="patch"``), at chosen target
positions aligned with the source's (from the end by default: the last chars together), and the
change propagates through the recurrence, later layers and the decoder exactly. What is read is
the next-char distribution after the target's last char.

* :func:`patch` -- one source and one target: the distribution before and after, the KL
  divergence between them, the change of chosen chars' log-probabilities.
* :func:`patch_pairs` -- many (source, target, expected) pairs: the **flip rate**, the share of
  pairs whose patched target predicts the source's answer (its most likely next char becomes
  ``expected``), for each condition (a set of units patched together) and for ``n_random``
  random same-size sets of units of the same layers and quantities. The p-value is the rank of
  the condition's flip rate among the random sets', as for ablations:
  ``(1 + #{random >= chosen}) / (1 + n_random)``, whose floor is ``1 / (1 + n_random)``.
* :func:`patch_sweep` -- the causal-tracing picture: the effect of patching each unit of a set
  (rows) at each target position (columns), one at a time.

Every sequence starts from the zero state (one text, or one line, is one sequence).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from lstmprobe._io import progress_bar
from lstmprobe.causal._patch import (
    LN2,
    Align,
    At,
    Run,
    Texts,
    keys_of,
    last_logprobs,
    patch_threads,
    patched,
    prepare,
    where_of,
)
from lstmprobe.causal.effects import mean_sd, p_value
from lstmprobe.causal.units import Condition, check_units, draw_random
from lstmprobe.errors import InterventionError
from lstmprobe.names import Key, Unit
from lstmprobe.text import Pair

if TYPE_CHECKING:
    from lstmprobe.text import Vocab


# --------------------------------------------------------------------------- one pair


@dataclass(frozen=True)
class PatchResult:
    """One source patched into one target: the next-char log-probabilities after the target's
    last char, before and after (natural log, one per vocab char), and the source's own."""

    units: tuple[Unit, ...]
    source: str
    target: str
    positions: tuple[int, ...]  # target positions patched
    source_positions: tuple[int, ...]
    chars: tuple[str, ...]
    before: np.ndarray = field(repr=False)
    after: np.ndarray = field(repr=False)
    source_next: np.ndarray = field(repr=False)

    @property
    def kl_bits(self) -> float:
        """KL(before || after) in bits: how far the patch moved the prediction."""
        p = np.exp(self.before)
        return float(np.sum(p * (self.before - self.after)) / LN2)

    @property
    def source_answer(self) -> str:
        """The source's most likely next char."""
        return self.chars[int(np.argmax(self.source_next))]

    def top(
        self, which: Literal["before", "after", "source"], k: int = 5
    ) -> list[tuple[str, float]]:
        """The ``k`` most likely next chars and their probabilities."""
        lp = {"before": self.before, "after": self.after, "source": self.source_next}[which]
        order = np.argsort(-lp, kind="stable")[:k]
        return [(self.chars[i], float(np.exp(lp[i]))) for i in order]

    def delta_bits(self, char: str) -> float:
        """log2 p(char) after minus before."""
        i = self.chars.index(char)
        return float((self.after[i] - self.before[i]) / LN2)

    def to_dict(self, compare: Sequence[str] = ()) -> dict[str, Any]:
        def table(lp: np.ndarray) -> dict[str, float]:
            return {c: float(v) for c, v in zip(self.chars, lp)}

        return {
            "units": [str(u) for u in self.units],
            "source": self.source,
            "target": self.target,
            "positions": list(self.positions),
            "source_positions": list(self.source_positions),
            "source_answer": self.source_answer,
            "kl_bits": self.kl_bits,
            "top_before": [[c, p] for c, p in self.top("before")],
            "top_after": [[c, p] for c, p in self.top("after")],
            "compare": {c: {"delta_bits": self.delta_bits(c)} for c in compare},
            "logprob_before": table(self.before),
            "logprob_after": table(self.after),
            "logprob_source": table(self.source_next),
        }


def patch(
    model: torch.nn.Module,
    vocab: Vocab,
    source: str,
    target: str,
    units: Sequence[Unit | str],
    *,
    at: At = "last",
    align: Align | None = None,
    unknown: str = "error",
    threads: int | None = None,
) -> PatchResult:
    """Patch ``units`` (together) from a run over ``source`` into a run over ``target``.

    Parameters
    ----------
    model : CharLSTM
        A model with a decoder.
    vocab : Vocab
    source, target : str
        Each read from the zero state.
    units : sequence of Unit or str
        Units (``Unit.parse("layer0/cell/17")`` or the name; cell, hidden or gate units),
        patched together.
    at : "last", "all" or int
        The target positions patched: the last, every one that has a source position, or one
        (negative: from the end).
    align : {"start", "end"}, optional
        How target positions take source positions: ``end`` (default) lines up the last chars;
        ``at="all"`` with texts of different lengths needs it said.

    Returns
    -------
    PatchResult
    """
    parsed = Condition.of(units).units
    check_units(model, parsed)
    pair = [Pair(source, target, target[-1])]
    with patch_threads(model, threads):
        run = prepare(model, vocab, pair, keys_of(parsed), at, align, unknown)
        after = patched(model, run, parsed, run.where)
        src = Texts.of([source], vocab, unknown)
        source_next = last_logprobs(model, src)[0]
    mask = run.where.mask[0]
    return PatchResult(
        units=parsed,
        source=source,
        target=target,
        positions=tuple(int(p) for p in np.flatnonzero(mask)),
        source_positions=tuple(int(s) for s in run.where.align[0][mask]),
        chars=tuple(vocab.chars),
        before=run.before[0],
        after=after[0],
        source_next=source_next,
    )


# --------------------------------------------------------------------------- many pairs


@dataclass(frozen=True)
class PairsCondition:
    """One set of units patched together over every pair, beside random same-size sets."""

    units: tuple[Unit, ...]
    flip_rate: float  # share of pairs whose patched target's top char is the expected one
    delta_bits: float  # mean change of log2 p(expected)
    random_flip_rates: tuple[float, ...]
    random_units: tuple[tuple[Unit, ...], ...]
    flips: np.ndarray = field(repr=False)  # (pairs,) bool

    @property
    def random_mean_sd(self) -> tuple[float | None, float | None]:
        return mean_sd(list(self.random_flip_rates))

    @property
    def p_value(self) -> float | None:
        """The rank of the flip rate among the random sets': (1 + #{random >= it}) / (1 + n)."""
        return p_value(self.flip_rate, list(self.random_flip_rates))

    @property
    def p_floor(self) -> float | None:
        """The smallest p-value possible with this many random sets, ``1 / (1 + n)``."""
        n = len(self.random_flip_rates)
        return 1 / (1 + n) if n else None

    def verdict(self, base_rate: float) -> str:
        units = str(self.units[0]) if len(self.units) == 1 else f"{len(self.units)} units together"
        line = (
            f"patching {units}: {self.flip_rate:.1%} of targets flip to the source's answer "
            f"(without a patch {base_rate:.1%}; mean change of log2 p {self.delta_bits:+.3f})"
        )
        n = len(self.random_flip_rates)
        if not n:
            return line + "; no random units compared"
        mean, sd = self.random_mean_sd
        p = self.p_value
        floor = self.p_floor
        note = f" (the smallest possible with {n} random sets)" if p == floor else ""
        return line + f"; {n} random same-size sets flip {mean:.1%} ± {sd:.1%}; p = {p:.3f}{note}"

    def to_dict(self, base_rate: float) -> dict[str, Any]:
        mean, sd = self.random_mean_sd
        return {
            "units": [str(u) for u in self.units],
            "flip_rate": self.flip_rate,
            "delta_bits": self.delta_bits,
            "random": {
                "n": len(self.random_flip_rates),
                "flip_rate_mean": mean,
                "flip_rate_sd": sd,
                "p_value": self.p_value,
                "p_floor": self.p_floor,
                "draws": [
                    {"units": [str(x) for x in u], "flip_rate": r}
                    for u, r in zip(self.random_units, self.random_flip_rates)
                ],
            },
            "verdict": self.verdict(base_rate),
        }


@dataclass(frozen=True)
class PairsResult:
    """What :func:`patch_pairs` measured."""

    conditions: tuple[PairsCondition, ...]
    base_rate: float  # share of unpatched targets that already predict the expected char
    n_pairs: int
    settings: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "lstmprobe.patching",
            "settings": self.settings,
            "pairs": self.n_pairs,
            "base_rate": self.base_rate,
            "conditions": [c.to_dict(self.base_rate) for c in self.conditions],
        }


def _score(run: Run, after: np.ndarray, rows: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Per pair: flipped to the expected char; and the mean change of log2 p(expected) (over
    ``rows`` only, when given: the pairs that were patched)."""
    index = np.arange(len(run.expected))
    flips = after.argmax(1) == run.expected
    delta = (after[index, run.expected] - run.before[index, run.expected]) / LN2
    if rows is not None:
        flips, delta = flips[rows], delta[rows]
    return flips, float(delta.mean()) if len(delta) else float("nan")


def _pools(model: torch.nn.Module, conditions: Sequence[Condition]) -> dict[Key, list[int]]:
    datasets = check_units(model, [u for c in conditions for u in c.units])
    chosen = {u for c in conditions for u in c.units}
    return {key: [i for i in range(n) if key.unit(i) not in chosen] for key, n in datasets.items()}


def patch_pairs(
    model: torch.nn.Module,
    vocab: Vocab,
    pairs: Sequence[Pair],
    conditions: Sequence[Sequence[Unit | str]],
    *,
    at: At = "last",
    align: Align | None = None,
    n_random: int = 20,
    seed: int = 0,
    unknown: str = "error",
    threads: int | None = None,
    progress: bool = False,
) -> PairsResult:
    """The flip rate of each condition (units patched together) over ``pairs``, against
    ``n_random`` random same-size unit sets of the same layers and quantities (drawn, seeded,
    from the units of no condition).

    A pair *flips* when the patched target's most likely next char is the pair's expected char
    (the source's answer). ``base_rate`` is how often the unpatched target already predicts it.
    """
    if not conditions:
        raise InterventionError("give at least one condition (`units`)")
    conds = [Condition.of(c) for c in conditions]
    pools = _pools(model, conds)
    draws = [draw_random(c, pools, n_random, seed) for c in conds]
    keys = sorted({k for c in conds for k in c.by_key})
    todo = list(dict.fromkeys([c.units for c in conds] + [d for ds in draws for d in ds]))
    scored: dict[tuple[Unit, ...], tuple[np.ndarray, float]] = {}
    with patch_threads(model, threads):
        run = prepare(model, vocab, pairs, keys, at, align, unknown)
        bar = progress_bar(len(todo), desc="patch", unit="set", enabled=progress)
        try:
            for units in todo:
                scored[units] = _score(run, patched(model, run, units, run.where))
                bar.update(1)
        finally:
            bar.close()
    out = []
    for cond, ds in zip(conds, draws):
        flips, delta = scored[cond.units]
        out.append(
            PairsCondition(
                units=cond.units,
                flip_rate=float(flips.mean()),
                delta_bits=delta,
                random_flip_rates=tuple(float(scored[d][0].mean()) for d in ds),
                random_units=tuple(ds),
                flips=flips,
            )
        )
    base = float((run.before.argmax(1) == run.expected).mean())
    settings = {"at": at, "align": align or "end", "n_random": n_random, "seed": seed}
    return PairsResult(tuple(out), base, len(pairs), settings)


# --------------------------------------------------------------------------- sweeps


@dataclass(frozen=True)
class PatchSweep:
    """The effect of patching each row's units at each column's target position, one at a time.

    ``columns`` are target positions counted from the alignment's side: ``-1`` the last char,
    ``-2`` the one before (``align="end"``), or ``0, 1, ...`` from the start. ``flip_rate`` is
    the share of pairs that flip to the expected char; ``delta_bits`` the mean change of
    log2 p(expected char); both over the ``pairs`` that have that position (in the target and,
    aligned, in the source).
    """

    rows: tuple[tuple[Unit, ...], ...]
    columns: tuple[int, ...]
    labels: tuple[str, ...]  # the target char at each column, where all pairs agree
    flip_rate: np.ndarray  # (rows, columns)
    delta_bits: np.ndarray  # (rows, columns)
    pairs: np.ndarray  # (columns,) pairs with each position
    base_rate: float
    align: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": [[str(u) for u in r] for r in self.rows],
            "columns": list(self.columns),
            "labels": list(self.labels),
            "flip_rate": self.flip_rate.tolist(),
            "delta_bits": self.delta_bits.tolist(),
            "pairs_per_column": self.pairs.tolist(),
            "base_rate": self.base_rate,
            "align": self.align,
        }


def sweep_columns(
    pairs: Sequence[Pair], vocab: Vocab, align: Align, unknown: str, limit: int = 40
) -> list[int]:
    """Every target position that some pair shares with its source, -1, -2, ... (``end``) or
    0, 1, ... (``start``), at most ``limit`` of them."""
    longest = max(
        min(len(vocab.encode(p.target, unknown)), len(vocab.encode(p.source, unknown)))
        for p in pairs
    )
    n = min(longest, limit)
    return [-(k + 1) for k in range(n)] if align == "end" else list(range(n))


def patch_sweep(
    model: torch.nn.Module,
    vocab: Vocab,
    pairs: Sequence[Pair],
    rows: Sequence[Sequence[Unit | str]],
    columns: Sequence[int],
    *,
    align: Align = "end",
    unknown: str = "error",
    threads: int | None = None,
    progress: bool = False,
) -> PatchSweep:
    """Patch each of ``rows`` (a unit set each) at each target position of ``columns`` alone
    (one position per run; :func:`sweep_columns` gives every shared position)."""
    if not rows or not columns:
        raise InterventionError("a sweep needs at least one unit and one position")
    conds = [Condition.of(r) for r in rows]
    check_units(model, [u for c in conds for u in c.units])
    keys = sorted({k for c in conds for k in c.by_key})
    flip = np.zeros((len(rows), len(columns)))
    delta = np.zeros((len(rows), len(columns)))
    with patch_threads(model, threads):
        run = prepare(model, vocab, pairs, keys, "last", align, unknown)
        places = [
            where_of(run.targets, run.sources, int(c), align, pairs, skip=True) for c in columns
        ]
        bar = progress_bar(len(rows) * len(columns), desc="sweep", unit="run", enabled=progress)
        try:
            for i, cond in enumerate(conds):
                for j, where in enumerate(places):
                    flips, d = _score(run, patched(model, run, cond.units, where), where.rows)
                    flip[i, j], delta[i, j] = float(flips.mean()), d
                    bar.update(1)
        finally:
            bar.close()
    labels = []
    for c in columns:  # the char at each position, where every pair has the same one there
        seen = {p.target[c] for p in pairs if -len(p.target) <= c < len(p.target)}
        labels.append(seen.pop() if len(seen) == 1 else "")
    base = float((run.before.argmax(1) == run.expected).mean())
    return PatchSweep(
        tuple(c.units for c in conds),
        tuple(int(c) for c in columns),
        tuple(labels),
        flip,
        delta,
        np.array([int(w.rows.sum()) for w in places]),
        base,
        align,
    )
