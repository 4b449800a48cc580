"""The package's imports follow docs/architecture.md: no cycles, no upward imports, no private
names across modules, every module in a stage.

The walk reads every module's source with :mod:`ast` (imports inside functions and under
``TYPE_CHECKING`` included) and resolves each import of ``lstmprobe`` to the module it names.
The checks are run once on a small package written here, so they are known to catch what they
look for, then on lstmprobe itself.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

#: The one-way flow as imports go, earliest first: a module may import its own stage and earlier
#: ones. The store (the file format) comes before record, whose pipeline writes it; the Dask
#: adapter (distributed) runs record, probes and causal, so it comes after them; interop (other
#: tools' formats) comes last, so that no stage depends on a foreign format.
STAGES = (
    "basics", "models", "store", "record", "features", "probes", "causal", "distributed", "report",
    "interop",
)  # fmt: skip
#: ``lm`` sits beside ``models``: it may import basics, models, store and record (it trains and
#: evaluates models), and from features up it may be imported. ``top`` (cli, demo, the
#: package's own ``__init__``) may import anything and nothing below imports it.
RANK = {stage: float(i) for i, stage in enumerate(STAGES)} | {"lm": 3.5, "top": 99.0}
BASICS = {"errors", "names", "text", "_io", "_lazy", "_version", "_float16", "_read"}
TOP = {"cli", "demo", "__main__"}


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the lstmprobe module imported (a package means its __init__)
    name: str | None  # the name taken from it (from X import name), if not a module
    where: str  # file:line


def modules(root: Path, package: str) -> dict[str, Path]:
    """Every module of the package under ``root``: dotted name -> file."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join((package, *parts))] = path
    return out


def stage_of(module: str) -> str | None:
    """The stage a module belongs to, None when it is in none."""
    parts = module.split(".")[1:]
    if not parts:
        return "top"
    head = parts[0]
    if head in BASICS:
        return "basics"
    if head in TOP:
        return "top"
    if head in RANK:
        return head
    return None


def imports(mods: dict[str, Path], package: str, root: Path) -> list[Import]:
    """Every import of a module of ``package`` by a module of it, resolved."""
    found: list[Import] = []
    for source, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        is_package = path.name == "__init__.py"
        bound: dict[str, str] = {}  # local name -> module it is bound to
        private: list[tuple[str, ast.Attribute]] = []  # name._x, checked once all are bound
        rel = path.relative_to(root.parent)
        for node in ast.walk(tree):  # one walk: it visits every node of every module
            if isinstance(node, ast.Attribute):
                if (
                    isinstance(node.value, ast.Name)
                    and node.attr.startswith("_")
                    and not node.attr.startswith("__")
                ):
                    private.append((node.value.id, node))
                continue
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            where = f"{rel}:{node.lineno}"
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == package:
                        found.append(Import(source, alias.name, None, where))
                        bound[alias.asname or alias.name.split(".")[0]] = (
                            alias.name if alias.asname else package
                        )
            else:
                base = node.module or ""
                if node.level:
                    here = source.split(".") if is_package else source.split(".")[:-1]
                    up = here[: len(here) - (node.level - 1)]
                    base = ".".join([*up, base] if base else up)
                if base.split(".")[0] != package:
                    continue
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    if sub in mods:
                        found.append(Import(source, sub, None, where))
                        bound[alias.asname or alias.name] = sub
                    else:
                        found.append(Import(source, base, alias.name, where))
        for name, node in private:  # module._private, through a name bound to a module
            if name in bound and f"{bound[name]}.{node.attr}" not in mods:
                found.append(Import(source, bound[name], node.attr, f"{rel}:{node.lineno}"))
    return found


