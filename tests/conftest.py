"""Shared helpers: random layer arguments, error measure, cell table, peer import."""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field

import numpy as np
import pytest

import rnncore
from rnncore import _cells, reference


@dataclass(frozen=True)
class CellSpec:
    name: str  # test id
    family: str  # rnn | lstm | gru: the function family
    gates: int
    kwargs: dict = field(default_factory=dict)  # nonlinearity / reset_after

    @property
    def has_c(self) -> bool:
        return self.family == "lstm"

    def fn(self, module, suffix=""):
        return getattr(module, self.family + suffix)


CELLS = [CellSpec(c.name, c.family, c.gates, dict(c.options)) for c in _cells.CELLS]
CELL_IDS = [c.name for c in CELLS]


def rel_err(a, b, floor=0.0) -> float:
    """Largest absolute difference relative to the largest magnitude of the expected array.

    `floor` bounds that scale from below: float32 results that cancel down to tiny values
    (dx = 2e-4 from O(0.1) terms at T=B=I=H=1) are then judged by an absolute error."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    if b.size == 0:
        return 0.0
    scale = max(float(np.max(np.abs(b))), floor)
    return float(np.max(np.abs(a - b)) / (scale if scale > 0 else 1.0))


@dataclass
class Case:
    """Positional arrays and keyword options of one layer call, plus output gradients."""

    cell: CellSpec
    arrays: dict  # x, w_ih, w_hh, b_ih, b_hh, h0 (, c0): arrays or None
    options: dict  # lengths, reverse, batch_first + the cell's kwargs
    dy: np.ndarray
    dh_n: np.ndarray | None
    dc_n: np.ndarray | None

    def astype(self, dtype) -> Case:
        cast = {k: (None if v is None else v.astype(dtype)) for k, v in self.arrays.items()}
        grads = [None if g is None else g.astype(dtype) for g in (self.dy, self.dh_n, self.dc_n)]
        return Case(self.cell, cast, self.options, *grads)

    def forward(self, module, training=True):
        return self.cell.fn(module, "_forward")(**self.arrays, **self.options, training=training)

    def run(self, module):
        """Forward + backward; returns (outputs tuple without the cache, gradient dict)."""
        out = self.forward(module)
        extra = {"dc_n": self.dc_n} if self.cell.has_c else {}
        grads = self.cell.fn(module, "_backward")(out[-1], self.dy, dh_n=self.dh_n, **extra)
        return out[:-1], grads


def make_case(
    cell: CellSpec,
    T,
    B,
    I,
    H,
    *,
    seed=0,
    lengths="ragged",
    reverse=False,
    batch_first=False,
    bias=True,
    h0=True,
    dh_n=True,
    recurrent_mask=False,
) -> Case:
    rng = np.random.default_rng(seed)
    GH = cell.gates * H
    scale = 1.0 / np.sqrt(max(H, 1))
    x_shape = (B, T, I) if batch_first else (T, B, I)
    arrays = {
        "x": rng.standard_normal(x_shape),
        "w_ih": rng.uniform(-scale, scale, (GH, I)),
        "w_hh": rng.uniform(-scale, scale, (GH, H)),
        "b_ih": rng.uniform(-scale, scale, GH) if bias else None,
        "b_hh": rng.uniform(-scale, scale, GH) if bias else None,
        "h0": rng.standard_normal((B, H)) * 0.5 if h0 else None,
    }
    if cell.has_c:
        arrays["c0"] = rng.standard_normal((B, H)) * 0.5 if h0 else None
    if recurrent_mask:  # variational dropout with p = 0.3
        arrays["recurrent_mask"] = (rng.random((B, H)) >= 0.3) / 0.7
    if isinstance(lengths, str) and lengths == "ragged":
        lens = rng.integers(0, T + 1, B)
        lens[: min(B, 2)] = [T, 0][: min(B, 2)]  # the extremes: a full row and an empty one
        lengths = lens
    options = {"lengths": lengths, "reverse": reverse, "batch_first": batch_first, **cell.kwargs}
    dy_shape = (B, T, H) if batch_first else (T, B, H)
    return Case(
        cell,
        arrays,
        options,
        rng.standard_normal(dy_shape),
        rng.standard_normal((B, H)) if dh_n else None,
        rng.standard_normal((B, H)) if (dh_n and cell.has_c) else None,
    )


def import_peer(name):
    """The module `name` (torch, onnx, onnxruntime, h5py), or a skip; with
    RNNCORE_REQUIRE_PEERS=1 a missing peer is a failure."""
    try:
        return importlib.import_module(name)
    except ImportError:
        if os.environ.get("RNNCORE_REQUIRE_PEERS") == "1":
            pytest.fail(f"RNNCORE_REQUIRE_PEERS=1 but {name} is not installed")
        pytest.skip(f"{name} is not installed (pip install '.[compare]')")


def import_torch():
    return import_peer("torch")


@pytest.fixture
def threads():
    """Restores the kernel thread count after a test changes it."""
    before = rnncore.get_num_threads()
    yield rnncore.set_num_threads
    rnncore.set_num_threads(before)


__all__ = [
    "CELLS",
    "CELL_IDS",
    "Case",
    "CellSpec",
    "import_torch",
    "make_case",
    "reference",
    "rel_err",
]


def assert_trains_like_keras(ours, theirs, keras, x, y, lr=0.1, batch_size=8, epochs=2,
                             rtol=1e-4, atol=2e-6):  # fmt: skip
    """SGD(lr) on mse for `epochs` unshuffled epochs in both libraries (same starting
    weights), then every weight equal within rtol/atol."""
    import rnncore

    ours.compile(rnncore.optimizers.SGD(lr), "mse")
    theirs.compile(keras.optimizers.SGD(lr), "mse")
    ours.fit(x, y, batch_size=batch_size, epochs=epochs, shuffle=False, verbose=0)
    theirs.fit(x, y, batch_size=batch_size, epochs=epochs, shuffle=False, verbose=0)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)
