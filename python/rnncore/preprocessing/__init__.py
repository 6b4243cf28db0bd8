"""tf.keras 2's preprocessing paths, so `from ...preprocessing.sequence import pad_sequences`
, `preprocessing.text.Tokenizer` and `preprocessing.timeseries_dataset_from_array` port by
changing the import (the code is in `rnncore.text` and `rnncore.utils`)."""

from __future__ import annotations

from ..utils import timeseries_dataset_from_array
from . import sequence, text

__all__ = ["sequence", "text", "timeseries_dataset_from_array"]


def __dir__():  # what tab completion and dir() show: the public names only
    return __all__
