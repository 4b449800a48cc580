"""Does a unit matter? The next-char loss with and without an intervention, against random units.

For a set of units (a *condition*) the model reads the corpus twice -- as it is, and with the
units set to zero, their mean or a constant at every position (:class:`~lstmprobe.Intervention`)
-- and the loss in bits of each next char is compared. Position t predicts char t+1. The feature
that says where the units should matter is read where the model stands when it predicts
(``feature_at="state"``, the default): the loss of predicting char t+1 counts as *on* where the
feature is on at t, after reading char t -- "predicting the closing quote" is inside the string,
"predicting the opening quote" is not. ``feature_at="target"`` reads it at the predicted char
t+1 instead. *On* is 1 for a binary feature and any value but 0 for a continuous one (or above
``threshold`` when one is given), *off* is the rest, and a loss counts nowhere where the feature
is undefined or t has no next char in its sequence. The rule is named in every result.

Every condition is run again on ``n_random`` random sets of units of the same layers and
quantities and of the same sizes (seeded, drawn from the units of no condition, distinct sets;
by default 99, or every distinct set when there are fewer). The p-value is the rank of the
condition's effect among them: ``(1 + #{random delta >= chosen delta}) / (1 + n_random)`` -- its
floor is ``1 / (1 + n_random)``: 0.01 with 99 draws, 0.1 with the 9 other units of a 10-unit
layer. With ``task=True`` (a corpus of the synthetic tasks) the exact greedy
completion accuracy is measured the same way (p: the share of random sets whose accuracy is at
most the chosen one's). docs/causal.md has the definitions and the limits.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from lstmprobe._io import progress_bar
from lstmprobe.causal.effects import AblationCondition, Run, condition_entry, loss_summary
from lstmprobe.causal.units import (
    Condition,
    check_model_matches,
    check_units,
    distinct_sets,
    draw_random,
    random_count,
    recorded_reset,
)
from lstmprobe.errors import AblationError, CorpusError, FeatureError, InterventionError
from lstmprobe.names import Key, Unit
from lstmprobe.record import Intervention, Recorder
from lstmprobe.record.batches import sequence_groups
from lstmprobe.record.interventions import parse_mode, unit_interventions
from lstmprobe.record.threads import TorchThreads, check_threads, default_threads
from lstmprobe.text import sequences as text_sequences

if TYPE_CHECKING:
    from lstmprobe.models import LoadedModel
    from lstmprobe.probes.ranking import Ranking
    from lstmprobe.store import ActivationStore

LN2 = math.log(2.0)


# --------------------------------------------------------------------------- the loss


def _batches(seqs: np.ndarray, batch_chars: int) -> list[np.ndarray]:
    """Whole sequences in batches of at most ``batch_chars`` padded chars, as a recording
    groups them (:func:`~lstmprobe.record.batches.sequence_groups`)."""
    return [seqs[i:j] for i, j in sequence_groups(seqs, batch_chars, bidirectional=True)]


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


FeatureAt = Literal["state", "target"]
#: Where the feature splitting a loss is read: ``state`` at t (where the model stands when it
#: predicts char t+1), ``target`` at t+1 (the predicted char).
FEATURE_AT: tuple[FeatureAt, ...] = ("state", "target")


def on_rule(name: str, kind: str, threshold: float | None = None) -> str:
    """How "on" is decided for a feature, in words: ``quote = 1``, ``count:a ≠ 0``,
    ``count:a > 3``.

    Examples
    --------
    >>> on_rule("quote", "binary"), on_rule("count:a", "continuous", 3.0)
    ('quote = 1', 'count:a > 3')
    """
    if threshold is not None:
        return f"{name} > {threshold:g}"
    return f"{name} = 1" if kind == "binary" else f"{name} ≠ 0"


@dataclass(frozen=True)
class FeatureSplit:
    """Where a feature is on for the loss of predicting each next char, and the rule.

    ``on``: int8 per position t (the loss of predicting char t+1), 1 on, 0 off, -1 where the
    feature is undefined or t has no next char in its sequence. ``at`` and ``rule``
    (:func:`on_rule`) say how it was read.
    """

    on: np.ndarray
    at: FeatureAt
    rule: str


def split_by_feature(
    feature: Any,
    text: str,
    seqs: np.ndarray,
    *,
    at: FeatureAt = "state",
    threshold: float | None = None,
) -> FeatureSplit:
    """Where ``feature`` is on for the loss of predicting each next char.

    ``at="state"`` reads the feature at t (after reading char t: where the model stands when
    it predicts char t+1), ``at="target"`` at t+1 (the predicted char). On: above ``threshold``
    when given, else 1 for a binary feature and not 0 for a continuous one (:func:`on_rule`).

    Examples
    --------
    >>> from lstmprobe.features import get_feature
    >>> seqs = np.array([[0, 5]])
    >>> split_by_feature(get_feature("quote"), 'a"b"c', seqs).on.tolist()  # predicting b, "
    [0, 1, 1, 0, -1]
    >>> split_by_feature(get_feature("quote"), 'a"b"c', seqs, at="target").on.tolist()
    [1, 1, 0, 0, -1]
    """
    if at not in FEATURE_AT:
        raise AblationError(f"`feature_at` is state or target, got {at!r}")
    labels = feature.labels(text, seqs)
    kind = feature.infer_kind(labels)
    read = np.full(len(text), np.nan, dtype=np.float64)
    if at == "state":
        read[:] = labels
    else:
        read[:-1] = labels[1:]
    for _, end in seqs:
        read[end - 1] = np.nan  # nothing to predict after a sequence's last char
    out = np.full(len(text), -1, dtype=np.int8)
    defined = ~np.isnan(read)
    if threshold is not None:
        on = read > threshold
    else:
        on = read > 0.5 if kind == "binary" else read != 0
    out[defined & on] = 1
    out[defined & ~on] = 0
    return FeatureSplit(out, at, on_rule(feature.name, kind, threshold))


def feature_on_off(feature: Any, text: str, seqs: np.ndarray, **how: Any) -> np.ndarray:
    """:func:`split_by_feature`'s ``on`` array alone (``how``: ``at``, ``threshold``)."""
    return split_by_feature(feature, text, seqs, **how).on


