"""Pre-trained text encoders from TF Hub: ELMo v3 by default, any module with ELMo's interface.

A module is named by a handle: ``elmo`` (ELMo v3 on tfhub.dev), a TF Hub / Kaggle URL, or a local
folder (an unpacked module, or a TF Hub cache folder copied from a machine with internet). It is
loaded once with `tensorflow_hub.load` (which honours ``TFHUB_CACHE_DIR``), and its text signature
is called directly: `hub.KerasLayer` is a Keras 2 layer and does not work inside Keras 3 models.

The signature takes a 1-D string tensor (its input name is read from the signature itself; ELMo's
is ``text``) of already-cleaned, space-separated words, and returns per string either a sequence
[tokens, width] (ELMo's ``elmo``, ``word_emb``, ``lstm_outputs1/2``; padded to the longest string
of the batch) or a pooled vector [width] (ELMo's ``default``), treated here as a length-1 sequence.

Two users:

- `HubTextEncoder` for `data_prep build`: texts in, one float32 [tokens, width] array per text out,
  each song encoded exactly once.
- `HubTextEmbedding`, a Keras 3 layer for the exported model: [batch] strings in, [batch, tokens,
  width] float32 with a mask out.

ELMo is a TF1 Hub format module whose variables are TF1 *reference* variables. A Keras model that
calls such a module exports, but the SavedModel fails when served ("uninitialized value"): the
variables live inside the function graph and nothing restores them. `freeze_module` rewrites the
module as a TF2 SavedModel of constants (``python -m genre_fusion.text_encoders freeze HANDLE
OUT_DIR``); `is_tf1_module` tells export code when it has to.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import logging
import os
import socket
import sys
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
import tensorflow_hub as hub
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

ELMO_NAME = "elmo"
ELMO_HANDLE = "https://tfhub.dev/google/elmo/3"
DEFAULT_OUTPUT_KEY = "elmo"
DEFAULT_BATCH_SIZE = 32
# The signature that takes raw strings. ELMo's other one, "tokens", takes pre-split tokens.
SIGNATURE_KEY = "default"
SIGNATURE_KEYS = (SIGNATURE_KEY, "serving_default")
# ELMo's default signature splits its input on single spaces and drops empty pieces.
WORD_SEPARATOR = " "
PROBE_TEXT = "probe"
REMOTE_PREFIXES = ("http://", "https://")
# Without a network, a firewalled connect hangs for minutes (the kernel's SYN retries) and a dead
# DNS server for tens of seconds. The reachability check gives up after CONNECT_TIMEOUT_S; a
# download stalled for longer than DOWNLOAD_STALL_TIMEOUT_S between two reads fails too (or than
# the process's default socket timeout, when one is set).
CONNECT_TIMEOUT_S = 10.0
DOWNLOAD_STALL_TIMEOUT_S = 60.0
TF1_HUB_MARKER = "tfhub_module.pb"
LEARNED_OPTION = "--text-encoder learned"
# tf.saved_model.load logs this once per reference variable and signature (hundreds for ELMo).
# It is expected: those variables are never trained here, and export freezes them.
_REFERENCE_VARIABLE_WARNING = "because it is a reference variable"


class TextEncoderUnavailable(RuntimeError):
    """The text encoder module cannot be obtained (no network, unknown handle, missing folder)."""


def resolve_handle(name: str) -> str:
    """A text encoder name -> the handle to load: ``elmo`` -> `ELMO_HANDLE`; a URL as is; a local
    path with ``~`` expanded."""
    if name == ELMO_NAME:
        return ELMO_HANDLE
    if _is_remote(name):
        return name
    return os.path.expanduser(name)


def _is_remote(handle: str) -> bool:
    return handle.startswith(REMOTE_PREFIXES)


def _unavailable(handle: str, reason: str) -> TextEncoderUnavailable:
    return TextEncoderUnavailable(
        f"text encoder module {handle!r} is not available: {reason}.\n"
        "To proceed, either\n"
        "  - on a machine with internet, download the module: the .tar.gz from tfhub.dev or Kaggle "
        "Models (ELMo v3: https://tfhub.dev/google/elmo/3?tf-hub-format=compressed, or Kaggle "
        "google/elmo/TensorFlow1/elmo/3), unpacked into a folder; or run this program there with "
        "TFHUB_CACHE_DIR set and copy that cache folder here. Then pass the module's folder (the one "
        "holding saved_model.pb) as the text encoder handle, or set TFHUB_CACHE_DIR to the copied "
        "cache and keep the URL; or\n"
        f"  - use {LEARNED_OPTION} (the model learns its own word embeddings, no module needed)."
    )


def _hub_cache_folder(handle: str) -> Path | None:
    """The folder where tensorflow_hub caches a URL handle (sha1 of the handle under its cache dir)."""
    from tensorflow_hub import resolver

    cache_dir = resolver.tfhub_cache_dir(use_temp=True)
    if not cache_dir:
        return None
    return Path(cache_dir) / hashlib.sha1(handle.encode("utf8")).hexdigest()


def _is_cached(handle: str) -> bool:
    folder = _hub_cache_folder(handle)
    return folder is not None and folder.is_dir() and any(folder.iterdir())


def _connect_target(url: str) -> tuple[str, int]:
    """(host, port) a download of `url` connects to first: the proxy when one applies."""
    parsed = urllib.parse.urlsplit(url)
    proxy = urllib.request.getproxies().get(parsed.scheme)
    if proxy and not urllib.request.proxy_bypass(parsed.hostname or ""):
        parsed_proxy = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        return parsed_proxy.hostname or "", parsed_proxy.port or 80
    return parsed.hostname or "", parsed.port or (443 if parsed.scheme == "https" else 80)


def _check_reachable(handle: str) -> None:
    """Raise `TextEncoderUnavailable` unless a TCP connection to the handle's host (or proxy) opens
    within `CONNECT_TIMEOUT_S`. Runs in a thread because name resolution ignores socket timeouts."""
    host, port = _connect_target(handle)
    timeout_s = CONNECT_TIMEOUT_S
    failure: list[BaseException] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout_s).close()
        except OSError as err:
            failure.append(err)

    thread = threading.Thread(target=connect, name="text-encoder-reachability", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise _unavailable(handle, f"no answer from {host}:{port} within {timeout_s:g} s")
    if failure:
        raise _unavailable(handle, f"cannot connect to {host}:{port} ({failure[0]})")


class _DownloadTimeout:
    """The socket default timeout while downloads run.

    tensorflow_hub opens its URLs without a timeout and has no hook to pass one, so the only way to
    bound a stalled download is the process's default, which every thread shares. `applied` sets
    it only when it is unset (a default the user chose is kept) and, however many downloads
    overlap in threads, restores it when the last one ends, unless someone changed it meanwhile."""

    def __init__(self):
        self._lock = threading.Lock()
        self._downloads = 0
        self._applied: float | None = None  # the default this object set, if it set one

    @contextlib.contextmanager
    def applied(self, seconds: float) -> Iterator[None]:
        with self._lock:
            if not self._downloads and socket.getdefaulttimeout() is None:
                socket.setdefaulttimeout(seconds)
                self._applied = seconds
            self._downloads += 1
        try:
            yield
        finally:
            with self._lock:
                self._downloads -= 1
                if not self._downloads and self._applied is not None:
                    if socket.getdefaulttimeout() == self._applied:
                        socket.setdefaulttimeout(None)
                    self._applied = None


_DOWNLOAD_TIMEOUT = _DownloadTimeout()


class _DropReferenceVariableWarnings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return _REFERENCE_VARIABLE_WARNING not in record.getMessage()


@contextlib.contextmanager
def _quiet_reference_variable_warnings() -> Iterator[None]:
    log_filter = _DropReferenceVariableWarnings()
    logger = tf.get_logger()
    logger.addFilter(log_filter)
    try:
        yield
    finally:
        logger.removeFilter(log_filter)


def module_path(handle: str) -> str:
    """A handle (see `resolve_handle`) -> the local folder (or gs:// path) holding the module,
    downloading it into the TF Hub cache if needed. Raises `TextEncoderUnavailable` quickly when
    the handle cannot be reached or the folder does not exist."""
    handle = resolve_handle(handle)
    if not _is_remote(handle):
        if not tf.io.gfile.exists(handle):
            raise _unavailable(handle, "no such folder")
        return handle
    # A cached module loads without the network (tensorflow_hub checks its cache first).
    if not _is_cached(handle):
        _check_reachable(handle)
    try:
        with _DOWNLOAD_TIMEOUT.applied(DOWNLOAD_STALL_TIMEOUT_S):
            return hub.resolve(handle)
    except (OSError, http.client.HTTPException, ValueError) as err:
        # URLError/HTTPError/timeouts are OSErrors; tensorflow_hub raises ValueError on unexpected
        # HTTP answers.
        raise _unavailable(handle, f"download failed ({err})") from err


def load_module(handle: str):
    """A handle -> the object `tensorflow_hub.load` returns (``.signatures`` holds the functions)."""
    path = module_path(handle)
    try:
        with _quiet_reference_variable_warnings():
            return hub.load(path)
    except ValueError as err:  # tensorflow_hub: the folder holds no saved_model.pb
        raise _unavailable(handle, f"{path} is not a TF Hub module or SavedModel ({err})") from err


def is_tf1_module(handle: str) -> bool:
    """Whether a module is in a TF1 format (TF1 Hub format like ELMo, or a TF1 SavedModel): such a
    module can hold reference variables, so a model that contains it must be exported with the
    module frozen (`freeze_module`)."""
    path = module_path(handle)
    if tf.io.gfile.exists(os.path.join(path, TF1_HUB_MARKER)):
        return True
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    with tf.io.gfile.GFile(os.path.join(path, tf.saved_model.SAVED_MODEL_FILENAME_PB), "rb") as f:
        saved_model.ParseFromString(f.read())
    # TF2 SavedModels carry an object graph; TF1 ones only graphs + signatures.
    return not any(graph.object_graph_def.nodes for graph in saved_model.meta_graphs)


@dataclass(frozen=True)
class TextSignature:
    """How to call a module: signature `key`, its string `input_name`, the chosen `output_key`,
    whether that output is `pooled` ([batch, width]) rather than a sequence, and its `width`."""

    key: str
    input_name: str
    output_key: str
    pooled: bool
    width: int


def _signature_function(module, handle: str):
    signatures = module.signatures
    for key in SIGNATURE_KEYS:
        if key in signatures:
            return key, signatures[key]
    if len(signatures) == 1:
        return next(iter(signatures.items()))
    raise ValueError(
        f"module {handle!r} has no {SIGNATURE_KEY!r} signature taking strings; its signatures: "
        f"{sorted(signatures)}"
    )


def text_signature(module, output_key: str = DEFAULT_OUTPUT_KEY, handle: str = "") -> TextSignature:
    """Inspect a loaded module and run it once on a probe string to learn the output width.

    Raises ValueError when the module has no signature with exactly one string input, or no output
    `output_key`, or that output is neither [batch, width] nor [batch, tokens, width]."""
    key, function = _signature_function(module, handle)
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


def freeze_module(handle: str, out_dir: str | Path, output_key: str | None = None) -> Path:
    """Rewrite a module's text signature as a TF2 SavedModel of constants at `out_dir`.

    The result has a ``default`` signature with the same input key and the same outputs (only
    `output_key` when given), no variables, and loads and serves anywhere, inside exported Keras
    models too. `out_dir` must not exist or be empty. Returns `out_dir`."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} is not empty")
    resolved = resolve_handle(handle)
    module = load_module(resolved)
    _, function = _signature_function(module, resolved)
    structure = function.structured_outputs
    keys = [output_key] if output_key else sorted(structure)
    signature = text_signature(module, keys[0], resolved)  # validates the signature and the key
    with _quiet_reference_variable_warnings():
        frozen = convert_variables_to_constants_v2(function)
    input_spec = function.structured_input_signature[1][signature.input_name]

    def serve(**inputs):
        # The frozen function knows neither the signature's input key nor its output keys: its one
        # argument is named after the graph's placeholder (which need not be the key, or may be
        # unnamed), and it returns `function.outputs`, the flat list `function` itself packs into
        # `structure`.
        outputs = frozen(inputs[signature.input_name])
        outputs = tf.nest.pack_sequence_as(structure, outputs, expand_composites=True)
        return {key: outputs[key] for key in keys}

    holder = tf.Module()
    holder.serve = tf.function(serve)
    concrete = holder.serve.get_concrete_function(
        **{signature.input_name: tf.TensorSpec(input_spec.shape, tf.string, name=signature.input_name)}
    )
    tf.saved_model.save(holder, str(out_dir), signatures={SIGNATURE_KEY: concrete})
    return out_dir


