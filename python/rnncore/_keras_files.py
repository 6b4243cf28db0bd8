"""Keras 3's own files, both ways: `.keras` archives and `.weights.h5` weight files.

A `.keras` file is a zip of `config.json` (the architecture in Keras's serialization),
`metadata.json` and `model.weights.h5`; the weights file groups each top-level layer under
`layers/<class in snake case>[_n]`, a recurrent layer's weights under `cell/vars/<i>`, a
wrapper's under `layer/`, `forward_layer/`, `backward_layer/`. Writing mirrors what
`keras.Model.save` writes, so Keras's `load_model` opens it; reading goes through the same
size-checked, link-refusing reader as `io.load_keras_weights`. h5py is imported only here.
"""

from __future__ import annotations

import datetime
import inspect
import io as _io
import json
import os
import pathlib
import re
import zipfile

from . import io
from . import layers as layers_mod
from ._files import atomic_write
from ._version import __version__

__all__ = ["load_keras_model", "save_keras_model", "save_keras_weights"]

_RECURRENT = ("SimpleRNN", "LSTM", "GRU")
_WRAPPERS = ("Bidirectional", "TimeDistributed")
# Keras config keys rnncore's layers lack that are harmless at any value (unroll only trades
# memory for speed; autocast and build_config are bookkeeping).
_KERAS_ONLY = {"unroll", "autocast", "build_config"}
# Keras options rnncore's layers lack, at the values that mean what rnncore does: dropped
# at these values, refused by name at any other.
_KERAS_DEFAULTS = {"data_format": "channels_last", "groups": 1, "rms_scaling": False,
                   "lora_rank": None, "lora_alpha": None, "quantization_config": None,
                   "sparse": False, "ragged": False, "optional": False, "time_major": False,
                   "beta_initializer": "zeros", "gamma_initializer": "ones",
                   "beta_regularizer": None, "gamma_regularizer": None,
                   "beta_constraint": None, "gamma_constraint": None,
                   "embeddings_initializer": "uniform", "implementation": 2,
                   "moving_mean_initializer": "zeros", "moving_variance_initializer": "ones",
                   "synchronized": False, "renorm": False}  # fmt: skip
_MAX_CONFIG_BYTES = 16 << 20  # config.json: an architecture, never this large


def _snake(name):
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


# ---- writing --------------------------------------------------------------------------------


def _to_keras_spec(spec):
    """One layer's rnncore spec as Keras serializes it (wrapped layers too)."""
    cfg = {k: v for k, v in spec["config"].items() if k != "input_shape"}
    for key in ("layer", "backward_layer", "cell"):
        if isinstance(cfg.get(key), dict):
            cfg[key] = _to_keras_spec(cfg[key])
    if isinstance(cfg.get("cells"), list):
        cfg["cells"] = [_to_keras_spec(c) for c in cfg["cells"]]
    return {"module": "keras.layers", "class_name": spec["class_name"], "config": cfg,
            "registered_name": None}  # fmt: skip


def keras_architecture(model) -> dict:
    """`model`'s architecture as Keras's config.json holds it."""
    if type(model).__name__ != "Sequential":
        raise ValueError(f"{model.name}: Keras files of functional models are not written yet; "
                         "save it as '.rnncore'")  # fmt: skip
    if model.built_input_shape is None:
        raise ValueError("model: build it first (start it with rnncore.Input(shape))")
    for layer in model.layers:
        name = type(layer).__name__
        if name not in io._KERAS_GROUP and not isinstance(layer, io._WEIGHTLESS):
            raise ValueError(f"{layer.name}: {name} has no Keras counterpart; save it as "
                             "'.rnncore' instead")  # fmt: skip
    dtype = model.dtype.name if model.dtype is not None else "float32"
    shape = [model.batch_size, *model.built_input_shape]
    first = {"module": "keras.layers", "class_name": "InputLayer", "registered_name": None,
             "config": {"batch_shape": shape, "dtype": dtype, "sparse": False,
                        "name": "input_layer"}}  # fmt: skip
    layers = [_to_keras_spec(layers_mod.serialize(layer)) for layer in model.layers
              if not isinstance(layer, layers_mod.InputLayer)]  # fmt: skip
    return {"module": "keras", "class_name": "Sequential", "registered_name": None,
            "config": {"name": model.name, "trainable": True, "dtype": dtype,
                       "layers": [first, *layers]},
            "build_config": {"input_shape": shape}, "compile_config": None}  # fmt: skip


