"""`rnncore.Model(inputs, outputs)`: Keras's functional API, the running side.

The graph is the Nodes recorded when layers were called on symbolic tensors (layers/graph.py).
Forward runs the calls in topological order, each on the arrays and masks its inputs got;
backward runs them in reverse, summing the gradients of a tensor read by several calls (a
shared layer, a branch). Training, evaluation, prediction and files are Sequential's.
"""

from __future__ import annotations

import numpy as np

from . import layers as layers_mod
from . import losses as losses_mod
from . import metrics as metrics_mod
from . import optimizers as optimizers_mod
from .layers.base import InputLayer, shape_str
from .layers.graph import KerasTensor, Node, input_tensor
from .models import Sequential, _Contexts
from .training import _check_y, _per_value

__all__ = ["Model"]


class _Arrays:
    """A model's several inputs as one batchable value: indexing and len act on samples."""

    def __init__(self, arrays):
        self.arrays = list(arrays)

    def __len__(self) -> int:
        return len(self.arrays[0])

    def __getitem__(self, index):
        return _Arrays([a[index] for a in self.arrays])


def _flat(structure, what):
    if isinstance(structure, dict):
        items = list(structure.values())
    elif isinstance(structure, (list, tuple)):
        items = list(structure)
    else:
        items = [structure]
    if not items or not all(isinstance(t, KerasTensor) for t in items):
        raise TypeError(f"{what}: expected symbolic tensors (from Input and layer calls), got "
                        f"{[type(t).__name__ for t in items]}")  # fmt: skip
    return items


def _topological(outputs) -> list[Node]:
    """Every call the outputs depend on, each after the calls that feed it."""
    order: list[Node] = []
    done: set = set()
    stack = [(t.node, False) for t in reversed(outputs)]
    while stack:
        node, expanded = stack.pop()
        if id(node) in done:
            continue
        if expanded:
            done.add(id(node))
            order.append(node)
            continue
        stack.append((node, True))
        stack.extend((p.node, False) for p in reversed(node.parents()) if id(p.node) not in done)
    return order


def _keras_order(outputs) -> list:
    """The layers in Keras's model.layers order (so get_weights lists match Keras's, and
    Keras files number their groups alike): deepest from the outputs first, ties in the
    order a depth-first walk from the outputs first meets them."""
    first_seen: dict = {}  # id(layer) -> (visit number, layer)
    finished: list[Node] = []
    done: set = set()

    def visit(node):
        if id(node) in done:
            return
        first_seen.setdefault(id(node.layer), (len(first_seen), node.layer))
        for parent in node.parents():
            visit(parent.node)
        done.add(id(node))
        finished.append(node)

    for t in outputs:
        visit(t.node)
    node_depth: dict = {}
    layer_depth: dict = {}
    for node in reversed(finished):
        depth = max(node_depth.get(id(node), 0), layer_depth.get(id(node.layer), 0))
        layer_depth[id(node.layer)] = node_depth[id(node)] = depth
        for parent in node.parents():
            node_depth[id(parent.node)] = max(depth + 1, node_depth.get(id(parent.node), 0))
    ranked = sorted(first_seen.values(), key=lambda v: (-layer_depth[id(v[1])], v[0]))
    return [layer for _, layer in ranked]


