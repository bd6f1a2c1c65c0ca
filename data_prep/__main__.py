"""`python -m data_prep synth|build`: make a demo collection, or turn a collection into shards."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from data_prep.labels import DEFAULT_TOP_GENRES
from data_prep.song_loader import DEFAULT_WORKERS
from genre_fusion.evaluation.protocols import DEFAULT_PROTOCOL, PROTOCOLS, describe_protocols
from genre_fusion.features.config import LOG_MEL_ENCODER, FeatureConfig
from genre_fusion.interruption import on_interrupt

if TYPE_CHECKING:
    from genre_fusion.encoders.audio import AudioEncoderSpec

# TensorFlow (via the builder) is imported inside `build` only: `synth` starts without it.


def _whole_number(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < minimum:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least {minimum}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1 (argparse names the option in its error)."""
    return _whole_number(text, 1)


def non_negative_int(text: str) -> int:
    """argparse type: a whole number >= 0."""
    return _whole_number(text, 0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m data_prep", description=__doc__, allow_abbrev=False)
    commands = parser.add_subparsers(dest="command", required=True)

    synth = commands.add_parser(
        "synth", help="write a demo collection in Music4All's layout", allow_abbrev=False
    )
    synth.add_argument("--out", required=True, help="folder to write (Music4All layout)")
    synth.add_argument("--songs", type=int, default=240)
    synth.add_argument("--genres", type=int, default=6)
    synth.add_argument("--seconds", type=float, default=10.0)
    synth.add_argument("--seed", type=non_negative_int, default=0)
    synth.add_argument("--faults", action="store_true", help="add a documented handful of broken songs")
    synth.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a demo collection of other settings (only the files synth wrote are removed)",
    )

    build = commands.add_parser(
        "build", help="prepare feature shards from Music4All or a manifest", allow_abbrev=False
    )
    source = build.add_mutually_exclusive_group(required=True)
    source.add_argument("--music4all", help="Music4All folder (id_*.csv, audios/, lyrics/)")
    source.add_argument("--manifest", help="CSV with columns id,audio,lyrics,genres,artist")
    build.add_argument("--out", required=True, help="shards directory to write (or resume)")
    build.add_argument(
        "--protocol",
        default=DEFAULT_PROTOCOL,
        help=f"a published protocol's settings ({', '.join(PROTOCOLS)}); the options below override "
        "them; `--protocol list` describes each",
    )
    # The options a protocol sets default to None: given or not is what tells an override.
    build.add_argument("--label-mode", choices=sorted(DEFAULT_TOP_GENRES), help="single (default) or multi")
    build.add_argument("--top-genres", type=positive_int, help="genres kept (default 10 single, 50 multi)")
    build.add_argument(
        "--genre-map",
        help="CSV with columns fine,coarse mapping the collection's genres before the vocabulary is made "
        "(a path, or a shipped map: coarse44.csv, musiclime9.csv); unlisted genres are dropped",
    )
    build.add_argument(
        "--text-encoder",
        default="learned",
        help="learned (no embeddings stored), elmo, or a TF Hub handle / local module folder",
    )
    build.add_argument("--text-output-key", default="elmo", help="output of the hub module to store")
    build.add_argument(
        "--audio-encoder",
        default=LOG_MEL_ENCODER,
        help=f"{LOG_MEL_ENCODER} (log-mels stored, the model learns its own convolutions), musicnn-msd, "
        "musicnn-mtt, yamnet, vggish, trill, or a TF Hub handle / local module folder, whose embeddings "
        "are stored instead (songs decoded at its sample rate, encoded once by the build)",
    )
    build.add_argument(
        "--audio-output-key", default="", help="output of the audio encoder to store (default: the encoder's)"
    )
    # Feature numbers are checked by FeatureConfig itself, which names the option.
    build.add_argument("--max-tokens", type=int, default=FeatureConfig.max_tokens)
    # None: not given, so that a pretrained audio encoder's own rate is not taken for a conflict.
    build.add_argument(
        "--sample-rate",
        type=int,
        help=f"Hz to decode at (default {FeatureConfig.sample_rate}; a pretrained audio encoder's own rate)",
    )
    build.add_argument("--clip-seconds", type=float, default=FeatureConfig.clip_seconds)
    build.add_argument("--n-fft", type=int, default=FeatureConfig.n_fft)
    build.add_argument("--hop-length", type=int, default=FeatureConfig.hop_length)
    build.add_argument("--mel-bins", type=int, default=FeatureConfig.mel_bins)
    build.add_argument(
        "--mel-fmin", type=float, default=FeatureConfig.mel_fmin, help="lowest mel filter edge, Hz"
    )
    build.add_argument("--mel-fmax", type=float, help="highest mel filter edge, Hz (default: rate / 2)")
    build.add_argument(
        "--top-db", type=float, default=FeatureConfig.top_db, help="dB range kept below each song's peak"
    )
    build.add_argument("--split", help="train,val,test fractions (default 0.8,0.1,0.1)")
    build.add_argument("--seed", type=non_negative_int, default=0)
    build.add_argument("--languages", help="comma-separated id_lang.csv codes to keep, e.g. en (default all)")
    build.add_argument(
        "--require-lyrics",
        action=argparse.BooleanOptionalAction,
        help="reject songs without lyrics (--no-require-lyrics keeps them where a protocol rejects them)",
    )
    build.add_argument("--limit", type=positive_int, help="use only the first M songs (a quick trial)")
    build.add_argument("--shard-size", type=positive_int, default=256, help="songs per TFRecord shard")
    build.add_argument(
        "--workers", type=positive_int, default=DEFAULT_WORKERS, help="decoding threads (default: cores)"
    )
    build.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _os_error(error: OSError) -> str:
    """An OS error as one line naming the file."""
    return f"{error.filename}: {error.strerror}" if error.filename else str(error)


