"""The report's Patching section and unit-card attributions: from files written by the real
`patch` and `attribute` commands, as payload and in a real browser; data only ever as text."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from lstmprobe.cli import main
from lstmprobe.models import CharLSTM, ModelConfig, save_checkpoint
from lstmprobe.report.html import build_report
from lstmprobe.report.output import asset
from lstmprobe.store import ActivationStore
from lstmprobe.text import Pair, Vocab, pairs_text

#: a corpus whose chars make markup: it must reach the page as text
TEXT = ("A<b>x'Y\"a&\n" + "B<b>xx'Y\"b&\n") * 20


@pytest.fixture(scope="module")
def depth_dir(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import torch

    d = tmp_path_factory.mktemp("depth-report")
    corpus = d / "corpus.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    vocab = Vocab.from_text(TEXT)
    torch.manual_seed(0)
    model = save_checkpoint(d / "model.pt", CharLSTM(ModelConfig(len(vocab), 6)).eval(), vocab)
    store = d / "acts.h5"
    pairs = d / "pairs.tsv"
    pairs.write_text(
        pairs_text([Pair("A<b>x'Y", "B<b>xx'Y", "a"), Pair("B<b>xx'Y", "A<b>x'Y", "b")])
    )
    runner = CliRunner()
    for args in (
        ("record", model, corpus, "-o", store, "-q", "--reset", "line"),
        (
            "patch",
            model,
            "--pairs",
            pairs,
            "-u",
            "layer0/cell/1",
            "-u",
            "layer0/cell/2",
            "--n-random",
            "2",
            "--sweep",
            "units",
            "--sweep",
            "positions",
            "-o",
            d / "trace.png",
            "--store",
            store,
            "-q",
        ),
        (
            "attribute",
            model,
            corpus,
            "-p",
            6,
            "-u",
            "layer0/cell/1",
            "--store",
            store,
            "-q",
            "--steps",
            "16",
        ),
    ):
        result = runner.invoke(main, [str(a) for a in args])
        assert result.exit_code == 0, result.output
    return {"dir": d, "store": store}


@pytest.mark.slow
def test_the_payload_holds_the_saved_patching_and_attributions(depth_dir):
    with ActivationStore(depth_dir["store"]) as store:
        report = build_report(store, top=1, max_chars=200, figures=False)
    assert report.manifest["patching"] == 1 and report.manifest["attributions"] == 1
    page = report.html
    assert "lstmprobeDepth" in page and "lpr-patching" in page
    # the data travels as JSON inside a script element, markup escaped
    data = page.split('-data">')[1].split("</script>")[0]
    assert "<b>" not in data and "\\u003cb>" in data


def test_the_page_script_never_writes_markup():
    script = asset("depth.js")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"):
        assert sink not in script


@pytest.mark.slow
def test_patching_and_attribution_in_a_browser(depth_dir, tmp_path):
    pw = pytest.importorskip("playwright.sync_api")
    from tests.report.test_browser import CHROMIUM

    if CHROMIUM is None:
        pytest.skip("Chromium is not installed")
    with ActivationStore(depth_dir["store"]) as store:
        path = build_report(store, top=1, max_chars=200).save(tmp_path / "r.html")
    with pw.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_context(offline=True).new_page()
            errors: list[str] = []
            page.on(
                "console",
                lambda m: errors.append(m.text) if m.type in ("error", "warning") else None,
            )
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(path.as_uri())
            page.wait_for_selector(".lpr-patching h2")
            section = page.inner_text(".lpr-patching")
            assert "Patching" in section and "flip rate" in section and "p (floor)" in section
            assert page.locator(".lpr-patching img").count() == 1
            page.fill(".lpr-goto", "layer0/cell/1")
            page.press(".lpr-goto", "Enter")
            card = page.inner_text(".lpr-card")
            assert "Patching" in card and "Attribution (ig, 16 steps)" in card
            spans = page.locator(".lpr-card .lpr-attr-text span")
            assert spans.count() == 7  # the line's first 7 chars: the window up to position 6
            assert "<b>" in page.inner_text(".lpr-card .lpr-attr-text")  # markup shown as text
            assert page.locator(".lpr-card b").count() == 1  # only the card's own title
            links = page.locator(".lpr-card .lpr-attr-units a.lpr-unit")
            assert links.count() > 0
            target = links.nth(0).get_attribute("data-unit")
            links.nth(0).click()
            assert page.inner_text(".lpr-card").startswith(target)
            assert errors == []
        finally:
            browser.close()


#: one field of a saved result, and what it is changed to
DAMAGE = [
    ("condition", "flip_rate", "x"),
    ("condition", "units", "layer0/cell/1"),
    ("condition", "units", ["layer9/cell/1"]),
    ("condition", "random", [1, 2]),
    ("pair", "top_after", [["a"], 3]),
    ("pair", "kl_bits", float("inf")),
    ("sweep", "rows", [["layer0/cell/1"]]),
    ("sweep", "columns", ["x"]),
    ("sweep", "pairs", "2"),
    ("attribution", "text", 7),
    ("attribution", "top_units", [{"unit": 3}, "x"]),
    ("attribution", "unit", "layer0/cell/99"),
    ("attribution", "value", "x"),
]


@pytest.mark.slow
@pytest.mark.parametrize("kind,key,value", DAMAGE, ids=[f"{k}.{f}" for k, f, _ in DAMAGE])
def test_a_damaged_result_is_left_out_with_one_warning(depth_dir, tmp_path, kind, key, value):
    """One field of one saved result edited: the report still builds, says what it left out in
    one warning, and keeps every other result."""
    import shutil

    from lstmprobe.report.causal_depth import attributions_section, patching_section
    from lstmprobe.store import Recording
    from lstmprobe.store.causal_results import (
        ATTRIBUTIONS,
        PATCHING,
        Saved,
        read_results,
        write_results,
    )

    here = Recording.at(depth_dir["store"])
    store = tmp_path / "acts.h5"
    shutil.copy(depth_dir["store"], store)
    fmt = ATTRIBUTIONS if kind == "attribution" else PATCHING
    source = here.attributions if kind == "attribution" else here.patching
    found = read_results(source, fmt)
    pair = {
        "kind": "pair",
        "units": ["layer0/cell/1"],
        "source": "A<b>",
        "target": "B<b>",
        "kl_bits": 0.1,
        "top_before": [["a", 0.5]],
        "top_after": [["b", 0.4]],
    }
    results = [*found.results, *([Saved(pair, {})] if kind == "pair" else [])]
    edited, done = [], False
    for r in results:
        if not done and (kind == "attribution" or r.meta.get("kind") == kind):
            r, done = Saved({**r.meta, key: value}, r.arrays), True
        edited.append(r)
    assert done
    target = Recording.at(store)
    write_results(
        target.attributions if kind == "attribution" else target.patching,
        fmt,
        edited,
        {k: v for k, v in found.attrs.items() if k not in ("format", "format_version", "created")},
    )
    warned: list[str] = []
    with ActivationStore(store) as s:
        if kind == "attribution":
            section = attributions_section(s, warn=warned.append)
        else:
            section = patching_section(s, figures=False, warn=warned.append)
        report = build_report(s, top=1, max_chars=200, figures=False, warn=warned.append)
    assert section is not None, warned
    assert len([w for w in warned if "ignored what cannot be used" in w]) >= 1, warned
    assert report.html
