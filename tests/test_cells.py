"""The cell table (rnncore/_cells.py) agrees with the compiled kernels and selects kinds."""

from __future__ import annotations

import numpy as np
import pytest

import rnncore
from rnncore import _cells, _core


def test_table_matches_the_compiled_enum():
    codes = [c.code for c in _cells.CELLS]
    assert sorted(int(c) for c in codes) == list(range(len(_core.Cell.__members__)))
    for cell in _cells.CELLS:
        assert _core.gate_count(cell.code) == cell.gates, cell.name
        assert cell.code.name.lower() == cell.name


@pytest.mark.parametrize("cell", _cells.CELLS, ids=lambda c: c.name)
def test_each_kind_is_reached_by_its_options_everywhere(cell):
    assert _cells.kind_of(cell.family, **cell.options) is cell
    layer = getattr(rnncore.layers, cell.keras_layer)(3, **cell.keras_options)
    assert layer.cell is cell
    # Keras's gate blocks map back and forth by the same permutation (the layers rely on it).
    order = np.array(cell.keras_order)
    assert sorted(order) == list(range(cell.gates))
    assert (order[order] == np.arange(cell.gates)).all()
    assert sorted(cell.onnx_order) == list(range(cell.gates))


def test_unknown_family_and_option_values_are_named():
    with pytest.raises(ValueError, match=r"cell: expected one of 'rnn', 'lstm', 'gru', got 'lsmt'"):
        _cells.kind_of("lsmt")
    with pytest.raises(ValueError, match=r"nonlinearity: expected 'tanh' or 'relu', got 'gelu'"):
        _cells.kind_of("rnn", nonlinearity="gelu")
    with pytest.raises(TypeError, match="reset_after: expected a bool, got int"):
        _cells.kind_of("gru", reset_after=1)
    assert _cells.kind_of("gru", reset_after=np.False_).name == "gru_reset_before"
    with pytest.raises(ValueError, match="cell: expected one of"):
        _cells.by_name("lstm2")


def test_modules_show_only_their_public_names():
    import importlib

    assert not {"np", "json", "annotations", "_core", "_validate"} & set(dir(rnncore))
    for name in ("layers", "models", "losses", "optimizers", "metrics", "callbacks", "io", "nn",
                 "utils", "data", "text", "stream", "reference", "ops"):  # fmt: skip
        module = importlib.import_module(f"rnncore.{name}")
        shown = {n for n in dir(module) if not n.startswith("__")}
        assert shown == set(module.__all__), name
        assert all(hasattr(module, n) for n in module.__all__), name
