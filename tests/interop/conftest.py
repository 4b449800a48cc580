"""Real recordings to export: the bundled demo's model over the start of its sample, a tiny
LSTM read one line at a time (many sequences, tabs), and a tiny GRU."""

from __future__ import annotations

import pytest

from lstmprobe.models import LoadedModel, load_model
from lstmprobe.models.bundled import sample_path
from lstmprobe.record import RecordOptions, record_corpus
from lstmprobe.text import Vocab, read_corpus
from tests.conftest import make_model
from tests.stores import BASE

#: Tabs, a carriage return and a no-break space besides code: characters a dictionary line
#: cannot hold as themselves.
LINES = (BASE + "\tif x:\r\n\t\treturn 'tab'\u00a0# nbsp\n") * 4


def _record(path, text, reset="none", dtype="float32", **config):
    vocab = Vocab.from_text(text)
    loaded = LoadedModel(make_model(vocab, **config), vocab, "checkpoint", sha256="1" * 64)
    options = RecordOptions(reset=reset, dtype=dtype, chunk_size=256, warmup=0)
    record_corpus(loaded, text, path, options, force=True)
    return path


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory):
    """The bundled demo's recording (code-lstm over sample:code, the demo's options: float16),
    on the first 1,500 characters."""
    text = read_corpus(sample_path("sample:code"))[:1500]
    path = tmp_path_factory.mktemp("demo") / "acts.h5"
    record_corpus(load_model("code-lstm"), text, path, RecordOptions(), force=True)
    return path


@pytest.fixture(scope="session")
def lines_store(tmp_path_factory):
    """A 2-layer LSTM (3 units) reading LINES one line at a time: many sequences."""
    return _record(tmp_path_factory.mktemp("lines") / "acts.h5", LINES, reset="line")


@pytest.fixture(scope="session")
def gru_store(tmp_path_factory):
    return _record(tmp_path_factory.mktemp("gru") / "acts.h5", BASE * 2, cell="gru", num_layers=1)
