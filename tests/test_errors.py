"""Tier 4a: every bad input raises ValueError/TypeError naming the argument."""

import numpy as np
import pytest

import rnncore
from rnncore import reference

from conftest import CELL_IDS, CELLS, make_case


def _call(case, module=rnncore, **override):
    arrays = {**case.arrays, **{k: v for k, v in override.items() if k in case.arrays}}
    options = {**case.options, **{k: v for k, v in override.items() if k not in case.arrays}}
    return case.cell.fn(module, "_forward")(**arrays, **options)


def _bad_inputs(case):
    """(override, exception type, words the message must contain)."""
    a = case.arrays
    T, B, I = a["x"].shape
    H = a["w_hh"].shape[1]
    G = case.cell.gates
    rows = [
        ({"x": a["x"][0]}, ValueError, ["x", "3 dimensions", str((B, I))]),
        ({"x": a["x"][..., :-1]}, ValueError, ["w_ih", str((G * H, I - 1)), str((G * H, I))]),
        ({"w_ih": a["w_ih"][:-1]}, ValueError, ["w_ih", str((G * H, I)), str((G * H - 1, I))]),
        ({"w_hh": a["w_hh"][:, :-1]}, ValueError, ["w_hh", str((G * H, H - 1))]),
        ({"w_hh": a["w_hh"][None]}, ValueError, ["w_hh", "(G*H, H)"]),
        ({"b_ih": a["b_ih"][:-1]}, ValueError, ["b_ih", str((G * H,)), str((G * H - 1,))]),
        ({"b_hh": np.zeros((G * H, 1))}, ValueError, ["b_hh", str((G * H, 1))]),
        ({"h0": a["h0"][:-1]}, ValueError, ["h0", str((B, H)), str((B - 1, H))]),
        ({"h0": a["h0"][None]}, ValueError, ["h0", str((1, B, H))]),
        ({"lengths": np.full(B + 1, T)}, ValueError, ["lengths", f"({B},)", f"({B + 1},)"]),
        ({"lengths": np.full(B, T + 1)}, ValueError, ["lengths", f"[0, {T}]", str(T + 1)]),
        ({"lengths": np.full(B, -1)}, ValueError, ["lengths", "-1"]),
        ({"lengths": np.full(B, 2.0)}, TypeError, ["lengths", "integer", "float64"]),
        ({"lengths": "abc"}, TypeError, ["lengths"]),
        ({"x": a["x"].astype(np.float32)}, TypeError, ["w_hh", "float64", "float32"]),
        ({"w_ih": a["w_ih"].astype(np.float32)}, TypeError, ["w_ih", "float32", "float64"]),
        ({"h0": a["h0"].astype(np.float32)}, TypeError, ["h0", "float32"]),
        ({"x": a["x"].astype(np.int64)}, TypeError, ["x", "int64"]),
        ({"x": a["x"].astype(np.float16)}, TypeError, ["x", "float16"]),
        ({"x": None}, TypeError, ["x", "None"]),
        ({"w_hh": "weights"}, TypeError, ["w_hh"]),
        ({"reverse": "yes"}, TypeError, ["reverse", "bool"]),
        ({"batch_first": 1}, TypeError, ["batch_first", "bool"]),
        ({"training": None}, TypeError, ["training", "bool"]),
    ]
    if case.cell.has_c:
        rows.append(({"c0": a["c0"][:, :-1]}, ValueError, ["c0", str((B, H)), str((B, H - 1))]))
    if case.cell.family == "rnn":
        rows.append(({"nonlinearity": "sigmoid"}, ValueError, ["nonlinearity", "sigmoid"]))
    if case.cell.family == "gru":
        rows.append(({"reset_after": "no"}, TypeError, ["reset_after", "bool"]))
    return rows


@pytest.mark.parametrize("module", [rnncore, reference], ids=["kernels", "reference"])
@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
def test_bad_forward_inputs_raise_clear_errors(cell, module):
    case = make_case(cell, 5, 3, 4, 6, seed=1)
    for override, exc, words in _bad_inputs(case):
        with pytest.raises(exc) as info:
            _call(case, module, **override)
        message = str(info.value)
        for word in words:
            assert word in message, f"{override.keys()}: {word!r} not in {message!r}"


