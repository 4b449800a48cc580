"""The machinery of a patch (:mod:`lstmprobe.causal.patching`): texts as one padded batch read
from the zero state, the sources' recorded values, which target positions take which source
positions, and the next-char log-probabilities after each target with and without the patch."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch

from lstmprobe.causal.units import Condition
from lstmprobe.errors import CorpusError, InterventionError
from lstmprobe.names import Key, Unit
from lstmprobe.record import Intervention, Recorder
from lstmprobe.record.threads import TorchThreads, check_threads, default_threads
from lstmprobe.text import Pair

if TYPE_CHECKING:
    from lstmprobe.text import Vocab

LN2 = math.log(2.0)
At = Literal["last", "all"] | int
Align = Literal["start", "end"]
#: Pairs per forward call (each a short prefix).
BATCH = 256


# --------------------------------------------------------------------------- texts as one batch


@dataclass(frozen=True)
class Texts:
    """Texts padded into one batch of ids, each read from the zero state."""

    ids: torch.Tensor  # (batch, longest)
    lengths: np.ndarray  # (batch,)

    @classmethod
    def of(cls, texts: Sequence[str], vocab: Vocab, unknown: str = "error") -> Texts:
        encoded = [vocab.encode(t, unknown) for t in texts]
        for text, ids in zip(texts, encoded):
            if not len(ids):
                raise CorpusError(f"text {text!r} has no char the model knows; give a longer one")
        lengths = np.array([len(e) for e in encoded], dtype=np.int64)
        batch = np.zeros((len(encoded), int(lengths.max())), dtype=np.int64)
        for row, e in enumerate(encoded):
            batch[row, : len(e)] = e
        return cls(torch.from_numpy(batch), lengths)

    def rows(self, a: int, b: int) -> Texts:
        lengths = self.lengths[a:b]
        return Texts(self.ids[a:b, : int(lengths.max())], lengths)


def source_values(
    model: torch.nn.Module, texts: Texts, keys: Sequence[Key]
) -> dict[Key, np.ndarray]:
    """Every unit of each dataset in ``keys`` over the source ``texts``: key -> array of shape
    (batch, longest, n_units), float32 (values past a text's end are padding)."""
    layers = sorted({k.layer_name for k in keys})
    quantities = sorted({k.quantity for k in keys})
    dev = next(model.parameters()).device
    with torch.inference_mode(), Recorder(model, quantities, layers) as rec:
        model(texts.ids.to(dev))
        acts = rec.activations
    return {k: acts[str(k)].float().cpu().numpy() for k in keys}  # type: ignore[index]


@torch.inference_mode()
def last_logprobs(
    model: torch.nn.Module, texts: Texts, interventions: Sequence[Intervention] = ()
) -> np.ndarray:
    """log p of each next char after each text's last char: (batch, vocab), float64."""
    dev = next(model.parameters()).device
    with Recorder(model, interventions=interventions, keep=False):
        logits, _ = model(texts.ids.to(dev))
    last = torch.as_tensor(texts.lengths - 1, device=logits.device)
    picked = logits[torch.arange(len(last), device=logits.device), last].double()
    return torch.log_softmax(picked, -1).cpu().numpy()


# --------------------------------------------------------------------------- where to patch


@dataclass(frozen=True)
class Where:
    """Target positions patched per row, and the source position each takes its value from."""

    align: np.ndarray  # (batch, longest target): source position, -1 for none
    mask: np.ndarray  # (batch, longest target): patched here
    rows: np.ndarray  # (batch,): patched somewhere


def alignment(targets: Texts, sources: Texts, align: Align) -> np.ndarray:
    t = np.arange(targets.ids.shape[1])[None, :]
    tl, sl = targets.lengths[:, None], sources.lengths[:, None]
    index = t if align == "start" else t - tl + sl
    return np.where((t < tl) & (index >= 0) & (index < sl), index, -1)


def where_of(
    targets: Texts,
    sources: Texts,
    at: At,
    align: Align | None,
    pairs: Sequence[Pair],
    *,
    skip: bool = False,
) -> Where:
    """The positions ``at`` of every target (``last``, ``all``, or a position: negative counts
    from the end) with their source positions (``align``; default: ``end``, the last chars
    together, except ``all``, which needs equal lengths or an explicit alignment). With
    ``skip``, a pair without that position (or without a source position for it) is left
    unpatched (:attr:`Where.rows` says which were patched) instead of refused."""
    if at == "all" and align is None:
        differ = np.flatnonzero(targets.lengths != sources.lengths)
        if len(differ):
            i = int(differ[0])
            raise InterventionError(
                f"{pair_name(pairs, i)}: the source and the target have different lengths "
                f"({sources.lengths[i]} and {targets.lengths[i]} chars), so patching `at='all'` "
                "positions needs to know how they line up: give `align='start'` or `align='end'` "
                "(the positions without a source position are left alone)"
            )
    index = alignment(targets, sources, align or "end")
    t = np.arange(targets.ids.shape[1])[None, :]
    tl = targets.lengths[:, None]
    if at == "all":
        mask = index >= 0
    else:
        if at == "last":
            pos = tl - 1
        else:
            if isinstance(at, bool) or not isinstance(at, (int, np.integer)):
                raise InterventionError(f"`at` is 'last', 'all' or a position, got {at!r}")
            pos = np.where(at < 0, tl + at, np.full_like(tl, at))
            bad = np.flatnonzero((pos < 0) | (pos >= tl))
            if len(bad) and not skip:
                i = int(bad[0])
                raise InterventionError(
                    f"{pair_name(pairs, i)}: position {at} is beyond the target, which has "
                    f"{targets.lengths[i]} chars (positions 0..{targets.lengths[i] - 1}, or "
                    f"-1..-{targets.lengths[i]} from the end); give `at` inside it"
                )
        mask = t == pos
    missing = np.flatnonzero((mask & (index < 0)).any(1))
    if len(missing) and not skip:
        i = int(missing[0])
        p = int(np.flatnonzero(mask[i] & (index[i] < 0))[0])
        raise InterventionError(
            f"{pair_name(pairs, i)}: target position {p} has no source position when the texts are "
            f"aligned from the {align or 'end'} ({sources.lengths[i]} source chars, "
            f"{targets.lengths[i]} target chars); align them the other way (`align`) or patch "
            "another position (`at`)"
        )
    mask = mask & (index >= 0)
    return Where(index, mask, np.asarray(mask.any(1)))


def pair_name(pairs: Sequence[Pair], i: int) -> str:
    p = pairs[i]
    return f"pair on line {p.line}" if p.line else f"pair {i} ({p.source!r} -> {p.target!r})"


def patch_interventions(
    units: Sequence[Unit], values: dict[Key, np.ndarray], where: Where, rows: slice
) -> list[Intervention]:
    out = []
    for key, idx in Condition.of(units).by_key.items():
        out.append(
            Intervention(
                key,
                "patch",
                units=idx,
                source=values[key][rows][:, :, idx],
                align=where.align[rows],
                mask=where.mask[rows],
            )
        )
    return out


# --------------------------------------------------------------------------- the engine


@dataclass(frozen=True)
class Run:
    """Pairs prepared once: the batches of targets, the sources' values, the positions."""

    targets: Texts
    sources: Texts
    values: dict[Key, np.ndarray]
    where: Where
    expected: np.ndarray  # (batch,) vocab ids
    before: np.ndarray  # (batch, vocab) log p without a patch


def prepare(
    model: torch.nn.Module,
    vocab: Vocab,
    pairs: Sequence[Pair],
    keys: Sequence[Key],
    at: At,
    align: Align | None,
    unknown: str,
) -> Run:
    if not pairs:
        raise CorpusError("give at least one source/target pair")
    if getattr(model, "decoder", True) is None:
        raise InterventionError(
            "this model has no decoder, so it predicts no next char: a patch's effect on the "
            "prediction cannot be measured (interventions still change its states)"
        )
    targets = Texts.of([p.target for p in pairs], vocab, unknown)
    sources = Texts.of([p.source for p in pairs], vocab, unknown)
    expected = np.array([vocab.index(p.expected) for p in pairs], dtype=np.int64)
    where = where_of(targets, sources, at, align, pairs)
    values = source_values(model, sources, keys)
    before = np.concatenate(
        [last_logprobs(model, targets.rows(a, a + BATCH)) for a in range(0, len(pairs), BATCH)]
    )
    return Run(targets, sources, values, where, expected, before)


def patched(model: torch.nn.Module, run: Run, units: Sequence[Unit], where: Where) -> np.ndarray:
    """log p after each target, ``units`` patched at ``where``: (batch, vocab)."""
    out = []
    for a in range(0, len(run.expected), BATCH):
        rows = slice(a, a + BATCH)
        part = run.targets.rows(a, a + BATCH)
        width = part.ids.shape[1]
        cut = Where(where.align[rows, :width], where.mask[rows, :width], where.rows[rows])
        ivs = patch_interventions(
            units, {k: v[rows] for k, v in run.values.items()}, cut, slice(None)
        )
        out.append(last_logprobs(model, part, ivs))
    return np.concatenate(out)


def keys_of(units: Sequence[Unit]) -> list[Key]:
    return list(Condition.of(units).by_key)


def patch_threads(model: torch.nn.Module, threads: int | None) -> TorchThreads:
    """torch's threads while patching: as asked, else 1 for a small model on the CPU (more
    threads only contend for a batch of short texts, badly so on a loaded machine)."""
    check_threads(threads, InterventionError)
    device = next(model.parameters()).device
    return TorchThreads(default_threads(model, threads, device), InterventionError)