class Model(Sequential):
    """A model of a graph of layer calls, as Keras's functional `Model(inputs, outputs)`.

    Args:
        inputs: The `Input` tensor(s): one, a list, or a dict by name.
        outputs: The output tensor(s) of layer calls on them: one or a list.
        name: The model's name.

    Example:
        >>> a, b = rnncore.Input((10, 3)), rnncore.Input((4,))
        >>> h = rnncore.layers.LSTM(8)(a)
        >>> y = rnncore.layers.Dense(1)(rnncore.layers.Concatenate()([h, b]))
        >>> model = rnncore.Model([a, b], y)
    """

    architecture = "Model"

    def __init__(self, inputs, outputs, name="model"):
        super().__init__(name=name)
        self.inputs = _flat(inputs, "inputs")
        self._input_names = list(inputs) if isinstance(inputs, dict) else None
        self.outputs = _flat(outputs, "outputs")
        self._many_outputs = isinstance(outputs, (list, tuple))
        nodes = _topological(self.outputs)
        given = {id(t.node) for t in self.inputs}
        for node in nodes:
            if isinstance(node.layer, InputLayer) and id(node) not in given:
                raise ValueError(f"outputs: they depend on the input {node.layer.name!r}, which "
                                 "is not in inputs (graph disconnected)")  # fmt: skip
        if any(not isinstance(t.node.layer, InputLayer) for t in self.inputs):
            raise ValueError("inputs: expected tensors made by Input(...)")
        self._nodes = [n for n in nodes if not isinstance(n.layer, InputLayer)]
        for t in self.inputs:
            t.node.layer.built = True  # an input has no weights to make
        self.layers = _keras_order(self.outputs)
        names = [layer.name for layer in self.layers]
        duplicate = {n for n in names if names.count(n) > 1}
        if duplicate:
            raise ValueError(f"{name}: layer names must be unique, repeated: {sorted(duplicate)}")
        self.built_input_shape = self.inputs[0].shape[1:]
        self.input_layer = self.inputs[0].node.layer

    # ---- structure ----
    def add(self, layer):
        """A functional model's graph is fixed: refused."""
        raise TypeError(f"{self.name}: add() is for Sequential; build a new Model instead")

    def build(self, input_shape=None):
        """The layers were built when they were called on the symbolic inputs."""
        return self.outputs[0].shape

    # ---- running ----
    def _prepare_x(self, x):
        if isinstance(x, _Arrays):
            return x
        if isinstance(x, dict):
            if self._input_names is None:
                names = [t.node.layer.name for t in self.inputs]
            else:
                names = self._input_names
            missing = [n for n in names if n not in x]
            if missing:
                raise ValueError(f"x: missing inputs {missing} (the model takes {names})")
            arrays = [x[n] for n in names]
        elif isinstance(x, (list, tuple)) and len(self.inputs) > 1:
            arrays = list(x)
        else:
            arrays = [x]
        if len(arrays) != len(self.inputs):
            raise ValueError(f"x: expected {len(self.inputs)} input arrays, got {len(arrays)}")
        prepared = [self._prepare_one(t, a) for t, a in zip(self.inputs, arrays)]
        if len({len(a) for a in prepared}) > 1:
            raise ValueError(f"x: the inputs hold different numbers of samples: "
                             f"{[len(a) for a in prepared]}")  # fmt: skip
        return prepared[0] if len(prepared) == 1 else _Arrays(prepared)

    def _prepare_one(self, tensor, x):
        x = np.asarray(x)
        if x.dtype.kind not in "fiub":
            raise TypeError(f"x: expected a numeric array, got dtype {x.dtype}")
        keep_ints = x.dtype.kind in "iub" and all(
            isinstance(n.layer, layers_mod.Embedding) for n in self._nodes if tensor in n.inputs
        )
        if tensor.dtype is not None:
            x = x.astype(tensor.dtype, copy=False)
        elif not keep_ints:
            x = x.astype(self.input_dtype, copy=False)
        want = tensor.shape[1:]
        if x.ndim != len(want) + 1 or any(w is not None and w != s
                                          for s, w in zip(x.shape[1:], want)):  # fmt: skip
            raise ValueError(f"x: input {tensor.node.layer.name!r} expected shape "
                             f"{shape_str((None, *want))}, got {tuple(x.shape)}")  # fmt: skip
        return x

    def _forward(self, x, training):
        arrays = x.arrays if isinstance(x, _Arrays) else [x]
        values = {id(t): (a, None) for t, a in zip(self.inputs, arrays)}
        ctxs = _Contexts()
        ctxs.values = values
        for i, node in enumerate(self._nodes):
            layer = node.layer
            xs = [values[id(t)][0] for t in node.inputs]
            ms = [values[id(t)][1] for t in node.inputs]
            arg, mask = (xs, ms) if node.many else (xs[0], ms[0])
            layer.ensure_built([v.shape for v in xs] if node.many else xs[0].shape)
            if node.states:
                states = [values[id(t)][0] for t in node.states]
                y, ctx = layer.forward(arg, mask, training, initial_state=states)
            else:
                y, ctx = layer.forward(arg, mask, training)
            out_mask = layer.compute_mask(arg, mask)
            outs = y if isinstance(y, list) else [y]
            for j, (t, v) in enumerate(zip(node.outputs, outs)):
                values[id(t)] = (v, out_mask if j == 0 else None)
            ctxs.append(ctx)
            ctxs.note_activity(i, layer, outs[0])
        ys = [values[id(t)] for t in self.outputs]
        if len(ys) == 1 and not self._many_outputs:
            return ys[0][0], ys[0][1], ctxs
        return [v for v, _ in ys], None, ctxs

    def _backward(self, ctxs, dy, grads):
        dys: dict = {}

        def add(t, g):
            if g is not None:
                dys[id(t)] = g if id(t) not in dys else dys[id(t)] + g

        for t, g in zip(self.outputs, dy if isinstance(dy, list) else [dy]):
            add(t, g)
        for i in reversed(range(len(self._nodes))):
            node = self._nodes[i]
            if not any(id(t) in dys for t in node.outputs):
                continue  # nothing downstream of this call reaches the loss
            g = [dys.get(id(t)) if id(t) in dys else np.zeros_like(ctxs.values[id(t)][0])
                 for t in node.outputs]  # fmt: skip
            g[0] = ctxs.with_activity_grad(i, g[0])
            dx = node.layer.backward(ctxs[i], g if len(g) > 1 else g[0], grads)
            for t, d in zip(node.inputs, dx if node.many else [dx]):
                add(t, d)
            if node.states:
                for t, d in zip(node.states, node.layer.last_state_grads):
                    add(t, d)

    # ---- several outputs: a loss (and metrics) per output, as Keras ----
    @property
    def output_names(self) -> list:
        """The outputs' names (their layers'): the keys of dict losses, labels and logs."""
        return [t.name for t in self.outputs]

    def _per_output(self, spec, what, default=None) -> list:
        """`spec` for each output: one value for all, a list in output order, or a dict by
        output name (missing names take `default`)."""
        names = self.output_names
        if isinstance(spec, dict):
            unknown = sorted(set(spec) - set(names))
            if unknown:
                raise ValueError(f"{what}: unknown outputs {unknown}; the outputs are {names}")
            return [spec.get(n, default) for n in names]
        if isinstance(spec, (list, tuple)):
            if len(spec) != len(names):
                raise ValueError(f"{what}: expected {len(names)} entries (one per output "
                                 f"{names}), got {len(spec)}")  # fmt: skip
            return list(spec)
        return [spec] * len(names)

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None):
        """As Sequential's compile; with several outputs, `loss`, `metrics` and
        `loss_weights` may be lists (output order) or dicts by output name, as in Keras.

        Args:
            optimizer: An Optimizer or its name.
            loss: A loss for every output, or one per output (list or dict).
            metrics: Metrics for every output (a flat list), or per output (a list of lists
                or a dict); logged as "<output>_<metric>" with several outputs.
            loss_weights: Each output's weight in the total loss (default 1).
        """
        if len(self.outputs) == 1 and not isinstance(loss, (list, dict)):
            super().compile(optimizer, loss, metrics)
            self._output_losses = None
            return
        if loss is None:
            raise ValueError("compile: a loss is required (e.g. loss='mse')")
        self.optimizer = optimizers_mod.get(optimizer)
        self._output_losses = [losses_mod.get(v) for v in self._per_output(loss, "loss")]
        self.loss = self._output_losses[0]
        weights = self._per_output(loss_weights, "loss_weights", 1.0)
        self._loss_weights = [1.0 if w is None else float(w) for w in weights]
        per = metrics
        if isinstance(metrics, (list, tuple)) and not any(isinstance(m, (list, tuple))
                                                          for m in metrics):  # fmt: skip
            per = [list(metrics)] * len(self.outputs)
        specs = self._per_output(per, "metrics", [])
        self._metrics, self._metric_objs, self._metric_outputs = [], {}, []
        for k, (name, loss_k) in enumerate(zip(self.output_names, self._output_losses)):
            for spec in specs[k] or []:
                metric = metrics_mod.get(spec, loss_k, self.outputs[k].shape[-1] or 2)
                metric.name = f"{name}_{metric.name}"
                self._metric_objs[metric.name] = metric
                self._metric_outputs.append(k)
        self.metric_names = list(self._metric_objs)

    def _stat_layout(self) -> list:
        if not getattr(self, "_output_losses", None):
            return super()._stat_layout()
        return ([("loss", 2)] + [(f"{n}_loss", 2) for n in self.output_names]
                + [(name, m.size) for name, m in self._metric_objs.items()])  # fmt: skip

    def _prepare_y(self, x, y):
        if not getattr(self, "_output_losses", None):
            return _check_y(x, y)
        names = self.output_names
        if isinstance(y, _Arrays):
            return y
        if isinstance(y, dict):
            ys = self._per_output(y, "y")
        elif isinstance(y, (list, tuple)) and len(y) == len(names):
            ys = list(y)
        else:
            raise ValueError(f"y: expected {len(names)} label arrays (a list, or a dict by "
                             f"output name {names})")  # fmt: skip
        if any(v is None for v in ys):
            raise ValueError(f"y: every output needs labels; the outputs are {names}")
        return _Arrays([_check_y(x, v) for v in ys])

    def _local_stats(self, x, y, training, sample_weight=None):
        if not getattr(self, "_output_losses", None):
            return super()._local_stats(x, y, training, sample_weight)
        preds, _, ctxs = self._forward(x, training)
        n = float(len(preds[0]))
        total, dpreds, stats = 0.0, [], {}
        for name, loss, w, yk, pk in zip(self.output_names, self._output_losses,
                                          self._loss_weights, y.arrays, preds):  # fmt: skip
            weights = None
            if sample_weight is not None:
                weights = _per_value(sample_weight, pk).astype(pk.dtype, copy=False)
            value, dpred = loss.value_and_grad(yk, pk, weights, float(np.prod(pk.shape[:-1])))
            total += w * value
            dpreds.append(dpred * w)
            stats[f"{name}_loss"] = np.array([value * n, n])
        grads: dict = {}
        if training:
            self._backward(ctxs, dpreds, grads)
        total += self._regularization(ctxs, grads if training else None)
        stats = {"loss": np.array([total * n, n]), **stats}
        for (name, metric), k in zip(self._metric_objs.items(), self._metric_outputs):
            stats[name] = metric.sums(y.arrays[k], preds[k], None)
        return stats, grads

    def summary(self, print_fn=print):
        """Prints every call's layer, output shape, parameters and inputs (as Keras).

        Args:
            print_fn: Where the lines go (print by default).
        """
        rows = [(f"{t.node.layer.name} (InputLayer)", shape_str(t.shape), "0", "-")
                for t in self.inputs]  # fmt: skip
        for node in self._nodes:
            shape = ", ".join(shape_str(t.shape) for t in node.outputs)
            feeds = ", ".join(t.name for t in node.parents())
            rows.append((f"{node.layer.name} ({type(node.layer).__name__})", shape,
                         f"{node.layer.count_params():,}", feeds))  # fmt: skip
        heads = ("Layer (type)", "Output Shape", "Param #", "Connected to")
        widths = [max(len(h), *(len(r[i]) for r in rows)) + 2 for i, h in enumerate(heads)]
        line = "=" * sum(widths)
        fmt = lambda r: "".join(f"{c:<{w}}" for c, w in zip(r, widths)).rstrip()  # noqa: E731
        total = self.count_params()
        trainable = sum(v.size for v in self._leaf_params().values())
        out = [f'Model: "{self.name}"', line, fmt(heads), line, *map(fmt, rows), line,
               f"Total params: {total:,}", f"Trainable params: {trainable:,}",
               f"Non-trainable params: {total - trainable:,}"]  # fmt: skip
        print_fn("\n".join(out))

    # ---- files ----
    def get_config(self):
        """{name, layers (serialized), nodes (who calls whom), inputs, outputs}."""
        index = {id(layer): i for i, layer in enumerate(self.layers)}
        where: dict = {}  # id(tensor) -> [node number, output index]
        for t in self.inputs:
            where[id(t)] = [-1 - index[id(t.node.layer)], 0]
        nodes = []
        for k, node in enumerate(self._nodes):
            for j, t in enumerate(node.outputs):
                where[id(t)] = [k, j]
            nodes.append({"layer": index[id(node.layer)], "many": node.many,
                          "inputs": [where[id(t)] for t in node.inputs],
                          "states": [where[id(t)] for t in node.states]})  # fmt: skip
        return {
            "name": self.name,
            "layers": [layers_mod.serialize(layer) for layer in self.layers],
            "nodes": nodes,
            "inputs": [where[id(t)] for t in self.inputs],
            "input_names": self._input_names,
            "outputs": [where[id(t)] for t in self.outputs],
            "many_outputs": self._many_outputs,
        }

    @classmethod
    def from_config(cls, config, where=""):
        """A new Model (fresh weights) from `get_config()`'s dict."""
        try:
            layers = [layers_mod.deserialize(spec) for spec in config["layers"]]
            made: dict = {}

            def tensor(ref):
                k, j = int(ref[0]), int(ref[1])
                if k < 0:
                    layer = layers[-1 - k]
                    if not isinstance(layer, InputLayer):
                        raise ValueError(f"reference {ref} is not an input")
                    return input_tensor(layer)
                return made[k][j]

            for k, spec in enumerate(config["nodes"]):
                layer = layers[int(spec["layer"])]
                xs = [tensor(r) for r in spec["inputs"]]
                states = [tensor(r) for r in spec.get("states", [])]
                arg = xs if spec.get("many") else xs[0]
                out = layer(arg, initial_state=states) if states else layer(arg)
                made[k] = out if isinstance(out, list) else [out]
            inputs = [tensor(r) for r in config["inputs"]]
            if config.get("input_names"):
                inputs = dict(zip(config["input_names"], inputs))
            outputs = [tensor(r) for r in config["outputs"]]
        except (KeyError, IndexError, TypeError) as e:
            raise ValueError(f"{where}invalid functional architecture ({e!r})") from None
        many = config.get("many_outputs", len(outputs) > 1)
        return cls(inputs, outputs if many else outputs[0], name=config.get("name", "model"))
