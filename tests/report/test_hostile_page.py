"""A shared report never reaches the network and runs nothing but its own script (issue 17,
break 1), and shows text by code point (break 2): in Debian's Chromium, offline, from file://.

Hostile names go into every free-text field of the store (its path, its model summary, its
creation time, its run configuration, its characters), of the rankings (feature names, their
definitions and warnings, score names), of the dynamics (the characters units are written and
reset at) and of the ablations (the feature, the verdicts, the p-value's description); and, one
level down, into every string of the page's data at once, past every check Python makes. The
reader then selects text, clicks every unit link, hovers, types hostile names and presses every
key: no request leaves the page but for its own ``data:`` images, nothing navigates, no element
of the markup appears, and the markup shows as text.
"""

from __future__ import annotations

import json
import shutil
import string
from pathlib import Path
from typing import Any

import h5py
import pytest

from lstmprobe.report.html import build_report, render
from lstmprobe.store import ActivationStore
from tests.report.conftest import CHROMIUM, REQUIRED

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None and not REQUIRED, reason="Chromium is not installed"),
]

#: Markup that would load, navigate or run if it were ever parsed as HTML.
HOSTILE = (
    '"\'><img src=https://example.com/i.png onerror="window.pwned=1">'
    '<meta http-equiv="refresh" content="0;url=https://example.com/m">'
    '<base href="https://example.com/"><form action="https://example.com/f"><button>go</button>'
    '</form><iframe src="https://example.com/f"></iframe><link rel=stylesheet '
    "href=\"https://example.com/s.css\"><style>@import 'https://example.com/i.css'</style>"
    "</script><script>window.pwned=2</script><!-- \u202e\u2028"
)
#: Single characters a corpus can hold that mean something to HTML or to text direction.
HOSTILE_CHARS = {"q": "<", "y": ">", "z": "&", "A": "\u202e", "g": "\U0001f600"}
ALLOWED = ("data:", "about:")


def hostile_files(causal_dir: dict[str, Path], where: Path) -> Path:
    """A copy of a real recording with its rankings, ablations and dynamics, hostile text in
    every free-text field of each; in a directory whose name is markup too."""
    folder = where / "\"'><img src=x onerror=window.pwned=3>"
    folder.mkdir()
    for name in ("acts.h5", "acts.rankings.json", "acts.ablations.h5", "acts.dynamics.json"):
        shutil.copy(causal_dir["dir"] / name, folder / name)
    store = folder / "acts.h5"
    with h5py.File(store, "r+") as f:  # attributes: the values and their checksums stay
        model = json.loads(f.attrs["model"])
        model.update(form=HOSTILE, path=HOSTILE)
        model["config"].update(cell=HOSTILE, num_layers=HOSTILE, hidden_size=HOSTILE)
        f.attrs["model"] = json.dumps(model)
        f.attrs["created"] = HOSTILE
        f.attrs["run_config"] = json.dumps({"reset": HOSTILE, "note": HOSTILE})
        vocab = [HOSTILE_CHARS.get(c, c) for c in json.loads(f.attrs["vocab"])]
        f.attrs["vocab"] = json.dumps(vocab)
    feature = "regex:" + HOSTILE.replace("(", "").replace(
        ")", ""
    )  # a feature spec can say anything
    rankings = json.loads((folder / "acts.rankings.json").read_text(encoding="utf-8"))
    (summary,) = rankings["features"].values()
    rankings["features"] = {
        feature: {**summary, "definition": HOSTILE, "warning": HOSTILE, "probe_metric": HOSTILE}
    }
    for r in rankings["rows"]:
        r.update(feature=feature, score_name=HOSTILE)
    (folder / "acts.rankings.json").write_text(json.dumps(rankings), encoding="utf-8")
    dynamics = json.loads((folder / "acts.dynamics.json").read_text(encoding="utf-8"))
    for d in dynamics["units"].values():
        for w in d.get("writes_at", []) + d.get("resets_at", []):
            w["char"] = "<"
    (folder / "acts.dynamics.json").write_text(json.dumps(dynamics), encoding="utf-8")
    with h5py.File(folder / "acts.ablations.h5", "r+") as f:
        f.attrs["feature"] = feature
        f.attrs["reset"] = HOSTILE
        summary = json.loads(f.attrs["summary"])
        for s in summary:
            s.setdefault("random", {})["p_value_of"] = HOSTILE
        f.attrs["summary"] = json.dumps(summary)
        for g in f["conditions"].values():
            g.attrs["verdict"] = HOSTILE
    return store


