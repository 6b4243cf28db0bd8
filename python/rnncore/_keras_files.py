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
import zipfile

from . import io
from . import layers as layers_mod
from ._files import atomic_write
from ._version import __version__
from .layers.base import snake_case
from .layers.cells import _CELLS  # the built-in cells by name

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
                   "synchronized": False, "renorm": False, "keepdims": False}  # fmt: skip
_MAX_CONFIG_BYTES = 16 << 20  # config.json: an architecture, never this large


_snake = snake_case  # Keras's spelling of class names in files


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


# Layers of functional graphs that Keras has under the same name, with no weights or with
# weights in plain vars groups.
_GRAPH_LAYERS = {"Concatenate", "Add", "Subtract", "Multiply", "Average", "Dot", "RepeatVector",
                 "Reshape", "Permute", "MaxPooling1D", "GlobalAveragePooling1D",
                 "GlobalMaxPooling1D", "Attention", "AdditiveAttention", "InputLayer"}  # fmt: skip


def _check_keras_layers(model) -> None:
    for layer in model.layers:
        name = type(layer).__name__
        if not (name in io._KERAS_GROUP or name in _GRAPH_LAYERS
                or isinstance(layer, io._WEIGHTLESS)):  # fmt: skip
            raise ValueError(f"{layer.name}: {name} has no Keras counterpart; save it as "
                             "'.rnncore' instead")  # fmt: skip


def _tensor_ref(t, node_index) -> dict:
    """A symbolic tensor as Keras's config names it: its producer, call and output index."""
    layer = t.node.layer
    dtype = str(t.dtype) if t.dtype is not None else "float32"
    return {"class_name": "__keras_tensor__", "config": {
        "shape": list(t.shape), "dtype": dtype,
        "keras_history": [layer.name, node_index[id(t.node)], t.index]}}  # fmt: skip


def _functional_architecture(model) -> dict:
    """A functional Model as Keras's "Functional" config: layers in model.layers order, each
    with its calls (inbound_nodes), then the input and output tensors."""
    calls: dict = {}  # id(layer) -> its nodes in the order they were made
    for node in sorted(model._nodes, key=lambda n: n.serial):
        calls.setdefault(id(node.layer), []).append(node)
    node_index = {id(t.node): 0 for t in model.inputs}
    for nodes in calls.values():
        node_index.update({id(n): i for i, n in enumerate(nodes)})
    specs = []
    for layer in model.layers:
        if isinstance(layer, layers_mod.InputLayer):
            t = layer.tensor
            dtype = str(t.dtype) if t.dtype is not None else "float32"
            specs.append({"module": "keras.layers", "class_name": "InputLayer",
                          "registered_name": None, "name": layer.name, "inbound_nodes": [],
                          "config": {"batch_shape": list(t.shape), "dtype": dtype,
                                     "sparse": False, "name": layer.name}})  # fmt: skip
            continue
        spec = _to_keras_spec(layers_mod.serialize(layer))
        spec["name"] = layer.name
        spec["inbound_nodes"] = []
        for node in calls[id(layer)]:
            refs = [_tensor_ref(t, node_index) for t in node.inputs]
            kwargs = {"initial_state": [_tensor_ref(t, node_index) for t in node.states]}
            spec["inbound_nodes"].append({"args": [refs if node.many else refs[0]],
                                          "kwargs": kwargs if node.states else {}})  # fmt: skip
        specs.append(spec)
    ref = lambda t: [t.node.layer.name, node_index[id(t.node)], t.index]  # noqa: E731
    shapes = [list(t.shape) for t in model.inputs]
    return {"module": "keras.src.models.functional", "class_name": "Functional",
            "registered_name": "Functional",
            "config": {"name": model.name, "trainable": True, "layers": specs,
                       "input_layers": [ref(t) for t in model.inputs],
                       "output_layers": [ref(t) for t in model.outputs]},
            "build_config": {"input_shape": shapes if len(shapes) > 1 else shapes[0]},
            "compile_config": None}  # fmt: skip


def keras_architecture(model) -> dict:
    """`model`'s architecture as Keras's config.json holds it."""
    if model.built_input_shape is None:
        raise ValueError("model: build it first (start it with rnncore.Input(shape))")
    _check_keras_layers(model)
    if model.architecture == "Model":
        return _functional_architecture(model)
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
            if isinstance(layer, layers_mod.InputLayer) and model.architecture == "Sequential":
                continue  # a Sequential's input is not among Keras's layers; a Model's is
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
    text = io.read_zip_member(path, "config.json", _MAX_CONFIG_BYTES, "any architecture")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:
        raise ValueError(f"path: {str(path)!r}: config.json is not JSON ({e})") from None


