"""Ctrl-C in a command line: one line that says what is kept and how to go on, not a traceback."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable

INTERRUPTED_EXIT_CODE = 130  # 128 + SIGINT, as shells report a command ended by Ctrl-C


def on_interrupt(message: str) -> Callable:
    """Decorate a command's `main(argv) -> int`: a KeyboardInterrupt prints ``interrupted:
    MESSAGE`` on stderr and returns `INTERRUPTED_EXIT_CODE`."""

    def decorate(main: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(main)
        def guarded(*args, **kwargs) -> int:
            try:
                return main(*args, **kwargs)
            except KeyboardInterrupt:
                print(f"\ninterrupted: {message}", file=sys.stderr)
                return INTERRUPTED_EXIT_CODE

        return guarded

    return decorate
