"""The synthetic tasks of "Exploring LSTMs": seeded corpus generators, one sequence per line.

Each task has a free part (what the model cannot know in advance) and a deterministic part (what
it must complete once it has read the separator). :func:`split` cuts a line into the two, which is
what ``lstmprobe evaluate`` uses to score greedy completions.

=====================  ==========================================  ==============  ==========
task                   a line                                      separator       key
=====================  ==========================================  ==============  ==========
``counter``            N ``a``, ``X``, N ``b``                     ``X``           N
``selective-counter``  N ``a`` with random ``X`` among them, ``Y``,  ``Y``           N
                       N ``b``
``ab-memory``          ``A`` or ``B``, K ``x``, ``Y``, ``a``/``b``   ``Y``           K
``copy``               3 chars from {a,b,c}, ``X``, the same 3     ``X``           (none)
=====================  ==========================================  ==============  ==========

N (and K for ``ab-memory``) is drawn uniformly from ``min_n..max_n``, 1..10 by default, so a test
corpus with ``min_n=11, max_n=20`` asks how far a model's counting extrapolates.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from lstmprobe._io import atomic_write
from lstmprobe.errors import CorpusError
from lstmprobe.text import Pair, pairs_text


@dataclass(frozen=True)
class Task:
    """One synthetic task: how to draw a line, where its deterministic part starts, its form."""

    name: str
    description: str
    separator: str
    key: str | None  # what the per-key breakdown of evaluate groups by ("n", "x_count", None)
    pattern: re.Pattern[str]
    draw: Callable[[random.Random, int, int], str]

    def split(self, line: str) -> tuple[str, str, int | None]:
        """``(prefix, target, key)``: the prefix ends with the separator, the target is the rest."""
        body = line.rstrip("\n")
        if not self.pattern.fullmatch(body):
            raise CorpusError(f"line {body[:40]!r} is not of the form of the {self.name} task")
        cut = body.index(self.separator) + 1
        target = line[cut:]
        key: int | None = None
        if self.key == "n":
            key = body.count("a")
        elif self.key == "x_count":
            key = body.count("x")
        return body[:cut], target, key


def _counter(rng: random.Random, lo: int, hi: int) -> str:
    n = rng.randint(lo, hi)
    return "a" * n + "X" + "b" * n


def _selective_counter(rng: random.Random, lo: int, hi: int) -> str:
    n = rng.randint(lo, hi)
    n_x = rng.randint(0, n)
    rest = ["a"] * (n - 1) + ["X"] * n_x
    rng.shuffle(rest)
    return "a" + "".join(rest) + "Y" + "b" * n


def _ab_memory(rng: random.Random, lo: int, hi: int) -> str:
    first = rng.choice("AB")
    return first + "x" * rng.randint(lo, hi) + "Y" + first.lower()


def _copy(rng: random.Random, lo: int, hi: int) -> str:
    chars = "".join(rng.choice("abc") for _ in range(3))
    return chars + "X" + chars


TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task(
            "counter",
            'N "a", then "X", then N "b"',
            "X",
            "n",
            re.compile(r"a+Xb*"),
            _counter,
        ),
        Task(
            "selective-counter",
            'N "a" with random "X"s interspersed, then "Y", then N "b"',
            "Y",
            "n",
            re.compile(r"a[aX]*Yb*"),
            _selective_counter,
        ),
        Task(
            "ab-memory",
            '"A" or "B", then N "x", then "Y", then the lowercase of the first char',
            "Y",
            "x_count",
            re.compile(r"[AB]x*Y[ab]?"),
            _ab_memory,
        ),
        Task(
            "copy",
            '3 chars from {a,b,c}, then "X", then the same 3 chars',
            "X",
            None,
            re.compile(r"[abc]{3}X[abc]{0,3}"),
            _copy,
        ),
    )
}


def get_task(name: str) -> Task:
    """The task called ``name``; a :class:`~lstmprobe.errors.CorpusError` naming the choices if none."""
    try:
        return TASKS[name]
    except KeyError:
        raise CorpusError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}") from None


def generate(name: str, count: int, seed: int = 0, min_n: int = 1, max_n: int = 10) -> list[str]:
    """``count`` lines of task ``name`` (without newlines), the same for the same ``seed``.

    ``min_n``/``max_n`` bound N for ``counter`` and ``selective-counter`` and the number of x's
    for ``ab-memory``; ``copy`` always has 3 chars.

    Examples
    --------
    >>> generate("counter", 3, seed=1, max_n=4)
    ['aaXbb', 'aXb', 'aaaXbbb']
    >>> generate("copy", 2, seed=0)
    ['bbaXbba', 'bcbXbcb']
    """
    task = get_task(name)
    if count < 1:
        raise CorpusError(f"`count` (sequences) must be at least 1, got {count}")
    if not 1 <= min_n <= max_n:
        raise CorpusError(f"need 1 <= `min_n` <= `max_n`, got `min_n={min_n}`, `max_n={max_n}`")
    rng = random.Random(seed)
    return [task.draw(rng, min_n, max_n) for _ in range(count)]


def corpus(name: str, count: int, seed: int = 0, min_n: int = 1, max_n: int = 10) -> str:
    """The text of a task corpus: :func:`generate`'s lines, each ending in a newline."""
    return "".join(line + "\n" for line in generate(name, count, seed, min_n, max_n))


