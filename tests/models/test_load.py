"""Loading every accepted model file form (lstmprobe/models/, docs/model-files.md)."""

from __future__ import annotations

import importlib
import json
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from lstmprobe.errors import LstmprobeError, ModelLoadError, VocabError, for_cli
from lstmprobe.models import (
    CharLSTM,
    LoadedModel,
    ModelConfig,
    bundled,
    file_sha256,
    load_model,
    save_checkpoint,
)
from lstmprobe.text import Vocab

# torch warns (once per process) when it runs an LSTM with proj_size on CPU
pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections:UserWarning")

CHARS = tuple("abcdefg\n ")
V = len(CHARS)
VOCAB = Vocab(CHARS)


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Any:
    """Tiny models run fastest on one thread; several spin-wait on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --- user-defined models, as people write them (module level so that they can be pickled) ---


class UserModel(nn.Module):
    """Embedding or one-hot -> nn.LSTM/nn.GRU -> optional Linear, attribute names configurable."""

    def __init__(
        self,
        *,
        emb_dim: int | None = 5,
        hidden: int = 6,
        layers: int = 1,
        cell: str = "lstm",
        bidirectional: bool = False,
        proj_size: int = 0,
        bias: bool = True,
        decoder: bool = True,
        decoder_bias: bool = True,
        batch_first: bool = True,
        names: tuple[str, str, str] = ("emb", "lstm", "fc"),
    ) -> None:
        super().__init__()
        self.names = names
        self.batch_first = batch_first
        if emb_dim is not None:
            setattr(self, names[0], nn.Embedding(V, emb_dim))
        kwargs: dict[str, Any] = dict(
            num_layers=layers, bias=bias, batch_first=batch_first, bidirectional=bidirectional
        )
        if cell == "lstm":
            rnn: nn.Module = nn.LSTM(emb_dim or V, hidden, proj_size=proj_size, **kwargs)
        else:
            rnn = nn.GRU(emb_dim or V, hidden, **kwargs)
        setattr(self, names[1], rnn)
        out = (proj_size or hidden) * (2 if bidirectional else 1)
        if decoder:
            setattr(self, names[2], nn.Linear(out, V, bias=decoder_bias))
        self.has_emb, self.has_dec = emb_dim is not None, decoder

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        emb, rnn, dec = self.names
        x = getattr(self, emb)(ids) if self.has_emb else F.one_hot(ids, V).float()
        if not self.batch_first:
            x = x.transpose(0, 1)
        out, _ = getattr(self, rnn)(x)
        if not self.batch_first:
            out = out.transpose(0, 1)
        return getattr(self, dec)(out) if self.has_dec else out


class ListModel(nn.Module):
    """Layers in an nn.ModuleList: keys ``layers.0.weight``, ``layers.1.weight_ih_l0``, ..."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Embedding(V, 4), nn.LSTM(4, 5, 2), nn.Linear(5, V)])

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out, _ = self.layers[1](self.layers[0](ids).transpose(0, 1))
        return self.layers[2](out.transpose(0, 1))