def _write_vars(group, name, weights):
    """weights as group/vars/0, 1, ... (Keras names the vars group after its owner)."""
    own = group.create_group("vars")
    own.attrs["name"] = name
    for i, w in enumerate(weights):
        own.create_dataset(str(i), data=w)


def _write_layer(group, layer):
    """`layer`'s weights into its Keras group: vars, or a cell's, or the wrapped layers'."""
    kind = type(layer).__name__
    own = group.create_group("vars")
    own.attrs["name"] = layer.name
    if kind in _RECURRENT:
        _write_vars(group.create_group("cell"), _snake(kind) + "_cell", layer.get_weights())
    elif kind == "RNN" and isinstance(layer.cell, layers_mod.StackedRNNCells):
        cell = group.create_group("cell")
        cell.create_group("vars")
        cells = cell.create_group("cells")
        for name, sub in zip(layer.cell.keras_names(), layer.sublayers()):
            _write_vars(cells.create_group(name), name, sub.get_weights())
    elif kind == "RNN":
        _write_vars(group.create_group("cell"), layer.cell.keras_name(), layer.get_weights())
    elif kind == "Bidirectional":
        forward, backward = layer.sublayers()
        _write_layer(group.create_group("forward_layer"), forward)
        _write_layer(group.create_group("backward_layer"), backward)
    elif kind == "TimeDistributed":
        _write_layer(group.create_group("layer"), layer.sublayers()[0])
    else:
        for i, w in enumerate(layer.get_weights()):
            own.create_dataset(str(i), data=w)


def _weights_h5_bytes(model) -> bytes:
    """model.weights.h5 as Keras writes it, in memory."""
    h5py = io._need("h5py", "keras")
    buffer = _io.BytesIO()
    with h5py.File(buffer, "w") as f:
        f.create_group("vars").attrs["name"] = model.name
        groups = f.create_group("layers")
        used: dict = {}
        for layer in model.layers:
            if isinstance(layer, layers_mod.InputLayer):
                continue
            base = io._KERAS_GROUP.get(type(layer).__name__) or _snake(type(layer).__name__)
            n = used.get(base, 0)
            used[base] = n + 1
            _write_layer(groups.create_group(base if n == 0 else f"{base}_{n}"), layer)
    return buffer.getvalue()


def save_keras_weights(model, path) -> None:
    """`model`'s weights as Keras's `save_weights("x.weights.h5")` writes them (atomically)."""
    keras_architecture(model)  # refuses layers Keras lacks
    data = _weights_h5_bytes(model)
    with atomic_write(path) as f:
        f.write(data)


def save_keras_model(model, path) -> None:
    """`model` as a Keras 3 `.keras` archive that `keras.models.load_model` opens (atomically).
    Compile settings and optimizer state are not written: Keras's differ from rnncore's."""
    config = json.dumps(keras_architecture(model))
    saved = datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")
    metadata = json.dumps(
        {"keras_version": "3.0.0", "rnncore_version": __version__, "date_saved": saved}
    )
    weights = _weights_h5_bytes(model)
    with atomic_write(path) as f, zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("metadata.json", metadata)
        zf.writestr("config.json", config)
        zf.writestr("model.weights.h5", weights)


# ---- reading --------------------------------------------------------------------------------


def _plain(value):
    """A Keras-serialized object (dtype policy, initializer, regularizer) as rnncore's config
    holds it: a dtype name, an initializer name, or {class_name, config}."""
    if not isinstance(value, dict) or "class_name" not in value:
        return value
    cls, cfg = value["class_name"], value.get("config") or {}
    if cls in ("DTypePolicy", "FloatDTypePolicy"):
        return cfg.get("name")
    if value.get("module") == "keras.initializers":
        return _snake(cls)  # rnncore's initializer names (the weights come from the file)
    return {"class_name": cls, "config": cfg}


def _accepted(cls) -> set:
    """The config keys `cls`'s constructor takes (its own, its bases', weight options)."""
    keys = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is not None and klass is not object:
            keys |= {p.name for p in inspect.signature(init).parameters.values()
                     if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}  # fmt: skip
    roles = getattr(cls, "weight_roles", {})
    keys |= {f"{role}_{kind}" for role in roles for kind in ("regularizer", "constraint")}
    return keys - {"self"}


_CELLS = {"SimpleRNNCell": layers_mod.SimpleRNNCell, "LSTMCell": layers_mod.LSTMCell,
          "GRUCell": layers_mod.GRUCell}  # fmt: skip