def watch(page: Any) -> dict[str, list]:
    """Every request, navigation, dialog, popup and script error of ``page`` from now on."""
    seen: dict[str, list] = {"requests": [], "navigations": [], "dialogs": [], "errors": []}
    page.on("request", lambda r: seen["requests"].append(r.url))
    page.on("framenavigated", lambda f: seen["navigations"].append(f.url))
    page.on("dialog", lambda d: (seen["dialogs"].append(d.message), d.dismiss()))
    page.on("popup", lambda p: seen["navigations"].append("popup " + p.url))
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    page.on("console", lambda m: seen["errors"].append(m.text) if m.type == "error" else None)
    return seen


def exercise(page: Any, frame: Any = None) -> None:
    """Select text in every coloured passage, hover it, click every unit link, type hostile
    names into the unit box, press every key."""
    where = frame or page
    where.locator(".lpr-window span").first.wait_for()
    where.locator("body").evaluate(
        """body => { for (const pre of body.querySelectorAll('pre.lpr-text')) {
            const s = pre.querySelectorAll('span'); if (s.length < 3) continue;
            const r = document.createRange(); r.setStart(s[1], 0); r.setEnd(s[Math.min(s.length - 1, 60)], 1);
            const sel = getSelection(); sel.removeAllRanges(); sel.addRange(r);
            pre.dispatchEvent(new MouseEvent('mouseup', {bubbles: true})); } }"""
    )
    box = where.locator(".lpr-window").bounding_box()
    page.mouse.move(box["x"] + 5, box["y"] + 5)  # a real drag selection too
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + 40, steps=5)
    page.mouse.up()
    clicked = 0
    for _ in range(200):  # every link, re-found each time (the span view changes)
        links = where.locator("a.lpr-unit")
        if clicked >= links.count():
            break
        links.nth(clicked).click()
        clicked += 1
    assert clicked >= 10
    for pre in range(min(where.locator("pre.lpr-text").count(), 12)):
        where.locator("pre.lpr-text").nth(pre).locator("span").first.hover()
    where.locator(".lpr-goto").fill(HOSTILE)
    where.locator(".lpr-goto").press("Enter")
    assert "type a unit such as" in where.locator(".lpr-msg").inner_text()
    where.locator(".lpr-explorer h2").click()
    keys = [*string.printable.strip(), "Enter", "Escape", "Tab", "Backspace", "Delete",
            "ArrowUp", "ArrowDown", "ArrowLeft", "ArrowRight", "PageUp", "PageDown", "Home",
            "End", "F5", "Space"]  # fmt: skip
    for key in keys:
        page.keyboard.press(key)
        if key == "/":  # the unit box took the focus: leave it as a reader would
            page.keyboard.press("Escape")
    page.wait_for_timeout(1500)  # a meta refresh or a timer would have fired by now


