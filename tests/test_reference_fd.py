"""Tier 1: the NumPy reference's gradients against central finite differences (float64)."""

import numpy as np
import pytest

from rnncore import reference

from conftest import CELL_IDS, CELLS, make_case, rel_err

VARIANTS = {
    "plain": {"lengths": None},
    "ragged": {},
    "ragged_reverse": {"reverse": True},
    "batch_first_reverse": {"batch_first": True, "reverse": True},
    "no_bias_no_h0": {"bias": False, "h0": False, "lengths": None},
    "recurrent_mask": {"recurrent_mask": True},
    "recurrent_mask_reverse": {"recurrent_mask": True, "reverse": True, "batch_first": True},
}


def _loss(case, arrays, wy, wh, wc):
    out = case.cell.fn(reference)(**arrays, **case.options)
    loss = np.sum(out[0] * wy) + np.sum(out[1] * wh)
    return loss + (np.sum(out[2] * wc) if case.cell.has_c else 0.0)


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
def test_reference_gradients_match_finite_differences(cell, variant):
    case = make_case(cell, T=4, B=3, I=3, H=3, seed=7, **VARIANTS[variant])
    # A random weighted sum of every output is the loss; its weights are the incoming grads.
    wy, wh, wc = case.dy, case.dh_n, case.dc_n
    _, grads = case.run(reference)
    eps = 1e-6
    names = {
        "x": "dx",
        "w_ih": "dw_ih",
        "w_hh": "dw_hh",
        "b_ih": "db_ih",
        "b_hh": "db_hh",
        "h0": "dh0",
        "c0": "dc0",
    }
    checked = 0
    for arg, grad_name in names.items():
        value = case.arrays.get(arg)
        if value is None:
            if grad_name in grads and arg.startswith("b"):
                assert grads[grad_name] is None
            continue
        numeric = np.zeros_like(value)
        for idx in np.ndindex(value.shape):
            orig = value[idx]
            value[idx] = orig + eps
            up = _loss(case, case.arrays, wy, wh, wc)
            value[idx] = orig - eps
            down = _loss(case, case.arrays, wy, wh, wc)
            value[idx] = orig
            numeric[idx] = (up - down) / (2 * eps)
        err = rel_err(grads[grad_name], numeric)
        assert err <= 1e-6, f"{grad_name}: relative error {err:.2e}"
        checked += 1
    assert checked >= 3
