"""`python -m genre_fusion.predict`: see `genre_fusion.serving.predict`."""

import sys

from genre_fusion.serving.predict import main

if __name__ == "__main__":
    sys.exit(main())
