"""Inferring a :class:`CharLSTM` from a state_dict: which tensors are the embedding, the
recurrent layers and the decoder, and the vocabulary stored beside them."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lstmprobe.errors import ModelLoadError, VocabError, one_line
from lstmprobe.models.charlstm import (
    MAX_TENSOR_BYTES,
    SAFETENSORS_VOCAB_KEY,
    Cell,
    CharLSTM,
    ModelConfig,
)
from lstmprobe.text import Vocab

#: Entries of a dict that wrap the state_dict itself (``{"state_dict": ..., "epoch": 3}``).
WRAPPER_KEYS: tuple[str, ...] = ("state_dict", "model_state_dict", "model_state", "model", "net")
#: Entries (or module attributes) that may hold the vocabulary, in order of preference.
VOCAB_KEYS: tuple[str, ...] = ("vocab", "chars", "itos", "stoi")

_RNN_KEY = re.compile(
    r"^(?P<prefix>.*?)(?P<param>weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)"
    r"_l(?P<layer>\d+)(?P<reverse>_reverse)?$"
)


def check_tensors(state: Mapping[str, torch.Tensor], where: str) -> None:
    """Refuse tensors that hold no plain values (sparse, meta) or whose declared size is beyond
    any char model, before using them."""
    for key, value in state.items():
        if value.layout != torch.strided or value.is_meta or value.is_quantized:
            kind = "a meta tensor (no values)" if value.is_meta else f"of layout {value.layout}"
            kind = "quantized" if value.is_quantized else kind
            raise ModelLoadError(
                f"{where}: tensor {key} is {kind}; lstmprobe reads dense tensors of values: "
                "save the state_dict of the trained model (`.to_dense()` a sparse one)"
            )
        nbytes = value.numel() * value.element_size()
        if nbytes > MAX_TENSOR_BYTES:
            raise ModelLoadError(
                f"{where}: tensor {key} declares shape {tuple(value.shape)} ({nbytes:,} bytes), "
                f"too large for a char model (lstmprobe reads at most {MAX_TENSOR_BYTES:,} bytes "
                "per tensor); the file is damaged or not a char model"
            )


def check_shapes(
    model: CharLSTM, mapped: Mapping[str, torch.Tensor], source: Mapping[str, str], where: str
) -> None:
    """Name the file's tensor whose shape does not fit the model built from the others."""
    expected = model.state_dict()
    for name, value in mapped.items():
        if name in expected and tuple(value.shape) != tuple(expected[name].shape):
            c = model.config
            raise ModelLoadError(
                f"{where}: tensor {source.get(name, name)} has shape {tuple(value.shape)}, which "
                f"does not fit a {c.num_layers}-layer {c.cell.upper()} of {c.hidden_size} units "
                f"(as the other tensors say): it needs {tuple(expected[name].shape)}; the "
                "state_dict is malformed"
            )


def check_finite(state: Mapping[str, torch.Tensor], where: str) -> None:
    """Refuse NaN or infinite weights: every recorded value would be NaN."""
    for key, value in state.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise ModelLoadError(
                f"{where}: tensor {key} holds {bad} NaN or infinite value(s); the model diverged "
                "in training or the file is damaged (every recorded value would be NaN); use "
                "an earlier checkpoint"
            )


# --- finding the state_dict and the vocabulary --------------------------------------------------


def _plain(value: Any) -> Any:
    """A numpy array or similar as a plain Python object."""
    if isinstance(value, torch.Tensor):
        return value
    tolist = getattr(value, "tolist", None)
    return tolist() if callable(tolist) else value


