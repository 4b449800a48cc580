from __future__ import annotations

import base64
import html
import json
import re

import numpy as np
import pytest

from lstmprobe.errors import ReportError, for_cli
from lstmprobe.report import data
from lstmprobe.report.colors import Scale
from lstmprobe.report.html import build_report, text_page
from lstmprobe.store import ActivationStore
from tests.report.test_colors import decode


def payload(page: str) -> dict:
    m = re.search(r'<script type="application/json" id="[^"]+">(.*?)</script>', page, re.S)
    return json.loads(m.group(1).replace("<\\/", "</"))


@pytest.fixture(scope="module")
def report(lstm_store):
    with ActivationStore(lstm_store) as store:
        return build_report(store, top=3, max_chars=500)


def test_the_page_is_self_contained(report):
    page = report.html
    assert "<link" not in page and "@import" not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert "fetch(" not in page and "XMLHttpRequest" not in page
    assert "j</kbd>" in page and "?</kbd>" in page  # shortcuts listed on the page
    fragment = report._repr_html_()  # the notebook's: the same page in a sandboxed frame
    assert fragment.startswith('<iframe class="lstmprobe-report" sandbox="allow-scripts" ')
    assert "<html" not in fragment and "<script" not in fragment and "<style" not in fragment
    assert html.unescape(fragment.split(' srcdoc="', 1)[1].rsplit('"></iframe>', 1)[0]) == page


def test_embedded_values_decode_to_the_recording_within_one_step(report, lstm_store):
    d = payload(report.html)
    with ActivationStore(lstm_store) as store:
        assert d["window"]["text"] == store.read_text(0, 500)
        assert [k["key"] for k in d["keys"]] == store.keys
        for k in d["keys"]:
            q = np.frombuffer(base64.b64decode(k["values"]), np.uint8).reshape(len(k["units"]), -1)
            values = store.read(k["key"], 0, 500).T
            for j in range(len(k["units"])):
                lo, hi = k["vmin"][j], k["vmax"][j]
                scale = Scale(k["kind"], lo, hi, "")
                back = decode(scale, q[j])
                step = max(hi, -lo) / 126 if scale.centered else (hi - lo) / 252
                assert np.abs(back - np.clip(values[j], lo, hi)).max() <= step / 2 + 1e-3
                beyond = scale.beyond(values[j]) != 0
                assert ((q[j] == 0) | (q[j] == 255)).tolist() == beyond.tolist()  # marked
    assert report.manifest["units_shown"] == 36 and report.manifest["chars"] == 500


def test_ranked_features_get_tables_thresholds_and_passages(report, lstm_store):
    d = payload(report.html)
    assert [f["name"] for f in d["features"]] == ["quote", "indent"]
    quote = d["features"][0]
    assert len(quote["rows"]) == 3 and quote["rows"][0]["rank"] == 1
    assert all(r["threshold"] is not None for r in quote["rows"])  # binary: ROC threshold
    assert all(r["threshold"] is None for r in d["features"][1]["rows"])  # continuous: none
    kinds = {p["kind"] for p in quote["passages"]}
    assert kinds == {"change", "top"}
    with ActivationStore(lstm_store) as store:
        for p in quote["passages"]:
            assert p["text"] == store.read_text(p["start"], p["start"] + len(p["text"]))
            assert len(p["labels"]) == len(p["text"])
    top = quote["rows"][0]["unit"]
    assert top == {**top, "layer": int(top["name"][5]), "direction": "forward"}  # parts
    assert [r[0] for r in d["ranks"][top["name"]]] == ["quote", "indent"]  # the unit card's scores


def test_without_a_ranking_every_unit_is_shown_in_layer_order(bare_store):
    with ActivationStore(bare_store) as store:
        rep = build_report(store, max_chars=100, figures=False)
        d = payload(rep.html)
        assert d["features"] == [] and d["initial"]["name"] == "layer0/input_gate/0"
        assert rep.manifest["units_shown"] == rep.manifest["units_total"] == 36
        with pytest.raises(ReportError, match=r"rank it first: `rank_units\(store=") as info:
            build_report(store, features=["quote"])
        assert "`lstmprobe find-neurons --store " in for_cli(str(info.value))


