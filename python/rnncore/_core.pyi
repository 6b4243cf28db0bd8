"""Type stubs for rnncore's private compiled module."""

import numpy as np

def forward(
    cell: int,
    x: np.ndarray,
    w_ih: np.ndarray,
    w_hh: np.ndarray,
    b_ih: np.ndarray | None,
    b_hh: np.ndarray | None,
    h0: np.ndarray | None,
    c0: np.ndarray | None,
    lengths: np.ndarray | None,
    reverse: bool,
    batch_first: bool,
    training: bool,
    h_mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]: ...
def backward(
    cell: int,
    x: np.ndarray,
    w_ih: np.ndarray,
    w_hh: np.ndarray,
    has_b_ih: bool,
    has_b_hh: bool,
    lengths: np.ndarray | None,
    reverse: bool,
    batch_first: bool,
    workspace: np.ndarray,
    dy: np.ndarray | None,
    dh_n: np.ndarray | None,
    dc_n: np.ndarray | None,
    h_mask: np.ndarray | None = None,
) -> tuple[
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray | None,
    np.ndarray | None,
    np.ndarray,
    np.ndarray | None,
]: ...
def set_num_threads(n: int) -> None: ...
def get_num_threads() -> int: ...
def build_info() -> dict[str, object]: ...
def supported_isas() -> list[str]: ...
def usable_cpus() -> int: ...
def pool_workers() -> int: ...
def pool_calls_alone() -> int: ...
def fma_peak_gflops(threads: int) -> float: ...
def release_workspaces() -> int: ...

class _StreamCore:
    def __init__(
        self,
        cell: int,
        w_ih: np.ndarray,
        w_hh: np.ndarray,
        b_ih: np.ndarray | None,
        b_hh: np.ndarray | None,
        batch_size: int,
    ) -> None: ...
    def step(self, x_t: np.ndarray) -> None: ...
    def state(self, which: int) -> np.ndarray | None: ...

class Stream32(_StreamCore): ...
class Stream64(_StreamCore): ...
