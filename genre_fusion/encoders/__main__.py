import sys

from genre_fusion.encoders.cli import main

sys.exit(main())
