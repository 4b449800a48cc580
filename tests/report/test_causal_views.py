"""The report's Ablations and Dynamics views, from a real `ablate` and `dynamics` run."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from lstmprobe.cli import main
from lstmprobe.report.causal_views import load_ablations, load_dynamics
from lstmprobe.report.keep_write import keep_write
from lstmprobe.report.output import unit_parts
from lstmprobe.store import ActivationStore
from lstmprobe.store.ablations import read_ablations
from tests.report.conftest import TEXT

PNG = b"\x89PNG\r\n\x1a\n"


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def payload(html: str) -> dict:
    (data,) = re.findall(
        r'<script type="application/json" id="lpr-[0-9a-f]+-data">(.*?)</script>', html, re.S
    )
    return json.loads(data)


def build(causal_dir, name, *extra):
    out = causal_dir["dir"] / name
    result = run("report", "--store", causal_dir["store"], "-o", out, "--json", "-q", *extra)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""  # the files beside the store belong to it: no warning
    return json.loads(result.stdout), out.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def report(causal_dir):
    """The report without figures (they take seconds); figured_report has them."""
    return build(causal_dir, "acts.report.html", "--no-figures")


@pytest.fixture(scope="module")
def figured_report(causal_dir):
    return build(causal_dir, "figured.report.html")


def test_the_report_shows_every_saved_condition_with_its_numbers(causal_dir, report):
    manifest, html = report
    assert manifest["ablations"] == 3 and manifest["dynamics"] is True
    assert 'class="lpr-ablations"' in html and 'class="lpr-dynamics"' in html
    saved = read_ablations(causal_dir["dir"] / "acts.ablations.h5")
    abl = payload(html)["ablations"]
    assert abl["feature"] == "quote"
    names = [[u["name"] for u in c["units"]] for c in abl["conditions"]]
    assert names == [[str(u) for u in c.units] for c in saved.conditions]  # parts and the name
    assert abl["conditions"][0]["units"][0] == unit_parts(saved.conditions[0].units[0])
    assert len(abl["conditions"]) == 3 and len(abl["conditions"][2]["units"]) == 2
    for shown, summary in zip(abl["conditions"], saved.summary):
        for key in ("delta_on", "delta_off", "positions_on", "positions_off"):
            assert shown[key] == pytest.approx(summary[key], rel=1e-4)
        r = summary["random"]
        assert r["n"] == 2 == shown["random"]["n"]
        assert shown["random"]["delta_on_mean"] == pytest.approx(r["delta_on_mean"], rel=1e-4)
        assert shown["random"]["delta_on_sd"] == pytest.approx(r["delta_on_sd"], rel=1e-4)
        assert shown["random"]["p_value"] == pytest.approx(r["p_value"])
        assert shown["verdict"] == summary["verdict"]
    by_unit = abl["by_unit"]
    both = [str(u) for u in saved.conditions[2].units]
    assert by_unit[both[0]] == [0, 2] and by_unit[both[1]] == [1, 2]


def test_each_char_is_coloured_by_the_loss_change_of_predicting_it(causal_dir, report):
    _, html = report
    saved = read_ablations(causal_dir["dir"] / "acts.ablations.h5")
    starts = set(ActivationStore(causal_dir["store"]).sequences[:, 0].tolist())
    for cond, file_cond in zip(payload(html)["ablations"]["conditions"], saved.conditions):
        kinds = [p["kind"] for p in cond["passages"]]
        assert kinds.count("effect") == 2 and kinds.count("change") >= 1
        delta, rand = file_cond.delta_bits, file_cond.random_mean_delta_bits
        shown_max = 0.0
        for p in cond["passages"]:
            assert p["text"] == TEXT[p["start"] : p["start"] + len(p["text"])]
            for i, d in enumerate(p["delta"]):
                t = p["start"] + i - 1  # the position whose loss is that of char start + i
                if t < 0 or p["start"] + i in starts or np.isnan(delta[t]):
                    assert d is None
                    continue
                assert d == pytest.approx(float(delta[t]), rel=1e-3, abs=1e-6)
                assert p["random"][i] == pytest.approx(float(rand[t]), rel=1e-3, abs=1e-6)
                assert p["on"][i] == (None if saved.feature_on[t] < 0 else saved.feature_on[t])
                shown_max = max(shown_max, abs(d))
        # the symmetric range is max |delta| over the shown passages
        assert cond["range"] == pytest.approx(max(shown_max, 1e-3), rel=1e-2)
        # the first passage of largest effect holds the window of largest summed loss increase
        effect = next(p for p in cond["passages"] if p["kind"] == "effect")
        d0 = np.nan_to_num(delta.astype(np.float64))
        sums = np.convolve(d0, np.ones(len(effect["text"])), mode="valid")
        assert sum(d for d in effect["delta"] if d is not None) == pytest.approx(
            sums.max(), rel=1e-3
        )
    assert "red: the intervention made predicting that char worse" in html


def test_dynamics_in_the_payload(causal_dir, report):
    _, html = report
    saved = json.loads((causal_dir["dir"] / "acts.dynamics.json").read_text())
    dyn = payload(html)["dynamics"]
    assert set(dyn["units"]) == set(saved["units"])
    u = dyn["units"]["layer1/cell/2"]
    assert u["timescale"] == pytest.approx(saved["units"]["layer1/cell/2"]["timescale"], rel=1e-4)
    assert [d["from"]["name"] for d in u["drivers"]] == [
        d["from"] for d in saved["units"]["layer1/cell/2"]["drivers"]
    ]
    assert dyn["figures"] == []  # --no-figures


@pytest.mark.slow  # renders the report's figures: seconds
def test_dynamics_figures_in_the_report(figured_report):
    manifest, html = figured_report
    assert manifest["ablations"] == 3 and manifest["dynamics"] is True
    dyn = payload(html)["dynamics"]
    ids = [f["id"] for f in dyn["figures"]]
    assert ids[0] == "timescales" and len(ids) == 4
    assert all(f["src"].startswith("data:image/png;base64,") for f in dyn["figures"])
    assert "http://" not in html.split("<script")[0] and "src='http" not in html


def test_keep_plus_write_is_the_recorded_state_across_sequence_starts(task_store, gru_store):
    with ActivationStore(task_store) as s:
        n = s.n_positions
        f = s.read("layer0/forget_gate", 0, n)[:, 1].astype(np.float64)
        i = s.read("layer0/input_gate", 0, n)[:, 1].astype(np.float64)
        g = s.read("layer0/candidate", 0, n)[:, 1].astype(np.float64)
        c = s.read("layer0/cell", 0, n)[:, 1].astype(np.float64)
        starts = set(s.sequences[:, 0].tolist())
        for a, b in ((0, 40), (17, n)):
            kw = keep_write(s, "layer0/forget_gate/1", a, b)
            assert kw.unit == "layer0/cell/1" and kw.kind == "lstm"
            for t in range(a, b):  # a per-step reference
                prev = 0.0 if t in starts else c[t - 1]
                assert kw.keep[t - a] == pytest.approx(f[t] * prev, abs=1e-6)
                assert kw.write[t - a] == pytest.approx(i[t] * g[t], abs=1e-6)
            # c = f c(t-1) + i g up to the float16 rounding of the four recorded quantities
            np.testing.assert_allclose(kw.keep + kw.write, kw.state, atol=2e-3)
    with ActivationStore(gru_store) as s:
        kw = keep_write(s, "layer0/update_gate/2", 5, 200)
        assert kw.unit == "layer0/hidden/2" and kw.kind == "gru"
        np.testing.assert_allclose(kw.keep + kw.write, kw.state, atol=2e-3)


@pytest.mark.slow  # renders two figures, as test_cli_report's plot tests do
def test_plot_dynamics_writes_png_and_svg(causal_dir, tmp_path):
    png, svg = tmp_path / "kw.png", tmp_path / "kw.svg"
    result = run("plot", "dynamics", "--store", causal_dir["store"], "--unit", "layer0/input_gate/1",
                 "--start", "30", "--length", "60", "-o", png, "--json", "-q")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["units"] == ["layer0/cell/1"]
    assert png.read_bytes().startswith(PNG)
    result = run("plot", "dynamics", "--store", causal_dir["store"], "-u", "layer1/cell/0",
                 "-o", svg)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "keep vs write" in svg.read_text()
    bad = run("plot", "dynamics", "--store", causal_dir["store"], "-o", png)
    assert bad.exit_code != 0 and "--unit" in bad.stderr and "Traceback" not in bad.output


def test_files_of_another_recording_are_warned_about_and_ignored(causal_dir, tmp_path):
    corpus = tmp_path / "other.txt"
    corpus.write_text(TEXT + "# end\n", encoding="utf-8")  # the same model over another corpus
    other = tmp_path / "acts.h5"
    assert run("record", causal_dir["model"], corpus, "-o", other, "-q").exit_code == 0
    shutil.copy(causal_dir["dir"] / "acts.ablations.h5", tmp_path / "acts.ablations.h5")
    shutil.copy(causal_dir["dir"] / "acts.dynamics.json", tmp_path / "acts.dynamics.json")
    warnings: list[str] = []
    with ActivationStore(other) as s:
        assert load_ablations(s, warn=warnings.append) is None
        assert load_dynamics(s, warn=warnings.append) is None
    assert "corpus hash differs" in warnings[0] and "positions" in warnings[1]
    out = tmp_path / "r.html"
    result = run("report", "--store", other, "-o", out, "--json", "-q", "--no-figures")
    assert result.exit_code == 0, result.output
    assert "ignoring" in result.stderr and "acts.ablations.h5" in result.stderr
    assert "acts.dynamics.json" in result.stderr
    manifest = json.loads(result.stdout)
    assert manifest["ablations"] == 0 and manifest["dynamics"] is False
    data = payload(out.read_text(encoding="utf-8"))
    assert data["ablations"] is None and data["dynamics"] is None
