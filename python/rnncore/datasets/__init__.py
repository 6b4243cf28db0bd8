"""Datasets of the classic RNN tutorials: real ones read from the user's files (or downloaded
with checksum verification), plus labelled synthetic stand-ins that need no network."""

from . import imdb

__all__ = ["imdb"]


def __dir__():  # what tab completion and dir() show: the public names only
    return __all__
