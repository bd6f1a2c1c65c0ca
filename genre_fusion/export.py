"""`python -m genre_fusion.export`: see `genre_fusion.serving.export`."""

import sys

from genre_fusion.serving.export import main

if __name__ == "__main__":
    sys.exit(main())
