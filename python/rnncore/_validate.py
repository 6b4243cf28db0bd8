"""Argument checking shared by the kernels (ops.py) and the NumPy reference.

Every public function funnels its arguments through `prepare` before any memory is touched:
errors name the argument and state the expected and received shape or dtype.
"""

from __future__ import annotations

import os
import re
import threading
import warnings
from dataclasses import dataclass

import numpy as np

from . import _environment
from ._cells import CellKind

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def flag(name: str, value) -> bool:
    """`value` as a bool; TypeError naming `name` for anything but a (NumPy) bool."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__}")
    return bool(value)


def float_dtype(dtype, argument: str = "dtype") -> np.dtype:
    """`dtype` as float32 or float64; ValueError naming `argument` for anything else."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in (np.float32, np.float64):
        raise ValueError(f"{argument}: expected 'float32' or 'float64', got {dtype!r}")
    return dt


def positive_int(name: str, value) -> int:
    """`value` as an int; ValueError naming `name` unless it is a positive integer."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name}: expected a positive int, got {value!r}")
    return int(value)


def unit_rate(name: str, value) -> float:
    """`value` as a float; ValueError naming `name` unless it is a number in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"{name}: expected a float in [0, 1), got {value!r}")
    return float(value)


def integer_ids(name: str, values, n: int, what: str, in_range: str) -> np.ndarray:
    """`values` as int64 ids in [0, n): TypeError for non-integers (floats must be whole),
    ValueError naming `name` for ids out of range (`in_range`: how it states the range)."""
    x = np.asarray(values)
    if x.dtype.kind == "f":
        if not np.all(np.isfinite(x)) or np.any(x != np.round(x)):
            raise TypeError(f"{name}: expected integer {what}, got non-integer floats")
    elif x.dtype.kind not in "iub":
        raise TypeError(f"{name}: expected integer {what}, got dtype {x.dtype}")
    ids = x.astype(np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= n):
        raise ValueError(f"{name}: {in_range}, got range [{ids.min()}, {ids.max()}]")
    return ids


def _physical_memory() -> int:
    """The most memory this process may use: physical memory, or less where a cgroup limit
    or RLIMIT_AS (containers, batch and HPC jobs) is lower."""
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX: no sane bound known
        physical = 1 << 62
    return min([physical, *_environment.memory_limits().values()])


def _memory_limit() -> int:
    env = os.environ.get("RNNCORE_MEMORY_LIMIT")
    if not env:
        return _physical_memory()
    limit = parse_bytes(env)
    if limit is None:
        warnings.warn(
            f"RNNCORE_MEMORY_LIMIT: expected a positive number of bytes (such as 8000000000, "
            f"8e9, 8G or 512MiB), got {env!r}; using the machine's physical memory",
            stacklevel=2,
        )
        return _physical_memory()
    return limit


_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}


def parse_bytes(text: str) -> int | None:
    """A positive byte count from "8000000000", "8e9", "8G", "8GB" or "8GiB" (K, M, G and T
    are powers of 1024, as `ulimit` and Slurm read them); None for anything else."""
    match = re.fullmatch(r"\s*([0-9.]+(?:[eE][+-]?[0-9]+)?)\s*([KMGT]?)(?:i?B)?\s*", text, re.I)
    if not match:
        return None
    try:
        value = float(match.group(1)) * _UNITS[match.group(2).upper()]
    except ValueError:
        return None
    return int(value) if 1 <= value < float(2**63) else None


# Read once, when rnncore is imported: the system calls and the environment lookup cost
# ~1 us per layer call, a sixth of a small call's Python time.
_MEMORY_LIMIT = _memory_limit()


def memory_limit() -> int:
    """Bytes one call may plan to allocate: the machine's physical memory, or the value of
    RNNCORE_MEMORY_LIMIT when rnncore was imported. Anything larger could only end in
    swapping or the OOM killer, so it is refused before any allocation."""
    return _MEMORY_LIMIT