@pytest.mark.parametrize("module", [rnncore, reference], ids=["kernels", "reference"])
@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
def test_bad_backward_inputs_raise_clear_errors(cell, module):
    case = make_case(cell, 5, 3, 4, 6, seed=1)
    backward = case.cell.fn(module, "_backward")
    B, H = 3, 6
    bad = [
        ({"dy": case.dy[:, :, :-1]}, ValueError, ["dy", str((5, 3, 6)), str((5, 3, 5))]),
        ({"dy": case.dy.astype(np.float32)}, TypeError, ["dy", "float32"]),
        ({"dh_n": np.zeros((B, H + 1))}, ValueError, ["dh_n", str((B, H)), str((B, H + 1))]),
    ]
    if case.cell.has_c:
        bad.append(({"dc_n": np.zeros((B + 1, H))}, ValueError, ["dc_n", str((B + 1, H))]))
    for override, exc, words in bad:
        cache = case.forward(module)[-1]
        kwargs = {"dy": case.dy, **override}
        with pytest.raises(exc) as info:
            backward(cache, **kwargs)
        for word in words:
            assert word in str(info.value)
        backward(cache, case.dy)  # a rejected call does not consume the cache


@pytest.mark.parametrize("module", [rnncore, reference], ids=["kernels", "reference"])
def test_cache_misuse_is_refused(module):
    lstm_case = make_case(CELLS[2], 4, 2, 3, 5)
    gru_case = make_case(CELLS[3], 4, 2, 3, 5)
    cache = lstm_case.forward(module)[-1]
    with pytest.raises(ValueError, match="cache: expected a cache from gru_forward"):
        module.gru_backward(cache, gru_case.dy)
    module.lstm_backward(cache, lstm_case.dy)
    with pytest.raises(ValueError, match="cache: already consumed"):
        module.lstm_backward(cache, lstm_case.dy)
    with pytest.raises(ValueError, match="training=True"):
        module.lstm_backward(None, lstm_case.dy)
    with pytest.raises(TypeError, match="cache"):
        module.lstm_backward({"not": "a cache"}, lstm_case.dy)
    other = reference if module is rnncore else rnncore
    with pytest.raises(TypeError, match="cache"):
        module.lstm_backward(lstm_case.forward(other)[-1], lstm_case.dy)


def test_private_module_checks_its_contract():
    """Even called directly, _core refuses bad arrays instead of reading out of bounds."""
    from rnncore import _core

    x = np.zeros((3, 2, 4), np.float32)
    w_ih, w_hh = np.zeros((8, 4), np.float32), np.zeros((8, 2), np.float32)
    with pytest.raises(ValueError, match="w_ih"):
        _core.forward(2, x, w_ih[:, :3], w_hh, None, None, None, None, None, False, False, False)
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.forward(
            2, x, w_ih.T.copy().T, w_hh, None, None, None, None, None, False, False, False
        )
    with pytest.raises(ValueError, match="lengths"):
        _core.forward(
            2, x, w_ih, w_hh, None, None, None, None, np.array([5, 1]), False, False, False
        )
    with pytest.raises(TypeError, match="dtype"):
        _core.forward(
            2, x, w_ih.astype(np.float64), w_hh, None, None, None, None, None, False, False, False
        )
    with pytest.raises(ValueError, match="cell"):
        _core.forward(9, x, w_ih, w_hh, None, None, None, None, None, False, False, False)
    with pytest.raises(ValueError, match="workspace"):
        _core.backward(
            2,
            x,
            w_ih,
            w_hh,
            False,
            False,
            None,
            False,
            False,
            np.zeros(3, np.float32),
            None,
            None,
            None,
        )


def test_recurrent_mask_shape_and_dtype():
    x = np.zeros((3, 2, 4), np.float32)
    w_ih, w_hh = np.zeros((5, 4), np.float32), np.zeros((5, 5), np.float32)
    with pytest.raises(ValueError, match=r"recurrent_mask: expected shape \(B, H\) = \(2, 5\)"):
        rnncore.rnn_forward(x, w_ih, w_hh, recurrent_mask=np.ones((5, 2), np.float32))
    with pytest.raises(TypeError, match="recurrent_mask"):
        rnncore.rnn_forward(x, w_ih, w_hh, recurrent_mask=np.ones((2, 5)))