def _from_keras_spec(spec, where):
    """One Keras layer (or cell) spec as rnncore's (wrapped layers and cells too); ValueError
    for a malformed spec or an option rnncore's layer lacks (named, with its value)."""
    if not isinstance(spec, dict) or not isinstance(spec.get("config"), dict):
        raise ValueError(f"{where}: expected a layer {{class_name, config}}, got {spec!r:.200}")
    kind = spec.get("class_name")
    if kind == "StackedRNNCells":
        cells = spec["config"].get("cells")
        if not isinstance(cells, list):
            raise ValueError(f"{where}: StackedRNNCells without a cell list")
        return {"class_name": kind, "config": {"cells": [_from_keras_spec(c, where)
                                                         for c in cells]}}  # fmt: skip
    cell = _CELLS.get(str(kind))
    cls = cell.layer_class if cell else layers_mod.LAYER_CLASSES.get(str(kind))
    if cls is None:
        raise ValueError(f"{where}: rnncore has no {kind!r} layer")
    accepted = _accepted(cls)
    cfg = {}
    for key, value in spec["config"].items():
        value = _plain(value)
        if key in accepted:
            cfg[key] = value
        elif key not in _KERAS_ONLY and _KERAS_DEFAULTS.get(key, value) != value:
            raise ValueError(f"{where}: {kind} {spec['config'].get('name')!r}: the Keras "
                             f"option {key}={value!r} is not supported by rnncore")  # fmt: skip
        elif key not in _KERAS_ONLY and key not in _KERAS_DEFAULTS:
            raise ValueError(f"{where}: {kind} {spec['config'].get('name')!r}: unknown "
                             f"option {key!r}")  # fmt: skip
    for key in ("layer", "backward_layer", "cell"):
        if isinstance(spec["config"].get(key), dict):
            cfg[key] = _from_keras_spec(spec["config"][key], where)
    return {"class_name": kind, "config": cfg}


def _read_config(path) -> dict:
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: {str(path)!r} does not exist")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"path: {str(path)!r} is not a .keras archive (not a zip)")
    with zipfile.ZipFile(path) as zf:
        if "config.json" not in zf.namelist():
            raise ValueError(f"path: {str(path)!r}: a zip without config.json")
        if zf.getinfo("config.json").file_size > _MAX_CONFIG_BYTES:
            raise ValueError(f"path: {str(path)!r}: config.json is larger than any architecture")
        with zf.open("config.json") as member:
            text = member.read(_MAX_CONFIG_BYTES + 1)
    if len(text) > _MAX_CONFIG_BYTES:
        raise ValueError(f"path: {str(path)!r}: config.json is larger than any architecture")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:
        raise ValueError(f"path: {str(path)!r}: config.json is not JSON ({e})") from None


def load_keras_model(path):
    """A Sequential from a `.keras` archive Keras (or `save_keras_model`) wrote: the
    architecture from config.json, the weights from model.weights.h5 (not compiled)."""
    from .saving import model_from_json  # saving imports this module

    where = f"{os.fspath(path)}"
    arch = _read_config(path)
    cfg = arch.get("config") if isinstance(arch, dict) else None
    if arch.get("class_name") != "Sequential" or not isinstance(cfg, dict):
        kind = arch.get("class_name") if isinstance(arch, dict) else type(arch).__name__
        raise ValueError(f"{where}: a Keras {kind}; rnncore reads Keras Sequential models")
    specs = cfg.get("layers")
    if not isinstance(specs, list):
        raise ValueError(f"{where}: config.json has no layer list")
    input_shape = batch_size = None
    ours = []
    for spec in specs:
        if isinstance(spec, dict) and spec.get("class_name") == "InputLayer":
            shape = (spec.get("config") or {}).get("batch_shape")
            if not isinstance(shape, list) or len(shape) < 2:
                raise ValueError(f"{where}: InputLayer without a batch_shape")
            input_shape, batch_size = shape[1:], shape[0]
            continue
        ours.append(_from_keras_spec(spec, where))
    if input_shape is None:
        build = (arch.get("build_config") or {}).get("input_shape")
        input_shape = build[1:] if isinstance(build, list) and len(build) > 1 else None
    dtype = _plain(cfg.get("dtype"))
    ours_cfg = {"name": cfg.get("name", "sequential"), "layers": ours,
                "input_shape": input_shape, "batch_size": batch_size,
                "dtype": dtype if dtype in ("float32", "float64") else None}  # fmt: skip
    text = json.dumps({"class_name": "Sequential", "config": ours_cfg})
    model = model_from_json(text, where=f"{where}: ")
    if input_shape is None:
        raise ValueError(f"{where}: the model's input shape is not in config.json")
    model.build()
    return io.load_keras_weights(model, path)