class WordLM(nn.Module):
    """PyTorch's word_language_model naming: ``encoder`` (Embedding), ``rnn``, tied ``decoder``."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Embedding(V, 6)
        self.rnn = nn.LSTM(6, 6, 2, batch_first=True)
        self.decoder = nn.Linear(6, V)
        self.decoder.weight = self.encoder.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.rnn(self.encoder(ids))[0])


class Wrapped(nn.Module):
    """As saved from nn.DataParallel: every key starts with ``module.``."""

    def __init__(self) -> None:
        super().__init__()
        self.module = UserModel(names=("embed", "encoder", "decoder"), cell="gru")

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.module(ids)


class ScriptableModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(V, 4)
        self.lstm = nn.LSTM(4, 5, batch_first=True)
        self.fc = nn.Linear(5, V)
        self.chars = list(CHARS)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.emb(ids))
        return self.fc(out)


# --- helpers ---


def ids(seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, V, (2, 11), generator=g)


def seeded(factory: Any, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return factory().eval()


def assert_same_outputs(original: Callable[[torch.Tensor], Any], loaded: LoadedModel) -> None:
    x = ids()
    with torch.no_grad():
        expected = original(x)
        got, _ = loaded.model(x)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-6)


def assert_loaded(loaded: LoadedModel, path: Path, form: str) -> None:
    assert isinstance(loaded.model, CharLSTM)
    assert not loaded.model.training
    assert loaded.form == form
    assert loaded.path == path
    assert loaded.sha256 == file_sha256(path)


def fails(exc_type: type[LstmprobeError], *words: str, **kwargs: Any) -> str:
    """Load and return the error message, checking it is one line holding every word."""
    source = kwargs.pop("source")
    with pytest.raises(exc_type) as info:
        load_model(source, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    assert "Traceback" not in message
    assert " --" not in message, message  # a Python caller is told of parameters, not flags
    shown = for_cli(message)  # what the command line prints: the flags
    for word in words:
        assert word.lower() in shown.lower(), (word, shown)
    return message


def save(obj: Any, path: Path) -> Path:
    torch.save(obj, path)
    return path


# --- form 1: lstmprobe checkpoints ---


@pytest.mark.parametrize(
    "config",
    [
        dict(embedding_dim=4),
        dict(embedding_dim=None, num_layers=2, cell="gru"),
        dict(embedding_dim=3, bidirectional=True, proj_size=2),
        dict(embedding_dim=3, decoder=False, bias=False),
    ],
    ids=["lstm", "gru-onehot", "bidir-proj", "nodecoder-nobias"],
)
def test_checkpoint_round_trip(tmp_path: Path, config: dict[str, Any]) -> None:
    torch.manual_seed(0)
    model = CharLSTM(ModelConfig(vocab_size=V, hidden_size=5, **config)).eval()  # type: ignore[arg-type]
    path = save_checkpoint(tmp_path / "m.pt", model, VOCAB, extra={"step": 3})
    loaded = load_model(path)
    assert_loaded(loaded, path, "checkpoint")
    assert loaded.vocab == VOCAB
    assert loaded.model.config == model.config
    assert_same_outputs(lambda x: model(x)[0], loaded)


def test_checkpoint_vocab_override_and_mismatch(tmp_path: Path) -> None:
    model = CharLSTM(ModelConfig(vocab_size=V, hidden_size=3))
    path = save_checkpoint(tmp_path / "m.pt", model, VOCAB)
    other = Vocab(tuple("ABCDEFGHI"))
    fails(VocabError, "other characters", "--force", source=path, vocab=other)
    assert load_model(path, vocab=other, force=True).vocab == other
    fails(VocabError, "3", str(V), "--vocab", source=path, vocab=Vocab(("a", "b", "c")))


def test_checkpoint_of_a_newer_format_is_refused(tmp_path: Path) -> None:
    model = CharLSTM(ModelConfig(vocab_size=V, hidden_size=3))
    path = save_checkpoint(tmp_path / "m.pt", model, VOCAB, extra={"format_version": 99})
    fails(ModelLoadError, "version 99", "upgrade", source=path)


# --- form 2: plain state_dicts of user models ---


STATE_DICT_MODELS: dict[str, Any] = {
    "emb-lstm-fc": lambda: UserModel(),
    "onehot": lambda: UserModel(emb_dim=None),
    "no-decoder": lambda: UserModel(decoder=False),
    "gru": lambda: UserModel(cell="gru", names=("embedding", "gru", "out")),
    "2-layer-bidirectional": lambda: UserModel(layers=2, bidirectional=True),
    "proj-size": lambda: UserModel(layers=2, proj_size=3),
    "bias-false": lambda: UserModel(bias=False, decoder_bias=False),
    "seq-first": lambda: UserModel(batch_first=False, cell="gru", layers=2),
    "module-list": ListModel,
    "tied-word-lm": WordLM,
    "data-parallel-prefix": Wrapped,
    "onehot-gru-no-decoder": lambda: UserModel(emb_dim=None, decoder=False, cell="gru"),
    "emb-dim-equals-hidden": lambda: UserModel(emb_dim=6, hidden=6, decoder_bias=False),
}


@pytest.mark.parametrize("name", list(STATE_DICT_MODELS))
def test_state_dict_rebuilds_the_same_function(tmp_path: Path, name: str) -> None:
    original = seeded(STATE_DICT_MODELS[name])
    path = save({"state_dict": original.state_dict(), "chars": list(CHARS)}, tmp_path / "m.pt")
    loaded = load_model(path)
    assert_loaded(loaded, path, "state_dict")
    assert loaded.vocab == VOCAB
    assert_same_outputs(original, loaded)
    assert loaded.extra["ignored"] == []


def test_state_dict_inferred_config(tmp_path: Path) -> None:
    original = seeded(lambda: UserModel(layers=2, bidirectional=True, proj_size=2, emb_dim=3))
    path = save(original.state_dict(), tmp_path / "m.pt")
    config = load_model(path, vocab=VOCAB).model.config
    assert config == ModelConfig(
        vocab_size=V,
        hidden_size=6,
        num_layers=2,
        cell="lstm",
        embedding_dim=3,
        proj_size=2,
        bidirectional=True,
    )
    gru = seeded(lambda: UserModel(cell="gru", emb_dim=None, decoder=False))
    path = save(gru.state_dict(), tmp_path / "g.pt")
    config = load_model(path, vocab=VOCAB).model.config
    assert (config.cell, config.embedding_dim, config.decoder) == ("gru", None, False)


def test_state_dict_with_a_bare_rnn_and_no_prefix(tmp_path: Path) -> None:
    torch.manual_seed(0)
    rnn = nn.LSTM(V, 4, batch_first=True).eval()
    path = save(rnn.state_dict(), tmp_path / "rnn.pt")
    loaded = load_model(path, vocab=VOCAB)
    assert loaded.extra["keys"]["recurrent"] == ""
    x = ids()
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x)[0], rnn(F.one_hot(x, V).float())[0])


def test_unrelated_tensors_are_ignored_and_reported(tmp_path: Path) -> None:
    original = seeded(UserModel)
    state = dict(original.state_dict())
    state["norm.weight"] = torch.ones(6)
    state["step"] = torch.tensor(7)
    path = save(state, tmp_path / "m.pt")
    loaded = load_model(path, vocab=VOCAB)
    assert loaded.extra["ignored"] == ["norm.weight"]
    assert loaded.extra["keys"] == {
        "embedding": "emb.weight",
        "recurrent": "lstm.",
        "decoder": "fc.weight",
        "decoder_bias": "fc.bias",
    }
    assert_same_outputs(original, loaded)


def test_two_candidate_embeddings_need_the_flag(tmp_path: Path) -> None:
    original = seeded(
        lambda: UserModel(emb_dim=6, hidden=6, decoder_bias=False, names=("a", "r", "b"))
    )
    path = save(original.state_dict(), tmp_path / "m.pt")
    message = fails(ModelLoadError, "a.weight", "b.weight", "--embedding", source=path, vocab=VOCAB)
    assert "embedding" in message
    loaded = load_model(path, vocab=VOCAB, embedding="a")
    assert loaded.extra["keys"]["embedding"] == "a.weight"
    assert loaded.extra["keys"]["decoder"] == "b.weight"
    assert_same_outputs(original, loaded)
    fails(
        ModelLoadError,
        "--embedding",
        "nope",
        "a.weight",
        source=path,
        vocab=VOCAB,
        embedding="nope",
    )


def test_two_candidate_decoders_need_the_flag(tmp_path: Path) -> None:
    original = seeded(UserModel)
    state = dict(original.state_dict())
    state["head2.weight"] = torch.randn(V, 6)
    state["head2.bias"] = torch.randn(V)
    path = save(state, tmp_path / "m.pt")
    fails(ModelLoadError, "fc.weight", "head2.weight", "--decoder", source=path, vocab=VOCAB)
    loaded = load_model(path, vocab=VOCAB, decoder="fc")
    assert_same_outputs(original, loaded)
    assert loaded.extra["ignored"] == ["head2.bias", "head2.weight"]


# --- where the vocabulary comes from ---


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: {"state_dict": sd, "chars": list(CHARS)},
        lambda sd: {"model": sd, "stoi": {c: i for i, c in enumerate(CHARS)}},
        lambda sd: {"model_state_dict": sd, "itos": dict(enumerate(CHARS)), "epoch": 4},
        lambda sd: {**sd, "vocab": "".join(CHARS)},
        lambda sd: {"model": {**sd, "itos": list(CHARS)}, "optimizer": {"lr": 0.1}},
        lambda sd: {"state_dict": sd, "vocab": {"stoi": {c: i for i, c in enumerate(CHARS)}}},
    ],
    ids=["chars-list", "stoi", "itos-dict", "top-level", "inside-model", "nested-stoi"],
)
def test_vocab_entry_in_the_file(tmp_path: Path, wrap: Any) -> None:
    original = seeded(UserModel)
    path = save(wrap(original.state_dict()), tmp_path / "m.pt")
    loaded = load_model(path)
    assert loaded.vocab == VOCAB
    assert_same_outputs(original, loaded)


@pytest.mark.parametrize(
    "content",
    [list(CHARS), {c: i for i, c in enumerate(CHARS)}],
    ids=["json-list", "json-object"],
)
def test_vocab_file(tmp_path: Path, content: Any) -> None:
    original = seeded(UserModel)
    path = save(original.state_dict(), tmp_path / "m.pt")
    vocab_file = tmp_path / "vocab.json"
    vocab_file.write_text(json.dumps(content), encoding="utf-8")
    assert load_model(path, vocab=vocab_file).vocab == VOCAB
    assert load_model(path, vocab=str(vocab_file)).vocab == VOCAB


def test_vocab_argument_overrides_the_file(tmp_path: Path) -> None:
    original = seeded(UserModel)
    path = save({"state_dict": original.state_dict(), "chars": list(CHARS)}, tmp_path / "m.pt")
    other = Vocab(tuple("ABCDEFGHI"))
    fails(VocabError, "other characters", "--force", source=path, vocab=other)
    assert load_model(path, vocab=other, force=True).vocab == other


def test_no_vocab_anywhere(tmp_path: Path) -> None:
    path = save(seeded(UserModel).state_dict(), tmp_path / "m.pt")
    fails(ModelLoadError, "no vocabulary", "--vocab", source=path)


@pytest.mark.parametrize(
    ("factory", "words"),
    [
        (UserModel, ["embedding", "emb.weight", "3", str(V)]),
        (lambda: UserModel(emb_dim=None), ["one-hot", "3", str(V)]),
    ],
    ids=["embedding-rows", "one-hot-size"],
)
def test_vocab_size_mismatch(tmp_path: Path, factory: Any, words: list[str]) -> None:
    path = save(seeded(factory).state_dict(), tmp_path / "m.pt")
    fails(VocabError, *words, source=path, vocab=Vocab(("x", "y", "z")))


def test_malformed_vocab_entry(tmp_path: Path) -> None:
    sd = seeded(UserModel).state_dict()
    path = save({"state_dict": sd, "chars": ["ab", "c"]}, tmp_path / "m.pt")
    fails(VocabError, "'chars'", "single characters", source=path)
    vocab_file = tmp_path / "v.json"
    vocab_file.write_text("{not json", encoding="utf-8")
    fails(VocabError, "not valid JSON", source=path, vocab=vocab_file)


# --- form 3: TorchScript ---


def test_torchscript_archive(tmp_path: Path) -> None:
    original = seeded(ScriptableModel)
    path = tmp_path / "m.ts"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(original), str(path))
    loaded = load_model(path)
    assert_loaded(loaded, path, "torchscript")
    assert loaded.vocab == VOCAB
    assert_same_outputs(original, loaded)


# --- form 4: pickled full modules ---


def test_pickle_is_refused_without_trust(tmp_path: Path) -> None:
    original = seeded(UserModel)
    path = save(original, tmp_path / "full.pt")
    message = fails(
        ModelLoadError, "pickled", "arbitrary code", "--trust-pickle", "state_dict()", source=path
    )
    assert "UserModel" in message


def test_pickle_is_loaded_with_trust(tmp_path: Path) -> None:
    original = seeded(lambda: UserModel(cell="gru", layers=2))
    original.chars = "".join(CHARS)  # type: ignore[assignment]
    path = save(original, tmp_path / "full.pt")
    loaded = load_model(path, trust_pickle=True)
    assert_loaded(loaded, path, "pickle")
    assert loaded.vocab == VOCAB
    assert_same_outputs(original, loaded)
    wrapped = save({"model": original, "itos": list(CHARS)}, tmp_path / "wrapped.pt")
    assert_same_outputs(original, load_model(wrapped, trust_pickle=True))


MISSING_MODULE_SOURCE = """
from torch import nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(9, 3)
        self.lstm = nn.LSTM(3, 4)
        self.chars = "abcdefg\\n "