def write(
    name: str,
    count: int,
    output: str | os.PathLike[str],
    seed: int = 0,
    min_n: int = 1,
    max_n: int = 10,
) -> str:
    """Generate a task corpus and write it (one line per sequence) to ``output``.

    The file is written atomically through an exclusive temporary beside it
    (:func:`lstmprobe._io.atomic_write`), so nothing is written through a link planted there.
    Returns the text.
    """
    text = corpus(name, count, seed, min_n, max_n)
    path = Path(output)
    try:
        with atomic_write(path, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
    except OSError as exc:
        raise CorpusError(f"cannot write {path}: {exc.strerror or exc}") from None
    return text


#: The tasks whose answer depends on the free part, so that patching a source's state into a
#: target can change it: what :func:`pairs` writes.
PAIR_TASKS = ("ab-memory", "copy")


def _pair(name: str, rng: random.Random, lo: int, hi: int) -> Pair:
    if name == "ab-memory":
        first = rng.choice("AB")
        other = "B" if first == "A" else "A"
        source = first + "x" * rng.randint(lo, hi) + "Y"
        return Pair(source, other + "x" * rng.randint(lo, hi) + "Y", first.lower())
    chars = "".join(rng.choice("abc") for _ in range(3))
    other = rng.choice([c for c in "abc" if c != chars[0]]) + "".join(
        rng.choice("abc") for _ in range(2)
    )
    return Pair(chars + "X", other + "X", chars[0])


def pairs(name: str, count: int, seed: int = 0, min_n: int = 1, max_n: int = 10) -> list[Pair]:
    """``count`` source/target pairs of task ``name`` for ``lstmprobe patch --pairs``.

    Each pair is two prefixes that end where the deterministic part starts, whose answers
    differ; ``expected`` is the source's answer (what the target predicts when the patched units
    carry the whole difference). ``ab-memory``: ``AxxxY`` and ``BxxxxxY`` (x counts drawn
    independently), expected ``a``; ``copy``: ``abcX`` and ``bcaX`` (first chars differ),
    expected the source's first char.

    Examples
    --------
    >>> [(p.source, p.target, p.expected) for p in pairs("ab-memory", 2, seed=3, max_n=3)]
    [('AxxxY', 'BxxxY', 'a'), ('AxxY', 'BxxxY', 'a')]
    """
    get_task(name)
    if name not in PAIR_TASKS:
        raise CorpusError(
            f"pairs are written for {' and '.join(PAIR_TASKS)} (whose answer depends on the "
            f"first chars); {name}'s answer does not, so patching cannot change it"
        )
    generate(name, 1, seed, min_n, max_n)  # the same checks of count-free arguments
    if count < 1:
        raise CorpusError(f"`count` (pairs) must be at least 1, got {count}")
    rng = random.Random(seed)
    return [_pair(name, rng, min_n, max_n) for _ in range(count)]


def write_pairs(
    name: str,
    count: int,
    output: str | os.PathLike[str],
    seed: int = 0,
    min_n: int = 1,
    max_n: int = 10,
) -> list[Pair]:
    """Write :func:`pairs` as a pairs file (:func:`lstmprobe.text.read_pairs` reads it), atomically."""
    made = pairs(name, count, seed, min_n, max_n)
    path = Path(output)
    try:
        with atomic_write(path, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(pairs_text(made))
    except OSError as exc:
        raise CorpusError(f"cannot write {path}: {exc.strerror or exc}") from None
    return made


def detect(lines: Iterable[str]) -> Task | None:
    """The task whose form every non-empty line has, or None (checked in the order of TASKS)."""
    bodies = [line.rstrip("\n") for line in lines]
    bodies = [b for b in bodies if b]
    if not bodies:
        return None
    for task in TASKS.values():
        if all(task.pattern.fullmatch(b) for b in bodies):
            return task
    return None
