"""The layout of an exported model folder (`genre_fusion.serving.export`), which predict and any
other client read without Keras or TF Hub."""

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
