"""Lyrics cleaning and principal-word reduction, written in TensorFlow string ops.

The same graph runs in `data_prep build` (eagerly, on batches of songs) and inside the exported
SavedModel, so a song's words are reduced one way only. Example::

    [Chorus]
    Oh, baby, baby! Don't leave me tonight
    Oh, baby, baby! Don't leave me tonight
    I'm burning   like FIRE...

becomes ``"baby baby leave tonight burning like fire"``: section tags dropped, case folded,
punctuation removed, the repeated line kept once, stop words (``resources/stopwords_en.txt``)
and one-letter words dropped, and the result capped at `max_tokens` words.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import tensorflow as tf

SECTION_TAG = r"\[[^\]\n]*\]"
APOSTROPHES = r"['’`´]"
NOT_WORD = r"[^\p{L}\p{N}\n ]+"
SPACES = r"[ \t\r]+"
MIN_WORD_CHARS = 2


@cache
def stop_words() -> tuple[str, ...]:
    text = resources.files("genre_fusion.features").joinpath("resources/stopwords_en.txt").read_text("utf-8")
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    return tuple(sorted({word for line in lines for word in line.split()}))


@cache
def _stop_word_pattern() -> str:
    return "(?:" + "|".join(stop_words()) + ")"


def _first_occurrences(row_ids: tf.Tensor, lines: tf.Tensor) -> tf.Tensor:
    """Mask [n] that is True where (row, line) appears for the first time: drops repeated lines."""
    keys = tf.strings.join([tf.strings.as_string(row_ids), lines], separator="\x00")
    _, unique_index = tf.unique(keys)
    count = tf.size(keys, out_type=tf.int64)
    positions = tf.range(count, dtype=tf.int64)
    first = tf.math.unsorted_segment_min(positions, unique_index, count)
    return tf.equal(tf.gather(first, unique_index), positions)


def principal_words_tensor(texts: tf.Tensor, max_tokens: int) -> tf.Tensor:
    """Raw lyrics [batch] string -> principal words [batch] string, space-separated, at most
    `max_tokens` words each ("" for empty or all-stop-word lyrics)."""
    texts = tf.convert_to_tensor(texts, dtype=tf.string)
    text = tf.strings.regex_replace(texts, SECTION_TAG, " ")
    text = tf.strings.lower(text, encoding="utf-8")
    text = tf.strings.regex_replace(text, APOSTROPHES, "")
    text = tf.strings.regex_replace(text, NOT_WORD, " ")
    text = tf.strings.regex_replace(text, SPACES, " ")

    lines = tf.strings.strip(tf.strings.split(text, "\n"))
    lines = tf.ragged.boolean_mask(lines, tf.strings.length(lines) > 0)
    first = _first_occurrences(lines.value_rowids(), lines.flat_values)
    lines = tf.ragged.boolean_mask(lines, lines.with_flat_values(first))

    words = tf.strings.split(tf.strings.reduce_join(lines, axis=1, separator=" "))
    is_word = tf.logical_and(
        tf.strings.length(words.flat_values, unit="UTF8_CHAR") >= MIN_WORD_CHARS,
        tf.logical_not(tf.strings.regex_full_match(words.flat_values, _stop_word_pattern())),
    )
    words = tf.ragged.boolean_mask(words, words.with_flat_values(is_word))
    return tf.strings.reduce_join(words[:, :max_tokens], axis=1, separator=" ")


def principal_words(texts: list[str], max_tokens: int) -> list[str]:
    """Python convenience over `principal_words_tensor` for a list of lyrics."""
    if not texts:
        return []
    reduced = principal_words_tensor(tf.constant(texts, dtype=tf.string), max_tokens)
    return [value.decode("utf-8") for value in reduced.numpy()]
