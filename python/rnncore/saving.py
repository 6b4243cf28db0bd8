"""Model files: one safetensors file holding the weights (Keras layout), the architecture as
JSON and the compile settings. Reading checks every tensor against the architecture before
any weight changes.
"""

from __future__ import annotations

import json
import os

from . import _safetensors
from . import layers as layers_mod
from . import losses as losses_mod
from . import optimizers as optimizers_mod
from ._version import __version__

__all__ = ["FILE_FORMAT", "assign_tensors", "file_kind", "is_zip_or_hdf5", "load_model",
           "model_from_json", "read_model_file", "save_model"]  # fmt: skip

FILE_FORMAT = "rnncore.sequential/1"


def save_model(model, path) -> None:
    """Writes `model` to `path` atomically: weights (Keras layout), architecture, compile."""
    tensors = {}
    for layer in model.layers:
        for j, w in enumerate(layer.get_weights()):
            tensors[f"{layer.name}.{j}"] = w
    metadata = {
        "format": FILE_FORMAT,
        "rnncore_version": __version__,
        "architecture": model.to_json(),
    }
    if model.loss is not None and not isinstance(model.loss, losses_mod.FunctionLoss):
        # a loss function cannot be saved: the file then loads uncompiled
        metadata["compile"] = json.dumps(
            {
                "optimizer": optimizers_mod.serialize(model.optimizer),
                "loss": losses_mod.serialize(model.loss),
                # a function cannot be saved: the file keeps the named metrics
                "metrics": [m for m in model._metrics if isinstance(m, str)],
            }
        )
    _safetensors.write(path, tensors, metadata)


def assign_tensors(model, path, tensors) -> None:
    """Sets `model`'s weights from a file's tensors after checking every name and shape."""
    if model.built_input_shape is not None:
        model.build()
    if not all(layer.built for layer in model.layers):
        raise ValueError(
            f"{path}: the model's weights do not exist yet (no input shape known); "
            "call build(input_shape) or run it once before loading weights"
        )
    expected = {}
    for layer in model.layers:
        for j, w in enumerate(layer.get_weights()):
            expected[f"{layer.name}.{j}"] = w.shape
    if set(tensors) != set(expected):
        missing, extra = (
            sorted(set(expected) - set(tensors)),
            sorted(set(tensors) - set(expected)),
        )
        raise ValueError(
            f"{path}: weights do not fit the architecture (missing {missing[:5]}, "
            f"unexpected {extra[:5]})"
        )
    for name, shape in expected.items():
        if tensors[name].shape != shape:
            raise ValueError(
                f"{path}: weight {name!r} expected shape {shape}, got {tensors[name].shape}"
            )
        if tensors[name].dtype.kind != "f":  # ints, bools or bytes are not weights
            raise TypeError(
                f"{path}: weight {name!r} expected a float dtype, got {tensors[name].dtype}"
            )
    for layer in model.layers:
        n = len(layer.get_weights())
        layer.set_weights([tensors[f"{layer.name}.{j}"] for j in range(n)])


# The formats a path's extension picks, and their extensions.
_EXTENSIONS = {"rnncore": (".rnncore", ".safetensors"), "keras": (".keras",),
               "weights.h5": (".weights.h5",)}  # fmt: skip


def file_kind(path, kinds, method) -> str:
    """Which of `kinds` (keys of _EXTENSIONS) `path`'s extension names; a ValueError listing
    the extensions `method` writes otherwise (never a file in one format under another's name)."""
    name = os.fspath(path).lower()
    for kind in kinds:
        if name.endswith(_EXTENSIONS[kind]):
            return kind
    supported = ", ".join(ext for kind in kinds for ext in _EXTENSIONS[kind])
    raise ValueError(f"path: {method} writes {supported} files; got {os.fspath(path)!r}")


