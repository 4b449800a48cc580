"""Execute the notebooks: every one at the quick size (CI), or at the full size by hand.

    python notebooks/run.py                          # all, quick size, into build/notebooks/
    python notebooks/run.py 01-counter               # one (a name or a path)
    python notebooks/run.py --full                   # all at the full size (minutes each)
    python notebooks/run.py --full --reproduction    # ... and their tables into docs/reproduction.md

A notebook runs in a fresh kernel, in a temporary working directory (what it writes goes there),
against this checkout's ``lstmprobe`` (its root is put first on the kernel's ``PYTHONPATH``), with
``LSTMPROBE_QUICK=1`` at the quick size (small corpora, few training steps, fixed seeds; one
torch thread) or ``LSTMPROBE_QUICK=0`` at the full size. The executed copy, outputs included, is
written to ``build/notebooks/NAME.ipynb`` (``--out`` elsewhere); the notebooks in ``notebooks/``
are committed without outputs (``tests/test_notebooks.py`` checks it). The documentation site
renders the executed copies when they match the sources (``docs/_hooks/site.py``), and executes
the stale or missing ones at the quick size itself.

Every notebook ends with a cell tagged ``claims`` whose output is a Markdown table: claimed /
found here / verdict. ``--reproduction`` copies each full-size table into docs/reproduction.md,
between the markers ``<!-- begin NAME -->`` and ``<!-- end NAME -->``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
OUT = ROOT / "build" / "notebooks"
REPRODUCTION = ROOT / "docs" / "reproduction.md"
CLAIMS_TAG = "claims"
VERDICTS = ("reproduces", "partly", "does not reproduce", "not tested here")
QUICK_TIMEOUT = 300  # seconds per cell
FULL_TIMEOUT = 3600


class NotebookError(Exception):
    """A notebook that failed to run, or that breaks the rules above."""


@dataclass(frozen=True)
class Run:
    """One executed notebook."""

    name: str
    path: Path  # the executed copy
    seconds: float  # wall-clock
    cpu_seconds: float  # the kernel's CPU time (user + system): compare this across loads
    quick: bool


def notebook_paths() -> list[Path]:
    """The notebooks, in order: ``notebooks/NN-name.ipynb``."""
    return sorted(NOTEBOOKS.glob("[0-9][0-9]-*.ipynb"))


def find(name: str) -> Path:
    """A notebook by name (``01-counter``) or path."""
    path = Path(name)
    if path.suffix == ".ipynb" and path.exists():
        return path.resolve()
    for p in notebook_paths():
        if p.stem == name or p.stem.startswith(name + "-") or p.stem[:2] == name:
            return p
    known = ", ".join(p.stem for p in notebook_paths())
    raise NotebookError(f"no notebook {name!r}; the notebooks are {known}")


def read(path: Path) -> Any:
    import nbformat

    return nbformat.read(path, as_version=4)


def committed_outputs(nb: Any) -> list[str]:
    """What a notebook that should be committed clean holds: outputs, execution counts."""
    found = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if cell.get("outputs"):
            found.append(f"cell {i}: {len(cell.outputs)} output(s)")
        if cell.get("execution_count") is not None:
            found.append(f"cell {i}: execution count {cell.execution_count}")
    if "widgets" in nb.metadata:
        found.append("notebook metadata: widget state")
    return found


def sources_digest(nb: Any) -> str:
    """SHA-256 of the code cells' sources: an executed copy is current when it matches (the
    Markdown cells may have changed since: :func:`with_outputs` takes them from the notebook)."""
    cells = [c.source for c in nb.cells if c.cell_type == "code"]
    return hashlib.sha256(json.dumps(cells).encode("utf-8")).hexdigest()


def with_outputs(source: Path, out: Path = OUT) -> Any:
    """The notebook as it is now, with the outputs of its current executed copy."""
    nb, done = read(source), read(executed_copy(source, out))
    ran = [c for c in done.cells if c.cell_type == "code"]
    for cell, executed in zip((c for c in nb.cells if c.cell_type == "code"), ran):
        cell.outputs, cell.execution_count = executed.outputs, executed.execution_count
    nb.metadata["lstmprobe"] = done.metadata.get("lstmprobe", {})
    return nb


def executed_copy(source: Path, out: Path = OUT) -> Path:
    return out / source.name


def is_current(source: Path, out: Path = OUT) -> bool:
    """Whether ``out`` holds an executed copy of the notebook as it is now (either size)."""
    copy = executed_copy(source, out)
    if not copy.exists():
        return False
    meta = read(copy).metadata.get("lstmprobe", {})
    return meta.get("sources") == sources_digest(read(source))


def kernel_env(quick: bool) -> dict[str, str]:
    """The kernel's environment: this checkout first on the path, the size, threads."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["LSTMPROBE_QUICK"] = "1" if quick else "0"
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    env.pop("LSTMPROBE_NOTEBOOKS_OUT", None)
    if quick:  # two notebooks may run at once on two cores (pytest -n 2)
        env["OMP_NUM_THREADS"] = "1"
    return env


