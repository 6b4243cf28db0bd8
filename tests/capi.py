"""ctypes access to librnncore's C API for the tests (the same library C programs link)."""

from __future__ import annotations

import ctypes as C
import os

import numpy as np

import rnncore

LIB = C.CDLL(os.path.join(rnncore.get_library_dir(), "librnncore.so.0"))
F32, F64, I64 = C.POINTER(C.c_float), C.POINTER(C.c_double), C.POINTER(C.c_int64)


class Dims(C.Structure):
    _fields_ = [
        *((name, C.c_int64) for name in ("steps", "batch", "input_size", "hidden_size")),
        ("batch_first", C.c_int),
        ("reverse", C.c_int),
    ]


_FWD = ["x", "w_ih", "w_hh", "b_ih", "b_hh", "h0", "c0", "lengths", "y", "h_n", "c_n",
        "workspace"]  # fmt: skip
_BWD = ["x", "w_ih", "w_hh", "lengths", "workspace", "dy", "dh_n", "dc_n", "dx", "dw_ih",
        "dw_hh", "db_ih", "db_hh", "dh0", "dc0"]  # fmt: skip


class Forward32(C.Structure):
    _fields_ = [(f, I64 if f == "lengths" else F32) for f in _FWD]


class Forward64(C.Structure):
    _fields_ = [(f, I64 if f == "lengths" else F64) for f in _FWD]


class Backward32(C.Structure):
    _fields_ = [(f, I64 if f == "lengths" else F32) for f in _BWD]


class Backward64(C.Structure):
    _fields_ = [(f, I64 if f == "lengths" else F64) for f in _BWD]


def _sig(name, res, *args):
    fn = getattr(LIB, name)
    fn.restype, fn.argtypes = res, list(args)
    return fn


last_error = _sig("rnncore_last_error", C.c_char_p)
version = _sig("rnncore_version", C.c_char_p)
set_num_threads = _sig("rnncore_set_num_threads", None, C.c_int)
get_num_threads = _sig("rnncore_get_num_threads", C.c_int)
workspace_size = _sig("rnncore_workspace_size", C.c_int64, C.c_int, C.POINTER(Dims))
LAYER = {}
for _kind, (_f, _b) in {"f32": (Forward32, Backward32), "f64": (Forward64, Backward64)}.items():
    LAYER[_kind] = {
        "forward": _sig(
            f"rnncore_forward_{_kind}", C.c_int, C.c_int, C.POINTER(Dims), C.POINTER(_f)
        ),  # fmt: skip
        "training_forward": _sig(
            f"rnncore_training_forward_{_kind}", C.c_int, C.c_int, C.POINTER(Dims), C.POINTER(_f)
        ),  # fmt: skip
        "backward": _sig(
            f"rnncore_backward_{_kind}", C.c_int, C.c_int, C.POINTER(Dims), C.POINTER(_b)
        ),  # fmt: skip
        "Forward": _f,
        "Backward": _b,
    }
model_load = _sig("rnncore_model_load", C.c_void_p, C.c_char_p)
model_free = _sig("rnncore_model_free", None, C.c_void_p)
model_input_features = _sig("rnncore_model_input_features", C.c_int64, C.c_void_p)
model_input_steps = _sig("rnncore_model_input_steps", C.c_int64, C.c_void_p)
model_output_size = _sig("rnncore_model_output_size", C.c_int64, C.c_void_p, C.c_int64)
model_predict = _sig("rnncore_model_predict", C.c_int, C.c_void_p, F32, C.c_int64, C.c_int64,
                     F32)  # fmt: skip
model_stream = _sig("rnncore_model_stream", C.c_void_p, C.c_void_p, C.c_int64)
stream_output_size = _sig("rnncore_stream_output_size", C.c_int64, C.c_void_p)
stream_step = _sig("rnncore_stream_step", C.c_int, C.c_void_p, F32, F32)
stream_reset = _sig("rnncore_stream_reset", None, C.c_void_p)
stream_free = _sig("rnncore_stream_free", None, C.c_void_p)


def ptr(a, kind=F32):
    """A pointer to a C-contiguous array's data, or NULL for None."""
    if a is None:
        return None
    assert a.flags.c_contiguous
    return a.ctypes.data_as(kind)


def error() -> str:
    return last_error().decode()


class Model:
    """A loaded C model (freed with the object)."""

    def __init__(self, path):
        self.handle = model_load(str(path).encode())
        if not self.handle:
            raise ValueError(error())

    def predict(self, x):
        x = np.ascontiguousarray(x, np.float32)
        B, T = x.shape[:2]
        n = model_output_size(self.handle, T)
        assert n > 0, error()
        y = np.empty((B, n), np.float32)
        code = model_predict(self.handle, ptr(x), B, T, ptr(y))
        assert code == 0, error()
        return y

    def __del__(self):
        model_free(self.handle)
