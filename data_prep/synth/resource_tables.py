"""The synth's word lists and style tables: one JSON file each in ``resources/``."""

from __future__ import annotations

import json
from importlib import resources


def _frozen(value: object) -> object:
    """``value`` with every JSON array turned into a tuple, nested ones included."""
    if isinstance(value, list):
        return tuple(_frozen(item) for item in value)
    if isinstance(value, dict):
        return {key: _frozen(item) for key, item in value.items()}
    return value


def load_table(name: str) -> object:
    """``resources/<name>.json`` parsed, arrays as tuples (immutable, like the constants it fills)."""
    text = resources.files("data_prep.synth").joinpath(f"resources/{name}.json").read_text("utf-8")
    return _frozen(json.loads(text))
