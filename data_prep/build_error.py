"""The errors of `data_prep build`: one that cannot start or continue, and one that would be useless."""

from __future__ import annotations

from data_prep.song_loader import Rejection


class BuildError(ValueError):
    """A build that cannot start or continue; the message names the problem and the fix."""


class UselessBuild(BuildError):
    """A plan that would keep no song, or leave train or val empty; `rejected` holds every
    rejection made so far, for rejected.csv."""

    def __init__(self, problem: str, rejected: list[Rejection]):
        super().__init__(problem)
        self.rejected = rejected
