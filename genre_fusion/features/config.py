"""Feature settings shared by preparation, training and serving.

One `FeatureConfig` travels from `data_prep build` into `meta.json`, from there into every run's
`config.json` and into the exported SavedModel, so the same numbers describe every stage.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

DEFAULT_SAMPLE_RATE = 22_050
DEFAULT_CLIP_SECONDS = 30.0
DEFAULT_N_FFT = 2048
DEFAULT_HOP_LENGTH = 512
DEFAULT_MEL_BINS = 128
DEFAULT_MAX_TOKENS = 200
DEFAULT_MEL_FMIN = 20.0  # Hz; keras.layers.MelSpectrogram's default lower edge
DEFAULT_TOP_DB = 80.0
LEARNED_TEXT_ENCODER = "learned"
LOG_MEL_ENCODER = "log-mel"
# What `genre_fusion.features.log_mel` (keras.layers.MelSpectrogram on TensorFlow) does whatever the settings:
# recorded in meta.json so that a user can compute the same features elsewhere (e.g. with librosa).
FIXED_LOG_MEL_DEFINITION = {
    "window": "hann (periodic), window length = n_fft",
    "centering": "centred frames: the waveform is padded by n_fft // 2 on both sides, mode reflect",
    "magnitude": "power (|STFT|^2)",
    "mel_scale": "HTK: mel = 1127 ln(1 + f / 700); triangular filters of peak 1, no area norm",
    "decibels": "10 log10(max(power, 1e-10)), ref 1.0, clipped at top_db below each song's peak",
}
POSITIVE_FIELDS = ("sample_rate", "clip_seconds", "max_tokens")
LOG_MEL_POSITIVE_FIELDS = ("n_fft", "hop_length", "mel_bins", "top_db")
# What a pretrained audio encoder's spec fills in (`FeatureConfig.with_audio_encoder`): all set or all 0.
AUDIO_EMBEDDING_FIELDS = (
    "audio_embedding_width",
    "audio_patches",
    "audio_patch_seconds",
    "audio_hop_seconds",
)


@dataclass(frozen=True)
class FeatureConfig:
    """How a song becomes model input.

    `text_encoder` is `learned` (the shards hold principal-word text only; the model learns its
    own embedding) or a TF Hub handle / local module path whose token vectors of width
    `embedding_width` (from output `text_output_key`) are stored in the shards.

    `audio_encoder` is `log-mel` (the shards hold a log-mel per song; the model learns its own
    convolutions) or a pretrained audio encoder (musicnn, a TF Hub module) run once per song by the
    build, whose per-patch embeddings of width `audio_embedding_width` (from output
    `audio_output_key`) are stored in the shards: `audio_patches` patches of `audio_patch_seconds`
    every `audio_hop_seconds` cover a clip (every clip is zero-padded to `clip_seconds`, so the
    number is the same for every song). With a pretrained encoder `sample_rate` is the encoder's
    and the shards store no log-mel at all: the audio branch reads only the embeddings, and half the
    bytes of a shard would be a log-mel that nothing reads; the log-mel fields are then unused and
    unchecked. The build fills the encoder's numbers in with `with_audio_encoder` once it has
    loaded the encoder; until then they are 0.

    The log-mel's mel filters span `mel_fmin` to `mel_fmax` Hz (None: the Nyquist frequency), and
    each song's dB values are clipped at `top_db` below its own peak; `genre_fusion.features.log_mel`
    documents the rest of its definition (window, centring, mel scale) in `log_mel_definition`.
    """

    sample_rate: int = DEFAULT_SAMPLE_RATE
    clip_seconds: float = DEFAULT_CLIP_SECONDS
    n_fft: int = DEFAULT_N_FFT
    hop_length: int = DEFAULT_HOP_LENGTH
    mel_bins: int = DEFAULT_MEL_BINS
    mel_fmin: float = DEFAULT_MEL_FMIN
    mel_fmax: float | None = None
    top_db: float = DEFAULT_TOP_DB
    max_tokens: int = DEFAULT_MAX_TOKENS
    text_encoder: str = LEARNED_TEXT_ENCODER
    text_output_key: str = "elmo"
    embedding_width: int = 0
    audio_encoder: str = LOG_MEL_ENCODER
    audio_output_key: str = ""
    audio_embedding_width: int = 0
    audio_patches: int = 0
    audio_patch_seconds: float = 0.0
    audio_hop_seconds: float = 0.0

    def __post_init__(self):
        """Raises ValueError for a value no stage can use, naming it as its option (`--clip-seconds`)."""
        self._check_positive(POSITIVE_FIELDS)
        if not self.audio_encoder:
            raise ValueError(f"--audio-encoder must name a pretrained encoder or be {LOG_MEL_ENCODER}")
        if self.uses_audio_embeddings:
            self._check_audio_embeddings()
        else:
            self._check_log_mel()

    def _check_positive(self, names: tuple[str, ...]) -> None:
        for name in names:
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"--{name.replace('_', '-')} must be a positive number, got {value}")

    def _check_log_mel(self) -> None:
        self._check_positive(LOG_MEL_POSITIVE_FIELDS)
        if self.hop_length > self.n_fft:
            raise ValueError(
                f"--hop-length {self.hop_length} is larger than --n-fft {self.n_fft}: "
                "the frames would skip samples; use a hop of at most the FFT size"
            )
        if not 0 <= self.mel_fmin < self.mel_fmax_hz <= self.sample_rate / 2:
            raise ValueError(
                f"--mel-fmin {self.mel_fmin} and --mel-fmax {self.mel_fmax_hz} must satisfy "
                f"0 <= fmin < fmax <= {self.sample_rate / 2:g} (half of --sample-rate {self.sample_rate})"
            )
        if self.mel_bins > self.n_fft // 2 + 1:
            raise ValueError(
                f"--mel-bins {self.mel_bins} is more than the {self.n_fft // 2 + 1} frequency bins of "
                f"--n-fft {self.n_fft}: use fewer mel bins or a larger FFT"
            )
        filled = {name: getattr(self, name) for name in AUDIO_EMBEDDING_FIELDS if getattr(self, name)}
        if filled:
            raise ValueError(
                f"{', '.join(filled)} describe a pretrained audio encoder's embeddings: with "
                f"--audio-encoder {LOG_MEL_ENCODER} they must be 0, got {filled}"
            )

    def _check_audio_embeddings(self) -> None:
        values = {name: getattr(self, name) for name in AUDIO_EMBEDDING_FIELDS}
        unfilled = not any(values.values())
        if not (unfilled or all(math.isfinite(value) and value > 0 for value in values.values())):
            raise ValueError(
                f"{', '.join(values)} of audio encoder {self.audio_encoder} must all be positive, "
                f"or all 0 until its spec fills them in (`with_audio_encoder`), got {values}"
            )

    def with_audio_encoder(self, spec) -> FeatureConfig:
        """This config for the embeddings of a pretrained audio encoder: `spec` is its
        `genre_fusion.encoders.audio.AudioEncoderSpec` (`name`, `sample_rate`, `output_key`,
        `width`, `patch_seconds`, `hop_seconds`, `patches(samples)`). The sample rate becomes the
        encoder's and `audio_patches` the patches of one zero-padded clip at that rate."""
        return replace(
            self,
            sample_rate=spec.sample_rate,
            audio_encoder=spec.name,
            audio_output_key=spec.output_key,
            audio_embedding_width=spec.width,
            audio_patches=spec.patches(_samples(spec.sample_rate, self.clip_seconds)),
            audio_patch_seconds=spec.patch_seconds,
            audio_hop_seconds=spec.hop_seconds,
        )

    @property
    def mel_fmax_hz(self) -> float:
        """The upper edge of the mel filters in Hz."""
        return float(self.sample_rate / 2 if self.mel_fmax is None else self.mel_fmax)

    @property
    def clip_samples(self) -> int:
        return _samples(self.sample_rate, self.clip_seconds)

    @property
    def frames(self) -> int:
        """Log-mel frames of one clip (centred STFT frames, as `LogMelSpectrogram` computes)."""
        return 1 + self.clip_samples // self.hop_length

    def log_mel_definition(self) -> dict:
        """Everything that decides the log-mel, in numbers and words (meta.json's ``log_mel``);
        ValueError with a pretrained audio encoder, whose shards hold no log-mel."""
        if self.uses_audio_embeddings:
            raise ValueError(f"shards of audio encoder {self.audio_encoder} hold no log-mel")
        return {
            "sample_rate": self.sample_rate,
            "n_fft": self.n_fft,
            "hop_length": self.hop_length,
            "mel_bins": self.mel_bins,
            "fmin_hz": self.mel_fmin,
            "fmax_hz": self.mel_fmax_hz,
            "top_db": self.top_db,
            "frames_per_clip": self.frames,
            **FIXED_LOG_MEL_DEFINITION,
        }

    @property
    def uses_embeddings(self) -> bool:
        return self.text_encoder != LEARNED_TEXT_ENCODER

    @property
    def uses_audio_embeddings(self) -> bool:
        """The shards hold a pretrained audio encoder's embeddings instead of a log-mel."""
        return self.audio_encoder != LOG_MEL_ENCODER

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> FeatureConfig:
        return cls(**values)


def _samples(sample_rate: int, seconds: float) -> int:
    return int(round(sample_rate * seconds))