def check_memory(what: str, nbytes: int, detail: str) -> None:
    """MemoryError naming `what` when `nbytes` exceeds memory_limit()."""
    limit = memory_limit()
    if nbytes > limit:
        raise MemoryError(
            f"{what}: needs about {nbytes / 2**30:,.1f} GiB ({detail}), more than the "
            f"{limit / 2**30:,.1f} GiB this process may use (physical memory, its cgroup's limit "
            "or RLIMIT_AS, or RNNCORE_MEMORY_LIMIT); use smaller sizes or fewer steps per call"
        )


def _shape(shape) -> str:
    return str(tuple(int(s) for s in shape))


def as_float_array(name: str, value, dtype=None) -> np.ndarray:
    """`value` as a C-contiguous float array; `dtype` (when given) must match exactly."""
    if value is None:
        raise TypeError(f"{name}: expected an array, got None")
    if isinstance(value, np.ma.MaskedArray):  # its mask would be silently ignored
        raise TypeError(
            f"{name}: a masked array's mask would be ignored; pass x.filled(0) with lengths= "
            "(or a Masking layer) for the masked steps"
        )
    arr = value if isinstance(value, np.ndarray) else np.asarray(value)
    if arr.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name}: expected dtype float32 or float64, got {arr.dtype}")
    if arr.dtype.metadata:  # the same numbers under a dtype object the kernels do not know
        arr = arr.view(np.dtype(arr.dtype.str))
    if dtype is not None and arr.dtype != dtype:
        raise TypeError(
            f"{name}: dtype {arr.dtype} does not match x's dtype {dtype}; "
            "all arrays of one call must share a dtype"
        )
    if type(value) is np.ndarray and arr.flags.c_contiguous:
        return arr  # already what the kernels take (the common case): no copy, no conversion
    if not arr.flags.c_contiguous:  # a broadcast view can be far larger than its memory
        check_memory(name, arr.nbytes, f"a contiguous copy of shape {_shape(arr.shape)}")
    return np.ascontiguousarray(arr)


def check_shape(name: str, arr: np.ndarray, expected: tuple, meaning: str) -> None:
    if arr.shape != expected:
        raise ValueError(
            f"{name}: expected shape {meaning} = {_shape(expected)}, got {_shape(arr.shape)}"
        )


def optional_array(name, value, dtype, expected, meaning):
    if value is None:
        return None
    arr = as_float_array(name, value, dtype)
    check_shape(name, arr, expected, meaning)
    return arr


def as_lengths(value, B: int, T: int):
    if value is None:
        return None
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"lengths: expected an integer array, got dtype {arr.dtype}")
    if arr.shape != (B,):
        raise ValueError(f"lengths: expected shape (B,) = ({B},), got {_shape(arr.shape)}")
    if B and (arr.min() < 0 or arr.max() > T):
        bad = int(arr[(arr < 0) | (arr > T)][0])
        raise ValueError(f"lengths: expected values in [0, T] = [0, {T}], got {bad}")
    return np.ascontiguousarray(arr, dtype=np.int64)


@dataclass
class Call:
    """Validated, C-contiguous arguments of one layer call."""

    cell: CellKind
    x: np.ndarray  # [T, B, I] or [B, T, I]
    w_ih: np.ndarray  # [G*H, I]
    w_hh: np.ndarray  # [G*H, H]
    b_ih: np.ndarray | None  # [G*H]
    b_hh: np.ndarray | None  # [G*H]
    h0: np.ndarray | None  # [B, H]
    c0: np.ndarray | None  # [B, H], LSTM only
    lengths: np.ndarray | None  # [B] int64
    reverse: bool
    batch_first: bool
    recurrent_mask: np.ndarray | None  # [B, H] multiplies h before every h·W_hhᵀ
    T: int
    B: int
    I: int
    H: int

    @property
    def seq_shape_h(self) -> tuple:
        return (self.B, self.T, self.H) if self.batch_first else (self.T, self.B, self.H)


