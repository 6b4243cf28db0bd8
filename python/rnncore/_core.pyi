"""Type stub of rnncore._core, the compiled kernels (cpp/bindings/module.cpp)."""

import enum
from typing import Any

import numpy as np

_Arr = np.ndarray
_OptArr = np.ndarray | None

class Cell(enum.IntEnum):
    """Cell kinds of the compiled kernels (rnncore::Cell); rnncore/_cells.py describes each."""

    RNN_TANH = 0
    RNN_RELU = 1
    LSTM = 2
    GRU = 3
    GRU_RESET_BEFORE = 4

_CellArg = Cell | int

def gate_count(cell: Cell) -> int: ...
def forward(
    cell: _CellArg,
    x: _Arr,
    w_ih: _Arr,
    w_hh: _Arr,
    b_ih: _OptArr,
    b_hh: _OptArr,
    h0: _OptArr,
    c0: _OptArr,
    lengths: _OptArr,
    reverse: bool,
    batch_first: bool,
    training: bool,
    recurrent_mask: _OptArr = None,
) -> tuple[_Arr, _Arr, _OptArr, _OptArr]: ...
def backward(
    cell: _CellArg,
    x: _Arr,
    w_ih: _Arr,
    w_hh: _Arr,
    has_b_ih: bool,
    has_b_hh: bool,
    lengths: _OptArr,
    reverse: bool,
    batch_first: bool,
    workspace: _Arr,
    dy: _OptArr,
    dh_n: _OptArr,
    dc_n: _OptArr,
    recurrent_mask: _OptArr = None,
) -> tuple[_Arr, _Arr, _Arr, _OptArr, _OptArr, _Arr, _OptArr]: ...
def workspace_size(cell: _CellArg, steps: int, batch: int, hidden: int) -> int: ...
def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def fma_peak_gflops(threads: int) -> float: ...
def build_info() -> dict[str, Any]: ...
def usable_cpus() -> int: ...
def pool_workers() -> int: ...
def pool_calls_alone() -> int: ...
def supported_isas() -> list[str]: ...
def release_workspaces(thread_blocks: bool = True) -> int: ...

class _StreamCore:
    def __init__(
        self,
        cell: _CellArg,
        w_ih: _Arr,
        w_hh: _Arr,
        b_ih: _OptArr,
        b_hh: _OptArr,
        batch_size: int,
    ) -> None: ...
    def step(self, x_t: _Arr) -> None: ...
    def state(self, which: int) -> _OptArr: ...

class Stream32(_StreamCore): ...
class Stream64(_StreamCore): ...
