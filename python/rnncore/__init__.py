"""rnncore: fused multithreaded C++ SimpleRNN, LSTM and GRU kernels, forward and backward."""

from . import (
    callbacks,
    data,
    datasets,
    io,
    layers,
    losses,
    metrics,
    models,
    nn,
    optimizers,
    reference,
    text,
    utils,
)
from ._core import get_num_threads, set_num_threads
from ._version import __version__
from .layers import Input
from .models import Sequential
from .ops import (
    Cache,
    gru,
    gru_backward,
    gru_forward,
    lstm,
    lstm_backward,
    lstm_forward,
    rnn,
    rnn_backward,
    rnn_forward,
)
from .stream import Stream

__all__ = [
    "Cache",
    "Input",
    "Sequential",
    "Stream",
    "__version__",
    "get_num_threads",
    "gru",
    "gru_backward",
    "gru_forward",
    "lstm",
    "lstm_backward",
    "lstm_forward",
    "callbacks",
    "data",
    "datasets",
    "io",
    "layers",
    "losses",
    "metrics",
    "models",
    "nn",
    "optimizers",
    "reference",
    "text",
    "utils",
    "rnn",
    "rnn_backward",
    "rnn_forward",
    "set_num_threads",
]


def __dir__():  # the public names only: not the private modules or their imports
    return __all__
