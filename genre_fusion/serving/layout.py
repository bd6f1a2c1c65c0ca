"""The interface of an exported model folder (`genre_fusion.serving.export`): its files and the
names of its signatures, inputs and outputs (documented in `genre_fusion.serving.server`), which
predict and any other client read without Keras or TF Hub."""

LABELS_FILE = "labels.txt"
FEATURES_FILE = "features.json"
SIGNATURE_FILE = "signature.json"
README_FILE = "README.txt"
EXPORT_KIND = "export"
# What an export held before exports recorded their entries.
LEGACY_EXPORT_NAMES = frozenset(
    ("saved_model.pb", "variables", "assets", "fingerprint.pb")
    + (LABELS_FILE, FEATURES_FILE, SIGNATURE_FILE, README_FILE)
)

# Signatures, and their inputs and outputs.
WAVEFORM = "waveform"
LYRICS = "lyrics"
PROBABILITIES = "probabilities"
TOP_GENRES = "top_genres"
TOP_PROBABILITIES = "top_probabilities"
SERVING_SIGNATURE = "serving_default"
FEATURES_SIGNATURE = "features"
CLASSIFY_SIGNATURE = "classify"
