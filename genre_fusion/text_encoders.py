"""``python -m genre_fusion.text_encoders``: the command of earlier versions, now
``python -m genre_fusion.encoders`` (`genre_fusion.encoders.cli`)."""

import sys

from genre_fusion.encoders.cli import main

if __name__ == "__main__":
    sys.exit(main())