_NO_MEANS = (
    '`mode="mean"` needs the units\' means: give `means` (unit_means of the recording, or '
    "plan_ablation)"
)


@dataclass
class AblationResult:
    """What :func:`run_ablation` measured: one :class:`~lstmprobe.causal.effects.AblationCondition`
    per condition, and per char."""

    conditions: list[AblationCondition]
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
            "conditions": [c.to_dict() for c in self.conditions],
        }


def _completion(
    model: Any, vocab: Any, lines: list[str], spec: Any, ivs: Sequence[Intervention]
) -> dict[str, Any]:
    from lstmprobe.lm import task_completion

    with Recorder(model, interventions=ivs, keep=False):
        done = task_completion(model, vocab, lines, spec)
    by_n = {str(k): c / n for k, (n, c) in sorted(done.by_key.items())}
    return {"accuracy": done.accuracy, "by_n": by_n}


def run_ablation(
    model: torch.nn.Module,
    vocab: Any,
    text: str,
    conditions: Sequence[Sequence[Unit | str]],
    *,
    feature: Any = None,
    mode: str = "zero",
    clamp: float | None = None,
    means: Mapping[Key, np.ndarray] | Mapping[str, np.ndarray] | None = None,
    reset: str = "none",
    n_random: int | None = None,
    seed: int = 0,
    task: bool = False,
    feature_at: FeatureAt = "state",
    threshold: float | None = None,
    method: str = "auto",
    threads: int | None = None,
    progress: bool = False,
    sequences: np.ndarray | None = None,
    runs: Runs | None = None,
) -> AblationResult:
    """Measure each condition's effect on the next-char loss (and task accuracy) vs random units.

    Parameters
    ----------
    model : CharLSTM
        A model with a decoder.
    vocab : Vocab
    text : str
        The corpus.
    conditions : list of lists of Unit (or unit names)
        Each is one set of units intervened on together.
    feature : Feature or str, optional
        Splits the losses into on and off (:func:`feature_on_off`); a spec (``"quote"``,
        ``"count:a@char:Y"``) is built with :func:`~lstmprobe.features.get_feature`, as
        :func:`~lstmprobe.probes.rank_units` does.
    mode : {"zero", "mean", "clamp:V"}
        As :class:`~lstmprobe.Intervention` (and ``--mode``) spell it; ``mean`` needs
        ``means`` (:func:`unit_means`). ``clamp`` with ``clamp=V`` is ``clamp:V``.
    clamp : float, optional
        The constant of ``mode="clamp"`` (older spelling of ``clamp:V``).
    reset : {"none", "line"}
        How the model reads the corpus (as it was recorded).
    n_random : int, optional
        Random unit sets per condition; default :data:`~lstmprobe.causal.units.DEFAULT_RANDOM`
        (99), or every distinct set where there are fewer.
    task : bool
        Also measure exact greedy completion on a synthetic-task corpus.
    feature_at : {"state", "target"}
        Read the feature at t, where the model stands when it predicts char t+1 (default), or
        at the predicted char t+1.
    threshold : float, optional
        The feature is on above it (default: 1 for a binary feature, not 0 for a continuous
        one).
    threads : int, optional
        torch threads while measuring (default: 1 for a model under ``SMALL_MODEL_MACS``
        multiply-adds per char, see :mod:`lstmprobe.record.threads`; else torch's setting).
    sequences : ndarray of shape (n_sequences, 2), optional
        ``[start, end)`` of each sequence (a corpus of files: one per file, as recorded);
        default: from ``text`` and ``reset``.
    runs : callable, optional
        What runs the model: given a :class:`Measure` and the interventions of each run (the
        first: none), it yields each run's per-char bits and task completion in order. By
        default they run here, one after the other; :func:`lstmprobe.distributed.run_ablation`
        runs them as tasks on a cluster.

    Returns
    -------
    AblationResult
    """
    if getattr(model, "decoder", True) is None:
        raise AblationError(
            "this model has no decoder, so it predicts no next char: loss and task effects "
            "cannot be measured; interventions still change its states (Recorder(model, "
            "interventions=...)) and `gate_dynamics()` still describes its gates"
        )
    if isinstance(feature, str):
        from lstmprobe.features import get_feature

        feature = get_feature(feature)
    try:
        kind, clamp = parse_mode(mode, clamp)
    except InterventionError as exc:
        raise AblationError(str(exc)) from None
    if kind == "mean" and means is None:
        raise AblationError(_NO_MEANS)
    if kind == "clamp" and clamp is None:
        raise AblationError('`mode="clamp"` needs a value: give `mode="clamp:V"`, e.g. clamp:0.5')
    how = f"clamp:{clamp:g}" if kind == "clamp" else kind
    unit_means = None if means is None else {Key.parse(k): v for k, v in means.items()}
    if not conditions:
        raise AblationError("give at least one condition (`conditions`: lists of unit names)")
    check_threads(threads, AblationError)
    conds = [Condition.of(c) for c in conditions]
    datasets = check_units(model, [u for c in conds for u in c.units])
    tokens = vocab.encode(text)
    seqs = text_sequences(text, reset) if sequences is None else np.asarray(sequences)
    if not (seqs[:, 1] - seqs[:, 0] > 1).any():
        raise CorpusError(
            "no char of this corpus has a next char to predict; give a corpus of at least 2 chars"
        )
    on, rule = None, None
    if feature is not None:
        split = split_by_feature(feature, text, seqs, at=feature_at, threshold=threshold)
        on, rule = split.on, split.rule
        n_on, n_off = int((on == 1).sum()), int((on == 0).sum())
        if n_on == 0 or n_off == 0:
            which = "never" if n_on == 0 else "always"
            where = (
                "at the chars predicted" if feature_at == "target" else "where the model predicts"
            )
            raise FeatureError(
                f"feature {feature.name!r} is {which} on {where} in this corpus, "
                "so its on and off positions cannot be compared; pick a feature that varies "
                "here (or leave out `feature` for the overall effect)"
            )
    spec, lines = None, None
    if task:
        from lstmprobe.lm import tasks

        lines = text.splitlines(keepends=True)
        spec = tasks.detect(lines)
        if spec is None:
            raise CorpusError(
                "`task=True` needs a corpus of one of the synthetic tasks (write one with "
                "`tasks.write(NAME, count=N, output=FILE)`); this corpus's lines are not of one "
                "task's form"
            )
    chosen_all = {u for c in conds for u in c.units}
    pools = {
        key: [i for i in range(n) if key.unit(i) not in chosen_all] for key, n in datasets.items()
    }
    draws = [draw_random(c, pools, random_count(c, pools, n_random), seed) for c in conds]
    if kind == "mean":
        missing = {k for c in conds for k in c.by_key} - set(unit_means or {})
        if missing:
            raise AblationError(
                f"no means for {', '.join(str(k) for k in sorted(missing))} in the recording"
            )
    todo = list(dict.fromkeys([c.units for c in conds] + [d for ds in draws for d in ds]))
    bar = _progress(len(todo) + 1, progress)
    cache: dict[tuple[Unit, ...], Run] = {}
    chosen = {c.units for c in conds}
    users: dict[tuple[Unit, ...], list[int]] = {}
    for ci, ds in enumerate(draws):
        for d in ds:
            users.setdefault(d, []).append(ci)
    rsums = [np.zeros(len(tokens), dtype=np.float64) for _ in conds]
    measure = Measure(tokens, seqs, tuple(lines or ()), spec, method, threads)
    plans = [[]] + [unit_interventions(units, how, means=unit_means) for units in todo]
    try:
        measured = (runs or run_here)(model, vocab, measure, plans)
        base, base_task = next(measured)
        bar.update(1)
        for units, (bits, comp) in zip(todo, measured):
            delta = (bits - base).astype(np.float32)
            # per-char differences are kept for the chosen units only; a random draw's go into
            # the running sums of the conditions that drew it (memory: one array per condition)
            for ci in users.get(units, ()):
                rsums[ci] += np.nan_to_num(delta)
            cache[units] = (
                loss_summary(bits, base, on),
                delta if units in chosen else None,
                comp,
            )
            bar.update(1)
    finally:
        bar.close()
    results, deltas, rdeltas = [], [], []
    described = {
        "mode": kind,
        "value": clamp,
        "feature": None if feature is None else feature.name,
        "feature_at": None if feature is None else feature_at,
        "on": rule,
        "seed": seed,
    }
    for cond, ds in zip(conds, draws):
        rand = [cache[d] for d in ds]
        delta = cache[cond.units][1]
        results.append(
            condition_entry(
                cond.units,
                cache[cond.units],
                ds,
                rand,
                settings=described,
                base_task=base_task,
                possible=distinct_sets(cond, pools),
            )
        )
        deltas.append(delta)
        if rand:
            mean_delta = (rsums[len(rdeltas)] / len(rand)).astype(np.float32)
            mean_delta[np.isnan(base)] = np.nan
            rdeltas.append(mean_delta)
        else:
            rdeltas.append(None)
    settings = {
        "mode": kind,
        "value": clamp,
        "reset": reset,
        "n_random": n_random,
        "seed": seed,
        "feature": described["feature"],
        "feature_at": described["feature_at"],
        "on": rule,
        "threshold": threshold,
        "positions": len(tokens),
        "task": None if spec is None else spec.name,
    }
    return AblationResult(results, base, deltas, rdeltas, on, base_task, settings)


