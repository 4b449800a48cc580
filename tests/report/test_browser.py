"""The report in a real browser: Debian's Chromium driven by Playwright, offline, from file://."""

from __future__ import annotations

import pytest

from lstmprobe.report.html import build_report
from lstmprobe.store import ActivationStore
from tests.report.conftest import CHROMIUM, REQUIRED

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None and not REQUIRED,
        reason="Chromium is not installed (apt-get install chromium)",
    ),
]


@pytest.fixture(scope="module")
def page_path(lstm_store, tmp_path_factory):
    with ActivationStore(lstm_store) as store:
        report = build_report(store, top=2, max_chars=600)
    return report.save(tmp_path_factory.mktemp("browser") / "acts.report.html")


def styles(page, selector: str, n: int = 200) -> list[str]:
    return page.eval_on_selector_all(
        selector, f"els => els.slice(0, {n}).map(e => getComputedStyle(e).backgroundColor)"
    )


def test_report_runs_offline_recolours_and_answers_the_keyboard(page_path, browser_page, tmp_path):
    page = browser_page
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(page_path.as_uri())
    page.wait_for_selector(".lpr-window span")
    assert errors == []
    assert [r for r in requests if not r.startswith(("file:", "data:"))] == []

    win = ".lpr-window span"
    first_unit = page.input_value(".lpr-index")
    before = styles(page, win)
    assert len(set(before)) > 1  # coloured char by char
    # whitespace stays visible: spaces, newlines shown as glyphs
    text = page.inner_text(".lpr-window")
    assert "·" in text and "↵" in text
    # a tab shows → and still reaches the next tab stop (a tab at column 0 fills 4 columns)
    tabs = page.eval_on_selector_all(
        win, "els => els.filter(e => e.textContent[0] === '→').map(e => e.textContent)"
    )
    assert tabs and tabs[0] == "→   "

    page.fill(".lpr-goto", "layer1/forget_gate/2")
    page.press(".lpr-goto", "Enter")
    assert page.input_value(".lpr-quantity") == "forget_gate"
    after = styles(page, win)
    assert after != before  # changing the unit recolours the text

    page.keyboard.press("j")  # next unit
    assert (
        page.input_value(".lpr-index") == "0" and page.input_value(".lpr-quantity") == "candidate"
    )
    page.keyboard.press("k")  # previous unit: back where we were
    assert page.input_value(".lpr-index") == "2" and styles(page, win) == after
    page.keyboard.press("?")
    assert page.is_visible(".lpr-help")
    page.keyboard.press("Escape")
    assert not page.is_visible(".lpr-help")

    # hover shows char, position and value
    page.hover(".lpr-window span >> nth=5")
    tip = page.inner_text(".lpr-tip")
    assert "position 5" in tip and "layer1/forget_gate/2 =" in tip

    # select a span: the units most active there are listed
    page.evaluate(
        """() => { const s = document.querySelectorAll('.lpr-window span');
        const r = document.createRange(); r.setStart(s[40], 0); r.setEnd(s[90], 1);
        const sel = window.getSelection(); sel.removeAllRanges(); sel.addRange(r);
        document.querySelector('.lpr-window').dispatchEvent(new MouseEvent('mouseup', {bubbles: true})); }"""
    )
    assert "Units most active in positions 40..91" in page.inner_text(".lpr-span")
    page.click(".lpr-span a.lpr-unit >> nth=0")
    assert page.inner_text(".lpr-card").startswith(page.inner_text(".lpr-span a.lpr-unit >> nth=0"))

    # ranked units: tables and coloured passages
    assert page.locator(".lpr-features table.lpr-rank").count() == 2
    assert page.locator(".lpr-passages pre").count() > 4
    assert first_unit is not None
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    assert errors == []


