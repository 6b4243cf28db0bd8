"""Weights in and out: PyTorch modules, Keras weight files, ONNX graphs.

- `from_torch(module)` / `to_torch(module)`: torch.nn.RNN/LSTM/GRU <-> rnncore.nn (same names,
  same layout; torch is imported only here and only when called).
- `load_keras_weights(model, path)`: a Keras 3 `.weights.h5` or `.keras` file into a built
  rnncore Sequential of the same layers (h5py needed).
- `export_onnx(model, path)`: standard ONNX RNN/LSTM/GRU operators (onnx needed); see
  `rnncore._onnx_export` for what maps to what.
"""

from __future__ import annotations

import io
import pathlib
import zipfile

from . import layers as L
from . import nn

__all__ = ["export_onnx", "from_torch", "load_keras_weights", "to_torch"]


def _need(module, extra):
    try:
        return __import__(module)
    except ImportError:
        raise ImportError(f"{module} is needed for this; pip install 'rnncore[{extra}]'") from None


# ---- PyTorch --------------------------------------------------------------------------------

_TORCH_NAMES = {"RNN": nn.RNN, "LSTM": nn.LSTM, "GRU": nn.GRU}


def from_torch(module) -> nn.RNNBase:
    """An rnncore.nn module with the same configuration, weights, dtype and train/eval mode."""
    torch = _need("torch", "compare")
    cls = next((c for name, c in _TORCH_NAMES.items()
                if type(module) is getattr(torch.nn, name)), None)  # fmt: skip
    if cls is None:
        raise TypeError(f"module: expected torch.nn.RNN, LSTM or GRU, got {type(module).__name__}")
    if getattr(module, "proj_size", 0):
        raise NotImplementedError("module: LSTM with proj_size > 0 is not supported")
    kwargs = dict(num_layers=module.num_layers, bias=module.bias, batch_first=module.batch_first,
                  dropout=float(module.dropout), bidirectional=module.bidirectional,
                  dtype=str(module.weight_ih_l0.dtype).removeprefix("torch."))  # fmt: skip
    if cls is nn.RNN:
        kwargs["nonlinearity"] = module.nonlinearity
    ours = cls(module.input_size, module.hidden_size, **kwargs)
    ours.load_state_dict(module.state_dict())
    return ours.train(module.training)


def to_torch(module: nn.RNNBase):
    """The torch.nn module (same class, configuration, weights and mode) for an rnncore.nn one."""
    torch = _need("torch", "compare")
    if not isinstance(module, nn.RNNBase):
        raise TypeError(f"module: expected an rnncore.nn module, got {type(module).__name__}")
    kwargs = dict(num_layers=module.num_layers, bias=module.bias, batch_first=module.batch_first,
                  dropout=module.dropout, bidirectional=module.bidirectional,
                  dtype=getattr(torch, module.dtype.name))  # fmt: skip
    if isinstance(module, nn.RNN):
        kwargs["nonlinearity"] = module.nonlinearity
    out = getattr(torch.nn, type(module).__name__)(module.input_size, module.hidden_size, **kwargs)
    out.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in module.state_dict().items()})
    return out.train(module.training)


# ---- Keras ----------------------------------------------------------------------------------

# Keras 3 names each top-level layer's group after its class (snake case), numbering repeats.
_KERAS_GROUP = {
    "SimpleRNN": "simple_rnn",
    "LSTM": "lstm",
    "GRU": "gru",
    "Bidirectional": "bidirectional",
    "TimeDistributed": "time_distributed",
    "Embedding": "embedding",
    "Dense": "dense",
    "Conv1D": "conv1d",
    "LayerNormalization": "layer_normalization",
}
_WEIGHTLESS = (L.InputLayer, L.Dropout, L.Flatten, L.Masking)
_SUBGROUP_ORDER = ("cell", "layer", "forward_layer", "backward_layer")


def _group_arrays(group):
    """A Keras layer group's arrays in get_weights() order: its own vars by index, then the
    sub-layers' (the cell; the wrapped layer; forward before backward)."""
    out = []
    if "vars" in group:
        out += [group["vars"][k][()] for k in sorted(group["vars"], key=int)]
    for sub in _SUBGROUP_ORDER:
        if sub in group:
            out += _group_arrays(group[sub])
    return out


def _open_weights(path, h5py):
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: {str(path)!r} does not exist")
    if zipfile.is_zipfile(path):  # .keras: a zip holding model.weights.h5
        with zipfile.ZipFile(path) as zf:
            if "model.weights.h5" not in zf.namelist():
                raise ValueError(f"path: {str(path)!r} is a zip without model.weights.h5")
            return h5py.File(io.BytesIO(zf.read("model.weights.h5")), "r")
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise ValueError(f"path: {str(path)!r} is not a Keras weights file ({e})") from None


def load_keras_weights(model, path):
    """Set a built Sequential's weights from a Keras 3 `.weights.h5` or `.keras` file saved
    from a model with the same layers in the same order."""
    h5py = _need("h5py", "keras")
    if not model.layers or model.built_input_shape is None:
        raise ValueError("model: build it first (start it with rnncore.Input(shape))")
    before = model.get_weights()
    try:
        _assign_keras_groups(model, path, h5py)
    except BaseException:  # all or nothing: no layer keeps weights from a refused file
        model.set_weights(before)
        raise
    return model


def _assign_keras_groups(model, path, h5py):
    with _open_weights(path, h5py) as f:
        if "layers" not in f:
            raise ValueError(f"path: {str(path)!r} has no 'layers' group (not a Keras 3 file)")
        groups, used, loaded = f["layers"], {}, set()  # used: group base -> count so far
        for layer in model.layers:
            if isinstance(layer, _WEIGHTLESS):
                continue
            base = _KERAS_GROUP.get(type(layer).__name__)
            if base is None:
                raise ValueError(f"{layer.name}: {type(layer).__name__} has no Keras counterpart")
            n = used.get(base, 0)
            used[base] = n + 1
            key = base if n == 0 else f"{base}_{n}"
            if key not in groups:
                raise ValueError(f"{layer.name}: the file has no layer group {key!r} "
                                 f"(it holds {sorted(groups)})")  # fmt: skip
            layer.set_weights(_group_arrays(groups[key]))
            loaded.add(key)
        extra = sorted(set(groups) - loaded)
        if extra:
            raise ValueError(f"path: the file has layers the model lacks: {extra}")


# ---- ONNX -----------------------------------------------------------------------------------


def export_onnx(model, path, opset=17):
    """Write `model` as an ONNX graph with input "x" (batch axis dynamic) and output "y"."""
    _need("onnx", "compare")
    from ._onnx_export import export

    return export(model, path, opset)


def __dir__():  # what tab completion and dir() show: the public names only
    return __all__
