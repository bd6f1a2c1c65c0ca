"""Where a TF Hub handle leads: names resolved, the module found in a local folder or the TF Hub cache
or downloaded, and a missing network or module failing fast with help. Local stand-ins and local
servers only: nothing is downloaded from the internet."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import io
import os
import shutil
import socket
import tarfile
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

from genre_fusion.encoders import handles
from genre_fusion.encoders.handles import ELMO_HANDLE, ModuleUnavailable, module_path, resolve_handle
from genre_fusion.encoders.text import HubTextEncoder
from tests import hub_standins

pytest_plugins = ["tests.hub_fixtures"]

# Fast enough that no one waits: a missing network must not cost minutes.
FAIL_FAST_S = 5.0


def test_resolve_handle():
    assert resolve_handle("elmo") == ELMO_HANDLE == "https://tfhub.dev/google/elmo/3"
    kaggle = "https://www.kaggle.com/models/google/elmo/TensorFlow1/elmo/3"
    assert resolve_handle(kaggle) == kaggle
    assert resolve_handle("/models/elmo") == "/models/elmo"
    assert resolve_handle("~/models/elmo") == os.path.expanduser("~/models/elmo")


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
    assert encoder.handle == handle and encoder.width == hub_standins.DEFAULT_WIDTH


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
