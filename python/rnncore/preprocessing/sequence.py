"""tf.keras 2's `preprocessing.sequence`: `pad_sequences` (rnncore.text's)."""

from __future__ import annotations

from ..text import pad_sequences

__all__ = ["pad_sequences"]


def __dir__():  # what tab completion and dir() show: the public names only
    return __all__
