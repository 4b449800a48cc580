"""Write the training corpus of the bundled ``c-lstm``: C headers, tab-indented as most C is.

The headers are GNU libc's public headers as Debian's ``libc6-dev`` installs them in
``/usr/include`` (LGPL-2.1-or-later) and the Linux kernel's user-space headers from
``linux-libc-dev`` in ``/usr/include/linux`` (GPL-2.0 WITH Linux-syscall-note, indented with
tabs): every ``*.h`` file of the two folders in name order, each preceded by a ``/* FILE */``
line. The model trained on them (docs/training.md) reads tabs; the corpus itself
is not shipped.

    python benchmarks/make_c_corpus.py -o c.txt
    lstmprobe train c.txt -o c-lstm.pt --hidden 128 --embedding 16 --steps 8000 --slim
"""

from __future__ import annotations

import argparse
from pathlib import Path


def c_corpus(root: Path = Path("/usr/include")) -> str:
    parts = []
    for path in sorted(root.glob("*.h")) + sorted((root / "linux").glob("*.h")):
        text = path.read_text(encoding="utf-8", errors="replace").replace("\r\n", "\n")
        parts.append(f"/* {path.relative_to(root)} */\n{text}")
    return "".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", default="c.txt")
    parser.add_argument("--root", default="/usr/include")
    args = parser.parse_args()
    text = c_corpus(Path(args.root))
    Path(args.output).write_text(text, encoding="utf-8")
    print(f"{args.output}: {len(text):,} chars, {text.count(chr(9)):,} tabs")


if __name__ == "__main__":
    main()
