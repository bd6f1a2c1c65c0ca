"""Random draws shared by the synth's generators, each from the generator it is given."""

from __future__ import annotations

import string

import numpy as np

ID_CHARS = string.ascii_letters + string.digits


def between(rng: np.random.Generator, bounds: tuple[int, int]) -> int:
    """A uniform integer within the inclusive ``bounds``."""
    return int(rng.integers(bounds[0], bounds[1] + 1))


def pick(rng: np.random.Generator, words: tuple[str, ...]) -> str:
    """One of ``words``, uniformly."""
    return words[rng.integers(len(words))]


def random_id(rng: np.random.Generator, length: int) -> str:
    """``length`` letters and digits, as Music4All's and Spotify's ids are."""
    return "".join(ID_CHARS[i] for i in rng.integers(len(ID_CHARS), size=length))