def test_the_demo_report_shows_quote_and_indent_units_in_colour(browser_page, tmp_path):
    from click.testing import CliRunner

    from lstmprobe.cli import main

    result = CliRunner().invoke(main, ["demo", "-o", str(tmp_path), "--chars", "3000", "-q"])
    assert result.exit_code == 0, result.output
    report = tmp_path / "acts.report.html"
    assert f"report:    {report}" in result.stdout
    assert report.stat().st_size < 10_000_000
    page = browser_page
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(report.as_uri())
    page.wait_for_selector(".lpr-passages pre span")
    headings = page.eval_on_selector_all(".lpr-features h3", "els => els.map(e => e.textContent)")
    assert headings == ["quote", "indent"]
    for feature in range(2):
        colours = styles(page, f".lpr-passages[data-f='{feature}'] pre span", 400)
        assert len(set(colours)) > 5
    assert errors == []


def test_inline_fragment_is_a_sandboxed_frame_that_takes_keys_only_when_focused(
    lstm_store, browser_page
):
    """In a notebook the report is the same page in an <iframe sandbox=allow-scripts srcdoc>:
    its own policy holds there, and the notebook's page is another origin it cannot reach."""
    with ActivationStore(lstm_store) as store:
        fragment = build_report(store, max_chars=200, figures=False)._repr_html_()
    page = browser_page
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.set_content(f"<html><body><p>notebook</p><input id='cell'>{fragment}</body></html>")
    frame = page.frame_locator("iframe.lstmprobe-report")
    frame.locator(".lpr-window span").first.wait_for()
    start = frame.locator(".lpr-index").input_value()
    page.focus("#cell")
    page.keyboard.press("j")  # a notebook's own keys are left alone
    assert page.input_value("#cell") == "j" and frame.locator(".lpr-index").input_value() == start
    frame.locator(".lpr-explorer h2").click()
    page.keyboard.press("j")
    assert frame.locator(".lpr-index").input_value() != start
    assert page.evaluate("document.querySelector('iframe').contentDocument === null")
    assert page.evaluate("document.querySelector('iframe').sandbox.value") == "allow-scripts"
    assert errors == []


def test_ablation_and_dynamics_views_and_driver_links(causal_dir, browser_page, tmp_path):
    with ActivationStore(causal_dir["store"]) as store:
        report = build_report(store, top=2, max_chars=400)
    path = report.save(tmp_path / "causal.html")
    page = browser_page
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path.as_uri())
    page.wait_for_selector(".lpr-abl-text span")
    assert page.inner_text(".lpr-ablations h2") == "Ablations"
    assert page.locator(".lpr-abl-cond").count() == 3
    assert "p = " in page.inner_text(".lpr-abl-cond >> nth=0")
    # chars coloured by their loss change; a char's colour follows the sign of its value
    colours = page.eval_on_selector_all(
        ".lpr-abl-cond >> nth=0 >> .lpr-abl-text span[data-delta]",
        "els => els.map(e => [+e.dataset.delta, getComputedStyle(e).backgroundColor])",
    )
    assert len({c for _, c in colours}) > 5

    def rgb(c):
        return [int(x) for x in c[c.index("(") + 1 : c.index(")")].split(",")[:3]]

    worse = [rgb(c) for d, c in colours if d > 0.2 * max(d for d, _ in colours)]
    better = [rgb(c) for d, c in colours if d < 0.2 * min(d for d, _ in colours)]
    assert worse and all(r > b for r, _, b in worse)  # red: prediction worse
    assert better and all(b > r for r, _, b in better)  # blue: better
    page.hover(".lpr-abl-text span[data-delta] >> nth=3")
    assert "loss predicting it" in page.inner_text(".lpr-tip")
    assert page.locator(".lpr-abl-fig").count() == 3  # the random units behind each p
    assert "its floor with 2 random sets is 0.333" in page.inner_text(".lpr-abl-cond >> nth=0")
    assert page.inner_text(".lpr-dynamics h2") == "Dynamics"
    assert page.locator(".lpr-dynamics img").count() == 4

    # the unit card: ablation effect, dynamics, and driver links that change the unit
    unit = report.manifest["top_units"]["quote"][0]
    page.fill(".lpr-goto", unit)
    page.press(".lpr-goto", "Enter")
    card = page.inner_text(".lpr-card")
    assert card.startswith(unit) and "Ablation effect" in card and "timescale" in card
    links = page.locator(".lpr-card a.lpr-driver")
    assert links.count() == 5
    target = links.nth(0).get_attribute("data-unit")
    links.nth(0).click()
    assert page.inner_text(".lpr-card").startswith(target)
    assert page.input_value(".lpr-quantity") == "hidden"
    assert page.input_value(".lpr-index") == target.rsplit("/", 1)[1]
    page.screenshot(path=str(tmp_path / "causal.png"), full_page=True)
    assert errors == []


