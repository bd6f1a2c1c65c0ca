from pathlib import Path

from setuptools import find_packages, setup

REQUIREMENTS = [
    line.strip()
    for line in Path(__file__).with_name("requirements.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#")
]

setup(
    name="genre-fusion",
    version="0.1.0",
    description="Multi-modal (audio + lyrics) music genre classification on TensorFlow 2 / Keras 3",
    python_requires=">=3.11,<3.12",
    packages=find_packages(
        include=["genre_fusion", "genre_fusion.*", "data_prep", "data_prep.*", "tuning", "tuning.*"]
    ),
    package_data={"genre_fusion.features": ["resources/*.txt"], "data_prep.synth": ["resources/*.json"]},
    install_requires=REQUIREMENTS,
)
