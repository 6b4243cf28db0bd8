"""Strategies, checks and the hypothesis profile shared by the fuzz targets.

The profile: a fixed, derandomised example budget by default (CI runs are reproducible);
RNNCORE_FUZZ_EXAMPLES=N runs N freshly random examples per property instead.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st

_examples = int(os.environ.get("RNNCORE_FUZZ_EXAMPLES", "0"))
settings.register_profile(
    "rnncore-fuzz",
    max_examples=_examples or 150,
    derandomize=not _examples,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.load_profile("rnncore-fuzz")

# Casting complex to real silently drops the imaginary part: a silent wrong number, so an
# error wherever the public API lets it happen.
warnings.filterwarnings("error", category=np.exceptions.ComplexWarning)

EXPECTED_ERRORS = (ValueError, TypeError, MemoryError)

# Memory layouts an array argument may arrive in; the values are always the same.
LAYOUTS = ["C", "fortran", "negative_stride", "strided", "readonly"]


def relayout(arr: np.ndarray, layout: str) -> np.ndarray:
    """`arr`'s values in the given memory layout."""
    if layout == "fortran":
        return np.asfortranarray(arr)
    if layout == "negative_stride":
        return np.ascontiguousarray(arr[::-1])[::-1] if arr.ndim else arr
    if layout == "strided":  # every other element of a buffer twice as long along the last axis
        if not arr.ndim:
            return arr
        wide = np.full(arr.shape[:-1] + (2 * arr.shape[-1],), 7.0, arr.dtype)
        wide[..., ::2] = arr
        return wide[..., ::2]
    if layout == "readonly":
        out = arr.copy()
        out.flags.writeable = False
        return out
    return np.ascontiguousarray(arr)


def sprinkle_specials(arr: np.ndarray, kind: str, rng) -> np.ndarray:
    """A copy of `arr` with about a fifth of its entries replaced by NaN, ±Inf, or scaled up
    a thousandfold ("large")."""
    out = arr.copy()
    hit = rng.random(out.shape) < 0.2
    if kind == "nan":
        out[hit] = np.nan
    elif kind == "inf":
        out[hit] = np.where(rng.random(out.shape) < 0.5, np.inf, -np.inf)[hit]
    else:
        out[hit] *= 1e3
    return out


def assert_same_numbers(got, want, name, ill_conditioned=False) -> None:
    """Same shape and dtype, NaN and ±Inf in the same places, finite values close for the
    dtype (relative to the largest finite magnitude). `ill_conditioned`: float32 inputs a
    thousandfold too large saturate the gates, where 1 - tanh² cancels and the kernels'
    and NumPy's float32 rounding legitimately part by more."""
    if want is None:
        assert got is None, f"{name}: expected None"
        return
    assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
    assert got.dtype == want.dtype, f"{name}: dtype {got.dtype} != {want.dtype}"
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=f"{name}: NaN places")
    np.testing.assert_array_equal(
        np.where(np.isinf(got), got, 0), np.where(np.isinf(want), want, 0), f"{name}: Inf places"
    )
    finite = np.isfinite(want)
    if not finite.any():
        return
    g, w = got[finite].astype(np.float64), want[finite].astype(np.float64)
    scale = max(float(np.abs(w).max()), 1.0)
    tol = 1e-9 if want.dtype == np.float64 else (1e-2 if ill_conditioned else 2e-4)
    err = float(np.abs(g - w).max()) / scale
    assert err <= tol, f"{name}: relative error {err:.3g} > {tol:g}"


def bad_values():
    """Values of the wrong type, dtype or shape for any array or flag argument."""
    return st.sampled_from(
        [
            None,
            0,
            -1,
            2.5,
            True,
            "x",
            b"\x00",
            [],
            [[1.0, 2.0], [3.0]],
            {},
            object(),
            np.float32(1.0),
            np.zeros((2, 3), np.int32),
            np.zeros((2, 3), np.complex64),
            np.zeros((2, 3), np.float16),
            np.zeros((2, 3), bool),
            np.array(["a", "b"]),
            np.array([None, 1.0], dtype=object),
            np.zeros((0,), np.float64),
            np.zeros((3, 2, 2, 1), np.float64),
            np.zeros((12, 3), np.float64),
            np.full((2,), -1, np.int64),
            np.full((2,), 99, np.int64),
            np.full((2,), np.nan),
        ]
    )


def outcome(fn, *args, **kwargs):
    """fn(*args, **kwargs), or None when it raises an expected error; either way the outcome
    is recorded as a hypothesis event, so --hypothesis-show-statistics shows how many
    examples were answered and how many refused (a property that only ever sees refusals
    tests nothing)."""
    try:
        result = fn(*args, **kwargs)
    except EXPECTED_ERRORS as e:
        event(f"refused: {type(e).__name__}")
        return None
    event("answered")
    return result


@st.composite
def damage(draw, size):
    """(kind, position, bytes) of one damage to a file of `size` bytes."""
    kind = draw(st.sampled_from(["truncate", "flip", "overwrite", "insert", "append"]))
    pos = draw(st.integers(0, max(size - 1, 0)))
    return kind, pos, draw(st.binary(min_size=1, max_size=16))


def damaged(blob: bytes, how) -> bytes:
    """`blob` with the damage `how` (from the damage strategy) done to it."""
    kind, pos, junk = how
    pos = pos % max(len(blob), 1)
    if kind == "truncate":
        return blob[:pos]
    if kind == "flip":
        return blob[:pos] + bytes([blob[pos] ^ (junk[0] | 1)]) + blob[pos + 1 :]
    if kind == "overwrite":
        return blob[:pos] + junk + blob[pos + len(junk) :]
    if kind == "insert":
        return blob[:pos] + junk + blob[pos:]
    return blob + junk