def test_markup_in_the_corpus_is_text_and_only_the_reports_script_runs(browser_page, tmp_path):
    from tests.stores import build_store

    text = 'x = "<!-- not a comment -->" + "</script><b>bold</b>"\n' * 8
    path = build_store(tmp_path / "acts.h5", text)
    with ActivationStore(path) as store:
        saved = build_report(store, top=1, max_chars=300, figures=False).save(tmp_path / "r.html")
    page = browser_page
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(saved.as_uri())
    page.wait_for_selector(".lpr-window span")
    assert "<!--" in page.inner_text(".lpr-window") and page.locator(".lpr-window b").count() == 0
    # an injected handler does not run: the page's policy allows its own script by its hash
    page.evaluate(
        "document.body.insertAdjacentHTML('beforeend', "
        '\'<img src="data:,x" onerror="window.injected = 1">\')'
    )
    page.wait_for_timeout(200)
    assert page.evaluate("window.injected === undefined")
    assert errors == []


def test_numbers_keep_their_trailing_zeros(browser_page):
    from lstmprobe.report.output import asset

    line = next(s.strip() for s in asset("report.js").splitlines() if "function fmt(" in s)
    got = browser_page.evaluate(
        f"() => {{ {line} return [fmt(100), fmt(120), fmt(-100), fmt(0.5), fmt(1.23456),"
        " fmt(0.000123), fmt(null), fmt(NaN)]; }"
    )
    assert got == ["100", "120", "-100", "0.5", "1.23", "0.000123", "–", "–"]


def test_the_unit_card_shows_its_profile_as_text_and_marks_values_beyond_the_range(
    tmp_path, browser_page
):
    import random

    from tests.report.conftest import record

    rnd = random.Random(0)  # not periodic: the largest values are few, beyond p99
    pieces = ["<b>", "x", "</b>", " & ", "'q'", " <img src=y onerror=alert(1)>", "\n", "ab"]
    text = "".join(rnd.choice(pieces) for _ in range(600))  # chars that are markup
    path = record(tmp_path / "acts.h5", text, num_layers=1)
    with ActivationStore(path) as store:
        report = build_report(store, max_chars=store.n_positions, figures=False)
    page_path = report.save(tmp_path / "acts.report.html")
    page = browser_page
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: errors.append("dialog " + d.message))
    page.goto(page_path.as_uri())
    page.fill(".lpr-goto", "layer0/cell/0")
    page.press(".lpr-goto", "Enter")
    card = page.locator(".lpr-card .lpr-profile")
    assert card.count() == 1 and "Profile of unit 0" in card.inner_text()
    heads = page.eval_on_selector_all(".lpr-profile th", "els => els.map(e => e.textContent)")
    assert "<" in heads and ">" in heads and len(heads) == 9  # the 8 commonest chars, as text
    assert page.locator(".lpr-card b, .lpr-card img").count() <= 1  # only the card's own <b>
    rows = page.eval_on_selector_all(
        ".lpr-profile td:first-child", "els => els.map(e => e.textContent)"
    )
    assert rows[:4] == ["count", "cell", "hidden", "input"]
    # p99 ranges: the few values beyond are outlined, and say so on hover
    out = page.locator(".lpr-window span.lpr-out")
    assert out.count() >= 1
    out.nth(0).hover()
    assert "beyond the colour range" in page.inner_text(".lpr-tip")
    assert errors == []