def cycles(found: list[Import]) -> list[list[str]]:
    """The strongly connected groups of modules of more than one (Tarjan), each sorted."""
    graph: dict[str, set[str]] = {}
    for imp in found:
        if imp.target != imp.source:
            graph.setdefault(imp.source, set()).add(imp.target)
            graph.setdefault(imp.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(groups)


def violations(root: Path, package: str) -> dict[str, list[str]]:
    """What breaks each rule, one line per offence: cycle, upward, private, stage."""
    mods = modules(root, package)
    found = imports(mods, package, root)
    out: dict[str, list[str]] = {"cycle": [], "upward": [], "private": [], "stage": []}
    for group in cycles(found):
        members = set(group)
        edges = sorted(
            {
                f"{i.source} -> {i.target} ({i.where})"
                for i in found
                if {i.source, i.target} <= members and i.source != i.target
            }
        )
        out["cycle"].append(f"{' <-> '.join(group)}: " + "; ".join(edges))
    for module in mods:
        if stage_of(module) is None:
            out["stage"].append(f"{module} is in no stage ({', '.join(STAGES)}, lm, cli)")
    for imp in sorted(found, key=lambda i: (i.source, i.where)):
        src, dst = stage_of(imp.source), stage_of(imp.target)
        if src is not None and dst is not None and RANK[dst] > RANK[src]:
            out["upward"].append(
                f"{imp.where}: {imp.source} ({src}) imports {imp.target} ({dst}), a later stage"
            )
        private_module = next(
            (p for p in imp.target.split(".")[1:] if p.startswith("_") and p != "__init__"), None
        )
        private_name = imp.name is not None and imp.name.startswith("_")
        if private_name and not imp.name.startswith("__") and imp.target != imp.source:
            out["private"].append(f"{imp.where}: {imp.source} takes {imp.target}.{imp.name}")
        elif private_module is not None:
            owner = imp.target[: imp.target.index(private_module)].rstrip(".")
            if not (imp.source == owner or imp.source.startswith(owner + ".")):
                out["private"].append(
                    f"{imp.where}: {imp.source} imports {imp.target}, private to {owner}"
                )
    return {rule: sorted(set(lines)) for rule, lines in out.items()}


# --------------------------------------------------------------------------- one name for each thing

#: The one module that parses unit names (``layer0/cell/17``), and the one that spells the files
#: of a recording (``acts.rankings.json``, ``acts.h5.partial``, ...).
NAMES_OWNER = "names.py"
FILES_OWNER = "store/recording.py"
_SPLITS = {"split", "rsplit", "partition", "rpartition"}
_ENDS = {"startswith", "endswith", "removeprefix", "removesuffix"}
_UNIT_REGEX = re.compile(r"layer(\\d|\[0-9|\(|\{)")


def _docstrings(tree: ast.Module) -> set[int]:
    """ids of the docstring nodes of a module and of its classes and functions."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out


def _text_parts(node: ast.AST) -> list[str]:
    """The literal text of a string constant or of an f-string's constant parts."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        return [v.value for v in node.values if isinstance(v, ast.Constant)]
    return []


def _parses_a_name(node: ast.AST, quantities: tuple[str, ...]) -> bool:
    """``x.split("/")``, ``x.endswith("/cell")``, ``x.startswith(f"{layer}/")``, ``"/" in x``,
    a regex of layer names: the grammar of unit names, spelled again."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
        arg = node.args[0]
        if node.func.attr in _SPLITS:
            return _text_parts(arg) == ["/"]
        if node.func.attr in _ENDS:
            if isinstance(arg, ast.JoinedStr):
                return any("/" in t for t in _text_parts(arg))
            return any(t.strip("/") in quantities and "/" in t for t in _text_parts(arg))
    if isinstance(node, ast.Compare) and isinstance(node.ops[0], (ast.In, ast.NotIn)):
        return _text_parts(node.left) == ["/"]
    return any(_UNIT_REGEX.search(t) for t in _text_parts(node))


def naming(
    root: Path, package: str, quantities: tuple[str, ...], files: tuple[str, ...]
) -> dict[str, list[str]]:
    """What breaks the naming rules, one line per offence: ``unit-parsing`` (a unit name parsed
    outside ``names.py``) and ``file-names`` (a file of a recording spelled outside
    ``store/recording.py``: a string that ends in one of ``files``)."""
    out: dict[str, list[str]] = {"unit-parsing": [], "file-names": []}
    ends = tuple(files)
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        skip = _docstrings(tree)  # and the parts of f-strings, read with their f-string
        skip |= {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
        where = path.relative_to(root.parent).as_posix()
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            if rel != NAMES_OWNER and _parses_a_name(node, quantities):
                out["unit-parsing"].append(f"{where}:{node.lineno}: {ast.unparse(node)[:70]}")
            texts = _text_parts(node) if not isinstance(node, ast.JoinedStr) else []
            if isinstance(node, ast.JoinedStr) and node.values:
                last = node.values[-1]
                texts = [last.value] if isinstance(last, ast.Constant) else []
            module = f"{package}."  # a module's dotted name (lstmprobe.report.html) is no file
            if rel != FILES_OWNER and any(
                t.endswith(ends) and " " not in t and not t.startswith(module) for t in texts
            ):
                out["file-names"].append(f"{where}:{node.lineno}: {ast.unparse(node)[:70]}")

    def line(offence: str) -> tuple[str, int]:
        file, number, _ = offence.split(":", 2)
        return file, int(number)

    return {rule: sorted(set(lines), key=line) for rule, lines in out.items()}


def _report(found: list[str]) -> str:
    return f"{len(found)} violation(s):\n" + "\n".join(found)


# --------------------------------------------------------------------------- the checker itself


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_checker_finds_cycles_upward_imports_private_names_and_strays(tmp_path):
    pkg = tmp_path / "pkg"
    _write(
        pkg,
        {
            "__init__.py": "from pkg.store import reader\n",
            "errors.py": "",
            "models/__init__.py": "",
            "models/load.py": "def f():\n    from pkg.probes.scores import score\n",
            "store/__init__.py": "",
            "store/reader.py": "from pkg.store import writer\nfrom pkg.store._mapped import View\n",
            "store/writer.py": "from . import reader\nfrom pkg.errors import _hidden\n",
            "store/_mapped.py": "",
            "probes/__init__.py": "",
            "probes/scores.py": "import pkg.store._mapped\nfrom pkg import errors as e\ne._x, e.__doc__\n",
            "stray.py": "",
        },
    )
    got = violations(pkg, "pkg")
    assert [c.split(":")[0] for c in got["cycle"]] == ["pkg.store.reader <-> pkg.store.writer"]
    assert (
        len(got["upward"]) == 1
        and "pkg.models.load (models) imports pkg.probes" in (got["upward"][0])
    )
    assert len(got["private"]) == 3, got["private"]
    assert any("takes pkg.errors._hidden" in p for p in got["private"])
    assert any(
        "pkg.probes.scores imports pkg.store._mapped, private to pkg.store" in p
        for p in got["private"]
    )
    assert any("takes pkg.errors._x" in p for p in got["private"])
    assert got["stage"] == [f"pkg.stray is in no stage ({', '.join(STAGES)}, lm, cli)"]


def test_the_checker_finds_unit_names_parsed_and_file_names_spelled_outside_their_owners(
    tmp_path,
):
    pkg = tmp_path / "pkg"
    _write(
        pkg,
        {
            "names.py": 'def parse(t):\n    return t.split("/")\n',
            "store/recording.py": 'RANKINGS = "rankings.json"\n',
            "report/data.py": (
                '"""Reads acts.rankings.json beside the store."""\n'
                "def f(key, name, layer, store):\n"
                '    a = key.split("/")[1]\n'
                '    b = name.rpartition("/")\n'
                '    c = key.endswith("/cell")\n'
                '    d = key.startswith(f"{layer}/")\n'
                '    e = "/" in key\n'
                '    g = re.compile(r"layer(\\d+)/(\\w+)")\n'
                '    h = store.sibling("rankings.json")\n'
                '    i = store.with_name(f"{store.stem}.ablations.h5")\n'
                '    j = store.with_name(store.name + ".partial")\n'
                '    ok = path.endswith("/data.pkl"), "see acts.rankings.json here", "a/b", "pkg.report.html"\n'
            ),
        },
    )
    got = naming(pkg, "pkg", ("cell", "hidden"), ("rankings.json", "ablations.h5", ".partial"))
    lines = [line.split(":")[1] for line in got["unit-parsing"]]
    assert lines == ["3", "4", "5", "6", "7", "8"], got["unit-parsing"]
    assert [line.split(":")[1] for line in got["file-names"]] == ["9", "10", "11"], got


# --------------------------------------------------------------------------- lstmprobe

ROOT = Path(__file__).resolve().parents[1] / "lstmprobe"


@pytest.fixture(scope="module")
def found() -> dict[str, list[str]]:
    return violations(ROOT, "lstmprobe")


@pytest.mark.parametrize("rule", ["cycle", "upward", "private", "stage"])
def test_lstmprobe_keeps_the_rule(found, rule):
    assert not found[rule], _report(found[rule])


@pytest.mark.parametrize("rule", ["unit-parsing", "file-names"])
def test_lstmprobe_names_each_thing_in_one_place(rule):
    from lstmprobe.names import QUANTITIES
    from lstmprobe.store.recording import FILE_SUFFIXES

    found = naming(ROOT, "lstmprobe", QUANTITIES, FILE_SUFFIXES)
    assert not found[rule], _report(found[rule])
