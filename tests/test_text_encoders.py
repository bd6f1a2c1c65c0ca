"""The TF Hub text encoder, proved on local stand-ins with ELMo's exact interface.

Both stand-ins (TF1 Hub format with reference variables, like ELMo v3; and a TF2 SavedModel) are
loaded through the same path as the real module: `tensorflow_hub.load` on a local folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import inspect
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import textwrap
import threading
import time
import urllib.parse
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_hub as hub
from tensorflow.core.protobuf import saved_model_pb2

from genre_fusion.encoders import handles
from genre_fusion.encoders.cli import main as encoders_cli
from genre_fusion.encoders.freezing import freeze_module
from genre_fusion.encoders.handles import (
    ELMO_HANDLE,
    ModuleUnavailable,
    load_module,
    module_path,
    resolve_handle,
)
from genre_fusion.encoders.signatures import is_tf1_module
from genre_fusion.encoders.text import HubTextEmbedding, HubTextEncoder, TextSignature
from tests import hub_standins

WIDTH = hub_standins.DEFAULT_WIDTH
KINDS = ("tf1", "tf2")
TEXTS = ["love night baby", "", "heart  fire burning slow", "rain"]
# A frozen module is the same graph with variables turned into constants; Grappler may fold and
# reorder float ops differently, so equal means equal to float32 rounding.
FROZEN_ATOL = 1e-5
# The same SavedModel graph served in another process: equal up to float32 summation order.
SERVED_ATOL = 1e-6
# Fast enough that no one waits: a missing network must not cost minutes.
FAIL_FAST_S = 5.0
# What ELMo's documentation leaves open (it documents the input as a string tensor [batch] only),
# varied: `hub_standins.build_tf1_standin`'s arguments; unnamed settings keep the builder's defaults.
TF1_VARIATIONS = {
    "key_default_placeholder_text": {"input_key": "default", "placeholder_name": "text"},
    "key_text_placeholder_tokens_input": {"placeholder_name": "tokens_input"},
    "unnamed_placeholder": {"placeholder_name": None},
    # A key that is the name of another signature's placeholder (``tokens``).
    "key_names_another_placeholder": {"input_key": "tokens"},
    "one_signature_one_tag_set": {"tokens_signature": False, "tag_sets": ((),)},
    "train_graph_written_first": {"tag_sets": (("train",), ())},
}


@pytest.fixture(scope="session")
def standins(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("standins")
    return {
        "tf1": str(hub_standins.build_tf1_standin(root / "tf1")),
        "tf2": str(hub_standins.build_tf2_standin(root / "tf2")),
    }


@pytest.fixture(params=KINDS)
def standin(request, standins) -> str:
    return standins[request.param]


@pytest.fixture(scope="session")
def tf1_variations(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("tf1_variations")
    return {
        name: str(hub_standins.build_tf1_standin(root / name, **settings))
        for name, settings in TF1_VARIATIONS.items()
    }


@pytest.fixture(params=sorted(TF1_VARIATIONS))
def tf1_variation(request, tf1_variations) -> tuple[str, str]:
    """(variation name, module folder)."""
    return request.param, tf1_variations[request.param]


def _setting(variation: str, name: str):
    """A `build_tf1_standin` argument of a variation: its own, or the builder's default."""
    default = inspect.signature(hub_standins.build_tf1_standin).parameters[name].default
    return TF1_VARIATIONS[variation].get(name, default)


def _words(text: str) -> int:
    return len(text.split())


def _module_rows(path: str, texts: list[str], key: str = "elmo") -> list[np.ndarray]:
    """Each text run through the module's signature alone, unpadded: the reference numbers
    (an empty text gives 0 rows: the stand-in cannot run on a batch of empty strings)."""
    function = hub.load(path).signatures["default"]
    (input_key,) = function.structured_input_signature[1]
    rows = []
    for text in texts:
        if not _words(text):
            rows.append(np.zeros((0, WIDTH), np.float32))
            continue
        output = function(**{input_key: tf.constant([text])})[key].numpy()[0]
        rows.append(output[None] if output.ndim == 1 else output[: _words(text)])
    return rows


