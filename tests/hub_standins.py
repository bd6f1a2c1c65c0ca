"""Tiny local stand-ins for ELMo v3 (`https://tfhub.dev/google/elmo/3`), for tests and benchmarks.

No TF Hub download works offline, so the tests build modules with ELMo's exact interface and load
them through the same code path as the real one (`tensorflow_hub.load` on a local folder):

- `build_tf1_standin(directory)`: a TF1 Hub format module like ELMo itself -- a TF1 graph whose
  variables are *reference* variables (``VariableV2`` ops, the kind that breaks a served export),
  saved by `tf.compat.v1.saved_model.Builder` under the empty tag set (plus a ``train`` graph, as
  ELMo has) with the ``tfhub_module.pb`` marker that tells `hub.load` to pick the empty tag set.
  Its arguments vary what ELMo documents nowhere: the input key and the placeholder's name (equal,
  different, or an unnamed placeholder), which signatures and tag sets there are.
- `build_tf2_standin(directory)`: the same computation as a TF2 SavedModel (`tf.Module` with a
  `tf.function` signature, resource variables).

Both expose ELMo's signatures:

- ``default``: input ``text`` string [batch] (each string is split on single spaces, empty pieces
  dropped, like ELMo); outputs ``word_emb`` [batch, tokens, width/2], ``lstm_outputs1`` and
  ``lstm_outputs2`` and ``elmo`` [batch, tokens, width], ``default`` [batch, width] (mean over the
  words), where tokens is the word count of the longest string of the batch and positions beyond a
  string's own words are zero. A batch whose strings are all empty is an error (the recurrent
  loop cannot stack zero steps): callers must not send such a batch, and tests rely on that.
- ``tokens`` (TF1 stand-in only, as in ELMo): inputs ``tokens`` string [batch, max_len] and
  ``sequence_len`` int32 [batch]; the same outputs.

A word's vectors depend on the word itself (a hashed-bucket embedding table), on its position and
on the words before it, so equal words in different songs do not give trivially equal rows.
Weights come from a seeded generator: two builds with the same arguments give the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2

INPUT_NAME = "text"
SIGNATURE = "default"
TOKENS_SIGNATURE = "tokens"
OUTPUT_KEYS = ("elmo", "word_emb", "lstm_outputs1", "lstm_outputs2", "default")
DEFAULT_WIDTH = 16
HASH_BUCKETS = 1024
SEED = 1802
WORD_SEPARATOR = " "
# tfhub_module.pb holds a serialized `ModuleDef` proto; `hub.load` only checks that the file exists
# (then loads the empty tag set; without it, ELMo's two tag sets make the load fail). These bytes
# are `ModuleDef{format: FORMAT_V3}` (field 1 = 3), what tensorflow_hub's TF1 exporter writes.
TF1_HUB_MARKER = "tfhub_module.pb"
TF1_HUB_MARKER_BYTES = b"\x08\x03"


def _initial_weights(width: int) -> dict[str, np.ndarray]:
    """Seeded weights. ELMo's word_emb is half its width and is doubled before the layer mix."""
    if width < 2 or width % 2:
        raise ValueError(f"width must be an even number >= 2, got {width}")
    word_width = width // 2
    rng = np.random.default_rng(SEED + width)
    return {
        "embedding_table": rng.normal(0.0, 1.0, (HASH_BUCKETS, word_width)).astype(np.float32),
        "lstm1_kernel": rng.normal(0.0, 0.5, (2 * word_width, width)).astype(np.float32),
        "lstm1_bias": rng.normal(0.0, 0.1, (width,)).astype(np.float32),
        "lstm2_kernel": rng.normal(0.0, 1.0 / np.sqrt(width), (width, width)).astype(np.float32),
        "lstm2_recurrent": rng.normal(0.0, 0.5 / np.sqrt(width), (width, width)).astype(np.float32),
        # ELMo's 4 trainable scalars: 3 layer weights (softmax-normalised) and the scale gamma.
        "layer_weights": np.array([0.1, 0.2, 0.3], np.float32),
        "gamma": np.array(1.0, np.float32),
    }


