"""Export a finished training run as one self-contained SavedModel.

    python -m genre_fusion.export --run RUN_DIR --out MODEL_DIR [--top-k 5] [--overwrite]

MODEL_DIR holds the SavedModel of `genre_fusion.serving.GenreServer` (signatures ``serving_default``,
``features`` and ``classify``, documented there and listed in ``signature.json``), ``labels.txt``
(one genre per line, in the order of ``probabilities``), ``features.json`` (the `FeatureConfig`:
sample rate and clip length tell a client how to decode audio), ``README.txt`` and the record of
these entries (`genre_fusion.files.owned_outputs`, kind ``export``).

MODEL_DIR must be new or empty; ``--overwrite`` replaces only an export of this command that holds
nothing else (an export without the record: exactly `LEGACY_EXPORT_NAMES`). It is checked before the
export starts and again before the new export takes its place: the old one is renamed aside, the
new one moved in, then the old one deleted.

Serving needs nothing but TensorFlow: log-mel and principal words are computed in the graph, and a
hub text encoder and a pretrained audio encoder (musicnn with its weights, a TF Hub audio module)
are inside it. A TF1 module such as ELMo or TRILL is frozen to constants first (its reference
variables would be "uninitialized" when served). With a pretrained audio encoder the waveform is
taken at the encoder's sample rate (``features.json``'s ``sample_rate``). An encoder that cannot
be loaded stops the export with exit code 2 and a message naming it. Before it is moved into
place, the export is reloaded and checked against the in-memory model on a probe batch.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from genre_fusion.data.inputs import AUDIO_EMBEDDINGS_INPUT, EMBEDDINGS_INPUT, input_names
from genre_fusion.encoders.audio import AudioEncoderSpec, load_audio_encoder
from genre_fusion.encoders.freezing import freeze_module
from genre_fusion.encoders.handles import HubModuleUnavailable, ModuleUnavailable
from genre_fusion.encoders.signatures import is_tf1_module
from genre_fusion.encoders.text import HubTextEmbedding
from genre_fusion.features.config import FeatureConfig
from genre_fusion.files.owned_outputs import OutputsError, foreign_entries, owned_outputs, record_outputs
from genre_fusion.runs.config import RunError, TrainConfig
from genre_fusion.runs.loading import load_run
from genre_fusion.serving.layout import (
    EXPORT_KIND,
    FEATURES_FILE,
    LABELS_FILE,
    LEGACY_EXPORT_NAMES,
    LYRICS,
    PROBABILITIES,
    README_FILE,
    SERVING_SIGNATURE,
    SIGNATURE_FILE,
    WAVEFORM,
)
from genre_fusion.serving.server import DEFAULT_TOP_K, GenreServer

# The reloaded export against the in-memory server: the same graph, float32 rounding apart.
EXPORT_CHECK_ATOL = 1e-5
PROBE_LYRICS = ("[Chorus]\nI'm burning like fire tonight\nI'm burning like fire tonight", "")
PROBE_FREQUENCY_HZ = 440.0
# The build's help offers other encoders; a run can only be exported with its own.
HUB_AUDIO_ENCODER_FIX = (
    "the SavedModel holds the encoder, so the export needs the module the shards were built with: "
    "its folder back at that path, or for a URL a TF Hub cache that holds it (TFHUB_CACHE_DIR) or "
    "access to tfhub.dev; else train on shards of another --audio-encoder"
)


class ExportError(ValueError):
    """An export that cannot be made; the message names the problem and the fix."""


def text_encoder_layer(features: FeatureConfig, workdir: Path) -> HubTextEmbedding:
    """The hub text encoder of `features` as a layer ready to export: a TF1 module is frozen to
    constants in `workdir` first (the SavedModel copies what it needs; `workdir` may go after)."""
    handle = features.text_encoder
    try:
        if is_tf1_module(handle):
            handle = str(freeze_module(handle, workdir / "frozen_text_encoder", features.text_output_key))
        return HubTextEmbedding(handle, output_key=features.text_output_key, name="text_encoder")
    except (ModuleUnavailable, ValueError) as error:
        raise ExportError(
            f"the run's text encoder {features.text_encoder!r} is needed to export it: {error}"
        ) from error


def audio_encoder_layer(
    features: FeatureConfig, workdir: Path
) -> tuple[keras.layers.Layer, AudioEncoderSpec]:
    """The pretrained audio encoder of `features` as a layer ready to export
    (`AudioEncoder.export_layer`: a TF1 module is frozen to constants in `workdir` first), and its
    spec.

    Raises `ExportError` naming the encoder when it cannot be loaded, or when it no longer gives
    what the shards hold (sample rate, width, patches of a clip)."""
    name = features.audio_encoder
    try:
        encoder = load_audio_encoder(name, features.audio_output_key)
        layer = encoder.export_layer(workdir)
    except HubModuleUnavailable as error:
        raise ExportError(
            f"the run's audio encoder {name!r} cannot be loaded: {error.reason}.\n"
            f"To export: {HUB_AUDIO_ENCODER_FIX}."
        ) from error
    except (ModuleUnavailable, ValueError) as error:  # musicnn's message says how to install it
        raise ExportError(f"the run's audio encoder {name!r} cannot be loaded: {error}") from error
    spec = encoder.spec
    found = (spec.sample_rate, spec.width, spec.patches(features.clip_samples))
    trained = (features.sample_rate, features.audio_embedding_width, features.audio_patches)
    if found != trained:
        raise ExportError(
            f"the run's audio encoder {name!r} now gives (sample rate, width, patches per clip) "
            f"{found}, the shards it was trained on {trained}: export with the encoder the shards "
            "were built with"
        )
    return layer, spec


def _specs_json(specs: dict[str, tf.TensorSpec]) -> dict:
    return {
        name: {
            "dtype": spec.dtype.name,
            "shape": [None if size is None else int(size) for size in spec.shape],
        }
        for name, spec in sorted(specs.items())
    }


def signature_description(loaded) -> dict:
    """A loaded SavedModel -> {signature: {"inputs": {...}, "outputs": {...}}}, each tensor as its
    dtype and shape (null: any size), as a client of the SavedModel sees them."""
    return {
        name: {
            "inputs": _specs_json(function.structured_input_signature[1]),
            "outputs": _specs_json(function.structured_outputs),
        }
        for name, function in loaded.signatures.items()
    }


def _probe_batch(features: FeatureConfig) -> dict[str, tf.Tensor]:
    """Two songs of half a clip (the graph pads them): a tone with lyrics, and one without."""
    t = np.arange(features.clip_samples // 2, dtype=np.float32) / features.sample_rate
    tone = 0.5 * np.sin(2 * np.pi * PROBE_FREQUENCY_HZ * t, dtype=np.float32)
    return {WAVEFORM: tf.constant(np.stack([tone, tone])), LYRICS: tf.constant(PROBE_LYRICS)}


def _check_export(loaded, server: GenreServer) -> None:
    """The reloaded SavedModel must serve what the in-memory server computes."""
    probe = _probe_batch(server.features)
    expected = server.serve(**probe)[PROBABILITIES].numpy()
    served = loaded.signatures[SERVING_SIGNATURE](**probe)[PROBABILITIES].numpy()
    if not np.allclose(served, expected, atol=EXPORT_CHECK_ATOL):
        raise ExportError(
            f"the reloaded export disagrees with the model (largest difference "
            f"{np.abs(served - expected).max():.2e}): please report this"
        )


def _audio_encoder_readme(features: FeatureConfig) -> list[str]:
    """README lines on a pretrained audio encoder (none for log-mel models)."""
    if not features.uses_audio_embeddings:
        return []
    patches, width = features.audio_patches, features.audio_embedding_width
    grid = f"{features.audio_patch_seconds:g} s every {features.audio_hop_seconds:g} s"
    encoder = f"{features.audio_encoder}, output {features.audio_output_key}"
    return [
        f"Audio encoder (inside the SavedModel): {encoder}.",
        f"  features gives audio_embeddings float32 [batch, {patches}, {width}] (patches of {grid})",
        "  and audio_patches int32 [batch]: the patches within each song's audio, up to its last nonzero",
        f"  sample (the zero padding is no audio), 1 to {patches}, as the shards count them.",
    ]


def _readme(config: TrainConfig, server: GenreServer, run_dir: Path) -> str:
    features, genres, k = config.features, len(config.genres), server.top_k
    return "\n".join(
        [
            f"Genre classifier exported from {run_dir.resolve()}",
            f"({', '.join(config.model.modalities)}; {genres} genres, label mode {config.label_mode}).",
            "",
            f"serving_default: waveform float32 [batch, samples], mono at {features.sample_rate} Hz, any",
            f"  length (cut or zero-padded to {features.clip_seconds:g} s); lyrics string [batch], raw text,",
            '  "" for a song without lyrics.',
            f"  -> probabilities float32 [batch, {genres}] (genres in the order of {LABELS_FILE}),",
            f"     top_genres string [batch, {k}], top_probabilities float32 [batch, {k}].",
            "features: the same inputs -> the model inputs; classify: the model inputs -> the same outputs.",
            *_audio_encoder_readme(features),
            f"Every signature with its shapes: {SIGNATURE_FILE}. Feature settings: {FEATURES_FILE}.",
            "",
            "Classify files:  python -m genre_fusion.predict --model THIS_DIR song.mp3 [--lyrics song.txt]",
            "From Python:     model = tf.saved_model.load(THIS_DIR)",
            "                 outputs = model.signatures['serving_default'](waveform=..., lyrics=...)",
            "",
        ]
    )


def _check_out(out: Path, overwrite: bool) -> None:
    """Raise `ExportError` unless an export may be written to `out`: a new or empty folder, or with
    `overwrite` an export of this command that holds nothing else."""
    if not out.exists():
        return
    if not out.is_dir():
        raise ExportError(f"--out {out} is a file, not a folder: choose another --out")
    entries = {entry.name for entry in out.iterdir()}
    if not entries:
        return
    try:
        kind, _ = owned_outputs(out)
        foreign = foreign_entries(out, EXPORT_KIND, legacy=LEGACY_EXPORT_NAMES)
    except OutputsError as error:
        raise ExportError(f"--out {error}") from error
    if kind is None and entries != LEGACY_EXPORT_NAMES:
        foreign = sorted(entries)  # not the whole of an old export: nothing here is known to be ours
    if foreign:
        listed = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise ExportError(
            f"--out {out} is not an export of genre_fusion.export alone (it holds {listed}): nothing was "
            "changed; choose a new or empty --out"
        )
    if not overwrite:
        raise ExportError(f"--out {out} holds an export already: pass --overwrite to replace it")


def _replace(out: Path, staged: Path, aside: Path) -> None:
    """Move `staged` to `out`; an old export there is renamed to `aside` first (deleted by the
    caller), and put back if the move fails."""
    if out.exists():
        out.rename(aside)
    try:
        staged.rename(out)
    except OSError:
        if aside.exists():
            aside.rename(out)
        raise


def export_run(
    run_dir: str | Path, out: str | Path, top_k: int = DEFAULT_TOP_K, overwrite: bool = False
) -> Path:
    """Export the best model of `run_dir` to `out` (see the module docstring); returns `out`.

    Raises `RunError` for a run that is not finished, `ExportError` for an unavailable text or audio
    encoder, a `top_k` below 1, an `out` that may not be replaced (see the module docstring) or cannot be
    written. `out` appears only when complete and checked; nothing else in its parent is touched.
    """
    run_dir, out = Path(run_dir), Path(out)
    if top_k < 1:
        raise ExportError(f"--top-k must be >= 1, got {top_k}")
    _check_out(out, overwrite)
    config, model = load_run(run_dir)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as workdir:
            workdir = Path(workdir)
            staged = _write_export(config, model, run_dir, top_k, workdir)
            _check_out(out, overwrite)  # again: the export took a while
            _replace(out, staged, workdir / "previous")
    except OSError as error:
        raise ExportError(f"cannot write --out {out}: {error}") from error
    return out


def _write_export(config: TrainConfig, model: keras.Model, run_dir: Path, top_k: int, workdir: Path) -> Path:
    """The export of `model`, written and checked in `workdir`; returns its folder."""
    features = config.features
    names = input_names(config.model.modalities, features)
    text_encoder = text_encoder_layer(features, workdir) if EMBEDDINGS_INPUT in names else None
    audio_encoder = audio_encoder_layer(features, workdir) if AUDIO_EMBEDDINGS_INPUT in names else None
    server = GenreServer(
        model,
        features,
        config.genres,
        config.model.modalities,
        text_encoder=text_encoder,
        audio_encoder=audio_encoder,
        top_k=top_k,
    )
    staged = workdir / "export"
    tf.saved_model.save(server, str(staged), signatures=server.signatures())
    loaded = tf.saved_model.load(str(staged))
    _check_export(loaded, server)
    (staged / LABELS_FILE).write_text("".join(f"{genre}\n" for genre in config.genres), encoding="utf-8")
    (staged / FEATURES_FILE).write_text(json.dumps(features.to_dict(), indent=2) + "\n", encoding="utf-8")
    description = {"top_k": server.top_k, "signatures": signature_description(loaded)}
    (staged / SIGNATURE_FILE).write_text(json.dumps(description, indent=2) + "\n", encoding="utf-8")
    (staged / README_FILE).write_text(_readme(config, server, run_dir), encoding="utf-8")
    record_outputs(staged, EXPORT_KIND, [entry.name for entry in staged.iterdir()])
    return staged


def _folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m genre_fusion.export",
        description="Export a finished training run as a SavedModel: waveform + lyrics in, genres out.",
        allow_abbrev=False,
    )
    parser.add_argument("--run", required=True, type=Path, help="run directory of genre_fusion.train")
    parser.add_argument("--out", required=True, type=Path, help="folder to write the SavedModel to")
    parser.add_argument(
        "--top-k",
        type=int,
        default=DEFAULT_TOP_K,
        help=f"genres in the top_genres output (default {DEFAULT_TOP_K})",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an export already in --out (and nothing else)"
    )
    args = parser.parse_args(argv)
    try:
        out = export_run(args.run, args.out, args.top_k, args.overwrite)
    except (ExportError, RunError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    description = json.loads((out / SIGNATURE_FILE).read_text(encoding="utf-8"))
    serving = description["signatures"][SERVING_SIGNATURE]
    print(f"exported {args.run} -> {out} ({_folder_bytes(out) / 2**20:.1f} MiB)")
    for kind in ("inputs", "outputs"):
        listed = ", ".join(f"{name} {spec['dtype']} {spec['shape']}" for name, spec in serving[kind].items())
        print(f"  {SERVING_SIGNATURE} {kind}: {listed}")
    print(f"  classify files: python -m genre_fusion.predict --model {out} SONG.mp3 [--lyrics SONG.txt]")
    return 0
