"""An LSTMVis project read by LSTMVis's own rules, written here from its documentation and its
server's reader (HendrikStrobelt/LSTMVis: README "Adding Your Own Data", docs/chapter/
config_states.md and meta.md, lstmdata/data_handler.py), independently of lstmprobe.interop:
the tests check what an export writes against these rules, not against the exporter's code.

The rules:

1. The server walks a data directory for ``lstm.yml`` files; each one's directory is a project.
2. ``lstm.yml`` is YAML with ``name``, ``description`` (defaults to the name; shown as HTML in the
   project list), ``files`` (a reference name -> a file name), ``word_sequence`` (``file``,
   ``path``, ``dict_file``: reference names and an HDF5 path) and ``states`` (a default ``file``
   and ``types``: ``type``, ``layer``, ``path``, optional ``file``, ``unsigned`` (default false)
   and ``transform`` (default ``tanh``)); optional ``meta`` tracks (``file``, ``path``, ``vis``
   with ``type`` and ``range``).
3. Of ``files``, those ending in ``.h5``/``.hdf5`` are opened as HDF5, those ending in
   ``.dict``/``.txt`` are read as dictionaries; any other file is not read at all.
4. A dictionary is read line by line as bytes; a line split on whitespace into two fields is
   ``word id``; otherwise a line starting with a space maps the space to the rest, stripped; any
   other line is skipped. A later line with the same id wins.
5. Every states type is a 2-D dataset, positions x units; ``layer`` counts from 1.
6. The word sequence is a 1-D dataset of ids, each mapped through the dictionary to a word.
7. The values the client receives are the stored values, ``tanh``-ed unless ``transform`` says
   otherwise (``none``); the API's JSON cannot carry NaN or infinities.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import yaml

#: The stand-ins docs/interop.md documents for characters a dictionary line cannot hold.
STAND_INS = {"\\n": "\n", "\\t": "\t", "\\r": "\r", "\\v": "\x0b", "\\f": "\x0c"}


@dataclass
class Project:
    directory: Path
    config: dict[str, Any]
    dicts: dict[str, dict[int, str]]  # reference name -> id -> word
    states: dict[str, np.ndarray] = field(default_factory=dict)  # "file::path" -> values
    word_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    meta: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def words(self) -> list[str]:
        """The word of each position, through the word sequence's dictionary (rule 6)."""
        mapper = self.dicts[self.config["word_sequence"]["dict_file"]]
        return [mapper[int(i)] for i in self.word_ids]

    @property
    def text(self) -> str:
        """The words read back as characters by the documented stand-ins."""
        return "".join(char_of(w) for w in self.words)

    def shown(self, source: str) -> np.ndarray:
        """What the client is sent for one states source: tanh-ed unless ``transform`` is none."""
        entry = next(t for t in self.config["states"]["types"] if source_of(t) == source)
        values = self.states[source]
        return np.tanh(values) if entry["transform"] in ("tanh", "tanh_abs") else values


def source_of(entry: dict[str, Any]) -> str:
    return f"{entry['file']}::{entry['path']}"


def char_of(word: str) -> str:
    if word in STAND_INS:
        return STAND_INS[word]
    if re.fullmatch(r"\\u[0-9a-f]{4}", word):
        return chr(int(word[2:], 16))
    assert len(word) == 1, f"a dictionary word of a character-level project: {word!r}"
    return word


def read_dict(path: Path) -> dict[int, str]:
    """Rule 4, on bytes as LSTMVis's Python 2 reader sees them."""
    id_to_word: dict[int, str] = {}
    with open(path, "rb") as f:
        for line in f:
            if len(line) > 0:
                if len(line.split()) == 2:
                    k, v = line.split()
                    id_to_word[int(v)] = k.decode("utf-8")
                elif line[:1] == b" ":
                    id_to_word[int(line.strip())] = " "
    return id_to_word


def projects(data_dir: Path) -> list[Path]:
    """Rule 1."""
    return [Path(root) for root, _, files in os.walk(data_dir) if "lstm.yml" in files]


def read_project(directory: Path) -> Project:
    """Rules 2-6: every file opened and every dataset checked as LSTMVis's server would."""
    config = yaml.safe_load((directory / "lstm.yml").read_text(encoding="utf-8"))
    files = config["files"]
    h5 = {k: v for k, v in files.items() if v.endswith((".h5", ".hdf5"))}
    dict_files = {k: v for k, v in files.items() if v.endswith((".dict", ".txt"))}
    project = Project(
        directory, config, {k: read_dict(directory / v) for k, v in dict_files.items()}
    )
    opened = {k: h5py.File(directory / v, "r") for k, v in h5.items()}
    try:
        default = config["states"]["file"]
        for entry in config["states"]["types"]:
            entry.setdefault("file", default)
            entry.setdefault("unsigned", False)
            entry.setdefault("transform", "tanh")
            values = np.asarray(opened[entry["file"]][entry["path"]])
            assert values.ndim == 2, f"{source_of(entry)} is not positions x units"
            entry["size"] = list(values.shape)
            project.states[source_of(entry)] = values
        ws = config["word_sequence"]
        project.word_ids = np.asarray(opened[ws["file"]][ws["path"]])
        assert project.word_ids.ndim == 1
        for name, info in (config.get("meta") or {}).items():
            info.setdefault("type", "general")
            info.setdefault("index", "self")
            info["vis"].setdefault("range", "0...100")
            project.meta[name] = np.asarray(opened[info["file"]][info["path"]])
    finally:
        for f in opened.values():
            f.close()
    if not config.get("description"):
        config["description"] = config["name"]
    return project
