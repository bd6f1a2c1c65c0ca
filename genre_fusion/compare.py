"""`python -m genre_fusion.compare`: see `genre_fusion.comparison.cli`."""

import sys

from genre_fusion.comparison.cli import main

if __name__ == "__main__":
    sys.exit(main())
