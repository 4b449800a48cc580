"""Real recordings for the report tests: tiny seeded models recorded into real HDF5 stores."""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import pytest
import torch

from lstmprobe.models import LoadedModel
from lstmprobe.probes import rank_units
from lstmprobe.record import RecordOptions, record_corpus
from lstmprobe.store import ActivationStore
from lstmprobe.text import Vocab
from tests.conftest import make_model
from tests.stores import BASE, build_store

CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
)
REQUIRED = os.environ.get("LSTMPROBE_REQUIRE_BROWSER") == "1"  # CI (.ci/run) sets it

TEXT = (BASE + "\tif x:\n\t\treturn 'tab'\n") * 12  # about 1.6k chars, tabs included
TASK = "".join(f"{c}{'a' * n}X{'b' * n}\n" for n in range(1, 6) for c in "pq")  # separator X


def record(path, text, reset="none", scale_projection=None, **config):
    vocab = Vocab.from_text(text)
    model = make_model(vocab, **config)
    if scale_projection is not None:  # a projection so large that float16 overflows
        with torch.no_grad():
            model.rnn.weight_hr_l0.mul_(scale_projection)
    loaded = LoadedModel(model, vocab, "checkpoint", sha256="0" * 64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the overflow's PrecisionWarning is what is wanted
        record_corpus(
            loaded, text, path, RecordOptions(reset=reset, chunk_size=256, warmup=0), force=True
        )
    return path


@pytest.fixture(scope="session")
def planted(tmp_path_factory):
    """Planted units (cell/4 tracks quote), chunked in 128 positions: many chunks to stream."""
    return build_store(
        tmp_path_factory.mktemp("planted") / "acts.h5", BASE * 20, chunk_positions=128
    )


@pytest.fixture(scope="session")
def lstm_store(tmp_path_factory):
    """A 2-layer LSTM (3 units) over TEXT, with a ranking for quote and indent beside it."""
    path = record(tmp_path_factory.mktemp("lstm") / "acts.h5", TEXT)
    with ActivationStore(path) as store:
        ranking = rank_units(store, ["quote", "indent"], probe=False)
        ranking.to_json(store.recording.rankings)
    return path


@pytest.fixture(scope="session")
def bare_store(tmp_path_factory):
    """A recording of a slightly different corpus, without any ranking beside it."""
    return record(tmp_path_factory.mktemp("bare") / "acts.h5", TEXT + "# end\n")


@pytest.fixture(scope="session")
def proj_store(tmp_path_factory):
    """A 2-layer LSTM with proj_size: cell and gates have 5 units, hidden 2 (issue 17, 4)."""
    return record(tmp_path_factory.mktemp("proj") / "acts.h5", TEXT, hidden_size=5, proj_size=2)


@pytest.fixture(scope="session")
def overflow_store(tmp_path_factory):
    """A float16 recording that overflowed (issue 17, 3): layer0's projection is scaled by 1e6,
    so its hidden (2 units, beside 4 of cell) is stored as ±inf in most positions (the model ran
    in float32: layer1 is finite)."""
    return record(
        tmp_path_factory.mktemp("overflow") / "acts.h5", TEXT, hidden_size=4, proj_size=2,
        scale_projection=1e6,
    )  # fmt: skip


@pytest.fixture(scope="session")
def gru_store(tmp_path_factory):
    return record(tmp_path_factory.mktemp("gru") / "acts.h5", TEXT, cell="gru", num_layers=1)


@pytest.fixture(scope="session")
def task_store(tmp_path_factory):
    """One sequence per line (state reset), each with one separator X."""
    return record(tmp_path_factory.mktemp("task") / "acts.h5", TASK, reset="line", num_layers=1)


@pytest.fixture(scope="session")
def causal_dir(tmp_path_factory):
    """A real checkpoint recorded by `lstmprobe record`, ranked for quote, then `ablate --top 2
    -f quote` (3 conditions) and `dynamics --model` through the CLI: acts.ablations.h5 and
    acts.dynamics.json beside the store."""
    from click.testing import CliRunner

    from lstmprobe.cli import main
    from lstmprobe.models import save_checkpoint

    d = tmp_path_factory.mktemp("causal")
    corpus = d / "corpus.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    vocab = Vocab.from_text(TEXT)
    model = save_checkpoint(d / "model.pt", make_model(vocab), vocab)
    store = d / "acts.h5"
    runner = CliRunner()

    def run(*args):
        result = runner.invoke(main, [str(a) for a in args])
        assert result.exit_code == 0, result.output

    run("record", model, corpus, "-o", store, "-q", "--dtype", "float32")
    with ActivationStore(store) as s:
        ranking = rank_units(s, ["quote"], probe=False)
        ranking.to_json(s.recording.rankings)
    run("ablate", model, corpus, "--store", store, "--top", "2", "-f", "quote", "--n-random", "2",
        "-q")  # fmt: skip
    run("dynamics", "--store", store, "--model", model, "-q", "--json")
    assert (d / "acts.ablations.h5").exists() and (d / "acts.dynamics.json").exists()
    return {"dir": d, "store": store, "model": model, "corpus": corpus}


@pytest.fixture
def browser_page():
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900}, offline=True)
            yield context.new_page()
        finally:
            browser.close()