def assert_inert(page: Any, frame: Any, seen: dict[str, list], url: str) -> None:
    where = frame or page
    assert [u for u in seen["requests"] if not u.startswith(ALLOWED) and u != url] == []
    assert [u for u in seen["navigations"] if u not in (url, "about:srcdoc")] == []
    assert seen["dialogs"] == [] and seen["errors"] == []
    assert page.url == url
    assert where.locator("body").evaluate("() => window.pwned") is None
    found = where.locator("body").evaluate(
        """body => ({
            scripts: document.scripts.length,
            meta: document.querySelectorAll('body meta, base, form, iframe, link, object, embed, body style').length,
            images: [...document.images].filter(i => !i.src.startsWith('data:image/png;base64,')).length,
            handlers: [...document.querySelectorAll('*')].filter(e => [...e.attributes].some(a => a.name.startsWith('on'))).length,
        })"""
    )
    assert found == {"scripts": 2, "meta": 0, "images": 0, "handlers": 0}


def test_hostile_names_in_every_field_stay_text_and_nothing_leaves_the_page(
    causal_dir, browser_page, tmp_path
):
    store = hostile_files(causal_dir, tmp_path)
    warnings: list[str] = []
    with ActivationStore(store) as s:
        report = build_report(s, top=2, max_chars=600, warn=warnings.append)
    assert warnings == []  # every side file was read: their sections are drawn below
    path = report.save(tmp_path / "report.html")
    page = browser_page
    seen = watch(page)
    page.goto(path.as_uri())
    exercise(page)
    assert_inert(page, None, seen, path.as_uri())
    # the markup is there, as text: in the header, the ranking, the ablations, the text itself
    assert HOSTILE[:40] in page.inner_text(".lpr-meta")
    assert "regex:" + HOSTILE[:30] in page.inner_text(".lpr-features h3 >> nth=0")
    assert HOSTILE[:40] in page.inner_text(".lpr-ablations")
    assert page.locator(".lpr-abl-cond").count() == 3
    text = page.locator(".lpr-window").inner_text()
    assert "<" in text and "&" in text and "\U0001f600" in text


#: Dicts of the page's data whose keys are data too (unit, feature and layer names).
MAPS = {"ranks", "thresholds", "by_feature", "by_unit", "layers", "units", "values"}
#: Strings the script only decodes (base64, PNG data URIs) or compares with a fixed word.
DECODED = {"values", "src", "curve", "palettes"}
CLOSED = {"kind", "mode"}


