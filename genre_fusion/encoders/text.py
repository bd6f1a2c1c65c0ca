"""Pre-trained text encoders from TF Hub: ELMo v3 by default, any module with ELMo's interface.

A module is loaded once through `genre_fusion.encoders.handles` and its text signature is called
directly: `hub.KerasLayer` is a Keras 2 layer and does not work inside Keras 3 models.

The signature takes a 1-D string tensor (its input name is read from the signature itself; ELMo's
is ``text``) of already-cleaned, space-separated words, and returns per string either a sequence
[tokens, width] (ELMo's ``elmo``, ``word_emb``, ``lstm_outputs1/2``; padded to the longest string
of the batch) or a pooled vector [width] (ELMo's ``default``), treated here as a length-1 sequence.

Two users:

- `HubTextEncoder` for `data_prep build`: texts in, one float32 [tokens, width] array per text out,
  each song encoded exactly once.
- `HubTextEmbedding`, a Keras 3 layer for the exported model: [batch] strings in, [batch, tokens,
  width] float32 with a mask out. For a TF1 module such as ELMo, export builds it on the module's
  frozen copy (`genre_fusion.encoders.freezing`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from genre_fusion.encoders.handles import load_module, resolve_handle
from genre_fusion.encoders.signatures import signature_function

DEFAULT_OUTPUT_KEY = "elmo"
DEFAULT_BATCH_SIZE = 32
# ELMo's default signature splits its input on single spaces and drops empty pieces.
WORD_SEPARATOR = " "
PROBE_TEXT = "probe"


@dataclass(frozen=True)
class TextSignature:
    """How to call a module: signature `key`, its string `input_name`, the chosen `output_key`,
    whether that output is `pooled` ([batch, width]) rather than a sequence, and its `width`."""

    key: str
    input_name: str
    output_key: str
    pooled: bool
    width: int



def text_signature(module, output_key: str = DEFAULT_OUTPUT_KEY, handle: str = "") -> TextSignature:
    """Inspect a loaded module and run it once on a probe string to learn the output width.

    Raises ValueError when the module has no signature with exactly one string input, or no output
    `output_key`, or that output is neither [batch, width] nor [batch, tokens, width]."""
    key, function = signature_function(module, handle)
    positional, named = function.structured_input_signature
    if positional or len(named) != 1 or next(iter(named.values())).dtype != tf.string:
        raise ValueError(
            f"module {handle!r}: signature {key!r} must take exactly one string tensor, "
            f"it takes {positional} {named}"
        )
    input_name = next(iter(named))
    outputs = function.structured_outputs
    if output_key not in outputs:
        raise ValueError(
            f"module {handle!r}: signature {key!r} has no output {output_key!r}; "
            f"its outputs: {sorted(outputs)}"
        )
    probe = function(**{input_name: tf.constant([PROBE_TEXT])})[output_key]
    if probe.shape.rank not in (2, 3):
        raise ValueError(
            f"module {handle!r}: output {output_key!r} has shape {probe.shape}; expected "
            "[batch, width] or [batch, tokens, width]"
        )
    return TextSignature(key, input_name, output_key, probe.shape.rank == 2, int(probe.shape[-1]))


def _run_signature(module, signature: TextSignature, texts: tf.Tensor) -> tf.Tensor:
    """texts: string [batch] -> float32 [batch, tokens, width] (tokens = 1 for a pooled output)."""
    function = module.signatures[signature.key]
    output = function(**{signature.input_name: texts})[signature.output_key]
    if signature.pooled:
        output = output[:, tf.newaxis, :]
    return tf.cast(output, tf.float32)


def count_words(text: str) -> int:
    """Words of one text as ELMo counts them: pieces between single spaces, empty ones dropped."""
    return sum(1 for word in text.split(WORD_SEPARATOR) if word)


def word_counts(texts: tf.Tensor) -> tf.Tensor:
    """string [batch] -> int32 [batch]: `count_words` of each text, in the graph."""
    pieces = tf.strings.split(texts, sep=WORD_SEPARATOR)
    return tf.reduce_sum(tf.cast(tf.strings.length(pieces) > 0, tf.int32), axis=-1)


class HubTextEncoder:
    """Embeds lyrics for the shards: each text goes through the module once, in batches.

    `embed(texts)` -> one float32 array [tokens, width] per text, tokens = `count_words(text)` (1
    for a pooled output, 0 rows for an empty text, which is never sent to the module). `width` is
    the output width; `calls` counts the texts sent to the module (the width probe excluded).
    """

    def __init__(
        self, handle: str, output_key: str = DEFAULT_OUTPUT_KEY, batch_size: int = DEFAULT_BATCH_SIZE
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.handle = resolve_handle(handle)
        self.output_key = output_key
        self.batch_size = batch_size
        self._module = load_module(self.handle)
        self.signature = text_signature(self._module, output_key, self.handle)
        self.width = self.signature.width
        self.calls = 0

    def embed(self, texts: Sequence[str]) -> list[np.ndarray]:
        """texts: cleaned, space-separated words (already capped) -> float32 [tokens, width] each."""
        counts = [count_words(text) for text in texts]
        result = [np.zeros((0, self.width), np.float32) for _ in texts]
        # Similar lengths batched together: the module pads each batch to its longest text, and a
        # biLSTM pays for the padding.
        order = sorted((i for i, count in enumerate(counts) if count), key=counts.__getitem__)
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            vectors = _run_signature(self._module, self.signature, tf.constant([texts[i] for i in batch]))
            vectors = vectors.numpy()
            self.calls += len(batch)
            for row, index in enumerate(batch):
                rows = 1 if self.signature.pooled else counts[index]
                if vectors.shape[1] < rows:
                    raise ValueError(
                        f"module {self.handle!r} returned {vectors.shape[1]} positions for a text of "
                        f"{rows} words: it must split its input on spaces like ELMo"
                    )
                result[index] = vectors[row, :rows]
        return result


@keras.saving.register_keras_serializable(package="genre_fusion")
class HubTextEmbedding(keras.layers.Layer):
    """A TF Hub text module as a Keras 3 layer (frozen: the module's variables are not trained).

    Input: string [batch] of space-separated words. Output: float32 [batch, tokens, width], tokens =
    the most words of a text in the batch (1 for a pooled output such as ELMo's ``default``), with
    a mask that is True where the word index < the text's word count. A batch of empty texts only
    never reaches the module (zeros, all masked).

    Saved as .keras, the layer keeps its handle and output key, and reloads the module from the
    handle. For a SavedModel export with a TF1 module such as ELMo, build the layer on the module's
    `freeze_module` folder, or the export fails when served.
    """

    def __init__(self, handle: str, output_key: str = DEFAULT_OUTPUT_KEY, **kwargs):
        super().__init__(**kwargs)
        self.handle = handle
        self.output_key = output_key
        resolved = resolve_handle(handle)
        # A trackable attribute: the module's functions and variables go into SavedModel exports.
        self.hub_module = load_module(resolved)
        self.signature = text_signature(self.hub_module, output_key, resolved)
        # String ops and the module's graph cannot be compiled by XLA (Keras's jit_compile="auto").
        self.supports_jit = False

    @property
    def width(self) -> int:
        return self.signature.width

    def _steps(self, counts: tf.Tensor) -> tf.Tensor:
        if self.signature.pooled:
            return tf.constant(1)
        return tf.maximum(tf.reduce_max(counts), 0)  # the max of an empty batch is INT_MIN

    def call(self, inputs):
        texts = tf.reshape(inputs, [-1])
        counts = word_counts(texts)
        steps = self._steps(counts)

        def encode():
            return _run_signature(self.hub_module, self.signature, texts)[:, :steps]

        def skip():
            return tf.zeros([tf.size(texts), steps, self.width])

        return tf.cond(tf.reduce_any(counts > 0), encode, skip)

    def compute_mask(self, inputs, previous_mask=None):
        if isinstance(inputs, keras.KerasTensor):
            # Functional model construction: string ops cannot run on a KerasTensor, and a mask made
            # here would have to be a Keras op to stay in the graph. The mask travels on the real
            # tensors when the model runs (eagerly, in tf.function and in exports alike).
            return None
        counts = word_counts(tf.reshape(inputs, [-1]))
        if self.signature.pooled:
            return (counts > 0)[:, tf.newaxis]
        return tf.sequence_mask(counts, self._steps(counts))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1 if self.signature.pooled else None, self.width)

    def get_config(self):
        return {**super().get_config(), "handle": self.handle, "output_key": self.output_key}
