"""mkdocs hooks of the documentation site (mkdocs.yml: ``hooks``).

* The notebooks of ``notebooks/`` become the pages ``tutorials/NAME``, rendered with their
  outputs by mkdocs-jupyter from the executed copies in ``build/notebooks/`` (what
  ``python notebooks/run.py`` and CI's test run write). A notebook whose copy is missing, or
  whose code cells changed since, is executed here first, at the quick size. Its links to
  ``../docs/PAGE.md`` become links to the site's pages.
* A page can include a section of another Markdown file, ``<!-- include README.md "Set-up" -->``,
  so the README's commands and the guides' measured tables have one source (``sitecheck.py``).
* On the CLI page (mkdocs-click), click's unwrapped ``Examples:`` blocks become code blocks.
* Docstrings written with Sphinx roles (``:class:`~lstmprobe.store.ActivationStore```) are
  rendered as links by mkdocstrings' cross-references (``griffe_roles.py``).
* The site must work offline: nbconvert's pages load MathJax and Mermaid from CDNs, and the
  notebooks use neither, so those two blocks are removed; after the build every page and
  stylesheet is scanned, and anything that would load from the network (a script, a
  stylesheet, an image, a font, a frame) fails the build.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import sys
import textwrap
from pathlib import Path
from typing import Any

import nbformat
from markdown.extensions import Extension
from markdown.preprocessors import Preprocessor
from mkdocs.exceptions import PluginError
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files
from sitecheck import include_sections, network_fetches  # beside this file

ROOT = Path(__file__).resolve().parents[2]
TUTORIALS = "tutorials"
STAGE = ROOT / "build" / "docs-notebooks"
log = logging.getLogger("mkdocs.hooks.site")


def _runner() -> Any:
    """``notebooks/run.py`` as a module (it is a script, not part of the package)."""
    if "lstmprobe_notebooks_run" in sys.modules:
        return sys.modules["lstmprobe_notebooks_run"]
    spec = importlib.util.spec_from_file_location(
        "lstmprobe_notebooks_run", ROOT / "notebooks" / "run.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------- notebooks


def _executed() -> Path:
    """Where the executed copies are: ``$LSTMPROBE_NOTEBOOKS_OUT`` or build/notebooks/."""
    out = Path(os.environ.get("LSTMPROBE_NOTEBOOKS_OUT") or ROOT / "build" / "notebooks")
    return out if out.is_absolute() else ROOT / out


@event_priority(100)  # before mkdocs-jupyter's on_files, which wraps .ipynb files as pages
def on_files(files: Files, config: Any) -> Files:
    run = _runner()
    out = _executed()
    for source in run.notebook_paths():
        if not run.is_current(source, out):
            try:
                done = run.execute(source, out, quick=True)
            except run.NotebookError as exc:
                raise PluginError(f"notebook {source.name} failed: {exc}") from None
            log.info(f"executed {source.name} at the quick size: {done.seconds:.0f} s")
        # mkdocs-jupyter reads a page's notebook from its file's src_dir, so each notebook, with
        # the outputs of its executed copy, is staged as build/docs-notebooks/tutorials/NAME.ipynb
        staged = STAGE / TUTORIALS / source.name
        staged.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(run.with_outputs(source, out), staged)
        files.append(
            File(
                f"{TUTORIALS}/{source.name}",
                src_dir=str(STAGE),
                dest_dir=config["site_dir"],
                use_directory_urls=config["use_directory_urls"],
            )
        )
    return files


# nbconvert's lab template puts these into every notebook page; the notebooks use no maths
# and no Mermaid diagrams, and a page must not load anything from the network
_CDN_BLOCKS = [
    re.compile(r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", re.S),
    re.compile(
        r"<script type=\"module\">\s*document\.addEventListener\(\"DOMContentLoaded\".*?</script>",
        re.S,
    ),
]


#: a notebook links to the documentation as the repository holds it, ../docs/PAGE.md, which
#: works on GitHub and in Jupyter; on the site that is the page PAGE
_DOC_LINK = re.compile(r'href="\.\./docs/([^"#]+\.md)(#[^"]*)?"')


def on_page_content(html: str, page: Any, config: Any, files: Files) -> str:
    if not page.file.src_uri.startswith(f"{TUTORIALS}/"):
        return html
    for block in _CDN_BLOCKS:
        html = block.sub("", html)

    def link(m: re.Match[str]) -> str:
        target = files.get_file_from_path(m.group(1))
        if target is None:
            raise PluginError(
                f"{page.file.src_uri} links to docs/{m.group(1)}, which is not a page"
            )
        return f'href="{target.url_relative_to(page.file)}{m.group(2) or ""}"'

    return _DOC_LINK.sub(link, html)


# --------------------------------------------------------------------------- the CLI page

_page: list[str] = [""]  # the page being rendered (pages render one at a time)


class _ClickExamples(Preprocessor):
    """On the CLI page: click's unwrapped examples as code blocks.

    A command's help writes ``Examples:`` (any line ending in a colon) followed by indented
    command lines in a ``\\b`` block, which click prints as they are; mkdocs-click hands them
    over as Markdown, where they would run together into one paragraph.
    """

    def run(self, lines: list[str]) -> list[str]:
        if _page[0] != "cli.md":
            return lines
        out: list[str] = []
        i = 0
        while i < len(lines):
            out.append(lines[i])
            j = i + 1
            if lines[i].rstrip().endswith(":") and not lines[i].startswith(" "):
                while j < len(lines) and lines[j].startswith("    ") and lines[j].strip():
                    j += 1
                if j > i + 1:
                    body = textwrap.dedent("\n".join(lines[i + 1 : j]))
                    out += ["", "```", *body.splitlines(), "```", ""]
            i = j
        # click 8.2's "no default" sentinel is not a default a reader can use
        return [line.replace("`Sentinel.UNSET`", "") for line in out]


class _ClickExamplesExtension(Extension):
    def extendMarkdown(self, md: Any) -> None:
        md.preprocessors.register(_ClickExamples(md), "lstmprobe_click_examples", 140)


def on_config(config: Any) -> Any:
    config["markdown_extensions"].append(_ClickExamplesExtension())  # after mkdocs-click (141)
    return config


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    _page[0] = page.file.src_uri
    try:
        return include_sections(markdown, ROOT)
    except (KeyError, OSError) as exc:
        raise PluginError(f"{page.file.src_uri}: cannot include a section: {exc}") from None


def on_post_build(config: Any) -> None:
    site = Path(config["site_dir"])
    problems = []
    for path in sorted(site.rglob("*")):
        if path.suffix in (".html", ".css"):
            problems += [f"{path.relative_to(site)}: {f}" for f in network_fetches(path)]
    if problems:
        shown = "; ".join(problems[:10]) + (
            f"; ... ({len(problems)} in all)" if len(problems) > 10 else ""
        )
        raise PluginError(f"the site must work offline, but pages load from the network: {shown}")