def test_resolve_handle():
    assert resolve_handle("elmo") == ELMO_HANDLE == "https://tfhub.dev/google/elmo/3"
    kaggle = "https://www.kaggle.com/models/google/elmo/TensorFlow1/elmo/3"
    assert resolve_handle(kaggle) == kaggle
    assert resolve_handle("/models/elmo") == "/models/elmo"
    assert resolve_handle("~/models/elmo") == os.path.expanduser("~/models/elmo")


def test_standins_load_like_elmo_through_hub_load(standins, monkeypatch):
    loaded = []
    real_load = hub.load
    monkeypatch.setattr(hub, "load", lambda path, *a, **k: loaded.append(path) or real_load(path, *a, **k))
    tf1 = HubTextEncoder(standins["tf1"])
    tf2 = HubTextEncoder(standins["tf2"])
    assert loaded == [standins["tf1"], standins["tf2"]]
    for encoder in (tf1, tf2):
        assert encoder.signature == TextSignature("default", "text", "elmo", False, WIDTH)
    # TF1 Hub format (tfhub_module.pb) with reference variables: invisible to TF2, as with ELMo.
    assert tf1._module._is_hub_module_v1 and not tf1._module.variables
    assert set(tf1._module.signatures) == {"default", "tokens"}
    assert not tf2._module._is_hub_module_v1
    assert all(isinstance(v, tf.Variable) for v in tf2._module.weights.values())
    assert is_tf1_module(standins["tf1"]) and not is_tf1_module(standins["tf2"])