def _synth(args) -> int:
    from data_prep.synth import write_demo_collection

    try:
        summary = write_demo_collection(
            args.out,
            songs=args.songs,
            genres=args.genres,
            seconds=args.seconds,
            seed=args.seed,
            faults=args.faults,
            overwrite=args.overwrite,
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"error: cannot write --out {args.out}: {_os_error(error)}", file=sys.stderr)
        return 2
    what = f"{summary.songs} songs of {len(summary.genres)} genres ({', '.join(summary.genres)})"
    broken = f", {len(summary.faults)} of them broken on purpose (faults.csv)" if summary.faults else ""
    if summary.already_there:
        print(f"already there: {summary.out_dir} holds the demo collection of these settings, {what}{broken}")
    else:
        print(f"wrote {what} to {summary.out_dir}{broken}")
    return 0


def _sample_rate_conflict(sample_rate: int, spec: AudioEncoderSpec) -> str:
    """Why a given `--sample-rate` other than the pretrained audio encoder's is refused."""
    return (
        f"--sample-rate {sample_rate}: --audio-encoder {spec.name} takes {spec.sample_rate} Hz audio, "
        f"and the build decodes at its rate: leave --sample-rate out, or use --audio-encoder "
        f"{LOG_MEL_ENCODER} to decode at {sample_rate} Hz"
    )


def _audio(features: FeatureConfig) -> str:
    """The shards' audio features in a few words, for the summary line."""
    if not features.uses_audio_embeddings:
        return f"{LOG_MEL_ENCODER} {features.mel_bins} bins at {features.sample_rate} Hz"
    return (
        f"{features.audio_encoder} {features.audio_output_key} ({features.audio_embedding_width} wide, "
        f"{features.audio_patch_seconds:g} s patches every {features.audio_hop_seconds:g} s, "
        f"{features.sample_rate} Hz)"
    )


def _asks_for_protocol_list(argv: list[str]) -> bool:
    """`build --protocol list` (any other option aside), which needs no source and no --out."""
    pairs = zip(argv, argv[1:], strict=False)
    return argv[:1] == ["build"] and ("--protocol=list" in argv or ("--protocol", "list") in pairs)


def _protocol_settings(args) -> dict:
    """The build settings of `--protocol` with the options given on top, plus `protocol` and
    `protocol_overrides` (the options given whose values differ from the protocol's), as
    BuildConfig fields. Raises `UnknownProtocol` and `SplitError`."""
    from data_prep.split import parse_fractions
    from genre_fusion.evaluation.protocols import get_protocol

    protocol = get_protocol(args.protocol)
    given = {
        "label_mode": args.label_mode,
        "top_genres": args.top_genres,
        "languages": None if args.languages is None else tuple(filter(None, args.languages.split(","))),
        "require_lyrics": args.require_lyrics,
        "split": None if args.split is None else parse_fractions(args.split),
        "genre_map": args.genre_map,
    }
    settings = protocol.build_settings()
    given = {key: value for key, value in given.items() if value is not None}
    overrides = tuple(key for key, value in given.items() if value != settings[key])
    return settings | given | {"protocol": protocol.name, "protocol_overrides": overrides}