def strings_prefixed(obj: Any, key: str | None = None, item: bool = False) -> Any:
    """Every string of the page's data, dict keys that are names included, with
    :data:`HOSTILE` before it; not what the script only decodes or compares with a fixed word.
    ``key`` is the name ``obj`` is held under; ``item``: it is an element of a list there."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            name = HOSTILE + k if key in MAPS and not item else k
            if (
                (k in DECODED and not isinstance(v, (dict, list)))
                or k == "palettes"
                or (key == "values" and not item and isinstance(v, str))
            ):
                out[name] = v
            else:
                out[name] = strings_prefixed(v, "by_feature" if key == "thresholds" else k)
        return out
    if isinstance(obj, list):
        return [strings_prefixed(v, key, item=True) for v in obj]
    if isinstance(obj, str) and key == "text":  # one value per char: markup of the same length
        return (HOSTILE * (len(obj) // len(HOSTILE) + 1))[: len(obj)]
    if isinstance(obj, str) and key not in CLOSED:
        return HOSTILE + obj
    return obj


def test_a_page_whose_every_string_is_markup_stays_inert(causal_dir, browser_page, tmp_path):
    """Past every check Python makes: the script itself shows any string as text."""
    import re

    with ActivationStore(causal_dir["store"]) as s:
        page_html = build_report(s, top=2, max_chars=400).html
    data = re.search(r'<script type="application/json" id="[^"]+">(.*?)</script>', page_html, re.S)
    payload = json.loads(data.group(1))
    hostile = strings_prefixed(payload)
    assert hostile["meta"]["store"].startswith(HOSTILE)
    path = tmp_path / "hostile.html"
    path.write_text(render(hostile, title=HOSTILE)[0], encoding="utf-8")
    page = browser_page
    seen = watch(page)
    page.goto(path.as_uri())
    exercise(page)
    assert_inert(page, None, seen, path.as_uri())
    assert HOSTILE in page.title()


def test_the_notebook_frame_with_hostile_names_leaves_the_notebook_alone(
    causal_dir, browser_page, tmp_path
):
    store = hostile_files(causal_dir, tmp_path)
    with ActivationStore(store) as s:
        fragment = build_report(s, top=2, max_chars=300, figures=False)._repr_html_()
    notebook = tmp_path / "notebook.html"
    notebook.write_text(f"<!DOCTYPE html><html><body><p>notebook</p>{fragment}</body></html>")
    page = browser_page
    seen = watch(page)
    page.goto(notebook.as_uri())
    frame = page.frame_locator("iframe.lstmprobe-report")
    exercise(page, frame)
    assert_inert(page, frame, seen, notebook.as_uri())
    assert page.locator("body > *").count() == 2  # the notebook's paragraph and the frame


# --- text by code point: emoji, combining marks, CJK (issue 17, break 2) ---------------------


def test_emoji_combining_marks_and_cjk_take_one_cell_each(browser_page, tmp_path):
    """The values are per code point: each char's colour is its own value, after an emoji too,
    and the card renders. A unit that is +1 on every non-ASCII char and -1 elsewhere shows it."""
    import numpy as np

    from lstmprobe.store import RecordingSpec, StoreWriter
    from lstmprobe.text import Vocab, sequences

    text = (
        "tweet \U0001f600\U0001f680 ok e\u0301 na\u0308ive \u6f22\u5b57 #tag \U0001f44d\U0001f3fd end\n"
        * 6
    )
    vocab = Vocab.from_text(text)
    wide = np.array([ord(c) > 127 for c in text])
    values = np.where(wide, 1.0, -1.0)[:, None].astype(np.float32)
    spec = RecordingSpec(vocab.encode(text), sequences(text), vocab, {"layer0/hidden": 1}, {},
                         "0" * 64, "0" * 64, False, {})  # fmt: skip
    writer = StoreWriter(tmp_path / "acts.h5", spec)
    writer.write(0, {"layer0/hidden": values})
    with ActivationStore(writer.finish()) as s:
        path = build_report(s, max_chars=len(text), figures=False).save(tmp_path / "r.html")
    page = browser_page
    seen = watch(page)
    page.goto(path.as_uri())
    page.wait_for_selector(".lpr-card b")
    assert page.inner_text(".lpr-card b") == "layer0/hidden/0"
    spans = page.eval_on_selector_all(
        ".lpr-window span",
        "els => els.map(e => [e.textContent, getComputedStyle(e).backgroundColor])",
    )
    assert len(spans) == len(text)  # one cell per code point
    blue, red = spans[text.index("\U0001f600")][1], spans[0][1]
    assert blue != red
    for i, (shown, colour) in enumerate(spans):
        assert colour == (blue if wide[i] else red), (i, repr(text[i]), shown)
    assert spans[text.index("\u0301")][0] == "\u25cc\u0301"  # a combining mark in its own cell
    rocket = text.index("\U0001f680")
    page.hover(f".lpr-window span >> nth={rocket}")
    tip = page.inner_text(".lpr-tip")
    assert f"position {rocket}" in tip and "U+1F680" in tip
    # select from the rocket to the CJK: the span view counts code points
    a, b = text.index("\U0001f680"), text.index("\u5b57")
    page.evaluate(
        f"""() => {{ const s = document.querySelectorAll('.lpr-window span');
        const r = document.createRange(); r.setStart(s[{a}], 0); r.setEnd(s[{b}], 1);
        const sel = getSelection(); sel.removeAllRanges(); sel.addRange(r);
        document.querySelector('.lpr-window').dispatchEvent(new MouseEvent('mouseup', {{bubbles: true}})); }}"""
    )
    assert f"positions {a}..{b + 1} ({b + 1 - a} chars)" in page.inner_text(".lpr-span")
    assert seen["errors"] == []