"""


@pytest.fixture
def pickled_from_elsewhere(tmp_path: Path) -> Any:
    """A pickle whose class lives in a module that is importable only while saving."""
    name = f"lp_user_model_{os.getpid()}"
    src = tmp_path / "src"
    src.mkdir()
    (src / f"{name}.py").write_text(MISSING_MODULE_SOURCE, encoding="utf-8")
    sys.path.insert(0, str(src))
    try:
        module = importlib.import_module(name)
        path = save(module.Net(), tmp_path / "full.pt")
    finally:
        sys.path.remove(str(src))
    yield name, module, path
    sys.modules.pop(name, None)
    importlib.invalidate_caches()


def test_pickle_whose_module_is_not_importable(pickled_from_elsewhere: Any) -> None:
    name, _, path = pickled_from_elsewhere
    sys.modules.pop(name, None)
    importlib.invalidate_caches()
    fails(ModelLoadError, name, "Net", "importable", "PYTHONPATH", source=path, trust_pickle=True)


def test_pickle_whose_class_is_gone(
    pickled_from_elsewhere: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, module, path = pickled_from_elsewhere
    monkeypatch.delattr(module, "Net")
    fails(ModelLoadError, name, "class Net", "PYTHONPATH", source=path, trust_pickle=True)


def test_pickle_from_elsewhere_loads_when_importable(pickled_from_elsewhere: Any) -> None:
    _, _, path = pickled_from_elsewhere
    loaded = load_model(path, trust_pickle=True)
    assert loaded.vocab == VOCAB
    assert loaded.model.config.decoder is False


# --- bad input: one clean error each ---


def test_missing_file(tmp_path: Path) -> None:
    fails(ModelLoadError, "does not exist", "lstmprobe models", source=tmp_path / "nope.pt")


def test_directory(tmp_path: Path) -> None:
    fails(ModelLoadError, "directory", source=tmp_path)


def test_bundled_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = seeded(UserModel)
    save({"state_dict": original.state_dict(), "chars": list(CHARS)}, tmp_path / "tiny.pt")
    monkeypatch.setattr(bundled, "DATA_DIR", tmp_path)
    monkeypatch.setitem(bundled.MODELS, "tiny", bundled.Bundled("tiny", "tiny.pt", "test"))
    monkeypatch.setitem(bundled.MODELS, "gone", bundled.Bundled("gone", "gone.pt", "test"))
    loaded = load_model("tiny")
    assert loaded.path == tmp_path / "tiny.pt"
    assert_same_outputs(original, loaded)
    fails(ModelLoadError, "bundled", "reinstall", source="gone")
    fails(ModelLoadError, "does not exist", "tiny", source="other")


def test_random_bytes(tmp_path: Path) -> None:
    path = tmp_path / "r.pt"
    path.write_bytes(bytes(range(256)) * 3)
    fails(ModelLoadError, "not a readable PyTorch model file", "torch.save", source=path)


def test_text_file(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    path.write_text("this is not a model\n", encoding="utf-8")
    fails(ModelLoadError, "text file", "torch.save", source=path)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    path.write_bytes(b"")
    fails(ModelLoadError, "empty", source=path)


@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "legacy"])
def test_truncated_file(tmp_path: Path, zipped: bool) -> None:
    whole = tmp_path / "whole.pt"
    torch.save(
        {"state_dict": seeded(UserModel).state_dict(), "chars": list(CHARS)},
        whole,
        _use_new_zipfile_serialization=zipped,
    )
    data = whole.read_bytes()
    path = tmp_path / "cut.pt"
    path.write_bytes(data[: len(data) // 2])
    fails(ModelLoadError, "truncated", source=path)


def test_truncated_torchscript(tmp_path: Path) -> None:
    whole = tmp_path / "whole.ts"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(seeded(ScriptableModel)), str(whole))
    data = whole.read_bytes()
    path = tmp_path / "cut.ts"
    path.write_bytes(data[: len(data) // 2])
    fails(ModelLoadError, "truncated", source=path)


def test_plain_pickle(tmp_path: Path) -> None:
    import pickle

    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps({"a": 1}, protocol=4))
    fails(ModelLoadError, "pickle.dump", "torch.save", source=path)


def test_zip_that_is_not_a_torch_file(tmp_path: Path) -> None:
    import zipfile

    path = tmp_path / "m.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("notes.txt", "hello")
    fails(ModelLoadError, "zip archive but not", "torch.save", source=path)


def test_trusted_pickle_of_a_checkpoint_with_python_objects(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = CharLSTM(ModelConfig(vocab_size=V, hidden_size=4, embedding_dim=3)).eval()
    path = save_checkpoint(tmp_path / "m.pt", model, VOCAB, extra={"args": UserModel})
    fails(ModelLoadError, "--trust-pickle", source=path)
    loaded = load_model(path, trust_pickle=True)
    assert loaded.form == "pickle"
    assert loaded.model.config == model.config
    assert_same_outputs(lambda x: model(x)[0], loaded)


def test_dict_of_non_tensors(tmp_path: Path) -> None:
    path = save({"epoch": 3, "name": "run7"}, tmp_path / "m.pt")
    fails(ModelLoadError, "without tensors", "epoch", "state_dict", source=path)


def test_not_a_dict(tmp_path: Path) -> None:
    path = save([torch.zeros(2)], tmp_path / "m.pt")
    fails(ModelLoadError, "holds a list", source=path)


def test_no_recurrent_weights(tmp_path: Path) -> None:
    path = save(nn.Sequential(nn.Embedding(V, 3), nn.Linear(3, V)).state_dict(), tmp_path / "m.pt")
    fails(ModelLoadError, "no LSTM/GRU weights", "0.weight (9, 3)", "1.bias (9,)", source=path)


def test_several_recurrent_modules(tmp_path: Path) -> None:
    state = {
        **{f"lstm1.{k}": v for k, v in nn.LSTM(3, 4).state_dict().items()},
        **{f"lstm2.{k}": v for k, v in nn.LSTM(4, 4).state_dict().items()},
    }
    path = save(state, tmp_path / "m.pt")
    fails(ModelLoadError, "several", "'lstm1.'", "'lstm2.'", source=path, vocab=VOCAB)


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda s: s.pop("lstm.weight_hh_l1"), ["lacks weight_hh"]),
        (lambda s: s.pop("lstm.bias_ih_l1"), ["bias_ih/bias_hh", "some layers"]),
        (lambda s: s.update({"lstm.weight_hh_l0": torch.zeros(30, 6)}), ["(30, 6)", "(4H, H)"]),
        (lambda s: s.update({"lstm.weight_ih_l1": torch.zeros(24, 2)}), ["does not fit"]),
        (lambda s: s.pop("lstm.weight_ih_l0"), ["lacks weight_ih"]),
    ],
    ids=["missing-layer-weight", "partial-bias", "odd-gate-rows", "bad-layer-input", "gap"],
)
def test_malformed_recurrent_weights(tmp_path: Path, edit: Any, words: list[str]) -> None:
    state = dict(seeded(lambda: UserModel(layers=2)).state_dict())
    edit(state)
    path = save(state, tmp_path / "m.pt")
    fails(ModelLoadError, *words, source=path, vocab=VOCAB)


def test_bad_map_location(tmp_path: Path) -> None:
    path = save(seeded(UserModel).state_dict(), tmp_path / "m.pt")
    fails(ModelLoadError, "map_location", source=path, vocab=VOCAB, map_location="nonsense")
    if not torch.cuda.is_available():
        fails(ModelLoadError, "cuda", "'cpu'", source=path, vocab=VOCAB, map_location="cuda")


# --- TorchScript archives are read without running their code ---


class MarkerWriter(nn.Module):
    """A submodule whose TorchScript ``__setstate__`` writes bytes into a file when loaded."""

    def __init__(self, marker: str) -> None:
        super().__init__()
        self.marker = marker
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale

    @torch.jit.export
    def __getstate__(self) -> tuple[str, torch.Tensor, bool]:
        return (self.marker, self.scale, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[str, torch.Tensor, bool]) -> None:
        self.marker = state[0]
        self.scale = state[1]
        written = torch.from_file(self.marker, shared=True, size=8, dtype=torch.uint8)
        written.fill_(65)
        self.training = state[2] and bool(written.sum() > 0)


class HostileScript(nn.Module):
    """A valid char-LSTM whose archive also runs code at load (through MarkerWriter)."""

    def __init__(self, marker: str) -> None:
        super().__init__()
        self.emb = nn.Embedding(V, 4)
        self.lstm = nn.LSTM(4, 5, batch_first=True)
        self.fc = nn.Linear(5, V)
        self.chars = list(CHARS)
        self.hook = MarkerWriter(marker)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.emb(ids))
        return self.fc(self.hook(out))


def hostile_archive(tmp_path: Path) -> tuple[Path, Path, nn.Module]:
    """A real TorchScript archive that writes ``marker`` when ``torch.jit.load`` reads it."""
    marker = tmp_path / "marker"
    torch.manual_seed(0)
    original = HostileScript(str(marker)).eval()
    path = tmp_path / "hostile.ts"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(original), str(path))
    return path, marker, original


def test_hostile_archive_really_runs_code_under_torch_jit_load(tmp_path: Path) -> None:
    """The archive of the next tests is a real threat: torch.jit.load writes the marker."""
    path, marker, _ = hostile_archive(tmp_path)
    assert not marker.exists()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.load(str(path))
    assert marker.read_bytes() == b"A" * 8


def test_torchscript_archive_is_read_without_running_its_code(tmp_path: Path) -> None:
    path, marker, original = hostile_archive(tmp_path)
    loaded = load_model(path)
    assert not marker.exists()
    assert_loaded(loaded, path, "torchscript")
    assert loaded.vocab == VOCAB
    x = ids()
    with torch.no_grad():
        expected = original.fc(original.lstm(original.emb(x))[0])
        got, _ = loaded.model(x)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("command", ["record", "sample", "evaluate"])
def test_no_command_runs_code_from_a_torchscript_archive(tmp_path: Path, command: str) -> None:
    from click.testing import CliRunner

    from lstmprobe.cli import main

    path, marker, _ = hostile_archive(tmp_path)
    corpus = tmp_path / "c.txt"
    corpus.write_text("abc defg\nab cd\n" * 4)
    args = {
        "record": ["record", str(path), str(corpus), "-o", str(tmp_path / "a.h5"), "-q"],
        "sample": ["sample", str(path), "--prime", "ab", "-n", "5", "--seed", "0"],
        "evaluate": ["evaluate", str(path), str(corpus), "--task", "none"],
    }[command]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert not marker.exists()


def test_torchscript_archive_naming_other_globals_is_refused(tmp_path: Path) -> None:
    """A data.pkl that calls a function (here os.system) is refused, and nothing is called."""
    import pickle
    import zipfile

    marker = tmp_path / "marker"

    class Call:
        def __reduce__(self) -> Any:
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.ts"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("evil/data.pkl", pickle.dumps({"w": Call()}, protocol=2))
        zf.writestr("evil/constants.pkl", pickle.dumps((), protocol=2))
    fails(ModelLoadError, "TorchScript", "posix.system", source=path)
    assert not marker.exists()


# --- .safetensors files: weights only, nothing to run ---


def test_safetensors_state_dict_with_vocab_file(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    original = seeded(UserModel)
    path = tmp_path / "m.safetensors"
    save_file({k: v.contiguous() for k, v in original.state_dict().items()}, str(path))
    vocab_file = tmp_path / "vocab.json"
    vocab_file.write_text(json.dumps(list(CHARS)))
    loaded = load_model(path, vocab=vocab_file)
    assert_loaded(loaded, path, "safetensors")
    assert loaded.vocab == VOCAB
    assert_same_outputs(original, loaded)
    fails(ModelLoadError, "no vocabulary", "--vocab", "metadata", source=path)


def test_safetensors_vocab_from_metadata(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    original = seeded(lambda: UserModel(cell="gru", layers=2, emb_dim=None))
    path = tmp_path / "m.safetensors"
    meta = {"vocab": json.dumps(list(CHARS))}
    save_file({k: v.contiguous() for k, v in original.state_dict().items()}, str(path), meta)
    loaded = load_model(path)
    assert loaded.vocab == VOCAB and loaded.model.config.cell == "gru"
    assert_same_outputs(original, loaded)
    save_file(original.state_dict(), str(path), {"vocab": "not json"})
    fails(VocabError, "metadata", "vocab", source=path)


def test_save_safetensors_round_trip(tmp_path: Path) -> None:
    from lstmprobe.models import save_safetensors

    torch.manual_seed(0)
    model = CharLSTM(ModelConfig(vocab_size=V, hidden_size=5, num_layers=2, embedding_dim=3))
    path = save_safetensors(tmp_path / "m.safetensors", model.eval(), VOCAB)
    loaded = load_model(path)
    assert loaded.form == "safetensors" and loaded.vocab == VOCAB
    assert loaded.model.config == model.config
    assert_same_outputs(lambda x: model(x)[0], loaded)


def test_refusals_point_to_safetensors(tmp_path: Path) -> None:
    path = save(seeded(UserModel), tmp_path / "full.pt")
    fails(ModelLoadError, ".safetensors", source=path)


def test_train_writes_a_safetensors_file_on_request(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from lstmprobe.cli import main

    corpus = tmp_path / "c.txt"
    corpus.write_text("".join(f"ab{i % 7}cd {i % 3}\n" for i in range(60)))
    out = tmp_path / "m.pt"
    args = ["train", str(corpus), "-o", str(out), "--hidden", "4", "--steps", "3", "-q"]
    result = CliRunner().invoke(main, [*args, "--safetensors", "--json"])
    assert result.exit_code == 0, result.output
    shared = tmp_path / "m.safetensors"
    assert json.loads(result.output)["safetensors"] == str(shared)
    checkpoint, weights = load_model(out), load_model(shared)
    assert weights.form == "safetensors" and weights.vocab == checkpoint.vocab
    assert weights.model.config == checkpoint.model.config
    assert_same_outputs(lambda x: checkpoint.model(x)[0], weights)
    bad = CliRunner().invoke(main, ["train", str(corpus), "-o", str(shared), "--safetensors"])
    assert bad.exit_code == 1 and "ends in .safetensors" in bad.output


# --- bad model input: one line, exit 1, no traceback (through the command line) ---


def cli_fails(tmp_path: Path, model: Path, *words: str, extra: tuple[str, ...] = ()) -> str:
    from click.testing import CliRunner

    from lstmprobe.cli import main

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("abc defg\nab cd\n" * 4)
    args = ["record", str(model), str(corpus), "-o", str(tmp_path / "a.h5"), "-q", *extra]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert not (tmp_path / "a.h5").exists()
    for word in words:
        assert word.lower() in result.stderr.lower(), (word, result.stderr)
    return result.stderr


def vocab_file(tmp_path: Path, content: Any = None) -> Path:
    path = tmp_path / "vocab.json"
    path.write_text(json.dumps(list(CHARS) if content is None else content))
    return path


def test_a_state_dict_declaring_huge_tensors_is_refused_before_allocating(tmp_path: Path) -> None:
    state = seeded(UserModel).state_dict()
    # a stride-0 view: a few bytes on disk, 4e10 values declared
    state["lstm.weight_hh_l0"] = torch.zeros(1).expand(400_000, 100_000)
    path = save(state, tmp_path / "huge.pt")
    cli_fails(
        tmp_path,
        path,
        "lstm.weight_hh_l0",
        "too large",
        extra=("--vocab", str(vocab_file(tmp_path))),
    )


def test_a_vocab_size_is_checked_before_building_the_model(tmp_path: Path) -> None:
    state = seeded(UserModel).state_dict()
    path = save(state, tmp_path / "m.pt")
    small = vocab_file(tmp_path, ["a", "b"])
    cli_fails(tmp_path, path, "2 characters", "emb.weight", extra=("--vocab", str(small)))


@pytest.mark.parametrize("content", [{"a": "x", "b": 1}, {"a": 1.5, "b": 0}, {"a": True, "b": 0}])
def test_a_vocab_object_with_non_integer_indices(tmp_path: Path, content: Any) -> None:
    path = save(seeded(UserModel).state_dict(), tmp_path / "m.pt")
    cli_fails(
        tmp_path,
        path,
        "vocab.json",
        "'a'",
        "integer",
        extra=("--vocab", str(vocab_file(tmp_path, content))),
    )


@pytest.mark.parametrize("value", ["abc", 3.5, True, None, 10**12])
def test_a_checkpoint_config_with_a_bad_size(tmp_path: Path, value: Any) -> None:
    model = CharLSTM(ModelConfig(vocab_size=V, hidden_size=4, embedding_dim=3))
    path = save_checkpoint(tmp_path / "m.pt", model, VOCAB)
    payload = torch.load(path, weights_only=True)
    payload["config"]["hidden_size"] = value
    torch.save(payload, path)
    cli_fails(tmp_path, path, "hidden_size", "checkpoint")


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_naming_the_tensor(tmp_path: Path, bad: float) -> None:
    state = seeded(UserModel).state_dict()
    state["lstm.weight_ih_l0"][3, 1] = bad
    path = save(state, tmp_path / "m.pt")
    cli_fails(
        tmp_path,
        path,
        "lstm.weight_ih_l0",
        "nan or infinite",
        extra=("--vocab", str(vocab_file(tmp_path))),
    )


def test_a_malformed_state_dict_names_the_tensor(tmp_path: Path) -> None:
    state = seeded(UserModel).state_dict()
    state["lstm.bias_hh_l0"] = torch.zeros(7)
    path = save(state, tmp_path / "m.pt")
    cli_fails(
        tmp_path,
        path,
        "lstm.bias_hh_l0",
        "(7,)",
        "(24,)",
        extra=("--vocab", str(vocab_file(tmp_path))),
    )
    state = seeded(UserModel).state_dict()
    state["lstm.weight_ih_l0"] = torch.zeros(24, 5, 2)
    path = save(state, tmp_path / "m.pt")
    cli_fails(tmp_path, path, "lstm.weight_ih_l0", extra=("--vocab", str(vocab_file(tmp_path))))


def test_a_reordered_vocab_for_a_checkpoint_needs_force(tmp_path: Path) -> None:
    model = CharLSTM(ModelConfig(vocab_size=V, hidden_size=4, embedding_dim=3))
    path = save_checkpoint(tmp_path / "m.pt", model, VOCAB)
    reordered = vocab_file(tmp_path, list(reversed(CHARS)))
    cli_fails(tmp_path, path, "order", "--force", extra=("--vocab", str(reordered)))
    loaded = load_model(path, vocab=reordered, force=True)
    assert loaded.vocab.chars == tuple(reversed(CHARS))
    assert load_model(path, vocab=vocab_file(tmp_path)).vocab == VOCAB  # the same: fine


# --- bounded loading: a zip's directory is checked before anything inflates (issue 17, 5) ---


def _deflated(src: Path, dst: Path) -> Path:
    """The same archive, each record deflated (torch writes them stored)."""
    import zipfile

    with zipfile.ZipFile(src) as zi, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED, 9) as zo:
        for info in zi.infolist():
            zo.writestr(info.filename, zi.read(info.filename))
    return dst


def test_a_highly_compressed_checkpoint_is_refused_before_torch_inflates_it(tmp_path: Path) -> None:
    """32 MiB of zeros deflate to 32 KB: the ratio is read from the zip's directory."""
    model = CharLSTM(ModelConfig(vocab_size=V, hidden_size=4, embedding_dim=3))
    plain = save_checkpoint(tmp_path / "plain.pt", model, VOCAB, {"junk": torch.zeros(8 << 20)})
    load_model(plain)  # stored records: loads
    bomb = _deflated(plain, tmp_path / "bomb.pt")
    assert bomb.stat().st_size < 200_000
    fails(ModelLoadError, "would inflate", "data/", "damaged or crafted", source=bomb)