def _folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m genre_fusion.text_encoders", description="TF Hub text encoder tools."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    freeze = commands.add_parser(
        "freeze",
        help="write a module's text signature as a TF2 SavedModel of constants (needed to export a "
        "model with a TF1 module such as ELMo)",
    )
    freeze.add_argument("handle", help=f"'{ELMO_NAME}', a TF Hub / Kaggle URL or a module folder")
    freeze.add_argument("out_dir", type=Path, help="folder to write (must not exist or be empty)")
    freeze.add_argument("--output-key", default=None, help="keep only this output (default: all)")
    args = parser.parse_args(argv)
    try:
        tf1 = is_tf1_module(args.handle)
        out_dir = freeze_module(args.handle, args.out_dir, args.output_key)
    except (TextEncoderUnavailable, ValueError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    # Read back through the same path as any module, which also proves the result loads.
    frozen = load_module(str(out_dir))
    function = frozen.signatures[SIGNATURE_KEY]
    input_name = next(iter(function.structured_input_signature[1]))
    outputs = function.structured_outputs
    print(
        f"froze {resolve_handle(args.handle)} ({'TF1' if tf1 else 'TF2'} format) -> {out_dir} "
        f"({_folder_bytes(out_dir):,} bytes)\n"
        f"  signature {SIGNATURE_KEY!r}: input {input_name!r} string [batch]; outputs "
        + ", ".join(f"{key} {spec.shape}" for key, spec in sorted(outputs.items()))
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