def _module_parts(module: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state = dict(module.state_dict())
    entries: dict[str, Any] = {}
    for key in VOCAB_KEYS:
        try:
            value = getattr(module, key)
        except Exception:  # a TorchScript module may raise anything for an unknown attribute
            continue
        if isinstance(value, (str, list, tuple, dict)) or hasattr(value, "tolist"):
            entries[key] = _plain(value)
    return state, entries


def _describe(obj: Mapping[Any, Any], limit: int = 5) -> str:
    parts = []
    for key, value in list(obj.items())[:limit]:
        if isinstance(value, torch.Tensor):
            parts.append(f"{key} {tuple(value.shape)}")
        else:
            parts.append(f"{key} ({type(value).__name__})")
    more = f", ... ({len(obj)} in all)" if len(obj) > limit else ""
    return ", ".join(parts) + more


def unwrap(obj: Any, path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The tensors of the model and the entries that may hold its vocabulary."""
    if isinstance(obj, nn.Module):
        return _module_parts(obj)
    if not isinstance(obj, Mapping):
        raise ModelLoadError(
            f"model file {path} holds a {type(obj).__name__}, not a model; expected a "
            "state_dict (a dict of tensors), an lstmprobe checkpoint, or a module"
        )
    entries: dict[str, Any] = {k: _plain(obj[k]) for k in VOCAB_KEYS if k in obj}
    for key in WRAPPER_KEYS:
        inner = obj.get(key)
        if isinstance(inner, nn.Module):
            state, attrs = _module_parts(inner)
            return state, {**attrs, **entries}
        if isinstance(inner, Mapping) and any(isinstance(v, torch.Tensor) for v in inner.values()):
            inner_entries = {k: _plain(inner[k]) for k in VOCAB_KEYS if k in inner}
            return tensors_of(inner), {**inner_entries, **entries}
    tensors = tensors_of(obj)
    if not tensors:
        raise ModelLoadError(
            f"model file {path} holds a dict without tensors ({_describe(obj)}); expected a "
            "state_dict, or a dict with a 'state_dict', 'model_state_dict' or 'model' entry"
        )
    return tensors, entries


def tensors_of(obj: Mapping[Any, Any]) -> dict[str, torch.Tensor]:
    return {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def has_vocab(entries: dict[str, Any]) -> bool:
    """Whether a model file's entries hold a vocabulary (:func:`vocab_from` reads it)."""
    return any(key in entries for key in VOCAB_KEYS)


def vocab_from(entries: dict[str, Any], path: Path) -> Vocab:
    for key in VOCAB_KEYS:
        if key not in entries:
            continue
        value = entries[key]
        if isinstance(value, Mapping) and not isinstance(value, dict):
            value = dict(value)
        if isinstance(value, dict):
            nested = [k for k in ("itos", "chars", "stoi") if k in value]
            if nested:
                value = value[nested[0]]
        try:
            return Vocab.from_obj(value)
        except VocabError as exc:
            raise VocabError(
                f"the {key!r} entry of model file {path} is not a usable vocabulary: {exc}"
            ) from None
        except (TypeError, ValueError) as exc:
            raise VocabError(
                f"the {key!r} entry of model file {path} is not a usable vocabulary "
                f"({one_line(exc)}); give the vocabulary as `vocab` (a JSON file)"
            ) from None
    raise ModelLoadError(
        f"model file {path} stores no vocabulary (no {'/'.join(VOCAB_KEYS)} entry, nor a "
        f"{SAFETENSORS_VOCAB_KEY!r} metadata entry of a .safetensors file); give the "
        "vocabulary as `vocab`: a JSON file of a list of the characters in index order or a JSON object "
        "char -> index"
    )


# --- inferring the architecture from a state_dict -----------------------------------------------


@dataclass(frozen=True)
class _Recurrent:
    prefix: str
    cell: Cell
    num_layers: int
    input_size: int
    hidden_size: int
    proj_size: int
    bidirectional: bool
    bias: bool

    @property
    def output_size(self) -> int:
        return (self.proj_size or self.hidden_size) * (2 if self.bidirectional else 1)


def _shape(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


def _recurrent(state: dict[str, torch.Tensor], path: Path) -> _Recurrent:
    groups: dict[str, dict[tuple[str, int, bool], torch.Tensor]] = {}
    for key, value in state.items():
        m = _RNN_KEY.match(key)
        if m:
            groups.setdefault(m["prefix"], {})[
                (m["param"], int(m["layer"]), bool(m["reverse"]))
            ] = value
    if not groups:
        raise ModelLoadError(
            f"model file {path} holds no LSTM/GRU weights (no '*weight_ih_l0'/'*weight_hh_l0' "
            f"keys of an nn.LSTM or nn.GRU); found {_describe(state)}"
        )
    if len(groups) > 1:
        names = ", ".join(repr(p or "(no prefix)") for p in sorted(groups))
        raise ModelLoadError(
            f"model file {path} holds several separate recurrent modules ({names}); lstmprobe "
            "reads one nn.LSTM/nn.GRU (of any number of layers) per model; save a model with "
            "one multi-layer nn.LSTM/nn.GRU"
        )
    prefix, params = next(iter(groups.items()))
    where = f"recurrent module {prefix!r}" if prefix else "recurrent module"

    def bad(msg: str) -> ModelLoadError:
        return ModelLoadError(f"model file {path}: {where} {msg}")

    layers = sorted({layer for _, layer, _ in params})
    if layers != list(range(len(layers))):
        raise bad(f"has layers {layers}; expected layers 0..n-1 without gaps")
    bidirectional = any(rev for _, _, rev in params)
    directions = (False, True) if bidirectional else (False,)
    has = {name: [(name, k, r) in params for k in layers for r in directions] for name in
           ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")}  # fmt: skip
    for name in ("weight_ih", "weight_hh"):
        if not all(has[name]):
            raise bad(f"lacks {name} for some layer or direction; the state_dict is incomplete")
    for names in (("bias_ih", "bias_hh"), ("weight_hr",)):
        flags = [f for n in names for f in has[n]]
        if any(flags) and not all(flags):
            raise bad(f"has {'/'.join(names)} for some layers only; the state_dict is incomplete")
    bias = all(has["bias_ih"])
    w_hh = params[("weight_hh", 0, False)]
    w_ih = params[("weight_ih", 0, False)]
    for (name, layer, reverse), value in sorted(params.items()):
        want = 2 if name.startswith("weight") else 1
        if value.dim() != want:
            key = f"{prefix}{name}_l{layer}{'_reverse' if reverse else ''}"
            raise bad(
                f"has tensor {key} of shape {_shape(value)}, not a "
                f"{'matrix' if want == 2 else 'vector'}; the state_dict is malformed"
            )
    if all(has["weight_hr"]):
        w_hr = params[("weight_hr", 0, False)]
        proj_size, hidden_size = _shape(w_hr)
    else:
        proj_size, hidden_size = 0, w_hh.shape[1]
    rows = w_hh.shape[0]
    if hidden_size < 1 or rows % hidden_size or rows // hidden_size not in (3, 4):
        raise bad(
            f"has weight_hh_l0 of shape {_shape(w_hh)}; expected (4H, H) for an LSTM or "
            f"(3H, H) for a GRU"
        )
    cell: Cell = "lstm" if rows // hidden_size == 4 else "gru"
    if proj_size and cell != "lstm":
        raise bad("has weight_hr (proj_size) but gate rows of a GRU; only LSTMs have proj_size")
    return _Recurrent(
        prefix=prefix,
        cell=cell,
        num_layers=len(layers),
        input_size=w_ih.shape[1],
        hidden_size=hidden_size,
        proj_size=proj_size,
        bidirectional=bidirectional,
        bias=bias,
    )


def _sibling_bias(state: dict[str, torch.Tensor], key: str) -> torch.Tensor | None:
    if key.endswith("weight"):
        bias = state.get(key[: -len("weight")] + "bias")
        if bias is not None and bias.dim() == 1 and bias.shape[0] == state[key].shape[0]:
            return bias
    return None


def _pick_key(state: dict[str, torch.Tensor], key: str, role: str, path: Path) -> str:
    for candidate in (key, f"{key}.weight"):
        if candidate in state and state[candidate].dim() == 2:
            return candidate
    matrices = ", ".join(f"{k} {_shape(v)}" for k, v in state.items() if v.dim() == 2)
    raise ModelLoadError(
        f"`{role}={key}` is not a matrix in model file {path}; its matrices are: {matrices}"
    )


def _ambiguous(role: str, keys: list[str], state: dict[str, torch.Tensor], path: Path) -> str:
    listed = ", ".join(f"{k} {_shape(state[k])}" for k in keys)
    return (
        f"model file {path} has {len(keys)} candidate {role}s: {listed}; pick one with "
        f"`{role}` (e.g. `{role}={keys[0]}`)"
    )


def state_dict_to_model(
    state: dict[str, torch.Tensor],
    path: Path,
    embedding: str | None,
    decoder: str | None,
    check_vocab: Callable[[int, str], None],
) -> tuple[CharLSTM, dict[str, Any]]:
    """Infer a :class:`CharLSTM` from the tensors, and what became of them.

    ``check_vocab(size, size_of)`` is called with the vocabulary size read from the tensors and
    how it was read (e.g. "the model's embedding emb.weight has"), before the model is built.
    """
    state = {k: v for k, v in state.items() if v.is_floating_point()}
    check_tensors(state, f"model file {path}")
    rnn = _recurrent(state, path)
    rnn_keys = {k for k in state if _RNN_KEY.match(k)}
    others = {k: v for k, v in state.items() if k not in rnn_keys}
    matrices = [k for k, v in others.items() if v.dim() == 2]

    # the embedding: a matrix (vocab, input_size) that is not a Linear (nn.Embedding has no bias)
    if embedding is not None:
        emb_key: str | None = _pick_key(others, embedding, "embedding", path)
        if others[emb_key].shape[1] != rnn.input_size:
            raise ModelLoadError(
                f"`embedding={emb_key}` has shape {_shape(others[emb_key])} but the recurrent "
                f"layers read inputs of size {rnn.input_size}; pick a (vocab, {rnn.input_size}) "
                "matrix"
            )
    else:
        emb_candidates = [
            k
            for k in matrices
            if others[k].shape[1] == rnn.input_size and _sibling_bias(others, k) is None
        ]
        if len(emb_candidates) > 1:
            hinted = [k for k in emb_candidates if re.search(r"emb|encoder", k, re.IGNORECASE)]
            if len(hinted) != 1:
                raise ModelLoadError(_ambiguous("embedding", emb_candidates, others, path))
            emb_candidates = hinted
        emb_key = emb_candidates[0] if emb_candidates else None
    vocab_size = others[emb_key].shape[0] if emb_key is not None else rnn.input_size
    if emb_key is not None:
        size_of = f"the model's embedding {emb_key} has"
    else:
        size_of = "the model (one-hot input, no embedding found) reads vectors of size"

    # the decoder: a matrix (vocab, output_size), preferably with a bias (an nn.Linear)
    if decoder is not None:
        dec_key: str | None = _pick_key(others, decoder, "decoder", path)
        if _shape(others[dec_key]) != (vocab_size, rnn.output_size):
            raise ModelLoadError(
                f"`decoder={dec_key}` has shape {_shape(others[dec_key])}; expected "
                f"({vocab_size}, {rnn.output_size}): vocabulary size by last hidden size"
            )
    else:
        dec_candidates = [
            k
            for k in matrices
            if k != emb_key and _shape(others[k]) == (vocab_size, rnn.output_size)
        ]
        linear = [k for k in dec_candidates if _sibling_bias(others, k) is not None]
        dec_candidates = linear or dec_candidates
        if len(dec_candidates) > 1:
            raise ModelLoadError(_ambiguous("decoder", dec_candidates, others, path))
        dec_key = dec_candidates[0] if dec_candidates else None

    config = ModelConfig(
        vocab_size=vocab_size,
        hidden_size=rnn.hidden_size,
        num_layers=rnn.num_layers,
        cell=rnn.cell,
        embedding_dim=rnn.input_size if emb_key is not None else None,
        proj_size=rnn.proj_size,
        bidirectional=rnn.bidirectional,
        bias=rnn.bias,
        decoder=dec_key is not None,
    )
    mapped: dict[str, torch.Tensor] = {
        "rnn." + k[len(rnn.prefix) :]: state[k].detach() for k in sorted(rnn_keys)
    }
    used = set(rnn_keys)
    if emb_key is not None:
        mapped["embedding.weight"] = others[emb_key].detach()
        used.add(emb_key)
    dec_bias_key = None
    if dec_key is not None:
        weight = others[dec_key].detach()
        bias = _sibling_bias(others, dec_key)
        mapped["decoder.weight"] = weight
        mapped["decoder.bias"] = bias.detach() if bias is not None else weight.new_zeros(vocab_size)
        used.add(dec_key)
        if bias is not None:
            dec_bias_key = dec_key[: -len("weight")] + "bias"
            used.add(dec_bias_key)
    source = {"rnn." + k[len(rnn.prefix) :]: k for k in rnn_keys}
    if emb_key is not None:
        source["embedding.weight"] = emb_key
    if dec_key is not None:
        source["decoder.weight"] = dec_key
        if dec_bias_key is not None:
            source["decoder.bias"] = dec_bias_key
    check_vocab(vocab_size, size_of)
    model = CharLSTM(config)
    check_shapes(model, mapped, source, f"model file {path}")
    check_finite({source.get(k, k): v for k, v in mapped.items()}, f"model file {path}")
    try:
        model.load_state_dict(mapped, strict=True)
    except RuntimeError as exc:
        raise ModelLoadError(
            f"model file {path}: the inferred {rnn.cell.upper()} does not fit its tensors "
            f"({one_line(exc)}); the state_dict is malformed"
        ) from None
    extra = {
        "keys": {
            "embedding": emb_key,
            "recurrent": rnn.prefix,
            "decoder": dec_key,
            "decoder_bias": dec_bias_key,
        },
        "ignored": sorted(k for k in state if k not in used),
    }
    return model, extra
