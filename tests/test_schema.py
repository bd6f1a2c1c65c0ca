import numpy as np
import tensorflow as tf

from genre_fusion.data.schema import SongRecord, parse_song, serialize_song
from genre_fusion.features.config import FeatureConfig


def test_round_trip_with_embeddings_padded_to_max_tokens():
    features = FeatureConfig(
        clip_seconds=1.0, mel_bins=8, max_tokens=6, text_encoder="elmo", embedding_width=4
    )
    rng = np.random.default_rng(0)
    log_mel = rng.normal(size=(8, features.frames)).astype(np.float16)
    vectors = rng.normal(size=(3, 4)).astype(np.float16)
    song = SongRecord("id1", "artist", log_mel, 0.9, "fire road night", (2, 0), vectors)

    parsed = parse_song(tf.constant(serialize_song(song)), features)

    np.testing.assert_array_equal(parsed["log_mel"].numpy(), log_mel)
    np.testing.assert_array_equal(parsed["embeddings"].numpy()[:3], vectors)
    assert not parsed["embeddings"].numpy()[3:].any()
    assert parsed["tokens"].numpy() == 3
    assert parsed["labels"].numpy().tolist() == [2, 0]
    assert parsed["words"].numpy() == b"fire road night"
    assert parsed["id"].numpy() == b"id1"
    assert parsed["audio_seconds"].numpy() == np.float32(0.9)


def test_learned_encoder_stores_no_embeddings():
    features = FeatureConfig(clip_seconds=1.0, mel_bins=8)
    song = SongRecord("id2", "a", np.zeros((8, features.frames), np.float16), 1.0, "", (1,))
    parsed = parse_song(tf.constant(serialize_song(song)), features)
    assert "embeddings" not in parsed
    assert parsed["tokens"].numpy() == 0
    assert parsed["words"].numpy() == b""
