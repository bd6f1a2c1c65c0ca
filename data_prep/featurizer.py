"""The TensorFlow work of a build, in batches on the writing thread: log-mel, principal words and
text embeddings of decoded songs."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import tensorflow as tf

from data_prep.song_loader import LoadedSong
from genre_fusion.data.schema import SongRecord
from genre_fusion.features.config import FeatureConfig
from genre_fusion.features.log_mel import LogMelSpectrogram
from genre_fusion.features.principal_words import principal_words

BATCH_SIZE = 16


class SongFeaturizer:
    """Batches of decoded songs -> `SongRecord`s: log-mel, principal words, text embeddings.

    A call takes at most BATCH_SIZE `LoadedSong`s and returns one record each, in order: `log_mel`
    float16 [mel_bins, frames], `embeddings` float16 [tokens, embedding_width] (tokens <=
    max_tokens) or None without a text encoder.
    """

    def __init__(self, features: FeatureConfig, text_encoder=None):
        self.features = features
        self.text_encoder = text_encoder
        log_mel = LogMelSpectrogram.from_features(features)
        # One fixed batch shape: every new shape costs a slow first call of the STFT kernels.
        self._log_mel = tf.function(
            log_mel, input_signature=[tf.TensorSpec([BATCH_SIZE, features.clip_samples], tf.float32)]
        )
        self._waveforms = np.zeros((BATCH_SIZE, features.clip_samples), dtype=np.float32)

    def __call__(self, songs: list[LoadedSong]) -> list[SongRecord]:
        self._waveforms[: len(songs)] = [song.waveform for song in songs]
        log_mels = self._log_mel(self._waveforms).numpy()[: len(songs)].astype(np.float16)
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
            )
            for song, log_mel, text, vectors in zip(songs, log_mels, words, embeddings, strict=True)
        ]


def load_text_encoder(features: FeatureConfig):
    """None for `learned`; otherwise the hub encoder, and `features` with its output width."""
    if not features.uses_embeddings:
        return None, features
    from genre_fusion.encoders.text import HubTextEncoder

    encoder = HubTextEncoder(features.text_encoder, output_key=features.text_output_key)
    return encoder, replace(features, embedding_width=encoder.width)