def test_a_highly_compressed_torchscript_archive_is_refused(tmp_path: Path) -> None:
    original = seeded(ScriptableModel)
    original.register_buffer("junk", torch.zeros(8 << 20))
    path = tmp_path / "m.ts"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(original), str(path))
    assert load_model(path).form == "torchscript"
    bomb = _deflated(path, tmp_path / "bomb.ts")
    fails(ModelLoadError, "would inflate", "times", source=bomb)


def test_an_archive_declaring_more_than_the_largest_model_is_refused(tmp_path: Path) -> None:
    import zipfile

    from lstmprobe.models._torchscript import check_archive

    model = CharLSTM(ModelConfig(vocab_size=V, hidden_size=4, embedding_dim=3))
    path = save_checkpoint(tmp_path / "m.pt", model, VOCAB)
    with zipfile.ZipFile(path) as zf:
        check_archive(zf, path)  # within the limit
        declared = sum(i.file_size for i in zf.infolist())
        with pytest.raises(ModelLoadError, match=f"declares {declared:,} bytes uncompressed"):
            check_archive(zf, path, limit=declared - 1)


@pytest.mark.parametrize(
    ("how", "words"),
    [("sparse", ["torch.sparse_coo", "dense"]), ("meta", ["meta tensor"])],
)
def test_sparse_and_meta_tensors_are_refused(tmp_path: Path, how: str, words: list[str]) -> None:
    sd = dict(seeded(UserModel).state_dict())
    key = next(k for k in sd if k.endswith("weight_hh_l0"))
    sd[key] = sd[key].to_sparse() if how == "sparse" else torch.empty(sd[key].shape, device="meta")
    path = save({"state_dict": sd, "chars": list(CHARS)}, tmp_path / "m.pt")
    fails(ModelLoadError, key, *words, source=path)
    checkpoint = save_checkpoint(
        tmp_path / "c.pt", CharLSTM(ModelConfig(V, 4, embedding_dim=3)), VOCAB
    )
    obj = torch.load(checkpoint, weights_only=True)
    w = obj["state_dict"]["rnn.weight_hh_l0"]
    obj["state_dict"]["rnn.weight_hh_l0"] = (
        w.to_sparse() if how == "sparse" else torch.empty(w.shape, device="meta")
    )
    fails(ModelLoadError, "rnn.weight_hh_l0", *words, source=save(obj, checkpoint))


def test_a_vocabulary_with_a_lone_surrogate_is_refused(tmp_path: Path) -> None:
    checkpoint = save_checkpoint(
        tmp_path / "c.pt", CharLSTM(ModelConfig(4, 4, embedding_dim=3)), Vocab(tuple("abcd"))
    )
    obj = torch.load(checkpoint, weights_only=True)
    obj["vocab"] = ["a", "b", "c", "\ud83d"]  # half of an emoji
    fails(ModelLoadError, "lone surrogate", source=save(obj, checkpoint))
    vocab = tmp_path / "vocab.json"
    vocab.write_text(json.dumps(["a", "b", "\udc00", "d"]), encoding="utf-8")
    fails(
        VocabError, "vocabulary file", "entry 2", "lone surrogate", source=checkpoint, vocab=vocab
    )
