"""Keras-style layers on NumPy arrays; the recurrent ones run on the fused kernels.

The modules: `base` (the layer protocol, Input, the registry), `recurrent` (SimpleRNN, LSTM,
GRU on the kernels; `masks` maps Keras masks onto them), `layer_norm_rnn`
(LayerNormSimpleRNN), `cells` (Keras's RNN(cell) with the built-in cells), `wrappers`
(Bidirectional, TimeDistributed), `core` (Dense, Dropout, Flatten, Embedding, Masking),
`merging` (Concatenate, Add, ... and the shape layers of the functional API),
`attention` (Attention, AdditiveAttention), `graph`
(Input and the recording of layer calls), `convolution` (Conv1D), `normalization`
(LayerNormalization, BatchNormalization).
"""

from __future__ import annotations

from .attention import AdditiveAttention, Attention
from .base import LAYER_CLASSES, InputLayer, Layer, deserialize, serialize
from .cells import RNN, GRUCell, LSTMCell, SimpleRNNCell, StackedRNNCells
from .convolution import Conv1D
from .core import Dense, Dropout, Embedding, Flatten, Lambda, Masking
from .graph import Input, KerasTensor
from .layer_norm_rnn import LayerNormSimpleRNN
from .merging import (
    Add,
    Average,
    Concatenate,
    Dot,
    GlobalAveragePooling1D,
    GlobalMaxPooling1D,
    MaxPooling1D,
    Multiply,
    Permute,
    RepeatVector,
    Reshape,
    Subtract,
)
from .normalization import BatchNormalization, LayerNormalization
from .recurrent import GRU, LSTM, SimpleRNN
from .wrappers import Bidirectional, TimeDistributed

__all__ = [
    "AdditiveAttention",
    "Attention",
    "Dot",
    "MaxPooling1D",
    "Permute",
    "Add",
    "Average",
    "Concatenate",
    "GlobalAveragePooling1D",
    "GlobalMaxPooling1D",
    "Multiply",
    "RepeatVector",
    "Reshape",
    "Subtract",
    "LAYER_CLASSES",
    "deserialize",
    "serialize",
    "GRU",
    "GRUCell",
    "LSTM",
    "LSTMCell",
    "RNN",
    "SimpleRNNCell",
    "StackedRNNCells",
    "BatchNormalization",
    "Bidirectional",
    "Conv1D",
    "Dense",
    "Dropout",
    "Embedding",
    "Flatten",
    "Input",
    "InputLayer",
    "KerasTensor",
    "Lambda",
    "Layer",
    "LayerNormSimpleRNN",
    "LayerNormalization",
    "Masking",
    "SimpleRNN",
    "TimeDistributed",
]


def __dir__():  # what tab completion and dir() show: the public names only
    return __all__