# Operations Keras records in a functional graph to compute masks (Embedding(mask_zero)
# feeding a layer call's mask= argument); rnncore propagates masks itself and ignores mask=.
_MASK_OPS = {"NotEqual", "ConvertToTensor"}


def _functional_from_keras(cfg, where):
    """A rnncore Model from Keras's Functional config: each layer made from its spec, its
    calls replayed on the tensors their keras_history names (in any order they resolve)."""
    from .functional import Model
    from .layers.graph import input_tensor

    made: dict = {}  # (layer name, call index) -> that call's output tensors
    pending = []
    try:
        for spec in cfg["layers"]:
            name = spec.get("name") or spec["config"]["name"]
            if spec.get("class_name") == "InputLayer":
                c = spec["config"]
                shape = c.get("batch_shape") or [None, *c["shape"]]
                dtype = _plain(c.get("dtype"))
                dtype = None if dtype == "float32" else dtype  # float32: the model's default
                layer = layers_mod.InputLayer(batch_shape=shape, name=name, dtype=dtype)
                made[(name, 0)] = [input_tensor(layer)]
                continue
            if spec.get("class_name") in _MASK_OPS:
                continue  # the masks Keras computes in the graph: rnncore derives its own
            layer = layers_mod.deserialize(_from_keras_spec(spec, where))
            layer.name = name
            for k, call in enumerate(spec.get("inbound_nodes", [])):
                pending.append((name, k, layer, call))
        while pending:
            ready = [p for p in pending if _resolvable(p[3], made)]
            if not ready:
                raise ValueError(f"calls that name unknown tensors: {[p[0] for p in pending]}")
            for name, k, layer, call in ready:
                args = _resolve(call["args"][0], made)
                states = call.get("kwargs", {}).get("initial_state")
                out = layer(args, initial_state=_resolve(states, made)) if states else layer(args)
                made[(name, k)] = out if isinstance(out, list) else [out]
            pending = [p for p in pending if p not in ready]
        pick = lambda refs: [made[(r[0], int(r[1]))][int(r[2])] for r in refs]  # noqa: E731
        ins, outs = cfg["input_layers"], cfg["output_layers"]
        ins = [ins] if ins and isinstance(ins[0], str) else ins
        outs_list = [outs] if outs and isinstance(outs[0], str) else outs
        outputs = pick(outs_list)
        return Model(
            pick(ins), outputs if len(outputs) > 1 else outputs[0], name=cfg.get("name", "model")
        )
    except (KeyError, IndexError, TypeError) as e:
        raise ValueError(f"{where}: invalid functional architecture ({e!r})") from None


def _refs(value):
    """The keras_history entries in a call argument (a tensor dict or lists of them)."""
    if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
        return [value["config"]["keras_history"]]
    if isinstance(value, list):
        return [r for v in value for r in _refs(v)]
    return []


def _resolvable(call, made) -> bool:
    refs = _refs(call.get("args", [])) + _refs(call.get("kwargs", {}).get("initial_state", []))
    return all((r[0], int(r[1])) in made for r in refs)


def _resolve(value, made):
    """A call argument with its tensor dicts replaced by our symbolic tensors."""
    if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
        name, k, i = value["config"]["keras_history"]
        return made[(name, int(k))][int(i)]
    if isinstance(value, list):
        return [_resolve(v, made) for v in value]
    return value


def load_keras_model(path):
    """A Sequential or functional Model from a `.keras` archive Keras (or
    `save_keras_model`) wrote: the architecture from config.json, the weights from
    model.weights.h5 (not compiled)."""
    from .saving import model_from_json  # saving imports this module

    where = f"{os.fspath(path)}"
    arch = _read_config(path)
    cfg = arch.get("config") if isinstance(arch, dict) else None
    kind = arch.get("class_name") if isinstance(arch, dict) else type(arch).__name__
    if kind == "Functional" and isinstance(cfg, dict):
        return io.load_keras_weights(_functional_from_keras(cfg, where), path)
    if kind != "Sequential" or not isinstance(cfg, dict):
        raise ValueError(f"{where}: a Keras {kind}; rnncore reads Keras Sequential and "
                         "functional models")  # fmt: skip
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