def test_the_caps_bound_what_is_embedded(lstm_store):
    with ActivationStore(lstm_store) as store:
        small = build_report(store, max_chars=100, max_units=1, figures=False)
        big = build_report(store, max_chars=1000, figures=False)
        top = set(small.manifest["top_units"]["quote"])
        d = payload(small.html)
        shown = {f"{k['key']}/{u}" for k in d["keys"] for u in k["units"]}
        assert top <= shown and len(shown) < 36
        assert small.manifest["bytes"] < big.manifest["bytes"]


def test_text_page_holds_one_unit(lstm_store):
    with ActivationStore(lstm_store) as store:
        page = text_page(store, "layer0/cell/2", 10, 90)
        d = payload(page)
        assert d["mode"] == "text" and d["keys"][0]["units"] == [2]
        assert d["keys"][0]["vmax"][0] == pytest.approx(
            data.unit_scale(store, "layer0/cell/2").vmax
        )


@pytest.mark.slow
def test_the_package_exports_figures_and_the_report_lazily():
    import subprocess
    import sys

    import lstmprobe.report as report
    from lstmprobe.report import build_report as b
    from lstmprobe.report import unit_text

    assert b is build_report and callable(unit_text)
    assert "unit_text" in dir(report)
    # importing lstmprobe and its command line loads no report module and no matplotlib
    code = "import sys, lstmprobe.cli; print(any(m.startswith(('matplotlib', 'lstmprobe.report')) for m in sys.modules))"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip()
        == "False"
    )


def test_no_figures_draws_no_probe_curve_either(lstm_store):
    """Issue 17, caveat 8: `--no-figures` still drew each feature's top-k probe curve."""
    from lstmprobe.probes import rank_units

    with ActivationStore(lstm_store) as store:
        ranking = rank_units(store, ["quote"], n_blocks=5, n_boot=20)
        assert ranking.features["quote"].curve
        without = build_report(store, ranking=ranking, max_chars=100, figures=False)
        assert "data:image/png" not in without.html
        assert payload(without.html)["features"][0]["curve"] is None
        drawn = build_report(store, ranking=ranking, max_chars=100, figures=True)
        assert payload(drawn.html)["features"][0]["curve"].startswith("data:image/png;base64,")


def test_the_pages_scripts_never_write_markup():
    """Issue 17, break 1: data reached innerHTML. Every script of the page (each .js asset,
    those added later included) builds nodes with textContent, never markup or a loader."""
    from importlib.resources import files

    scripts = sorted(p for p in files("lstmprobe.report").joinpath("assets").iterdir()
                     if p.name.endswith(".js"))  # fmt: skip
    assert {p.name for p in scripts} >= {"report.js", "causal.js"}
    sinks = ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "setAttribute",
             "eval(", "Function(", "srcdoc", ".href", "location", "fetch(", "XMLHttpRequest",
             "import(", "createContextualFragment", "DOMParser", "open(")  # fmt: skip
    for script in scripts:
        text = script.read_text(encoding="utf-8")
        assert [s for s in sinks if s in text] == [], script.name


def test_the_policy_denies_everything_the_page_does_not_embed(report):
    page = report.html
    policy = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', page)
    directives = dict(d.strip().split(" ", 1) for d in policy.group(1).split(";"))
    assert directives["default-src"] == "'none'" and directives["img-src"] == "data:"
    for name in ("base-uri", "form-action", "frame-src", "connect-src", "object-src"):
        assert directives[name] == "'none'", name
    assert re.fullmatch(r"'sha256-[A-Za-z0-9+/=]+'", directives["script-src"])
    assert re.fullmatch(r"'sha256-[A-Za-z0-9+/=]+'", directives["style-src"])
    assert page.count("<meta ") == 3 and page.index("</head>") > page.rindex("<meta ")
    assert page.count("<script") == 2 and "<base" not in page and "<form" not in page
