"""The TensorFlow work of a build, in batches on the writing thread: the audio features (log-mel,
or a pretrained audio encoder's embeddings), principal words and text embeddings of decoded songs."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import tensorflow as tf

from data_prep.build_error import BuildError
from data_prep.song_loader import LoadedSong
from genre_fusion.data.schema import SongRecord
from genre_fusion.encoders import audio
from genre_fusion.encoders.handles import AUDIO_MODULE, HubModuleUnavailable
from genre_fusion.features.config import FeatureConfig
from genre_fusion.features.log_mel import LogMelSpectrogram
from genre_fusion.features.principal_words import principal_words

BATCH_SIZE = 16


class SongFeaturizer:
    """Batches of decoded songs -> `SongRecord`s: audio features, principal words, text embeddings.

    A call takes at most BATCH_SIZE `LoadedSong`s (waveforms at `features.sample_rate`) and returns
    one record each, in order: `log_mel` float16 [mel_bins, frames], or with an `audio_encoder`
    (whose spec `features` was filled in with) `audio_embeddings` float16 [patches, width] instead,
    the patches that cover the song's real audio (1 to `features.audio_patches`); `embeddings`
    float16 [tokens, embedding_width] (tokens <= max_tokens) or None without a text encoder.
    """

    def __init__(
        self, features: FeatureConfig, text_encoder=None, audio_encoder: audio.AudioEncoder | None = None
    ):
        self.features = features
        self.text_encoder = text_encoder
        self.audio_encoder = audio_encoder
        if audio_encoder is None:
            log_mel = LogMelSpectrogram.from_features(features)
            # One fixed batch shape: every new shape costs a slow first call of the STFT kernels.
            self._log_mel = tf.function(
                log_mel, input_signature=[tf.TensorSpec([BATCH_SIZE, features.clip_samples], tf.float32)]
            )
            self._waveforms = np.zeros((BATCH_SIZE, features.clip_samples), dtype=np.float32)

    def __call__(self, songs: list[LoadedSong]) -> list[SongRecord]:
        if self.audio_encoder is None:
            log_mels, embedded = self._log_mels(songs), [None] * len(songs)
        else:
            log_mels, embedded = [None] * len(songs), self._audio_embeddings(songs)
        words = principal_words([song.lyrics for song in songs], self.features.max_tokens)
        embeddings = self.text_encoder.embed(words) if self.text_encoder else [None] * len(songs)
        return [
            SongRecord(
                id=song.task.id,
                artist=song.task.artist,
                log_mel=log_mel,
                audio_seconds=song.seconds,
                words=text,
                labels=song.task.labels,
                embeddings=None if vectors is None else vectors.astype(np.float16),
                audio_embeddings=audio_vectors,
            )
            for song, log_mel, audio_vectors, text, vectors in zip(
                songs, log_mels, embedded, words, embeddings, strict=True
            )
        ]

    def _log_mels(self, songs: list[LoadedSong]) -> np.ndarray:
        """float16 [songs, mel_bins, frames]."""
        self._waveforms[: len(songs)] = [song.waveform for song in songs]
        return self._log_mel(self._waveforms).numpy()[: len(songs)].astype(np.float16)

    def _audio_embeddings(self, songs: list[LoadedSong]) -> list[np.ndarray]:
        """One float16 [valid patches, width] per song: each song through the encoder once (no
        padding rows: the encoder counts what it embeds), the patches of its zero padding dropped."""
        vectors = self.audio_encoder.embed(np.stack([song.waveform for song in songs])).astype(np.float16)
        spec, rate = self.audio_encoder.spec, self.features.sample_rate
        # At least one patch: a song shorter than one patch is still heard through its padded patch.
        valid = [
            int(np.clip(spec.patches(round(song.seconds * rate)), 1, self.features.audio_patches))
            for song in songs
        ]
        return [song_vectors[:count] for song_vectors, count in zip(vectors, valid, strict=True)]


def load_text_encoder(features: FeatureConfig):
    """None for `learned`; otherwise the hub encoder, and `features` with its output width."""
    if not features.uses_embeddings:
        return None, features
    from genre_fusion.encoders.text import HubTextEncoder

    encoder = HubTextEncoder(features.text_encoder, output_key=features.text_output_key)
    return encoder, replace(features, embedding_width=encoder.width)


def load_audio_encoder(features: FeatureConfig) -> audio.AudioEncoder | None:
    """None for `log-mel`; otherwise the pretrained encoder `features.audio_encoder` (output
    `features.audio_output_key`, "" for its default). Raises `BuildError` naming
    ``--audio-encoder`` for an unknown name or output and a module without a waveform signature,
    and `ModuleUnavailable` (worded for audio modules) for a module or musicnn weights not to be had."""
    if not features.uses_audio_embeddings:
        return None
    try:
        return audio.load_audio_encoder(features.audio_encoder, features.audio_output_key)
    except HubModuleUnavailable as error:
        raise error.for_kind(AUDIO_MODULE) from None
    except ValueError as error:  # what the encoder's code refuses: name, output key, signature
        raise BuildError(f"--audio-encoder {features.audio_encoder}: {error}") from None
