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
from .layers.base import snake_case

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
    "RNN": "rnn",
    "BatchNormalization": "batch_normalization",
}
_WEIGHTLESS = (L.InputLayer, L.Dropout, L.Flatten, L.Masking)
_SUBGROUP_ORDER = ("cell", "layer", "forward_layer", "backward_layer")


_MAX_DEPTH = 8  # layers/<name>/forward_layer/cell/vars/<i> is six levels deep


def _child(group, name, where, h5py):
    """group[name], refused unless a hard link: a soft or external link (or an external
    storage or virtual dataset, see _checked_dataset) could make a weight any file's bytes."""
    link = group.get(name, getlink=True)
    if not isinstance(link, h5py.HardLink):
        raise ValueError(
            f"{where}/{name}: a {type(link).__name__}, which points outside the file's own "
            "data; refusing it"
        )
    return group[name]


def _checked_dataset(obj, where, h5py):
    """A weight dataset whose data lies in the file itself, holding floats."""
    if not isinstance(obj, h5py.Dataset):
        raise ValueError(f"{where}: expected a weight array, got a {type(obj).__name__}")
    if obj.is_virtual or obj.id.get_create_plist().get_external_count():
        raise ValueError(f"{where}: its data lies in other files (virtual or external storage)")
    if obj.dtype.kind != "f":
        raise TypeError(f"{where}: expected float weights, got dtype {obj.dtype}")
    return obj


def _group_datasets(group, where, h5py, depth=0, seen=None, cells=()):
    """A Keras layer group's weight datasets in get_weights() order: its own vars by index,
    then the sub-layers' (the cell, or a stack's `cells` in the order named by `cells`; the
    wrapped layer; forward before backward). Only hard links are followed, each group once,
    at most _MAX_DEPTH deep; nothing is read yet."""
    seen = set() if seen is None else seen
    address = h5py.h5o.get_info(group.id)
    address = getattr(address, "token", None) or getattr(address, "addr", None)
    if depth > _MAX_DEPTH or address in seen:
        raise ValueError(f"{where}: groups nested too deep, or a group that contains itself")
    seen.add(address)
    out = []
    if "vars" in group:
        weights = _child(group, "vars", where, h5py)
        names = list(weights)
        if not all(n.isdigit() for n in names):
            raise ValueError(f"{where}/vars: expected weights named 0, 1, ..., got {names[:5]}")
        for name in sorted(names, key=int):
            obj = _child(weights, name, f"{where}/vars", h5py)
            out.append(_checked_dataset(obj, f"{where}/vars/{name}", h5py))
    for sub in _SUBGROUP_ORDER:
        if sub in group:
            child = _child(group, sub, where, h5py)
            out += _group_datasets(child, f"{where}/{sub}", h5py, depth + 1, seen, cells)
    if "cells" in group:  # StackedRNNCells: HDF5 lists them by name, the stack has an order
        stack = _child(group, "cells", where, h5py)
        if sorted(stack) != sorted(cells):
            raise ValueError(f"{where}/cells: expected the cells {list(cells)}, got {list(stack)}")
        for name in cells:
            child = _child(stack, name, f"{where}/cells", h5py)
            out += _group_datasets(child, f"{where}/cells/{name}", h5py, depth + 1, seen)
    return out


def _read_layer_weights(layer, group, where, h5py):
    """The group's arrays for `layer`, after checking their count and shapes against the
    layer's own weights (so a crafted shape costs nothing before it is refused)."""
    cell = getattr(layer, "cell", None)
    cells = cell.keras_names() if isinstance(cell, L.StackedRNNCells) else ()
    datasets = _group_datasets(group, where, h5py, cells=cells)
    mine = layer.get_weights()
    if len(datasets) != len(mine):
        raise ValueError(f"{where}: expected {len(mine)} weight arrays for {layer.name}, "
                         f"got {len(datasets)}")  # fmt: skip
    for i, (d, w) in enumerate(zip(datasets, mine)):
        if d.shape != w.shape:
            raise ValueError(f"{where}: weight {i} expected shape {w.shape}, got {d.shape}")
    return [d[()] for d in datasets]


def read_zip_member(path, name, max_bytes, limit) -> bytes:
    """The bytes of member `name` of the zip at `path`, refused (ValueError naming `limit`)
    when it declares or inflates to more than max_bytes: a hostile archive costs nothing."""
    with zipfile.ZipFile(path) as zf:
        if name not in zf.namelist():
            raise ValueError(f"path: {str(path)!r} is a zip without {name}")
        too_big = ValueError(f"path: {str(path)!r}: {name} is larger than {limit}")
        if zf.getinfo(name).file_size > max_bytes:
            raise too_big
        with zf.open(name) as member:
            data = member.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise too_big
    return data


def _open_weights(path, h5py, max_bytes):
    """The HDF5 file at `path`, or inside a .keras zip (its member read only up to
    `max_bytes`: a zip may declare or hold far more than the model could need)."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: {str(path)!r} does not exist")
    if zipfile.is_zipfile(path):  # .keras: a zip holding model.weights.h5
        limit = f"this model's weights could need ({max_bytes:,} bytes)"
        data = read_zip_member(path, "model.weights.h5", max_bytes, limit)
        return h5py.File(io.BytesIO(data), "r")
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
    # Float64 weights, HDF5's headers and Keras's metadata fit well within this bound.
    max_bytes = 2 * sum(w.size * 8 for w in model.get_weights()) + (16 << 20)
    with _open_weights(path, h5py, max_bytes) as f:
        if "layers" not in f:
            raise ValueError(f"path: {str(path)!r} has no 'layers' group (not a Keras 3 file)")
        groups = _child(f, "layers", "", h5py)
        used, loaded = {}, set()  # used: group base -> count so far
        for layer in model.layers:
            if not layer.get_weights():  # inputs, merges, dropout: Keras's groups are empty
                continue
            base = _KERAS_GROUP.get(type(layer).__name__) or snake_case(type(layer).__name__)
            n = used.get(base, 0)
            used[base] = n + 1
            key = base if n == 0 else f"{base}_{n}"
            if key not in groups:
                raise ValueError(f"{layer.name}: the file has no layer group {key!r} "
                                 f"(it holds {sorted(groups)})")  # fmt: skip
            group = _child(groups, key, "layers", h5py)
            layer.set_weights(_read_layer_weights(layer, group, f"layers/{key}", h5py))
            loaded.add(key)
        extra = sorted(key for key in set(groups) - loaded  # Keras keeps empty groups for
                       if _group_datasets(_child(groups, key, "layers", h5py),  # Dropout & co
                                          f"layers/{key}", h5py))  # fmt: skip
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