@dataclass(frozen=True, eq=False)
class Measure:
    """What one run of an ablation measures the model on: the corpus (``tokens``, ``seqs``),
    the task's lines and spec (``task=True``; else empty and None), the interventions' method
    and torch's threads."""

    tokens: np.ndarray
    seqs: np.ndarray
    lines: tuple[str, ...]
    spec: Any
    method: str
    threads: int | None

    def __call__(
        self, model: torch.nn.Module, vocab: Any, interventions: Sequence[Intervention]
    ) -> tuple[np.ndarray, dict[str, Any] | None]:
        """The per-char bits of one run, and its task completion (or None)."""
        device = next(model.parameters()).device
        # a small model's forward of one sequence gains nothing from more threads (as in record)
        with TorchThreads(default_threads(model, self.threads, device), AblationError):
            bits = next_char_bits(model, self.tokens, self.seqs, interventions, method=self.method)
            comp = None
            if self.spec is not None:
                comp = _completion(model, vocab, list(self.lines), self.spec, interventions)
        return bits, comp


#: What runs an ablation's model: (model, vocab, measure, interventions of each run) -> each
#: run's (bits, task completion), in order.
Runs = Callable[
    [torch.nn.Module, Any, Measure, list[list[Intervention]]],
    Iterator[tuple[np.ndarray, "dict[str, Any] | None"]],
]


