"""README.md and docs/: every relative link, and every file of the repository they name, exists.

Docs are read on GitHub and in the mkdocs site, where a link to a file that is not in the
repository (a note kept outside it, a renamed module) is a dead end.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)", re.MULTILINE)
# a path into the repository named in the text: a top-level folder of it, then a file
TOP = ("lstmprobe", "docs", "tests", "benchmarks", "notebooks", "hooks", "shared", ".ci")
NAMED = re.compile(r"(?<![\w./-])((?:" + "|".join(map(re.escape, TOP)) + r")/[\w./-]*\w)")
DOC = re.compile(r"(?<![\w./-])([A-Z][A-Z-]+\.md)\b")  # DESIGN.md, CONTRIBUTING.md


def targets(page: Path) -> list[str]:
    text = page.read_text(encoding="utf-8")
    return [m.group(1) for m in (*LINK.finditer(text), *REFERENCE.finditer(text))]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for target in targets(page):
        if re.match(r"[a-zA-Z][\w+.-]*:", target) or target.startswith("#"):
            continue  # a URL or an anchor on the page
        path = target.split("#", 1)[0]
        if path and not (page.parent / path).exists():
            broken.append(target)
    assert not broken, f"{page.name} links to files that do not exist: {broken}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
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
