"""Genre vocabulary and label modes.

`single`: a song's label is its first listed genre among the N most frequent (softmax).
`multi`: a song's labels are all its genres among the N most frequent (sigmoid).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

DEFAULT_TOP_GENRES = {"single": 10, "multi": 50}


def build_vocabulary(genre_lists: Iterable[tuple[str, ...]], top_genres: int) -> tuple[str, ...]:
    """The `top_genres` most frequent genres over all listed genres (ties by name, so stable)."""
    counts = Counter(genre for genres in genre_lists for genre in dict.fromkeys(genres))
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return tuple(genre for genre, _ in ranked[:top_genres])


def drop_unused_genres(
    vocabulary: tuple[str, ...], labels: list[tuple[int, ...]]
) -> tuple[tuple[str, ...], list[tuple[int, ...]]]:
    """Remove genres that no song carries as a label (in `single` mode a frequent secondary genre
    can be nobody's first), re-indexing the labels; an empty class would only skew metrics."""
    used = sorted({index for label in labels for index in label})
    new_index = {old: new for new, old in enumerate(used)}
    return tuple(vocabulary[old] for old in used), [tuple(new_index[i] for i in label) for label in labels]


def assign_labels(genres: tuple[str, ...], vocabulary: tuple[str, ...], label_mode: str) -> tuple[int, ...]:
    """Genre names -> label indices into `vocabulary` (empty when none is in it)."""
    index = {genre: position for position, genre in enumerate(vocabulary)}
    known = [index[genre] for genre in dict.fromkeys(genres) if genre in index]
    if label_mode == "single":
        return tuple(known[:1])
    return tuple(sorted(known))
