"""README.md and docs/: every relative link, and every file of the repository they name, exists.

Docs are read on GitHub and in the mkdocs site, where a link to a file that is not in the
repository (a note kept outside it, a renamed module) is a dead end.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
#: the site's pages that are not files of docs/: the notebooks, rendered as tutorials/NAME.ipynb
#: by docs/_hooks/site.py
GENERATED = {ROOT / "docs" / "tutorials": ROOT / "notebooks"}
LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)", re.MULTILINE)
# a path into the repository named in the text: a top-level folder of it, then a file
TOP = ("lstmprobe", "docs", "tests", "benchmarks", "notebooks", "hooks", "shared", ".ci")
NAMED = re.compile(r"(?<![\w./-])((?:" + "|".join(map(re.escape, TOP)) + r")/[\w./-]*\w)")
DOC = re.compile(r"(?<![\w./-])([A-Z][A-Z-]+\.md)\b")  # DESIGN.md, CONTRIBUTING.md


def targets(page: Path) -> list[str]:
    text = page.read_text(encoding="utf-8")
    return [m.group(1) for m in (*LINK.finditer(text), *REFERENCE.finditer(text))]


def _resolve(path: Path) -> Path:
    """The file a link names, a generated page's source for the site's generated pages."""
    path = Path(os.path.normpath(path))
    for site, source in GENERATED.items():
        if path.parent == site:
            return source / path.name
    return path


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for target in targets(page):
        if re.match(r"[a-zA-Z][\w+.-]*:", target) or target.startswith("#"):
            continue  # a URL or an anchor on the page
        path = target.split("#", 1)[0]
        if path and not _resolve(page.parent / path).exists():
            broken.append(target)
    assert not broken, f"{page.name} links to files that do not exist: {broken}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_files_named_in_the_text_are_in_the_repository(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    missing = [p for p in NAMED.findall(text) if not (ROOT / p.rstrip(".")).exists()]
    missing += [d for d in DOC.findall(text) if not (ROOT / d).exists()]
    assert not missing, f"{page.name} names files that are not in the repository: {missing}"


def test_the_checks_see_links_and_names() -> None:
    page = "[a](docs/x.md) and [b](http://x.org) [c](#top)\n[d]: ../y.md\n"
    assert [m.group(1) for m in LINK.finditer(page)] == ["docs/x.md", "http://x.org", "#top"]
    assert REFERENCE.findall(page) == ["../y.md"]
    assert NAMED.findall("see shared/SEED-NOTES.md and `lstmprobe/probes.py`.") == [
        "shared/SEED-NOTES.md",
        "lstmprobe/probes.py",
    ]
    assert DOC.findall("the contract (DESIGN.md) and README.md") == ["DESIGN.md", "README.md"]


def python_blocks(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), re.S)


@pytest.mark.parametrize("i", range(len(python_blocks(ROOT / "README.md"))))
def test_the_readmes_python_works_when_pasted(i: int) -> None:
    """Each python block of the README runs as it is, in a fresh namespace (the bundled model;
    no file of the reader's), and hands no grad-tracking tensor to NumPy."""
    code = python_blocks(ROOT / "README.md")[i]
    exec(compile(code, f"README.md block {i}", "exec"), {"__name__": "readme"})


# --------------------------------------------------------------------------- the site's own checks

_spec = importlib.util.spec_from_file_location(
    "sitecheck", ROOT / "docs" / "_hooks" / "sitecheck.py"
)
assert _spec is not None and _spec.loader is not None
sitecheck = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sitecheck)


def test_the_offline_check_sees_what_a_page_would_load(tmp_path: Path) -> None:
    page = tmp_path / "p.html"
    page.write_text(
        '<html><head><script src="https://cdn.example/x.js"></script>'
        '<link rel="stylesheet" href="//fonts.example/css">'
        '<link rel="canonical" href="https://example.org/p">'  # names, fetches nothing
        "<style>@import 'https://a.example/b.css'; p { background: url(http://c.example/i.png) }</style>"
        '<script>import("https://esm.example/m.mjs")</script>'
        '<script type="application/json">{"text": "see https://data.example/"}</script>'
        "</head><body>"
        '<a href="https://example.org/">a link a reader follows</a>'
        '<img src="img/local.png"><img srcset="https://img.example/a.png 2x">'
        '<iframe src="http://frame.example/"></iframe><div style="background:url(//d.example/e)">'
        "</body></html>",
        encoding="utf-8",
    )
    found = sitecheck.network_fetches(page)
    for host in ("cdn", "fonts", "a", "c", "esm", "img", "frame", "d"):
        assert any(f"{host}.example" in f for f in found), (host, found)
    assert not any("example.org" in f or "data.example" in f for f in found), found
    css = tmp_path / "s.css"
    css.write_text("@font-face { src: url('https://f.example/font.woff2') }", encoding="utf-8")
    assert sitecheck.network_fetches(css) == ["url https://f.example/font.woff2"]


def test_an_included_section_keeps_its_text_and_mends_its_links() -> None:
    text = (
        "# T\n\n## Set-up\n\nRun [it](docs/x.md) and see [01](notebooks/01-counter.ipynb).\n\n"
        "```\n# not a heading\n```\n\n### Detail\n\nmore\n\n## Next\n\nother\n"
    )
    body = sitecheck.section(text, "Set-up", level=2)
    assert body.startswith("Run [it](x.md) and see [01](tutorials/01-counter.ipynb).")
    assert "# not a heading" in body and "\n### Detail\n" in body and "other" not in body
    assert "\n#### Detail\n" in sitecheck.section(text, "Set-up", level=3)
    with pytest.raises(KeyError, match="no section"):
        sitecheck.section(text, "Install", level=2)


def test_every_included_section_exists() -> None:
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for m in sitecheck.INCLUDE.finditer(text):
            source = (ROOT / m.group(1)).read_text(encoding="utf-8")
            assert sitecheck.section(source, m.group(2), 2), (page.name, m.group(0))


def test_the_api_page_lists_every_top_level_name() -> None:
    import lstmprobe

    api = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    missing = [n for n in lstmprobe.__all__ if not n.startswith("__") and f"[`{n}`]" not in api]
    assert not missing, f"docs/api.md does not list {missing}"