def run_here(
    model: torch.nn.Module, vocab: Any, measure: Measure, plans: list[list[Intervention]]
) -> Iterator[tuple[np.ndarray, dict[str, Any] | None]]:
    """Each run in this process, one after the other (the default :data:`Runs`)."""
    for interventions in plans:
        yield measure(model, vocab, interventions)


def _progress(total: int, enabled: bool) -> Any:
    return progress_bar(total, desc="ablate", unit="run", enabled=enabled)


def ranking_effects(
    ranking: Ranking,
    model: torch.nn.Module,
    vocab: Any,
    text: str,
    k: int,
    *,
    features: Mapping[str, Any] | None = None,
    warn: Callable[[str], None] | None = None,
    **settings: Any,
) -> dict[tuple[str, str], dict[str, Any]]:
    """Zero each of the top ``k`` units of every scored feature of ``ranking`` alone and measure
    its effect where the feature is on, against random units (the causal columns of a ranking,
    :func:`with_causal_columns`); ``settings`` are :func:`run_ablation`'s (``reset``,
    ``n_random``, ``seed``, ``progress``). A feature that is never or always on is left out,
    with a ``warn``-ing. Returns the columns to add, keyed by (feature, unit).

    ``features`` (spec -> :class:`~lstmprobe.features.Feature`): the features the ranking was
    made with, used as they are; a feature not given is rebuilt from its spec, the name the
    ranking keeps (``quote``, ``regex:...``, ``file.py:func``)."""
    from lstmprobe.features import get_feature

    out: dict[tuple[str, str], dict[str, Any]] = {}
    for name in ranking.scored:
        units = ranking.top(k, feature=name)
        conditions = [[u] for u in units]
        try:
            result = run_ablation(
                model,
                vocab,
                text,
                conditions,
                feature=(features or {}).get(name) or get_feature(name),
                **settings,
            )
        except FeatureError as exc:
            if warn is not None:
                warn(f"feature {name!r}: no causal columns: {exc}")
            continue
        for unit, c in zip(units, result.conditions):
            out[(name, unit)] = {
                "causal_delta_on": c.delta_on,
                "causal_delta_off": c.delta_off,
                "causal_random_mean": c.random.delta_on_mean,
                "causal_p_value": c.random.p_value,
            }
    return out


def with_causal_columns(
    ranking: Ranking,
    store: ActivationStore,
    loaded: LoadedModel,
    k: int,
    *,
    model: str = "the model",
    warn: Callable[[str], None] | None = None,
    **settings: Any,
) -> Ranking:
    """``ranking`` with causal columns (:data:`~lstmprobe.probes.ranking.CAUSAL_COLUMNS`) for
    the top ``k`` units of each feature: :func:`ranking_effects` with ``loaded``, which must be
    the recorded model (:func:`check_model_matches`; ``model`` names it), over ``store``'s
    corpus read as it was recorded; ``settings`` as there (``features``, ``n_random``,
    ``seed``, ``progress``)."""
    check_model_matches(store, loaded.sha256, model=model)
    reset = recorded_reset(store)
    effects = ranking_effects(
        ranking, loaded.model, loaded.vocab, store.text, k, warn=warn, reset=reset, **settings
    )
    return ranking.with_columns(effects)