def test_embed_gives_one_row_per_word_and_skips_empty_texts(standin):
    encoder = HubTextEncoder(standin, batch_size=2)
    vectors = encoder.embed(TEXTS)
    assert [v.shape for v in vectors] == [(_words(t), WIDTH) for t in TEXTS]
    assert all(v.dtype == np.float32 for v in vectors)
    assert encoder.calls == 3  # the empty text never reaches the module
    # Rows are the text's own, whatever the batch padding: equal to the text embedded alone.
    for got, want in zip(vectors, _module_rows(standin, TEXTS), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_each_text_is_encoded_exactly_once(standins):
    encoder = HubTextEncoder(standins["tf1"], batch_size=8)
    texts = [" ".join(f"w{i}x{j}" for j in range(1 + i % 13)) for i in range(70)] + [""] * 5
    vectors = encoder.embed(texts)
    assert encoder.calls == 70
    assert [len(v) for v in vectors] == [1 + i % 13 for i in range(70)] + [0] * 5


def test_all_empty_texts_never_reach_the_module(standins):
    # The stand-in fails on a batch of empty strings, so this passes only if nothing is sent.
    encoder = HubTextEncoder(standins["tf1"])
    assert [v.shape for v in encoder.embed(["", "", ""])] == [(0, WIDTH)] * 3
    assert encoder.calls == 0


def test_pooled_output_is_a_length_one_sequence(standin):
    encoder = HubTextEncoder(standin, output_key="default")
    assert encoder.signature.pooled and encoder.width == WIDTH
    vectors = encoder.embed(TEXTS)
    assert [v.shape for v in vectors] == [(1, WIDTH), (0, WIDTH), (1, WIDTH), (1, WIDTH)]
    for got, want in zip(vectors, _module_rows(standin, TEXTS, "default"), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_other_output_keys_and_unknown_key(standins):
    encoder = HubTextEncoder(standins["tf1"], output_key="word_emb")
    assert encoder.width == WIDTH // 2
    with pytest.raises(ValueError, match="no output 'elmo_v2'.*lstm_outputs1"):
        HubTextEncoder(standins["tf1"], output_key="elmo_v2")


def test_layer_output_and_mask(standin):
    layer = HubTextEmbedding(standin)
    texts = tf.constant(TEXTS)
    output = layer(texts)
    longest = max(_words(t) for t in TEXTS)
    assert output.shape == (len(TEXTS), longest, WIDTH) and output.dtype == tf.float32
    mask = layer.compute_mask(texts)
    expected = np.arange(longest)[None, :] < np.array([_words(t) for t in TEXTS])[:, None]
    np.testing.assert_array_equal(mask.numpy(), expected)
    assert layer.compute_output_shape((None,)) == (None, None, WIDTH)
    for row, want in enumerate(_module_rows(standin, TEXTS)):
        np.testing.assert_allclose(output.numpy()[row, : len(want)], want, atol=1e-6)


def test_layer_pooled_output_and_all_empty_batch(standins):
    pooled = HubTextEmbedding(standins["tf1"], output_key="default")
    texts = tf.constant(TEXTS)
    assert pooled(texts).shape == (len(TEXTS), 1, WIDTH)
    np.testing.assert_array_equal(pooled.compute_mask(texts).numpy()[:, 0], [True, False, True, True])
    # Only instrumental songs in a request: the module is skipped (the stand-in would fail).
    empty = tf.constant(["", ""])
    sequence = HubTextEmbedding(standins["tf1"])
    assert sequence(empty).shape == (2, 0, WIDTH) and sequence.compute_mask(empty).shape == (2, 0)
    np.testing.assert_array_equal(pooled(empty).numpy(), np.zeros((2, 1, WIDTH)))
    assert not pooled.compute_mask(empty).numpy().any()


def test_layer_config_round_trip(standins):
    layer = HubTextEmbedding(
        standins["tf2"], output_key="lstm_outputs2", name="lyrics_elmo", trainable=False
    )
    config = layer.get_config()
    assert config["handle"] == standins["tf2"] and config["output_key"] == "lstm_outputs2"
    json.dumps(config)
    clone = HubTextEmbedding.from_config(config)
    assert clone.get_config() == config
    assert (clone.name, clone.trainable, clone.signature) == ("lyrics_elmo", False, layer.signature)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(restored, HubTextEmbedding) and restored.get_config() == config


def _classifier(handle: str) -> keras.Model:
    """lyrics string -> HubTextEmbedding -> masked mean over words -> Dense(3)."""
    lyrics = keras.Input(shape=(), dtype="string", name="lyrics")
    vectors = HubTextEmbedding(handle, name="text_encoder")(lyrics)
    pooled = keras.layers.GlobalAveragePooling1D()(vectors)  # uses the layer's mask
    keras.utils.set_random_seed(7)
    return keras.Model(lyrics, keras.layers.Dense(3, name="genres")(pooled))


MODEL_TEXTS = ["love night baby", "heart  fire burning slow", "rain"]


def test_functional_model_saves_as_keras_and_reloads(standin, tmp_path):
    model = _classifier(standin)
    output = model(tf.constant(MODEL_TEXTS)).numpy()
    kernel, bias = model.get_layer("genres").get_weights()
    # The mask reached the pooling: the mean is over each text's own words only.
    means = np.stack([rows.mean(axis=0) for rows in _module_rows(standin, MODEL_TEXTS)])
    np.testing.assert_allclose(output, means @ kernel + bias, atol=1e-5)
    model.save(tmp_path / "model.keras")
    reloaded = keras.models.load_model(tmp_path / "model.keras")
    assert isinstance(reloaded.get_layer("text_encoder"), HubTextEmbedding)
    np.testing.assert_allclose(reloaded(tf.constant(MODEL_TEXTS)).numpy(), output, atol=1e-6)


SERVE_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf
    results = {}
    for name, path in json.loads(sys.argv[1]).items():
        try:
            loaded = tf.saved_model.load(path)  # kept: its variables die with it
            served = loaded.serve(tf.constant(json.loads(sys.argv[2])))
            results[name] = {"output": served.numpy().tolist()}
        except Exception as err:
            results[name] = {"error": f"{type(err).__name__}: {err}"}
    print(json.dumps(results))
    """
)


@pytest.fixture(scope="module")
def served_exports(standins, tmp_path_factory):
    """Export the classifier with the TF1 stand-in inside as is and frozen first, and with the TF2
    stand-in as is. Serve all three in one fresh process after every module folder is gone.
    Returns (in-process outputs, served outputs or errors), keyed "unfrozen", "frozen", "tf2"."""
    root = tmp_path_factory.mktemp("exports")
    module = shutil.copytree(standins["tf1"], root / "tf1_module")
    frozen = freeze_module(str(module), root / "tf1_frozen")
    tf2 = shutil.copytree(standins["tf2"], root / "tf2_module")
    exports, in_process = {}, {}
    for name, handle in (("unfrozen", module), ("frozen", frozen), ("tf2", tf2)):
        model = _classifier(str(handle))
        in_process[name] = model(tf.constant(MODEL_TEXTS)).numpy()
        exports[name] = str(root / f"export_{name}")
        model.export(exports[name], verbose=False)
    for folder in (module, frozen, tf2):
        shutil.rmtree(folder)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [sys.executable, "-c", SERVE_SCRIPT, json.dumps(exports), json.dumps(MODEL_TEXTS)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return in_process, json.loads(result.stdout.strip().splitlines()[-1])


def test_frozen_tf1_module_exports_and_serves_in_a_fresh_process(served_exports):
    in_process, served = served_exports
    assert "output" in served["frozen"], served["frozen"]
    np.testing.assert_allclose(np.array(served["frozen"]["output"]), in_process["frozen"], atol=SERVED_ATOL)
    # Freezing changed nothing but the variables' kind.
    np.testing.assert_allclose(in_process["frozen"], in_process["unfrozen"], atol=FROZEN_ATOL)


def test_tf2_module_exports_and_serves_without_freezing(served_exports):
    in_process, served = served_exports
    assert "output" in served["tf2"], served["tf2"]
    np.testing.assert_allclose(np.array(served["tf2"]["output"]), in_process["tf2"], atol=SERVED_ATOL)


def test_unfrozen_tf1_module_exports_but_fails_when_served(served_exports):
    _, served = served_exports
    assert "uninitialized value" in served["unfrozen"].get("error", ""), served["unfrozen"]


def test_frozen_module_matches_the_original_on_every_output(standins, tmp_path):
    frozen = freeze_module(standins["tf1"], tmp_path / "frozen")
    assert not is_tf1_module(str(frozen))
    original, copy = (
        hub.load(standins["tf1"]).signatures["default"],
        hub.load(str(frozen)).signatures["default"],
    )
    assert copy.structured_input_signature == original.structured_input_signature
    texts = tf.constant(TEXTS)
    want, got = original(text=texts), copy(text=texts)
    assert sorted(got) == sorted(want) == sorted(hub_standins.OUTPUT_KEYS)
    for key in want:
        np.testing.assert_allclose(got[key].numpy(), want[key].numpy(), atol=FROZEN_ATOL)
    encoder = HubTextEncoder(str(frozen))
    assert encoder.signature == TextSignature("default", "text", "elmo", False, WIDTH)


def test_freeze_cli(standins, tmp_path, capsys):
    out = tmp_path / "elmo_frozen"
    assert encoders_cli(["freeze", standins["tf1"], str(out), "--output-key", "elmo"]) == 0
    printed = capsys.readouterr().out
    assert str(out) in printed and "TF1" in printed and "input 'text'" in printed
    assert (out / "saved_model.pb").exists()
    assert list(hub.load(str(out)).signatures["default"].structured_outputs) == ["elmo"]
    assert encoders_cli(["freeze", standins["tf2"], str(tmp_path / "tf2_frozen")]) == 0
    assert "TF2 format" in capsys.readouterr().out
    assert encoders_cli(["freeze", standins["tf1"], str(out)]) == 2  # refuses to overwrite
    assert "not empty" in capsys.readouterr().err
    assert encoders_cli(["freeze", str(tmp_path / "missing"), str(tmp_path / "x")]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_tf1_standin_varies_what_elmo_leaves_open(tf1_variation):
    name, path = tf1_variation
    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((Path(path) / "saved_model.pb").read_bytes())
    graphs = saved_model.meta_graphs
    assert [tuple(graph.meta_info_def.tags) for graph in graphs] == list(_setting(name, "tag_sets"))
    keys = ["default", "tokens"] if _setting(name, "tokens_signature") else ["default"]
    for graph in graphs:
        signatures = graph.signature_def
        assert sorted(signatures) == keys
        ((key, tensor),) = signatures["default"].inputs.items()
        assert key == _setting(name, "input_key")
        assert tensor.name == f"{_setting(name, 'placeholder_name') or 'Placeholder'}:0"


def test_tf1_variations_are_tf1_and_embed_like_the_elmo_standin(tf1_variation, standins):
    name, path = tf1_variation
    assert is_tf1_module(path)
    encoder = HubTextEncoder(path, batch_size=2)
    assert encoder.signature == TextSignature("default", _setting(name, "input_key"), "elmo", False, WIDTH)
    # The same weights as the stand-in of the other tests: the same numbers, whatever the names.
    reference = _module_rows(standins["tf1"], TEXTS)
    for got, want in zip(encoder.embed(TEXTS), reference, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6)
    output = HubTextEmbedding(path)(tf.constant(TEXTS)).numpy()
    for row, want in enumerate(reference):
        np.testing.assert_allclose(output[row, : len(want)], want, atol=1e-6)


def test_freezing_keeps_the_input_key_and_every_output_whatever_the_placeholder(tf1_variation, tmp_path):
    name, path = tf1_variation
    frozen = str(freeze_module(path, tmp_path / "frozen"))
    assert not is_tf1_module(frozen)
    original = load_module(path).signatures["default"]
    copy = load_module(frozen).signatures["default"]
    assert copy.structured_input_signature == original.structured_input_signature
    texts = {_setting(name, "input_key"): tf.constant(TEXTS)}
    want, got = original(**texts), copy(**texts)
    assert sorted(got) == sorted(want) == sorted(hub_standins.OUTPUT_KEYS)
    for key in want:
        np.testing.assert_allclose(got[key].numpy(), want[key].numpy(), atol=FROZEN_ATOL, err_msg=key)
    # What an export serves: the layer on the frozen module, as the layer on the original.
    served, unfrozen = (HubTextEmbedding(handle)(tf.constant(TEXTS)).numpy() for handle in (frozen, path))
    np.testing.assert_allclose(served, unfrozen, atol=FROZEN_ATOL)


def _assert_helpful(error: ModuleUnavailable, handle: str) -> None:
    message = str(error)
    assert handle in message
    for hint in ("tar.gz", "TFHUB_CACHE_DIR", "--text-encoder learned", "saved_model.pb"):
        assert hint in message


def _fails_fast(handle: str) -> ModuleUnavailable:
    start = time.monotonic()
    with pytest.raises(ModuleUnavailable) as caught:
        HubTextEncoder(handle)
    assert time.monotonic() - start < FAIL_FAST_S
    _assert_helpful(caught.value, handle)
    return caught.value


@pytest.fixture
def empty_hub_cache(tmp_path, monkeypatch):
    """An empty TF Hub cache, and no proxy: connections go where the handle says."""
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path / "hub_cache"))
    for name in ("http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    return tmp_path / "hub_cache"


def test_elmo_without_network_fails_fast_with_help(empty_hub_cache):
    try:
        socket.getaddrinfo("tfhub.dev", 443)
    except OSError:
        pass
    else:
        pytest.skip("tfhub.dev resolves here: the real ELMo would be downloaded")
    _fails_fast(resolve_handle("elmo"))


def _closed_port() -> int:
    """A local port nobody listens on: connecting is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_refused_connection_fails_fast(empty_hub_cache):
    assert "cannot connect" in str(_fails_fast(f"http://127.0.0.1:{_closed_port()}/google/elmo/3"))


def test_silent_server_fails_fast(empty_hub_cache, monkeypatch):
    # Accepts the connection (the kernel does) but never answers: only a socket timeout ends it.
    monkeypatch.setattr(handles, "DOWNLOAD_STALL_TIMEOUT_S", 0.5)
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        assert "download failed" in str(_fails_fast(f"http://127.0.0.1:{server.getsockname()[1]}/elmo/3"))


def test_hanging_connect_or_dns_fails_fast(empty_hub_cache, monkeypatch):
    monkeypatch.setattr(handles, "CONNECT_TIMEOUT_S", 0.3)

    def hang(*args, **kwargs):
        time.sleep(3)  # the abandoned connect ends as a stuck resolver eventually does, in a while
        raise OSError("timed out")

    monkeypatch.setattr(socket, "create_connection", hang)
    assert "no answer" in str(_fails_fast("https://tfhub.dev/google/elmo/3"))


def test_missing_local_folder_fails_fast(tmp_path):
    assert "no such folder" in str(_fails_fast(str(tmp_path / "elmo_3")))


def test_folder_without_a_module_fails_with_help(tmp_path):
    assert "not a TF Hub module" in str(_fails_fast(str(tmp_path)))


def test_copied_hub_cache_loads_the_url_offline(standin, empty_hub_cache, monkeypatch):
    # The way the error message suggests: a cache folder filled on a machine with internet.
    handle = ELMO_HANDLE
    shutil.copytree(standin, empty_hub_cache / hashlib.sha1(handle.encode()).hexdigest())

    def no_network(*args, **kwargs):
        raise AssertionError("the network was touched")

    monkeypatch.setattr(socket, "create_connection", no_network)
    encoder = HubTextEncoder("elmo")
    assert encoder.handle == handle and encoder.width == WIDTH


def _module_archive(folder: str) -> bytes:
    """A module folder as the .tar.gz tfhub.dev serves."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path in Path(folder).iterdir():
            archive.add(path, arcname=path.name)
    return buffer.getvalue()


class _ModuleRequestHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.server.before_answer(urllib.parse.urlsplit(self.path).path)
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.server.archive)))
        self.end_headers()
        self.wfile.write(self.server.archive)

    def log_message(self, format, *args):
        pass


@contextlib.contextmanager
def _module_server(archive: bytes, before_answer=lambda path: None):
    """A local HTTP server answering every GET with `archive` (after `before_answer(url path)`);
    yields its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ModuleRequestHandler)
    server.archive, server.before_answer = archive, before_answer
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def socket_default_timeout(request):
    """The process's default socket timeout set to `request.param` for the test, restored after."""
    saved = socket.getdefaulttimeout()
    socket.setdefaulttimeout(request.param)
    yield request.param
    socket.setdefaulttimeout(saved)


# None: unset, so a download sets its own for its duration; 1.0: the user's, which a download keeps.
@pytest.mark.parametrize("socket_default_timeout", [None, 1.0], indirect=True)
def test_module_path_leaves_the_default_socket_timeout_as_it_was(
    socket_default_timeout, standins, empty_hub_cache, monkeypatch
):
    monkeypatch.setattr(handles, "DOWNLOAD_STALL_TIMEOUT_S", 0.5)
    during_download = []
    with _module_server(
        _module_archive(standins["tf2"]), lambda path: during_download.append(socket.getdefaulttimeout())
    ) as url:
        downloaded = module_path(f"{url}/google/elmo/3")
    assert (Path(downloaded) / "saved_model.pb").is_file()
    # A stalled download is bounded, by the user's timeout when there is one.
    assert during_download == [0.5 if socket_default_timeout is None else socket_default_timeout]
    assert socket.getdefaulttimeout() == socket_default_timeout
    assert module_path(standins["tf1"]) == standins["tf1"]
    assert socket.getdefaulttimeout() == socket_default_timeout
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        failing = {
            "missing folder": str(empty_hub_cache / "elmo_3"),
            "refused": f"http://127.0.0.1:{_closed_port()}/x",
            "stalled download": f"http://127.0.0.1:{silent.getsockname()[1]}/x",
        }
        for name, handle in failing.items():
            with pytest.raises(ModuleUnavailable):
                module_path(handle)
            assert socket.getdefaulttimeout() == socket_default_timeout, name


def test_overlapping_downloads_restore_the_default_socket_timeout(standins, empty_hub_cache):
    # Two threads download at once, and the first to start ends first: the second must not then
    # restore the first's timeout, which it found as the default, as if it were the user's.
    wait_s = 30.0
    first_arrived, second_arrived, first_done = threading.Event(), threading.Event(), threading.Event()

    def before_answer(path: str) -> None:
        if path.startswith("/first/"):
            first_arrived.set()
            second_arrived.wait(wait_s)
        else:
            second_arrived.set()
            first_done.wait(wait_s)

    assert socket.getdefaulttimeout() is None
    downloaded = {}
    with _module_server(_module_archive(standins["tf2"]), before_answer) as url:

        def download(name: str) -> None:
            downloaded[name] = module_path(f"{url}/{name}/elmo/3")

        threads = {name: threading.Thread(target=download, args=(name,)) for name in ("first", "second")}
        threads["first"].start()
        assert first_arrived.wait(wait_s)  # inside its download: its timeout is set
        threads["second"].start()
        threads["first"].join(wait_s)
        first_done.set()
        threads["second"].join(wait_s)
    assert sorted(downloaded) == ["first", "second"]
    assert socket.getdefaulttimeout() is None