def _outputs_from_tokens(tokens, lengths, weights) -> dict:
    """tokens: string [batch, max_len] ("" padded); lengths: int32 [batch] -> ELMo's 5 outputs.

    `weights` maps the names of `_initial_weights` to variables (ref or resource alike)."""
    mask = tf.sequence_mask(lengths, tf.shape(tokens)[1], dtype=tf.float32)[:, :, None]
    ids = tf.strings.to_hash_bucket_fast(tokens, HASH_BUCKETS)
    word_emb = tf.gather(weights["embedding_table"], ids) * mask
    # Context: the running mean of the words so far, so a word's vector depends on what precedes it.
    positions = tf.cast(tf.range(1, tf.shape(tokens)[1] + 1), tf.float32)[None, :, None]
    context = tf.cumsum(word_emb, axis=1) / positions
    lstm1 = (
        tf.tanh(
            tf.einsum("btc,cw->btw", tf.concat([word_emb, context], -1), weights["lstm1_kernel"])
            + weights["lstm1_bias"]
            + 0.01 * positions
        )
        * mask
    )
    lstm2 = _recurrent_layer(lstm1, weights["lstm2_kernel"], weights["lstm2_recurrent"]) * mask
    mix = tf.nn.softmax(weights["layer_weights"])
    elmo = weights["gamma"] * (mix[0] * tf.concat([word_emb, word_emb], -1) + mix[1] * lstm1 + mix[2] * lstm2)
    count = tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)
    return {
        "elmo": elmo,
        "word_emb": word_emb,
        "lstm_outputs1": lstm1,
        "lstm_outputs2": lstm2,
        "default": tf.reduce_sum(elmo, axis=1) / count,
    }


def _recurrent_layer(inputs, kernel, recurrent):
    """inputs [batch, time, width] -> [batch, time, width] by h_t = tanh(x_t K + h_(t-1) R).

    A loop over time reading variables inside its body, like ELMo's dynamic LSTMs: in the TF1
    stand-in this is a TF1 while loop (Enter/Merge/Switch/Exit ops), the structure that freezing
    has to carry through."""
    batch, time = tf.shape(inputs)[0], tf.shape(inputs)[1]

    def step(t, state, outputs):
        state = tf.tanh(tf.matmul(inputs[:, t], kernel) + tf.matmul(state, recurrent))
        return t + 1, state, outputs.write(t, state)

    outputs = tf.TensorArray(tf.float32, size=time, element_shape=[None, recurrent.shape[-1]])
    initial = tf.zeros([batch, recurrent.shape[-1]])
    _, _, outputs = tf.while_loop(lambda t, *_: t < time, step, (0, initial, outputs))
    return tf.transpose(outputs.stack(), [1, 0, 2])


def _outputs_from_text(text, weights) -> dict:
    """text: string [batch] -> ELMo's 5 outputs, splitting on spaces and padding like ELMo."""
    # tf.compat.v1.string_split drops empty pieces (skip_empty), as ELMo's default signature does.
    pieces = tf.compat.v1.string_split(text, sep=WORD_SEPARATOR)
    tokens = tf.sparse.to_dense(pieces, default_value="")
    lengths = tf.math.bincount(
        tf.cast(pieces.indices[:, 0], tf.int32), minlength=tf.size(text), maxlength=tf.size(text)
    )
    return _outputs_from_tokens(tokens, lengths, weights)


