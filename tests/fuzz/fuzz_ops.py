"""Fuzzing the functional API (rnncore.lstm/gru/rnn and their _forward/_backward).

Run in a subprocess by tests/test_fuzz.py (a crash fails that test instead of killing the run),
and directly under the sanitizer build in CI. Property: every call either returns what the
NumPy reference returns (NaN and Inf in the same places) or raises ValueError, TypeError or
MemoryError.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import rnncore
from rnncore import reference

from conftest import CELLS, make_case
from fuzzlib import (
    LAYOUTS,
    assert_same_numbers,
    bad_values,
    outcome,
    relayout,
    sprinkle_specials,
)


@st.composite
def calls(draw):
    """A random but valid layer call: (case, dtype), arrays in random memory layouts, with
    NaN/Inf sprinkled in some of them."""
    cell = draw(st.sampled_from(CELLS))
    T, B, I = (draw(st.integers(0, 5)) for _ in range(3))
    H = draw(st.integers(0, 5))
    case = make_case(
        cell,
        T,
        B,
        I,
        H,
        seed=draw(st.integers(0, 2**16)),
        lengths=draw(st.sampled_from(["ragged", None])) if B else None,
        reverse=draw(st.booleans()),
        batch_first=draw(st.booleans()),
        bias=draw(st.booleans()),
        h0=draw(st.booleans()),
        dh_n=draw(st.booleans()),
        recurrent_mask=draw(st.booleans()),
    )
    case = case.astype(draw(st.sampled_from([np.float32, np.float64])))
    specials = draw(st.sampled_from(["none", "none", "nan", "inf", "large"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    for name, arr in case.arrays.items():
        if arr is None:
            continue
        if specials != "none" and draw(st.booleans()):
            arr = sprinkle_specials(arr, specials, rng)
        case.arrays[name] = relayout(arr, draw(st.sampled_from(LAYOUTS)))
    case.dy = relayout(case.dy, draw(st.sampled_from(LAYOUTS)))
    case.ill_conditioned = specials == "large"
    return case


@given(case=calls())
def test_kernels_agree_with_the_reference_on_any_valid_call(case):
    frozen = {k: None if v is None else v.copy() for k, v in case.arrays.items()}
    got_out, got_grads = case.run(rnncore)
    want_out, want_grads = case.run(reference)
    for got, want, name in zip(got_out, want_out, ["y", "h_n", "c_n"]):
        assert_same_numbers(got, want, name, case.ill_conditioned)
    for key, want in want_grads.items():
        assert_same_numbers(got_grads[key], want, key, case.ill_conditioned)
    for k, v in case.arrays.items():  # inputs are never written to
        if v is not None:
            np.testing.assert_array_equal(v, frozen[k], err_msg=k)


@given(case=calls(), inference=st.booleans())
def test_inference_entry_points_equal_the_training_forward(case, inference):
    fn = case.cell.fn(rnncore)
    got = fn(**case.arrays, **case.options)
    want = case.forward(rnncore, training=not inference)[: len(got)]
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


ARGUMENTS = "x w_ih w_hh b_ih b_hh h0 c0 lengths reverse batch_first recurrent_mask training"
ARGUMENTS = ARGUMENTS.split() + ["nonlinearity", "reset_after"]


@given(
    cell=st.sampled_from(CELLS),
    argument=st.sampled_from(ARGUMENTS),
    bad=bad_values(),
    module=st.sampled_from([rnncore, reference]),
)
def test_any_bad_argument_is_refused_with_a_typed_error(cell, argument, bad, module):
    case = make_case(cell, 3, 2, 2, 3, seed=1)
    kwargs = {**case.arrays, **case.options, "training": True}
    if argument in ("c0",) and not cell.has_c:
        return
    if argument in ("nonlinearity", "reset_after") and argument not in cell.kwargs:
        return
    kwargs[argument] = bad
    out = outcome(cell.fn(module, "_forward"), **kwargs)
    if out is None:
        return
    # Accepted: then it must be a correct call (e.g. a list standing for an array).
    want = cell.fn(reference, "_forward")(**kwargs)
    for got, exp in zip(out[:-1], want[:-1]):
        assert_same_numbers(got, exp, argument)


@given(
    cell=st.sampled_from(CELLS),
    argument=st.sampled_from(["dy", "dh_n", "dc_n", "cache"]),
    bad=bad_values(),
    module=st.sampled_from([rnncore, reference]),
)
def test_backward_refuses_bad_gradients_and_caches(cell, argument, bad, module):
    case = make_case(cell, 3, 2, 2, 3, seed=2)
    if argument == "dc_n" and not cell.has_c:
        return
    cache = case.forward(module)[-1]
    kwargs = {"cache": cache, "dy": case.dy, "dh_n": case.dh_n}
    if cell.has_c:
        kwargs["dc_n"] = case.dc_n
    kwargs[argument] = bad
    grads = outcome(cell.fn(module, "_backward"), kwargs.pop("cache"), **kwargs)
    if grads is None:
        return
    assert set(grads) >= {"dx", "dw_ih", "dw_hh", "dh0"}


ABSURD = [
    ("x", lambda: np.broadcast_to(np.float32(0), (10**9, 64, 1)), (16, 1), (16, 4)),
    ("x", lambda: np.broadcast_to(np.float64(0), (1, 10**8, 1)), (3 * 512, 1), (3 * 512, 512)),
    ("w_hh", lambda: np.zeros((2, 1, 1), np.float32), (4 * 10**6, 1), (4 * 10**6, 10**6)),
]


@pytest.mark.parametrize("which", range(len(ABSURD)))
def test_absurd_sizes_raise_memory_error_before_allocating(which):
    _, make_x, w_ih_shape, w_hh_shape = ABSURD[which]
    x = make_x()
    w_ih = np.broadcast_to(np.zeros(1, x.dtype), w_ih_shape)  # views: no memory behind them
    w_hh = np.broadcast_to(np.zeros(1, x.dtype), w_hh_shape)
    fn = rnncore.lstm if w_hh_shape[0] == 4 * w_hh_shape[1] else rnncore.gru
    with pytest.raises(MemoryError, match="GiB"):
        fn(x, w_ih, w_hh)


def test_absurd_stream_batch_raises_memory_error():
    w = np.zeros((4, 1), np.float32)
    with pytest.raises(MemoryError, match="batch_size"):
        rnncore.Stream("lstm", w, w, batch_size=10**12)
