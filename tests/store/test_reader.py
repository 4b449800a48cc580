"""What opening a recording says when it cannot: the Python call names the library call and its
parameters, the command line the command and its flags (errors.for_cli)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from lstmprobe.cli import main
from lstmprobe.errors import StoreError
from lstmprobe.store import ActivationStore
from tests.store.test_store import corpus, writer


def _cli_error(store: Path) -> str:
    result = CliRunner().invoke(main, ["info", "--store", str(store)])
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    return lines[0]


def test_a_missing_recording(tmp_path: Path) -> None:
    path = tmp_path / "acts.h5"
    with pytest.raises(StoreError) as caught:
        ActivationStore(path)
    assert str(caught.value) == (
        f"{path} does not exist; record it first (`record_corpus(MODEL, CORPUS, out={path})`), "
        "or give the path of another recording (`store=PATH`)"
    )
    assert _cli_error(path) == (
        f"error: {path} does not exist; record it first (`lstmprobe record MODEL CORPUS -o "
        f"{path}`), or give the path of another recording (--store PATH)"
    )


def test_an_unfinished_recording(tmp_path: Path) -> None:
    path = tmp_path / "acts.h5"
    writer(path, corpus(100)).close()
    with pytest.raises(StoreError) as caught:
        ActivationStore(path)
    message = str(caught.value)
    assert message.endswith(f"`record_corpus(MODEL, CORPUS, out={path}, resume=True)`")
    assert "--" not in message
    assert _cli_error(path).endswith(f"`lstmprobe record MODEL CORPUS -o {path} --resume`")


def test_not_a_recording(tmp_path: Path) -> None:
    path = tmp_path / "acts.h5"
    path.write_text("hello")
    with pytest.raises(StoreError, match=r"written by `record_corpus\(\)`$"):
        ActivationStore(path)
    assert _cli_error(path).endswith("give a recording written by `lstmprobe record`")


HOSTILE_NAMES = [
    'layer0/<meta http-equiv="refresh" content="0;url=https://example.com/x">',
    "layer0/<img src=x onerror=alert(1)>",
    "layer0/cell/extra",  # two slashes
    "layer0//cell",
    "layer0/cell\u202e",
    "LAYER0/cell",
    "layer0/cell ",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_layout_name_outside_the_unit_grammar_is_refused_in_one_line(
    tmp_path: Path, name: str
) -> None:
    """A crafted recording lists a dataset whose name carries markup (issue 17, break 1):
    it is refused on open, before any figure or page sees the name."""
    import json

    import h5py
    import numpy as np

    from lstmprobe.store._format import attr_str

    path = tmp_path / "acts.h5"
    w = writer(path, corpus(50), layout={"layer0/cell": 2}, has_next_logprob=False)
    w.write(0, {"layer0/cell": np.zeros((50, 2), np.float32)})
    w.finish()
    with h5py.File(path, "r+") as f:
        layout = json.loads(attr_str(f.attrs["layout"]))
        if name not in f and "/cell/" not in name:  # a dataset cannot hold another
            f.create_dataset(name, data=np.zeros((50, 2), np.float16))
        f.attrs["layout"] = json.dumps([*layout, [name, 2]])
    with pytest.raises(StoreError, match=r"damaged lstmprobe recording \(its layout names"):
        ActivationStore(path)
    line = _cli_error(path)
    assert "\u202e" not in line and line.count("record it again") == 1
    result = CliRunner().invoke(main, ["report", "--store", str(path), "-q"])
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert not path.with_name("acts.report.html").exists()


@pytest.mark.parametrize(
    "layout",
    ['{"layer0/cell": 2}', '[["layer0/cell", 2], ["layer0/cell", 2]]', '[["layer0/cell", true]]',
     '[["layer0/cell", 0]]', '[["layer0/cell"]]', '[[3, 2]]'],
)  # fmt: skip
def test_a_malformed_layout_is_one_line(tmp_path: Path, layout: str) -> None:
    import h5py
    import numpy as np

    path = tmp_path / "acts.h5"
    w = writer(path, corpus(50), layout={"layer0/cell": 2}, has_next_logprob=False)
    w.write(0, {"layer0/cell": np.zeros((50, 2), np.float32)})
    w.finish()
    with h5py.File(path, "r+") as f:
        f.attrs["layout"] = layout
    with pytest.raises(StoreError, match="damaged lstmprobe recording"):
        ActivationStore(path)
    _cli_error(path)


@pytest.mark.parametrize(
    ("where", "value"),
    [("layer0/cell", None), ("tokens", None), ("next_logprob", None),
     ("model", "[1, 2]"), ("model", "7"), ("model", '{"config": [1]}'), ("run_config", '"x"')],
)  # fmt: skip
def test_a_dataset_of_strings_or_an_attribute_of_the_wrong_shape_is_one_line(
    tmp_path: Path, where: str, value: str | None
) -> None:
    """Issue 17, break 7: these ended in a traceback (in `report`, `plot`, `dynamics`)."""
    import h5py
    import numpy as np

    path = tmp_path / "acts.h5"
    w = writer(path, corpus(50), layout={"layer0/cell": 2})
    w.write(0, {"layer0/cell": np.zeros((50, 2), np.float32)}, np.zeros(50))
    w.finish()
    with h5py.File(path, "r+") as f:
        if value is None:
            shape = f[where].shape
            del f[where]
            f[where] = np.full(shape, b"x", dtype="S3")
        else:
            f.attrs[where] = value
    with pytest.raises(StoreError, match=r"is a damaged lstmprobe recording \((dataset|its)"):
        ActivationStore(path)
    for args in (["info"], ["report", "-q"], ["dynamics", "-q"]):
        result = CliRunner().invoke(main, [*args, "--store", str(path)])
        assert result.exit_code == 1 and result.stderr.count("\n") == 1, result.output
        assert "Traceback" not in result.output