def is_zip_or_hdf5(path) -> bool:
    """Whether `path` starts like a Keras file (a .keras zip or an HDF5 .weights.h5)."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return False  # the reader that follows says what is wrong
    return head.startswith((b"PK\x03\x04", b"\x89HDF\r\n\x1a\n"))


_LOOKS_LIKE = (  # (leading bytes, what such a file is, what to do with it)
    (b"PK\x03\x04", "a zip archive, but not a Keras .keras file",
     "rnncore.models.load_model reads .keras files"),
    (b"\x89HDF\r\n\x1a\n", "an HDF5 file, such as Keras .weights.h5",
     "model.load_weights reads Keras weight files"),
    (b"\x80", "a Python pickle (a torch or joblib file?)", "rnncore never unpickles model files"),
    (b"\x08", "an ONNX model (protobuf)", "ONNX Runtime runs ONNX files"),
)  # fmt: skip


def _looks_like(path) -> str:
    """What a file that is not an rnncore model file seems to be, for the error message."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return ""
    for magic, kind, advice in _LOOKS_LIKE:
        if head.startswith(magic):
            return f"; it looks like {kind} ({advice})"
    return ""


def _is_keras_archive(path) -> bool:
    """A zip holding config.json: what Keras's model.save writes."""
    try:
        import zipfile

        with zipfile.ZipFile(path) as zf:
            return "config.json" in zf.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def read_model_file(path):
    """(tensors, metadata) of an rnncore model file; ValueError for any other file."""
    try:
        tensors, metadata = _safetensors.read(path)
    except _safetensors.SafetensorsError as e:
        raise _safetensors.SafetensorsError(
            f"{path}: not an rnncore model file{_looks_like(path)}. Detail: {e}"
        ) from None
    if metadata.get("format") != FILE_FORMAT:
        raise ValueError(
            f"{path}: not an rnncore model file (metadata format {metadata.get('format')!r}, "
            f"expected {FILE_FORMAT!r})"
        )
    return tensors, metadata


def model_from_json(text, where=""):
    """A new Sequential (fresh weights) from the JSON that `model.to_json()` or a model file
    holds; ValueError for anything else (`where` prefixes the message, such as a path)."""
    try:
        arch = json.loads(text)
        cfg = arch["config"]
        if arch.get("class_name") not in ("Sequential", "Model") or not isinstance(
            cfg.get("layers"), list
        ):
            raise ValueError("not a Sequential or functional Model")
    except (KeyError, TypeError, ValueError, RecursionError) as e:  # JSONDecodeError too
        raise ValueError(f"{where}invalid architecture ({e})") from None
    if arch["class_name"] == "Model":
        from .functional import Model  # it imports this module

        try:
            return Model.from_config(cfg, where)
        except RecursionError:
            raise ValueError(f"{where}layers nested too deep in the architecture") from None
    from .models import Sequential  # the model module imports this one

    model = Sequential(name=cfg.get("name", "sequential"), dtype=cfg.get("dtype"))
    if cfg.get("input_shape") is not None:
        model.add(layers_mod.Input(tuple(cfg["input_shape"]), batch_size=cfg.get("batch_size")))
    try:
        for spec in cfg["layers"]:
            model.add(layers_mod.deserialize(spec))
    except RecursionError:  # a crafted file nesting wrappers thousands deep
        raise ValueError(f"{where}layers nested too deep in the architecture") from None
    return model


def load_model(path):
    """A model saved by `model.save(path)`, or a Keras 3 `.keras` file of a Sequential model:
    architecture rebuilt, weights checked and loaded (compiled as saved, for rnncore files)."""
    if _is_keras_archive(path):
        from ._keras_files import load_keras_model

        return load_keras_model(path)
    tensors, metadata = read_model_file(path)
    model = model_from_json(metadata.get("architecture"), where=f"{path}: ")
    assign_tensors(model, path, tensors)
    if "compile" in metadata:  # compiled as when saved (fresh optimizer state)
        try:
            spec = json.loads(metadata["compile"])
            model.compile(
                optimizers_mod.deserialize(spec["optimizer"]),
                losses_mod.deserialize(spec["loss"]),
                spec["metrics"],
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path}: invalid compile settings in metadata ({e})") from None
    return model


def __dir__():  # what tab completion and dir() show: the public names only
    return __all__
