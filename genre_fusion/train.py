"""`python -m genre_fusion.train`: see `genre_fusion.training.cli`."""

import sys

from genre_fusion.training.cli import main

if __name__ == "__main__":
    sys.exit(main())
