"""`python -m genre_fusion.explain`: see `genre_fusion.serving.explain_cli`."""

import sys

from genre_fusion.serving.explain_cli import main

if __name__ == "__main__":
    sys.exit(main())