def _build(args) -> int:
    try:
        features = FeatureConfig(
            sample_rate=FeatureConfig.sample_rate if args.sample_rate is None else args.sample_rate,
            clip_seconds=args.clip_seconds,
            n_fft=args.n_fft,
            hop_length=args.hop_length,
            mel_bins=args.mel_bins,
            mel_fmin=args.mel_fmin,
            mel_fmax=args.mel_fmax,
            top_db=args.top_db,
            max_tokens=args.max_tokens,
            text_encoder=args.text_encoder,
            text_output_key=args.text_output_key,
            audio_encoder=args.audio_encoder,
            audio_output_key=args.audio_output_key,
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    from data_prep.build_config import BuildConfig
    from data_prep.build_error import BuildError
    from data_prep.builder import build_shards
    from data_prep.featurizer import load_audio_encoder
    from data_prep.genre_map import read_genre_map
    from data_prep.sources import SourceError
    from data_prep.split import SplitError
    from genre_fusion.encoders.handles import ModuleUnavailable
    from genre_fusion.evaluation.protocols import UnknownProtocol

    try:
        config = BuildConfig(
            out=args.out,
            music4all=args.music4all,
            manifest=args.manifest,
            features=features,
            seed=args.seed,
            limit=args.limit,
            shard_size=args.shard_size,
            **_protocol_settings(args),
        )
        if config.genre_map is not None:
            read_genre_map(config.genre_map)  # a bad map ends the build before any folder is made
        # Loaded before the build: a bad name, module or output key ends it before any folder is made.
        audio_encoder = load_audio_encoder(features)
        if audio_encoder is not None and args.sample_rate not in (None, audio_encoder.spec.sample_rate):
            raise BuildError(_sample_rate_conflict(args.sample_rate, audio_encoder.spec))
        summary = build_shards(
            config, workers=args.workers, progress=not args.quiet, audio_encoder=audio_encoder
        )
    except (SourceError, BuildError, SplitError, ModuleUnavailable, UnknownProtocol) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"error: {_os_error(error)}", file=sys.stderr)
        return 2
    meta = summary.meta
    sizes = ", ".join(f"{split} {count}" for split, count in meta.split_sizes.items())
    rejected = ", ".join(f"{reason} {count}" for reason, count in meta.rejected.items()) or "none"
    resumed = [f"{summary.resumed_shards} shards kept from an earlier run"] if summary.resumed_shards else []
    if summary.rebuilt_shards:
        why = ", ".join(f"{count} {reason}" for reason, count in summary.rebuilt_shards.items())
        resumed.append(f"{sum(summary.rebuilt_shards.values())} rebuilt ({why})")
    protocol = f"protocol {meta.protocol}" + (
        f" (overridden: {', '.join('--' + key.replace('_', '-') for key in meta.protocol_overrides)})"
        if meta.protocol_overrides
        else ""
    )
    print(
        f"shards in {args.out}: {sizes} songs; {len(meta.genres)} genres; {protocol}; "
        f"audio: {_audio(meta.features)}; "
        f"rejected: {rejected} (rejected.csv); {summary.seconds:.1f} s"
        + (f" ({'; '.join(resumed)})" if resumed else "")
    )
    if meta.lyrics_missing:
        kept = sum(meta.split_sizes.values())
        print(
            f"warning: {meta.lyrics_missing} of {kept} kept songs have no lyrics file "
            f"(missing lyrics: {meta.lyrics_missing}): check the lyrics paths; they are kept as songs "
            "without lyrics (--require-lyrics rejects them)",
            file=sys.stderr,
        )
    return 0


@on_interrupt("finished shards (and synth's finished files) are kept; rerun the same command to resume")
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if _asks_for_protocol_list(argv):
        print(describe_protocols())
        return 0
    args = _parser().parse_args(argv)
    return _synth(args) if args.command == "synth" else _build(args)


if __name__ == "__main__":
    sys.exit(main())