def _failure(name: str, nb: Any, exc: Exception) -> NotebookError:
    """One line naming the notebook, the cell and the error (the traceback follows)."""
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    where = "?"
    for i, cell in enumerate(nb.cells):
        outs = cell.get("outputs", []) if cell.cell_type == "code" else []
        if any(o.get("output_type") == "error" for o in outs):
            where = str(i)
            break
    if isinstance(exc, CellExecutionError):
        return NotebookError(f"{name}: cell {where} raised {exc.ename}: {exc.evalue}\n{exc}")
    if isinstance(exc, CellTimeoutError):
        return NotebookError(f"{name}: a cell ran past the timeout: {exc}")
    return NotebookError(f"{name}: {type(exc).__name__}: {exc}")


def execute(source: Path, out: Path = OUT, quick: bool = True, timeout: int | None = None) -> Run:
    """Run ``source`` in a fresh kernel and write the executed copy into ``out``.

    Raises :class:`NotebookError` when a cell fails (the copy, with the error, is still
    written, to be looked at) or when the notebook has no claims table.
    """
    import nbformat
    from nbclient import NotebookClient

    nb = read(source)
    digest = sources_digest(nb)
    out.mkdir(parents=True, exist_ok=True)
    copy = executed_copy(source, out)
    limit = timeout or (QUICK_TIMEOUT if quick else FULL_TIMEOUT)
    start, cpu_start = time.perf_counter(), _children_cpu()
    error: Exception | None = None
    with tempfile.TemporaryDirectory(prefix=f"lstmprobe-{source.stem}-") as work:
        client = NotebookClient(
            nb, timeout=limit, kernel_name="python3", resources={"metadata": {"path": work}}
        )
        try:
            client.execute(env=kernel_env(quick), cwd=work)
        except Exception as exc:  # a failing cell: keep the copy to look at
            error = exc
    seconds, cpu = time.perf_counter() - start, _children_cpu() - cpu_start
    nb.metadata["lstmprobe"] = {
        "sources": digest,
        "size": "quick" if quick else "full",
        "seconds": round(seconds, 1),
        "cpu_seconds": round(cpu, 1),
        "date": date.today().isoformat(),
        "python": platform.python_version(),
        "failed": error is not None,
    }
    part = copy.with_name(copy.name + ".partial")
    nbformat.write(nb, part)
    os.replace(part, copy)
    if error is not None:
        raise _failure(source.stem, nb, error) from None
    claims_table(nb, source.stem)  # raises when it is missing
    return Run(source.stem, copy, seconds, cpu, quick)


def _children_cpu() -> float:
    """CPU seconds of this process's finished children (the kernels, once shut down)."""
    try:
        import resource
    except ImportError:  # not on Windows
        return float("nan")
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def claims_table(nb: Any, name: str = "notebook") -> str:
    """The Markdown table the cell tagged ``claims`` displayed."""
    for cell in nb.cells:
        if CLAIMS_TAG not in cell.get("metadata", {}).get("tags", []):
            continue
        for output in cell.get("outputs", []):
            text = output.get("data", {}).get("text/markdown")
            if text:
                return text if isinstance(text, str) else "".join(text)
        raise NotebookError(f"{name}: the cell tagged {CLAIMS_TAG!r} displayed no Markdown table")
    raise NotebookError(f"{name}: no cell is tagged {CLAIMS_TAG!r} (the claimed/found table)")


def update_reproduction(name: str, table: str, note: str, doc: Path = REPRODUCTION) -> None:
    """Put ``table`` (and ``note``) between ``<!-- begin NAME -->`` and ``<!-- end NAME -->``."""
    text = doc.read_text(encoding="utf-8")
    begin, end = f"<!-- begin {name} -->", f"<!-- end {name} -->"
    if begin not in text or end not in text:
        raise NotebookError(f"{doc.name} has no markers {begin} ... {end}; add them first")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    body = f"{begin}\n{note}\n\n{table.strip()}\n{end}"
    part = doc.with_name(doc.name + ".partial")
    part.write_text(head + body + tail, encoding="utf-8")
    os.replace(part, doc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("names", nargs="*", help="notebooks (default: all)")
    parser.add_argument("--full", action="store_true", help="the full size (by hand: minutes)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"default {OUT.relative_to(ROOT)}")
    parser.add_argument(
        "--reproduction", action="store_true", help="write the tables into docs/reproduction.md"
    )
    args = parser.parse_args(argv)
    if args.reproduction and not args.full:
        parser.error("--reproduction takes the full-size tables: add --full")
    try:
        paths = [find(n) for n in args.names] if args.names else notebook_paths()
        total = cpu = 0.0
        for path in paths:
            run = execute(path, args.out, quick=not args.full)
            total, cpu = total + run.seconds, cpu + run.cpu_seconds
            print(
                f"{run.name}: {run.seconds:.1f} s ({run.cpu_seconds:.1f} s CPU) -> {run.path}",
                flush=True,
            )
            if args.reproduction:
                load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
                note = (
                    f"Full size, executed {date.today().isoformat()} in {run.seconds:.0f} s "
                    f"({run.cpu_seconds:.0f} s CPU) "
                    f"(`python notebooks/run.py --full {run.name}`; {os.cpu_count()} CPUs, "
                    f"load average {load:.1f} at the end)."
                )
                update_reproduction(run.name, claims_table(read(run.path), run.name), note)
        print(f"{len(paths)} notebook(s), {total:.1f} s ({cpu:.1f} s CPU)")
    except NotebookError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
