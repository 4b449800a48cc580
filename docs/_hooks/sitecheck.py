"""The documentation site's checks and includes, in plain Python (no mkdocs import), so that
``tests/test_docs.py`` can check them; ``site.py`` (the mkdocs hooks) calls them.

* :func:`network_fetches` — what an HTML page or a stylesheet would load from the network by
  itself (a script, a stylesheet, an image, a font, a frame), not the links a reader follows.
* :func:`section` — one section of another Markdown file (the README's set-up commands, the
  performance sections of the guides), for a page that includes it: the single source of the
  numbers stays where it is.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

_URL = re.compile(r"^\s*(?:https?:)?//", re.I)
_CSS_URL = re.compile(r"(?:url\(\s*['\"]?|@import\s+['\"])\s*((?:https?:)?//[^'\")\s]+)", re.I)
_JS_URL = re.compile(r"""['"`](https?://[^'"`\s]+)['"`]""")  # a script's address literals
#: attributes that make the browser fetch something, by element ("*": any element)
_FETCHING = {
    "script": ("src",),
    "img": ("src", "srcset"),
    "iframe": ("src",),
    "source": ("src", "srcset"),
    "video": ("src", "poster"),
    "audio": ("src",),
    "embed": ("src",),
    "object": ("data",),
    "image": ("href", "xlink:href"),
    "use": ("href", "xlink:href"),
    "*": ("background",),
}
#: <link rel=...> values that fetch their href (a canonical link or a plain anchor fetches nothing)
_FETCHING_RELS = {"stylesheet", "icon", "preload", "prefetch", "preconnect", "dns-prefetch",
                  "modulepreload", "manifest", "apple-touch-icon", "shortcut"}  # fmt: skip


class _Fetches(HTMLParser):
    """Every network address an HTML page would load by itself (not the links a reader follows)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        names = _FETCHING.get(tag, ()) + _FETCHING["*"]
        if tag == "link" and _FETCHING_RELS & set(values.get("rel", "").lower().split()):
            names += ("href",)
        for name in names:
            for url in re.split(r",\s*", values.get(name, "")):
                if _URL.match(url):
                    self.found.append(f"<{tag} {name}={url.split()[0]}>")
        self.found += [f"style url {u}" for u in _CSS_URL.findall(values.get("style", ""))]
        runs = values.get("type", "text/javascript").lower() in ("text/javascript", "module", "")
        self._in = tag if tag == "style" or (tag == "script" and runs) else None

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "style":
            self.found += [f"<style> {u}" for u in _CSS_URL.findall(data)]
        elif self._in == "script":
            self.found += [f"<script> {u}" for u in _JS_URL.findall(data)]


def network_fetches(path: Path) -> list[str]:
    """What the file (an HTML page or a stylesheet) would load from the network."""
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix == ".css":
        return [f"url {u}" for u in _CSS_URL.findall(text)]
    parser = _Fetches()
    parser.feed(text)
    return parser.found


# --------------------------------------------------------------------------- includes

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
#: links as the README writes them (from the repository root) -> from a page of docs/
SITE_LINKS = {"docs/": "", "notebooks/": "tutorials/"}
#: ``<!-- include FILE "TITLE" -->`` on a line of its own; FILE from the repository root
INCLUDE = re.compile(r'^<!-- include (\S+) "([^"]+)" -->$', re.MULTILINE)


def _headings(lines: list[str]) -> list[tuple[int, int, str]]:
    """(line index, level, title) of every heading outside code fences."""
    found, fenced = [], False
    for i, line in enumerate(lines):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        m = None if fenced else _HEADING.match(line)
        if m:
            found.append((i, len(m.group(1)), m.group(2)))
    return found


def section(text: str, title: str, level: int, source: str = "the file") -> str:
    """The body of the section titled ``title`` in ``text``, its sub-headings set below
    ``level`` (the level of the heading the including page puts above it).

    Links into ``docs/`` and ``notebooks/`` (as the README writes them) become links from a
    page of ``docs/`` (:data:`SITE_LINKS`).
    Raises ``KeyError`` naming ``source`` when no heading has that title.
    """
    lines = text.splitlines()
    heads = _headings(lines)
    match = [(i, lv) for i, lv, t in heads if t == title]
    if not match:
        raise KeyError(f'{source} has no section "{title}"')
    start, own = match[0]
    stop = next((i for i, lv, _ in heads if i > start and lv <= own), len(lines))
    body = lines[start + 1 : stop]
    sub = {i - start - 1: lv for i, lv, _ in heads if start < i < stop}
    for i, lv in sub.items():
        body[i] = "#" * min(6, level + lv - own) + body[i].lstrip("#")
    out = "\n".join(body).strip("\n")
    for prefix, there in SITE_LINKS.items():
        out = out.replace(f"]({prefix}", f"]({there}")
    return out


def include_sections(markdown: str, root: Path) -> str:
    """Replace every ``<!-- include FILE "TITLE" -->`` line of a page by that section."""

    def level_above(pos: int) -> int:
        heads = _headings(markdown[:pos].splitlines())
        return heads[-1][1] if heads else 1

    def include(m: re.Match[str]) -> str:
        path = root / m.group(1)
        return section(
            path.read_text(encoding="utf-8"), m.group(2), level_above(m.start()), m.group(1)
        )

    return INCLUDE.sub(include, markdown)