def build_tf1_standin(
    directory: str | Path,
    width: int = DEFAULT_WIDTH,
    *,
    input_key: str = INPUT_NAME,
    placeholder_name: str | None = INPUT_NAME,
    tokens_signature: bool = True,
    tag_sets: Sequence[Sequence[str]] = ((), ("train",)),
) -> Path:
    """Write a TF1 Hub format module with ELMo's interface and reference variables; return its folder.

    directory: a folder that does not exist yet (or is empty). width: the `elmo` width (ELMo: 1024).
    The rest varies what ELMo's documentation leaves open (defaults: as described above):
    input_key: the ``default`` signature's input key; placeholder_name: the name of the placeholder
    it maps to (None: unnamed, ``Placeholder:0``); tokens_signature: whether the ``tokens``
    signature is there too; tag_sets: the graphs' tag sets, the first holding the variables (one must
    be empty: `hub.load` picks it). The outputs' order cannot vary: a SignatureDef keeps them in a
    protobuf map, which serializes in its own order.
    """
    if () not in {tuple(tags) for tags in tag_sets}:
        raise ValueError(f"tag_sets must include the empty tag set, got {tag_sets}")
    directory = Path(directory)
    graph = tf.Graph()
    # ELMo's graph was written by TF 1.x: its while loops are v1 control flow. TF 2 builds the
    # functional `While` op instead unless control flow v2 is off while the graph is built.
    control_flow_v2 = tf.compat.v1.control_flow_v2_enabled()
    tf.compat.v1.disable_control_flow_v2()
    try:
        with graph.as_default():
            signatures = _tf1_signatures(width, input_key, placeholder_name, tokens_signature)
            with tf.compat.v1.Session(graph=graph) as session:
                session.run(tf.compat.v1.global_variables_initializer())
                builder = tf.compat.v1.saved_model.Builder(str(directory))
                first, *others = tag_sets
                builder.add_meta_graph_and_variables(session, tags=list(first), signature_def_map=signatures)
                for tags in others:
                    builder.add_meta_graph(tags=list(tags), signature_def_map=signatures)
                builder.save()
    finally:
        if control_flow_v2:
            tf.compat.v1.enable_control_flow_v2()
    (directory / TF1_HUB_MARKER).write_bytes(TF1_HUB_MARKER_BYTES)
    return directory


def _tensor_info(tensor: tf.Tensor) -> meta_graph_pb2.TensorInfo:
    """What `tf.compat.v1.saved_model.build_tensor_info` writes, without its deprecation log."""
    return meta_graph_pb2.TensorInfo(
        name=tensor.name, dtype=tensor.dtype.as_datatype_enum, tensor_shape=tensor.shape.as_proto()
    )


def _signature_def(inputs: dict, outputs: dict) -> meta_graph_pb2.SignatureDef:
    return tf.compat.v1.saved_model.signature_def_utils.build_signature_def(
        inputs={key: _tensor_info(value) for key, value in inputs.items()},
        outputs={key: _tensor_info(value) for key, value in outputs.items()},
    )


def _tf1_signatures(
    width: int, input_key: str, placeholder_name: str | None, tokens_signature: bool
) -> dict[str, meta_graph_pb2.SignatureDef]:
    """Build the stand-in's graph in the current default graph -> its signature defs by key."""
    # use_resource=False: VariableV2 ops, the TF1 reference variables ELMo's graph holds.
    weights = {
        name: tf.compat.v1.Variable(value, name=name, use_resource=False, trainable=value.ndim == 0)
        for name, value in _initial_weights(width).items()
    }
    text = tf.compat.v1.placeholder(tf.string, [None], name=placeholder_name)
    signatures = {SIGNATURE: _signature_def({input_key: text}, _outputs_from_text(text, weights))}
    if tokens_signature:
        tokens = tf.compat.v1.placeholder(tf.string, [None, None], name="tokens")
        sequence_len = tf.compat.v1.placeholder(tf.int32, [None], name="sequence_len")
        signatures[TOKENS_SIGNATURE] = _signature_def(
            {"tokens": tokens, "sequence_len": sequence_len},
            _outputs_from_tokens(tokens, sequence_len, weights),
        )
    return signatures


class _Tf2Standin(tf.Module):
    """The same computation as a TF2 module with resource variables."""

    def __init__(self, width: int):
        super().__init__()
        self.weights = {
            name: tf.Variable(value, name=name, trainable=value.ndim == 0)
            for name, value in _initial_weights(width).items()
        }

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=INPUT_NAME)])
    def default(self, text):
        return _outputs_from_text(text, self.weights)


def build_tf2_standin(directory: str | Path, width: int = DEFAULT_WIDTH) -> Path:
    """Write a TF2 SavedModel with ELMo's ``default`` signature; return its folder."""
    directory = Path(directory)
    module = _Tf2Standin(width)
    tf.saved_model.save(module, str(directory), signatures={SIGNATURE: module.default})
    return directory
