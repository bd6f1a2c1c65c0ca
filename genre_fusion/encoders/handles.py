"""Where a TF Hub module comes from: a handle resolved to a local folder, quickly or not at all.

A module is named by a handle: a short name (``elmo``: ELMo v3 on tfhub.dev), a TF Hub / Kaggle
URL, or a local folder (an unpacked module, or a TF Hub cache folder copied from a machine with
internet). URLs are resolved through `tensorflow_hub` (which honours ``TFHUB_CACHE_DIR``); a URL
that is not cached must answer within `CONNECT_TIMEOUT_S`, and a stalled download fails after
`DOWNLOAD_STALL_TIMEOUT_S`, so that a machine without internet learns at once what to do instead.
Text and audio encoders alike load their modules here; what to do instead depends on what the
module is for (`ModuleKind`: `TEXT_MODULE`, `AUDIO_MODULE`).
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import os
import socket
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import tensorflow as tf
import tensorflow_hub as hub

from genre_fusion.compat import hub_cache_folder

ELMO_NAME = "elmo"
ELMO_HANDLE = "https://tfhub.dev/google/elmo/3"
REMOTE_PREFIXES = ("http://", "https://")
# Without a network, a firewalled connect hangs for minutes (the kernel's SYN retries) and a dead
# DNS server for tens of seconds. The reachability check gives up after CONNECT_TIMEOUT_S; a
# download stalled for longer than DOWNLOAD_STALL_TIMEOUT_S between two reads fails too (or than
# the process's default socket timeout, when one is set).
CONNECT_TIMEOUT_S = 10.0
DOWNLOAD_STALL_TIMEOUT_S = 60.0
LEARNED_OPTION = "--text-encoder learned"
LOG_MEL_OPTION = "--audio-encoder log-mel"
# tf.saved_model.load logs this once per reference variable and signature (hundreds for ELMo).
# It is expected: those variables are never trained here, and export freezes them.
_REFERENCE_VARIABLE_WARNING = "because it is a reference variable"


@dataclass(frozen=True)
class ModuleKind:
    """What a module is for, as `HubModuleUnavailable`'s help names it: `name` ("text encoder"),
    an `example` of a download, and the `fallback` that needs no module, with what it does."""

    name: str
    example: str
    fallback: str


TEXT_MODULE = ModuleKind(
    "text encoder",
    "ELMo v3: https://tfhub.dev/google/elmo/3?tf-hub-format=compressed, or Kaggle "
    "google/elmo/TensorFlow1/elmo/3",
    f"{LEARNED_OPTION} (the model learns its own word embeddings, no module needed)",
)
AUDIO_MODULE = ModuleKind(
    "audio encoder",
    "YAMNet: https://tfhub.dev/google/yamnet/1?tf-hub-format=compressed, or Kaggle "
    "google/yamnet/TensorFlow2/yamnet/1",
    f"{LOG_MEL_OPTION} (the model learns its own convolutions on log-mels, no module needed) or "
    "--audio-encoder musicnn-msd (its weights come with `make install`, no download)",
)


class ModuleUnavailable(RuntimeError):
    """A module cannot be obtained (no network, unknown handle, missing folder, musicnn's weights
    not installed); the message says how to proceed."""


class HubModuleUnavailable(ModuleUnavailable):
    """A TF Hub module that cannot be had: its `handle`, the `reason`, and the `kind` of module,
    whose fallback the message offers. Raised here for `TEXT_MODULE`; a caller that loads another
    kind of module (the audio encoders, through their own code) rewords it with `for_kind`."""

    def __init__(self, handle: str, reason: str, kind: ModuleKind = TEXT_MODULE):
        super().__init__(
            f"{kind.name} module {handle!r} is not available: {reason}.\n"
            "To proceed, either\n"
            "  - on a machine with internet, download the module: the .tar.gz from tfhub.dev or Kaggle "
            f"Models ({kind.example}), unpacked into a folder; or run this program there with "
            "TFHUB_CACHE_DIR set and copy that cache folder here. Then pass the module's folder (the one "
            f"holding saved_model.pb) as the {kind.name} handle, or set TFHUB_CACHE_DIR to the copied "
            "cache and keep the URL; or\n"
            f"  - use {kind.fallback}."
        )
        self.handle = handle
        self.reason = reason
        self.kind = kind

    def for_kind(self, kind: ModuleKind) -> HubModuleUnavailable:
        """The same failure, its help worded for a module of `kind`."""
        return HubModuleUnavailable(self.handle, self.reason, kind)


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


def _is_cached(handle: str) -> bool:
    folder = hub_cache_folder(handle)
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
    """Raise `HubModuleUnavailable` unless a TCP connection to the handle's host (or proxy) opens
    within `CONNECT_TIMEOUT_S`. Runs in a thread because name resolution ignores socket timeouts."""
    host, port = _connect_target(handle)
    timeout_s = CONNECT_TIMEOUT_S
    failure: list[BaseException] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout_s).close()
        except OSError as err:
            failure.append(err)

    thread = threading.Thread(target=connect, name="hub-module-reachability", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise HubModuleUnavailable(handle, f"no answer from {host}:{port} within {timeout_s:g} s")
    if failure:
        raise HubModuleUnavailable(handle, f"cannot connect to {host}:{port} ({failure[0]})")


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
def quiet_reference_variable_warnings() -> Iterator[None]:
    log_filter = _DropReferenceVariableWarnings()
    logger = tf.get_logger()
    logger.addFilter(log_filter)
    try:
        yield
    finally:
        logger.removeFilter(log_filter)


def module_path(handle: str) -> str:
    """A handle (see `resolve_handle`) -> the local folder (or gs:// path) holding the module,
    downloading it into the TF Hub cache if needed. Raises `ModuleUnavailable` quickly when
    the handle cannot be reached or the folder does not exist."""
    handle = resolve_handle(handle)
    if not _is_remote(handle):
        if not tf.io.gfile.exists(handle):
            raise HubModuleUnavailable(handle, "no such folder")
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
        raise HubModuleUnavailable(handle, f"download failed ({err})") from err


def load_module(handle: str):
    """A handle -> the object `tensorflow_hub.load` returns (``.signatures`` holds the functions)."""
    path = module_path(handle)
    try:
        with quiet_reference_variable_warnings():
            return hub.load(path)
    except ValueError as err:  # tensorflow_hub: the folder holds no saved_model.pb
        raise HubModuleUnavailable(handle, f"{path} is not a TF Hub module or SavedModel ({err})") from err

