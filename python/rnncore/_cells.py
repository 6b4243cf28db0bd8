"""The cell table: every recurrent cell the kernels run, described once.

Each row names a cell kind and says what every other module needs to know about it: its
functional-API family and the keyword values that select it, its gate count, its code in
the compiled module (`rnncore._core.Cell`, the C++ `rnncore::Cell` enum), and how its gate
blocks map to Keras's and ONNX's orders. Validation, the layers, `rnncore.nn`, `Stream`, the
exporters, the benchmark and the tests read this table; adding a cell starts here (see
docs/design.md, "Add a cell").

Gate blocks are stored in PyTorch's order (LSTM i, f, g, o; GRU r, z, n). An order tuple
lists, for each block position of the other format, which of our blocks goes there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from . import _core

__all__ = ["CELLS", "FAMILIES", "KERAS_LAYERS", "CellKind", "by_name", "family_kinds", "kind_of"]


@dataclass(frozen=True)
class CellKind:
    """One cell kind the kernels run.

    Attributes:
        name: Kind name (``"lstm"``, ``"gru_reset_before"``, ...), also the test ids.
        family: Functional-API prefix: ``rnncore.<family>``, ``<family>_forward``, ...
        code: The compiled module's enum value for this kind.
        gates: Gate blocks per weight matrix: w_ih is ``(gates * H, I)``.
        options: Family keyword values selecting this kind (``{"reset_after": False}``).
        keras_order: Our block at each Keras gate position.
        onnx_order: Our block at each ONNX gate position.
        keras_layer: The Keras (and rnncore.layers) class name of the family.
        onnx_op: The ONNX operator of the family.
        torch_module: The torch.nn module running this kind, or None when torch has none.
        keras_options: Keyword values of the Keras layer selecting this kind.
    """

    name: str
    family: str
    code: _core.Cell
    gates: int
    options: Mapping[str, object] = field(default_factory=dict)
    keras_order: tuple[int, ...] = (0,)
    onnx_order: tuple[int, ...] = (0,)
    keras_layer: str = "SimpleRNN"
    onnx_op: str = "RNN"
    torch_module: str | None = "RNN"
    keras_options: Mapping[str, object] = field(default_factory=dict)
    code_int: int = field(init=False, repr=False, compare=False)  # `code` as a plain int

    def __post_init__(self) -> None:
        # The compiled functions take a plain int fastest (a microsecond less per call).
        object.__setattr__(self, "code_int", int(self.code))

    @property
    def has_cell_state(self) -> bool:
        """Whether the cell carries a second state c beside h (LSTM)."""
        return self.family == "lstm"


_LSTM: dict[str, Any] = {"keras_layer": "LSTM", "onnx_op": "LSTM", "torch_module": "LSTM"}
_GRU: dict[str, Any] = {"keras_layer": "GRU", "onnx_op": "GRU", "torch_module": "GRU",
                        "keras_order": (1, 0, 2), "onnx_order": (1, 0, 2)}  # fmt: skip


def _options(**values: object) -> Mapping[str, object]:
    return MappingProxyType(values)


CELLS: tuple[CellKind, ...] = (
    CellKind("rnn_tanh", "rnn", _core.Cell.RNN_TANH, 1, _options(nonlinearity="tanh"),
             keras_options=_options(activation="tanh")),
    CellKind("rnn_relu", "rnn", _core.Cell.RNN_RELU, 1, _options(nonlinearity="relu"),
             keras_options=_options(activation="relu")),
    CellKind("lstm", "lstm", _core.Cell.LSTM, 4, _options(), keras_order=(0, 1, 2, 3),
             onnx_order=(0, 3, 1, 2), **_LSTM),
    CellKind("gru", "gru", _core.Cell.GRU, 3, _options(reset_after=True),
             keras_options=_options(reset_after=True), **_GRU),
    CellKind("gru_reset_before", "gru", _core.Cell.GRU_RESET_BEFORE, 3,
             _options(reset_after=False), keras_options=_options(reset_after=False),
             **{**_GRU, "torch_module": None}),
)  # fmt: skip
"""Every cell kind, in the compiled enum's order."""

_BY_NAME = {c.name: c for c in CELLS}
_BY_CODE = {c.code_int: c for c in CELLS}
FAMILIES: tuple[str, ...] = tuple(dict.fromkeys(c.family for c in CELLS))
"""The functional-API families (``rnn``, ``lstm``, ``gru``)."""
KERAS_LAYERS: frozenset[str] = frozenset(c.keras_layer for c in CELLS)
"""Class names of the Keras-style layers running a cell of the table."""


def by_name(name: str) -> CellKind:
    """The kind called `name`; ValueError listing the kinds for any other value."""
    try:
        return _BY_NAME[name]
    except (KeyError, TypeError):
        raise ValueError(f"cell: expected one of {sorted(_BY_NAME)}, got {name!r}") from None


def by_code(code: int) -> CellKind:
    """The kind whose kernel code is `code` (an int or rnncore._core.Cell); ValueError else."""
    try:
        return _BY_CODE[int(code)]
    except (KeyError, TypeError, ValueError):
        raise ValueError(
            f"cell: expected one of the codes {sorted(_BY_CODE)}, got {code!r}"
        ) from None


def family_kinds(family: str) -> tuple[CellKind, ...]:
    """The kinds of one family (its first is the default); ValueError for an unknown family."""
    kinds = tuple(c for c in CELLS if c.family == family)
    if not kinds:
        names = ", ".join(repr(f) for f in FAMILIES)
        raise ValueError(f"cell: expected one of {names}, got {family!r}")
    return kinds


def kind_of(family: str, **options: object) -> CellKind:
    """The kind of `family` the keyword values select, e.g. ``kind_of("gru", reset_after=False)``.

    Options the family does not take are ignored; a value none of its kinds has raises
    ValueError naming the option and the values it takes (TypeError for a non-bool flag).
    """
    # Every layer call asks, so answers are kept by (family, options); the value's type is
    # part of the key, since 1 == True would otherwise find reset_after=True's answer.
    key = (family, *((k, type(v), v) for k, v in sorted(options.items())))
    try:
        return _KIND_OF[key]
    except KeyError:
        kind = _KIND_OF[key] = _kind_of(family, options)  # raises for a bad value
        return kind
    except TypeError:  # an unhashable value: checked (and refused) the long way
        return _kind_of(family, options)


_KIND_OF: dict[tuple, CellKind] = {}  # kind_of's answers; only valid keys get in


def _kind_of(family: str, options: dict) -> CellKind:
    kinds = family_kinds(family)
    chosen = kinds
    for key in {k for c in kinds for k in c.options}:
        value = options.get(key, kinds[0].options[key])
        allowed = [c.options[key] for c in kinds]
        if isinstance(allowed[0], bool):
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"{key}: expected a bool, got {type(value).__name__}")
            value = bool(value)
        if value not in allowed:
            names = [repr(v) for v in allowed]
            expected = " or ".join([", ".join(names[:-1]), names[-1]] if len(names) > 2 else names)
            raise ValueError(f"{key}: expected {expected}, got {value!r}")
        chosen = tuple(c for c in chosen if c.options[key] == value)
    return chosen[0]
