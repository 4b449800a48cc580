"""The notebooks of notebooks/: committed without outputs, shaped as the tutorials promise, and
every one executed at the quick size in a real Jupyter kernel (``notebooks/run.py``).

Set ``LSTMPROBE_NOTEBOOKS_OUT=build/notebooks`` to keep the executed copies where the
documentation site renders them from (``.ci/run`` does); otherwise they go to a temporary folder.
"""

from __future__ import annotations

import copy
import importlib.util
import os
import re
import sys
from pathlib import Path

import nbformat
import pytest

from tests.test_docs import LINK

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("notebooks_run", ROOT / "notebooks" / "run.py")
assert _spec is not None and _spec.loader is not None
run = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = run  # its dataclasses look their module up
_spec.loader.exec_module(run)

NOTEBOOKS = run.notebook_paths()
MKDOCS = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
REPRODUCTION = (ROOT / "docs" / "reproduction.md").read_text(encoding="utf-8")


def test_there_are_notebooks() -> None:
    """One per study of the post, and the two of lstmprobe's own (issue 23)."""
    assert [p.stem for p in NOTEBOOKS] == [
        "01-counter",
        "02-selective-counter",
        "03-ab-memory",
        "04-copy",
        "05-code-model",
        "06-your-own-model",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(path: Path) -> None:
    assert run.committed_outputs(run.read(path)) == [], (
        f"{path.name} holds outputs; clear them before committing (Jupyter: Edit > Clear "
        "Outputs of All Cells; or `jupyter nbconvert --clear-output --inplace FILE`)"
    )


def test_the_output_check_sees_outputs() -> None:
    nb = run.read(NOTEBOOKS[0])
    dirty = copy.deepcopy(nb)
    code = next(c for c in dirty.cells if c.cell_type == "code")
    code.outputs = [nbformat.v4.new_output("stream", text="hello\n")]
    code.execution_count = 3
    found = run.committed_outputs(dirty)
    assert len(found) == 2 and "1 output(s)" in found[0] and "execution count 3" in found[1]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_shaped_as_a_tutorial(path: Path) -> None:
    """Opens with what the post claimed, ends with the claims table, reads the size from the
    environment, and is listed in the site and on the reproduction page."""
    nb = run.read(path)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and "## What the post claimed" in first.source
    tagged = [c for c in nb.cells if run.CLAIMS_TAG in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1 and tagged[0] is nb.cells[-1], (
        "the last cell, and only it, is tagged claims"
    )
    assert "claims_table(" in tagged[0].source
    assert any('os.environ.get("LSTMPROBE_QUICK")' in c.source for c in nb.cells)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    assert f"tutorials/{path.name}" in MKDOCS, f"mkdocs.yml's nav does not list {path.name}"
    name = path.stem
    assert f"<!-- begin {name} -->" in REPRODUCTION and f"<!-- end {name} -->" in REPRODUCTION


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_links_resolve_from_the_notebook(path: Path) -> None:
    """Links go to the repository's files (../docs/PAGE.md): they work on GitHub and in
    Jupyter, and the site turns them into its pages (docs/_hooks/site.py)."""
    broken = []
    for cell in run.read(path).cells:
        if cell.cell_type != "markdown":
            continue
        for target in LINK.findall(cell.source):
            if re.match(r"[a-zA-Z][\w+.-]*:", target) or target.startswith("#"):
                continue
            if not (path.parent / target.split("#", 1)[0]).exists():
                broken.append(target)
    assert not broken, f"{path.name} links to files that do not exist: {broken}"


def test_reproduction_page_has_a_table_for_every_notebook() -> None:
    for path in NOTEBOOKS:
        section = REPRODUCTION.split(f"<!-- begin {path.stem} -->")[1].split(
            f"<!-- end {path.stem} -->"
        )[0]
        assert "| claimed | found here | verdict |" in section, path.stem
        verdicts = re.findall(r"\| \*\*([a-z ]+)\*\* \|$", section, re.MULTILINE)
        assert verdicts and set(verdicts) <= set(run.VERDICTS), (path.stem, verdicts)


def test_the_reproduction_update_replaces_one_section(tmp_path: Path) -> None:
    doc = tmp_path / "r.md"
    doc.write_text("intro\n<!-- begin 01-x -->\nold\n<!-- end 01-x -->\nafter\n", encoding="utf-8")
    run.update_reproduction("01-x", "| a |\n", "note", doc)
    assert doc.read_text(encoding="utf-8") == (
        "intro\n<!-- begin 01-x -->\nnote\n\n| a |\n<!-- end 01-x -->\nafter\n"
    )
    with pytest.raises(run.NotebookError, match="no markers"):
        run.update_reproduction("02-y", "| a |", "note", doc)


def test_an_executed_copy_stays_current_while_the_code_is_the_same(tmp_path: Path) -> None:
    """Prose may change without executing the notebook again; the site takes the prose from the
    notebook and the outputs from the copy."""
    source = tmp_path / "src" / "09-x.ipynb"
    source.parent.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("old words"), nbformat.v4.new_code_cell("1 + 1")]
    nbformat.write(nb, source)
    done = copy.deepcopy(nb)
    done.cells[1].outputs = [
        nbformat.v4.new_output("execute_result", {"text/plain": "2"}, execution_count=1)
    ]
    done.metadata["lstmprobe"] = {"sources": run.sources_digest(nb), "size": "quick"}
    out = tmp_path / "out"
    out.mkdir()
    nbformat.write(done, out / source.name)
    nb.cells[0].source = "new words"
    nbformat.write(nb, source)
    assert run.is_current(source, out)
    merged = run.with_outputs(source, out)
    assert merged.cells[0].source == "new words"
    assert merged.cells[1].outputs[0]["data"]["text/plain"] == "2"
    nb.cells[1].source = "1 + 2"
    nbformat.write(nb, source)
    assert not run.is_current(source, out)


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_runs_at_the_quick_size(path: Path, tmp_path: Path) -> None:
    out = Path(os.environ.get("LSTMPROBE_NOTEBOOKS_OUT") or tmp_path)
    done = run.execute(path, out if out.is_absolute() else ROOT / out, quick=True)
    nb = run.read(done.path)
    assert nb.metadata["lstmprobe"]["size"] == "quick"
    assert run.is_current(path, done.path.parent)
    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"
    ]
    assert not errors
    table = run.claims_table(nb, path.stem)
    rows = [line for line in table.splitlines() if line.startswith("| ") and "**" in line]
    assert rows and all(
        re.search(r"\*\*(" + "|".join(run.VERDICTS) + r")\*\* \|$", r) for r in rows
    ), table
    # every cell that draws one of the library's figures shows it (in Jupyter, not only the
    # first cell's figures: the theme once turned interactive mode off behind the first one)
    blank = [
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code"
        and FIGURE_CALL.search(c.source)
        and not any("image/png" in o.get("data", {}) for o in c.outputs)
    ]
    assert not blank, f"cells {blank} draw figures but show none"
    # a figure returned as a cell's last value is shown twice (inline, and as the value): end
    # the line with ";"
    twice = [
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code"
        and len(
            pngs := [o["data"]["image/png"] for o in c.outputs if "image/png" in o.get("data", {})]
        )
        != len(set(map(str, pngs)))
    ]
    assert not twice, f"cells {twice} show the same figure twice"


FIGURE_CALL = re.compile(
    r"^[^#\n]*\b(unit_text|unit_internals|heatmap|distributions|saturation|separator|probe_curve|"
    r"keep_write|timescales|profile_figure|patch_heatmap|draw_trajectories)\(",
    re.MULTILINE,
)
