"""Attribution through time: the step-by-step unroll is the model's own computation, gradient x
input is the gradient of the fused model, integrated gradients are complete (their sums equal
f(x) - f(baseline) within 1% at 64 steps), and bad input is refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lstmprobe import Recorder
from lstmprobe.causal.attribution import _state_at, attribute, unroll
from lstmprobe.errors import AttributionError
from lstmprobe.models import CharLSTM, ModelConfig
from lstmprobe.text import Vocab

VOCAB = Vocab(tuple("ABxYab\n"))
TEXT = "AxxYaBxxxYb"


def _model(seed: int = 0, **config: object) -> CharLSTM:
    torch.manual_seed(seed)
    kwargs: dict = dict(vocab_size=len(VOCAB), hidden_size=5, num_layers=2, embedding_dim=3)
    kwargs.update(config)
    model = CharLSTM(ModelConfig(**kwargs)).eval()
    with torch.no_grad():  # larger weights: saturating, non-linear attributions
        for p in model.rnn.parameters():
            p.mul_(2.0)
    return model


MODELS = {
    "lstm": {},
    "gru": {"cell": "gru"},
    "projected lstm": {"proj_size": 3},
    "one-hot lstm": {"embedding_dim": None, "num_layers": 1},
}


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported")
@pytest.mark.parametrize("name", list(MODELS))
def test_the_unroll_is_the_models_own_computation(name):
    model = _model(**MODELS[name])
    ids = torch.from_numpy(VOCAB.encode(TEXT))[None]
    with torch.no_grad(), Recorder(model) as rec:
        logits, _ = model(ids)
    keys = list(rec.activations)
    with torch.no_grad():
        # from the state after 4 chars, as attribution's windows start
        kept, _ = unroll(model, model.embed(ids[:, 4:]), _state_at(model, ids[:, :4]),
                         keep=[*keys, "output"])  # fmt: skip
    for key in keys:
        torch.testing.assert_close(kept[key][0], rec.activations[key][0, 4:], atol=1e-5, rtol=0)
    torch.testing.assert_close(model.decoder(kept["output"][0]), logits[0, 4:], atol=1e-5, rtol=0)


def test_gradient_times_input_is_the_fused_models_gradient():
    """The chars' gradient x input equals autograd through nn.LSTM's own fused forward."""
    model = _model()
    pos = 8
    a = attribute(model, VOCAB, TEXT, pos, method="grad-input", window=100)
    ids = torch.from_numpy(VOCAB.encode(TEXT[: pos + 1]))[None]
    x = model.embed(ids).detach().requires_grad_(True)
    out, _ = model.rnn(x)
    lp = torch.log_softmax(model.decoder(out[0, -1]).double(), -1)[VOCAB.index(TEXT[pos + 1])]
    (g,) = torch.autograd.grad(lp, [x])
    np.testing.assert_allclose(a.inputs, (g * x).sum(-1)[0].detach().numpy(), atol=1e-6)
    assert a.value == pytest.approx(float(lp.detach()), abs=1e-6)
    assert a.target.char == TEXT[pos + 1] and a.start == 0 and a.text == TEXT[: pos + 1]


def test_gradient_times_state_matches_finite_differences():
    """A state unit's gradient x state is its value times the change of f when the state as the
    later steps read it is nudged (the other quantity of that step held)."""
    model = _model(seed=2)
    pos, t, j, eps = 9, 5, 3, 1e-3
    a = attribute(
        model, VOCAB, TEXT, pos, method="grad-input", states=["layer0/cell", "layer1/hidden"]
    )
    ids = torch.from_numpy(VOCAB.encode(TEXT[: pos + 1]))[None]
    x = model.embed(ids).detach()
    char = VOCAB.index(TEXT[pos + 1])
    for key, n in (("layer0/cell", 5), ("layer1/hidden", 5)):
        values = []
        for sign in (1, -1):
            probe = torch.zeros(1, pos + 1, n, dtype=torch.float64)
            probe[0, t, j] = sign * eps
            with torch.no_grad():
                kept, _ = unroll(model.double(), x.double(), [(torch.zeros(1, 5, dtype=torch.float64),) * 2] * 2,
                                 probe={key: probe}, keep=["output", key])  # fmt: skip
                values.append(
                    float(torch.log_softmax(model.decoder(kept["output"][0, -1]), -1)[char])
                )
            state = kept[key][0, t, j]  # as computed, before the nudge
        model.float()
        fd = (values[0] - values[1]) / (2 * eps) * float(state)
        assert a.states[key][t, j] == pytest.approx(fd, rel=2e-3, abs=1e-6), key


@pytest.mark.parametrize("name", ["lstm", "gru", "one-hot lstm"])
@pytest.mark.parametrize("target", ["char", "unit"])
def test_integrated_gradients_are_complete_within_one_percent_at_64_steps(name, target):
    model = _model(seed=3, **MODELS[name])
    unit = {
        "lstm": "layer1/cell/2",
        "gru": "layer1/hidden/2",
        "one-hot lstm": "layer0/forget_gate/1",
    }[name]
    kw = {"unit": unit} if target == "unit" else {}
    a = attribute(model, VOCAB, TEXT, 9, method="ig", steps=64, window=8, **kw)
    assert len(a.text) == 8 and a.start == 2 and a.steps == 64
    assert abs(a.value - a.baseline_value) > 1e-3  # a difference worth attributing
    assert a.input_gap < 0.01, a.input_gap
    for key, gap in a.state_gaps.items():
        assert gap < 0.01, (key, gap)
    # per step, the units' attributions add up to f - f(that state zeroed at that step)
    for key, attr in a.states.items():
        np.testing.assert_allclose(attr.sum(1), a.state_deltas[key], rtol=0.01, atol=1e-4)
    d = a.to_dict()
    assert d["method"] == "ig" and len(d["inputs"]) == 8 and d["top_chars"] and d["top_units"]


def test_the_window_starts_from_the_exact_state_before_it():
    model = _model(seed=4)
    whole = attribute(model, VOCAB, TEXT, 10, method="grad-input", window=100)
    cut = attribute(model, VOCAB, TEXT, 10, method="grad-input", window=4)
    assert cut.value == pytest.approx(whole.value, abs=1e-6)
    np.testing.assert_allclose(cut.inputs, whole.inputs[-4:], atol=1e-6)
    key = "layer0/cell"
    np.testing.assert_allclose(cut.states[key], whole.states[key][-4:], atol=1e-6)


def test_bad_attributions_say_what_to_do():
    model = _model()
    with pytest.raises(AttributionError, match="beyond the text"):
        attribute(model, VOCAB, TEXT, 11)
    with pytest.raises(AttributionError, match="`method` is ig or grad-input"):
        attribute(model, VOCAB, TEXT, 3, method="saliency")  # type: ignore[arg-type]
    with pytest.raises(AttributionError, match="`steps`"):
        attribute(model, VOCAB, TEXT, 3, steps=0)
    with pytest.raises(AttributionError, match=r"layer0/cell has units 0\.\.4"):
        attribute(model, VOCAB, TEXT, 3, unit="layer0/cell/7")
    with pytest.raises(AttributionError, match="a cell or a hidden state"):
        attribute(model, VOCAB, TEXT, 3, states=["layer0/forget_gate"])
    with pytest.raises(AttributionError, match="not both"):
        attribute(model, VOCAB, TEXT, 3, unit="layer0/cell/1", char="a")
    bidi = CharLSTM(ModelConfig(len(VOCAB), 3, embedding_dim=2, bidirectional=True))
    with pytest.raises(AttributionError, match="unidirectional"):
        attribute(bidi, VOCAB, TEXT, 3)
    headless = CharLSTM(ModelConfig(len(VOCAB), 3, embedding_dim=2, decoder=False))
    with pytest.raises(AttributionError, match="no decoder"):
        attribute(headless, VOCAB, TEXT, 3)
    assert attribute(headless, VOCAB, TEXT, 3, unit="layer0/hidden/0", method="grad-input").value
