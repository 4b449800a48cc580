"""Build the corpus the bundled ``code-lstm`` model was trained on, and its held-out sample.

Source: the ``*.py`` files at the top level of the Python standard library directory of the
running interpreter (``sysconfig.get_paths()["stdlib"]``), Python Software Foundation License.
Files are taken in sorted name order; only files that decode as ASCII and are at most 200 KB are
kept (so no single module dominates), and ``_sysconfigdata*`` (this machine's build settings) is
skipped. Every 5th kept file (0-based index % 5 == 2) goes to the
held-out sample until it reaches ``--sample-kb``; the others go to the training corpus until it
reaches ``--train-kb``. Files are concatenated as they are (a newline is added if a file lacks a
final one). The lists of files used are written beside the training corpus
(``*.train-files.txt``, ``*.sample-files.txt``).

    python benchmarks/make_code_corpus.py -o /tmp/code-train.txt --sample lstmprobe/data/sample-code.txt

The bundled model was built with CPython 3.11.7's standard library; another version gives a
slightly different corpus.
"""

from __future__ import annotations

import argparse
import sysconfig
from pathlib import Path

MAX_FILE_BYTES = 200_000


def candidates(stdlib: Path) -> list[Path]:
    """Top-level ``*.py`` files of the stdlib, sorted by name, ASCII and at most 200 KB."""
    out = []
    for path in sorted(stdlib.glob("*.py")):
        if path.name.startswith("_sysconfigdata"):  # build settings of this machine, not code
            continue
        data = path.read_bytes()
        if len(data) > MAX_FILE_BYTES or not data.strip():
            continue
        try:
            data.decode("ascii")
        except UnicodeDecodeError:
            continue
        out.append(path)
    return out


def build(stdlib: Path, train_kb: int, sample_kb: int) -> tuple[list[Path], list[Path]]:
    train, held_out = [], []
    train_bytes = sample_bytes = 0
    for i, path in enumerate(candidates(stdlib)):
        size = path.stat().st_size
        if i % 5 == 2:
            if sample_bytes + size <= sample_kb * 1000:
                held_out.append(path)
                sample_bytes += size
        elif train_bytes < train_kb * 1000:
            train.append(path)
            train_bytes += size
    return train, held_out


def concatenate(paths: list[Path]) -> str:
    parts = []
    for path in paths:
        text = path.read_text(encoding="ascii")
        parts.append(text if text.endswith("\n") else text + "\n")
    return "".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", required=True, help="training corpus to write")
    parser.add_argument("--sample", required=True, help="held-out sample corpus to write")
    parser.add_argument("--train-kb", type=int, default=3000)
    parser.add_argument("--sample-kb", type=int, default=150)
    parser.add_argument("--stdlib", default=sysconfig.get_paths()["stdlib"])
    args = parser.parse_args()
    stdlib = Path(args.stdlib)
    train, held_out = build(stdlib, args.train_kb, args.sample_kb)
    output = Path(args.output)
    for paths, out, kind in ((train, output, "train"), (held_out, Path(args.sample), "sample")):
        text = concatenate(paths)
        out.write_text(text, encoding="ascii", newline="\n")
        listing = output.with_name(f"{output.name}.{kind}-files.txt")
        listing.write_text("".join(p.name + "\n" for p in paths), encoding="ascii")
        print(f"{out}: {len(paths)} files, {len(text)} chars ({listing})")


if __name__ == "__main__":
    main()
