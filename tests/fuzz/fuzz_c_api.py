"""Fuzzing the C runtime's model loader (librnncore, through ctypes) with damaged files.

Property: rnncore_model_load returns NULL with a message naming the file, or a model whose
predict runs and gives outputs of the right shape; never a crash (the sanitizer tier runs
this under ASan and UBSan).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

import rnncore
from rnncore import layers as L

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the ctypes helper
import capi  # noqa: E402
from fuzzlib import damage, damaged  # noqa: E402


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    rnncore.utils.set_random_seed(0)
    model = rnncore.Sequential([L.Input((3, 2)), L.Bidirectional(L.LSTM(3, return_sequences=True)),
                                L.GRU(2), L.Dense(2, activation="softmax")])  # fmt: skip
    path = tmp_path_factory.mktemp("c") / "m.rnncore"
    model.save(path)
    return path.read_bytes()


@given(how=st.one_of(damage(4096), st.binary(max_size=64)))  # a damaged file, or junk
def test_damaged_model_files_load_correctly_or_are_refused(model_file, tmp_path_factory, how):
    path = tmp_path_factory.mktemp("damaged") / "f.rnncore"
    path.write_bytes(how if isinstance(how, bytes) else damaged(model_file, how))
    handle = capi.model_load(str(path).encode())
    if not handle:
        event("refused")
        assert str(path) in capi.error()
        return
    event("answered")
    try:
        x = np.linspace(-1, 1, 12, dtype=np.float32).reshape(2, 3, 2)
        n = capi.model_output_size(handle, 3)
        y = np.empty((2, max(n, 1)), np.float32)
        code = capi.model_predict(handle, capi.ptr(x), 2, 3, capi.ptr(y))
        assert code == 0 and n == 2, capi.error()
    finally:
        capi.model_free(handle)
