"""`python -m genre_fusion.evaluate`: see `genre_fusion.evaluation.evaluate`."""

import sys

from genre_fusion.evaluation.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