def prepare(
    cell: CellKind,
    x,
    w_ih,
    w_hh,
    b_ih,
    b_hh,
    h0,
    c0,
    lengths,
    reverse,
    batch_first,
    recurrent_mask=None,
) -> Call:
    reverse = flag("reverse", reverse)
    batch_first = flag("batch_first", batch_first)
    x = as_float_array("x", x)
    layout = "(B, T, I)" if batch_first else "(T, B, I)"
    if x.ndim != 3:
        raise ValueError(f"x: expected 3 dimensions {layout}, got shape {_shape(x.shape)}")
    B, T, I = x.shape if batch_first else (x.shape[1], x.shape[0], x.shape[2])
    w_hh = as_float_array("w_hh", w_hh, x.dtype)
    G = cell.gates
    if w_hh.ndim != 2 or w_hh.shape[0] != G * w_hh.shape[1]:
        raise ValueError(
            f"w_hh: expected shape (G*H, H) with G={G} gates for {cell.name}, "
            f"got {_shape(w_hh.shape)}"
        )
    H = w_hh.shape[1]
    w_ih = as_float_array("w_ih", w_ih, x.dtype)
    check_shape("w_ih", w_ih, (G * H, I), "(G*H, I)")
    b_ih = optional_array("b_ih", b_ih, x.dtype, (G * H,), "(G*H,)")
    b_hh = optional_array("b_hh", b_hh, x.dtype, (G * H,), "(G*H,)")
    h0 = optional_array("h0", h0, x.dtype, (B, H), "(B, H)")
    c0 = optional_array("c0", c0, x.dtype, (B, H), "(B, H)")
    lengths = as_lengths(lengths, B, T)
    mask = optional_array("recurrent_mask", recurrent_mask, x.dtype, (B, H), "(B, H)")
    _check_call_memory(cell, x.dtype.itemsize, T, B, I, H)
    return Call(
        cell, x, w_ih, w_hh, b_ih, b_hh, h0, c0, lengths, reverse, batch_first, mask, T, B, I, H
    )


def _check_call_memory(cell: CellKind, itemsize, T, B, I, H) -> None:
    """Refuses a call whose outputs and workspaces could not fit in memory (an upper bound of
    what forward + backward allocate: y, gates and states kept for backward, dx, packed
    weights and their gradients)."""
    G = cell.gates
    # y, gates (+ their grads), state slots, dx and the padded or contiguous copy of x
    per_step = B * (H + 2 * G * H + 3 * H + 2 * I)
    weights = 3 * G * H * (I + H + 2)  # packed copy + gradients
    nbytes = itemsize * (T * per_step + weights)
    if nbytes > memory_limit():  # formats the detail only for the error (~1 us per call)
        check_memory(cell.name, nbytes, f"T={T}, B={B}, I={I}, H={H}")


def prepare_grads(call: Call, dy, dh_n, dc_n):
    """Incoming gradients for backward, checked against the forward call."""
    dtype = call.x.dtype
    dy = optional_array("dy", dy, dtype, call.seq_shape_h, "like y")
    dh_n = optional_array("dh_n", dh_n, dtype, (call.B, call.H), "(B, H)")
    dc_n = optional_array("dc_n", dc_n, dtype, (call.B, call.H), "(B, H)")
    return dy, dh_n, dc_n


class CacheBase:
    """What a training forward keeps for its one backward."""

    producer = "forward"

    def __init__(self, call: Call):
        self.call = call
        self.used = False
        self._lock = threading.Lock()

    def claim(self, family: str) -> Call:
        """Marks the cache consumed; refuses a wrong cell or a second use."""
        made_by = self.call.cell.family
        if made_by != family:
            raise ValueError(
                f"cache: expected a cache from {family}_forward, got one from {made_by}_forward"
            )
        with self._lock:
            if self.used:
                raise ValueError(
                    "cache: already consumed by an earlier backward; run forward again "
                    "for another backward"
                )
            self.used = True
        return self.call


def check_cache(cache, cls, family: str) -> None:
    if cache is None:
        raise ValueError(f"cache: got None; call {family}_forward(..., training=True) first")
    if not isinstance(cache, cls):
        raise TypeError(
            f"cache: expected the cache returned by {family}_forward, got {type(cache).__name__}"
        )
