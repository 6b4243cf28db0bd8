"""tf.keras 2's `preprocessing.text`: `Tokenizer`, `text_to_word_sequence` (rnncore.text's)."""

from __future__ import annotations

from ..text import Tokenizer, text_to_word_sequence

__all__ = ["Tokenizer", "text_to_word_sequence"]


def __dir__():  # what tab completion and dir() show: the public names only
    return __all__
