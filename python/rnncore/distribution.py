"""Training and scoring beyond one process: data-parallel `fit` over MPI, batch scoring on Dask.

Named after Keras 3's ``keras.distribution``: set a `DataParallel` once and `Sequential.fit` /
`evaluate` run data-parallel over the MPI ranks, in the manner of Horovod::

    import rnncore
    from rnncore import distribution

    distribution.set_distribution(distribution.DataParallel())  # mpi4py's COMM_WORLD
    model.fit(x, y, batch_size=64, epochs=5)  # the same arrays on every rank

Launch it with ``mpiexec -n 4 python train.py`` (``pip install "rnncore[mpi]"`` brings mpi4py
and an MPI, so no system MPI is needed), or ``srun python train.py`` under Slurm.

`predict_dask` scores a dask array with a saved model on a Dask cluster
(``pip install "rnncore[dask]"``). Neither mpi4py nor dask is imported until used.
"""

from __future__ import annotations

import os
import sys
import time
import traceback

import numpy as np

__all__ = ["DataParallel", "distribution", "predict_dask", "set_distribution"]

_current: DataParallel | None = None


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            'DataParallel needs mpi4py and an MPI: pip install "rnncore[mpi]"'
        ) from error
    return MPI


class DataParallel:
    """Data-parallel training over the ranks of an MPI communicator, as Keras's DataParallel.

    While set (`set_distribution`), `fit` and `evaluate` split every batch among the ranks:

    - Initial weights and the shuffling generator's state are broadcast from rank 0, so all
      ranks start alike and take the same global shuffle.
    - Each step, every rank computes the gradient of its share; one Allreduce sums them
      weighted by each rank's sample count (and, in a second tiny one, the loss and metric
      sums), so the update is the single-process one, uneven last batch included, and every
      rank applies the same update: the weights stay bitwise identical.
    - Logs (History, validation, EarlyStopping, ReduceLROnPlateau) are the reduced values,
      the same on every rank; only rank 0 prints progress and writes files (`save`,
      `save_weights`, ModelCheckpoint, CSVLogger).
    - An exception on any rank inside `fit` / `evaluate` prints the error with its rank and
      aborts the whole job (``comm.Abort``) instead of leaving the other ranks waiting.
    - Unless OMP_NUM_THREADS is set, each rank uses the CPUs divided among the ranks on its
      node.

    `predict` is not split: each rank predicts the inputs it is given.
    `allreduce_seconds` and `allreduce_bytes` add up this rank's reductions (to see the
    communication's share of a step).

    Args:
        comm: An mpi4py communicator (default ``MPI.COMM_WORLD``).
        auto_shard: True: every rank passes the same arrays, `batch_size` is the global batch
            and each rank computes its share of it. False: each rank passes its own shard and
            `batch_size` is per rank (ranks with fewer batches join the remaining steps with
            none).

    Example:
        >>> distribution.set_distribution(distribution.DataParallel())
    """

    def __init__(self, comm=None, auto_shard=True):
        MPI = _mpi()
        if comm is None:
            comm = MPI.COMM_WORLD
        if not isinstance(comm, MPI.Comm):
            raise TypeError(f"comm: expected an mpi4py communicator, got {type(comm).__name__}")
        self.comm = comm
        self.auto_shard = bool(auto_shard)
        self.rank: int = comm.Get_rank()
        self.size: int = comm.Get_size()
        node = comm.Split_type(MPI.COMM_TYPE_SHARED)
        self.ranks_on_node: int = node.Get_size()
        node.Free()
        _share_cores(self.ranks_on_node)
        self.allreduce_seconds = 0.0  # time this rank spent in the step and log Allreduces
        self.allreduce_bytes = 0  # bytes this rank contributed to them

    def __repr__(self):
        return f"DataParallel(rank={self.rank}, size={self.size}, auto_shard={self.auto_shard})"

    @property
    def is_writer(self) -> bool:
        """True on the rank that prints and writes files (rank 0)."""
        return self.rank == 0

    def share(self, n: int) -> slice:
        """This rank's contiguous part of `n` items (the first n % size ranks get one more)."""
        return slice(n * self.rank // self.size, n * (self.rank + 1) // self.size)

    def sum_(self, buffer: np.ndarray) -> np.ndarray:
        """`buffer` summed over the ranks, in place (one Allreduce)."""
        # Each element's sum is formed once and shared (or with operands only swapped, which
        # IEEE addition does not notice), so every rank receives the same bits.
        start = time.perf_counter()
        self.comm.Allreduce(self._mpi.IN_PLACE, buffer, op=self._mpi.SUM)
        self.allreduce_seconds += time.perf_counter() - start
        self.allreduce_bytes += buffer.nbytes
        return buffer

    def max_(self, value: int) -> int:
        """The largest `value` over the ranks."""
        return int(self.comm.allreduce(int(value), op=self._mpi.MAX))

    def broadcast(self, arrays) -> None:
        """Every array (contiguous, the same shapes on all ranks) set to rank 0's, in place."""
        for a in arrays:
            self.comm.Bcast(a, root=0)

    def broadcast_object(self, obj):
        """Rank 0's `obj` (a small picklable value made by rnncore, never a user file)."""
        return self.comm.bcast(obj, root=0)

    def reduce_step(self, params: dict, grads: dict, stats: dict, layout) -> tuple[dict, dict]:
        """One training step's gradients and totals combined over the ranks.

        Args:
            params: {key: parameter} of the model, the same keys and order on every rank
                (empty when not training).
            grads: {key: gradient of this rank's mean loss}; empty when it had no samples.
            stats: {name: totals array} of this rank's batch share ("loss": [sum, weight]);
                empty if it had none.
            layout: [(name, floats in its totals)], "loss" first, the same on every rank.

        Returns:
            (stats summed over the ranks, gradients of the global batch's mean loss): each
            rank's gradient weighted by its share of the loss weight, as one process would
            compute on the whole batch.
        """
        keys = list(params)
        n = float(stats["loss"][1]) if stats else 0.0
        # float64 sums: which parameters have gradients, then every name's totals.
        counts = np.concatenate([np.array([k in grads for k in keys], np.float64),
                                 self._pack(stats, layout)])  # fmt: skip
        flat = self._flat_gradients(params, grads, n)
        if flat.size:
            self.sum_(flat)  # the gradient sums: the step's one large message
        self.sum_(counts)
        reduced = self._unpack(counts[len(keys) :], layout)
        total = reduced["loss"][1]
        out, start = {}, 0
        for k, present in zip(keys, counts[: len(keys)]):
            size = params[k].size
            if present:
                out[k] = (flat[start : start + size] / total).reshape(params[k].shape)
            start += size
        return reduced, out

    @staticmethod
    def _pack(totals: dict, layout) -> np.ndarray:
        """Every name's totals (zeros where this rank has none) in layout order."""
        parts = [np.asarray(totals[name], np.float64).ravel() if name in totals else
                 np.zeros(size) for name, size in layout]  # fmt: skip
        return np.concatenate(parts) if parts else np.zeros(0)

    @staticmethod
    def _unpack(flat: np.ndarray, layout) -> dict:
        out, start = {}, 0
        for name, size in layout:
            out[name] = flat[start : start + size].copy()
            start += size
        return out

    @staticmethod
    def _flat_gradients(params: dict, grads: dict, weight: float) -> np.ndarray:
        """[every parameter's gradient × weight] in key order (zeros where it has none)."""
        dtype = np.result_type(*params.values()) if params else np.float64
        flat = np.zeros(sum(p.size for p in params.values()), dtype)  # (all weights,)
        start = 0
        for k, p in params.items():
            if k in grads:
                np.multiply(grads[k].ravel(), weight, out=flat[start : start + p.size])
            start += p.size
        return flat

    def reduce_totals(self, totals: dict, layout) -> dict:
        """{name: totals array} summed over the ranks (one small Allreduce)."""
        return self._unpack(self.sum_(self._pack(totals, layout)), layout)

    def abort(self, error: BaseException) -> None:
        """Prints `error` with this rank and ends the whole job (never returns)."""
        lines = traceback.format_exception(type(error), error, error.__traceback__)
        sys.stderr.write(f"rnncore: rank {self.rank} of {self.size} failed:\n{''.join(lines)}")
        sys.stderr.write("rnncore: aborting every rank (comm.Abort)\n")
        sys.stderr.flush()
        self.comm.Abort(1)
        os._exit(1)  # Abort may return before the launcher ends the processes

    @property
    def _mpi(self):
        return _mpi()


def _share_cores(ranks_on_node: int) -> None:
    """Gives each rank its part of the node's CPUs, unless OMP_NUM_THREADS says otherwise."""
    from . import _core, _environment

    if _environment.requested_threads() is not None or ranks_on_node <= 1:
        return
    cpus = _environment.default_threads(_core.usable_cpus())
    _core.set_num_threads(max(1, cpus // ranks_on_node))


def set_distribution(value) -> None:
    """Sets the distribution `fit` and `evaluate` use (None: back to one process).

    Args:
        value: A DataParallel, or None.

    Raises:
        TypeError: anything else.
    """
    global _current
    if value is not None and not isinstance(value, DataParallel):
        raise TypeError(f"value: expected a DataParallel or None, got {type(value).__name__}")
    _current = value


def distribution() -> DataParallel | None:
    """The distribution set by `set_distribution`, or None."""
    return _current


def is_writer() -> bool:
    """Whether this process writes files and prints progress (rank 0, or no distribution)."""
    return _current is None or _current.is_writer


# ---- Dask ----

_worker_models: dict = {}  # {(path, size, mtime_ns): model}, one per worker process
_loads = 0  # model files this process has read (each worker reads its model once)


def _cached_model(path: str):
    """The model at `path`, loaded once per process (reloaded if the file changes)."""
    global _loads
    from .saving import load_model

    st = os.stat(path)
    key = (path, st.st_size, st.st_mtime_ns)
    if key not in _worker_models:
        _worker_models.clear()  # one model per worker: an older version is not kept
        _worker_models[key] = load_model(path)
        _loads += 1
    return _worker_models[key]


def _predict_block(block, path, batch_size):
    return _cached_model(path).predict(block, batch_size=batch_size)


def predict_dask(model_path, x, batch_size=32):
    """Predictions for a dask array, one task per chunk, on whatever scheduler dask uses.

    Each worker process loads the model file once and keeps it for the chunks it scores; the
    file must be readable at the same path on every worker (a shared file system).

    Args:
        model_path: A file written by `model.save`.
        x: A dask array of inputs, samples first, chunked along the samples (chunks along the
            other axes are joined).
        batch_size: Samples per forward pass inside a chunk.

    Returns:
        A lazy dask array of the predictions, chunked as x along the samples; call
        `.compute()` for a NumPy array.

    Raises:
        TypeError: x is not a dask array.
        ValueError: a bad batch_size, or x's per-sample shape does not fit the model.

    Example:
        >>> y = predict_dask("model.rnncore", da.from_array(x, chunks=10_000)).compute()
    """
    try:
        import dask.array as da
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError('predict_dask needs dask: pip install "rnncore[dask]"') from error
    from .training import _batch_size

    if not isinstance(x, da.Array):
        raise TypeError(f"x: expected a dask array, got {type(x).__name__}")
    batch_size = _batch_size(batch_size)
    path = os.path.abspath(os.fspath(model_path))
    probe = _cached_model(path)  # fails here, on the client, for a bad file
    if x.ndim < 2:
        raise ValueError(f"x: expected samples first with a per-sample shape, got {x.shape}")
    # One sample through the model gives the output's per-sample shape and dtype.
    out = probe.predict(np.zeros((1, *x.shape[1:]), dtype=x.dtype), batch_size=1)
    x = x.rechunk({axis: -1 for axis in range(1, x.ndim)})
    chunks = (x.chunks[0], *((n,) for n in out.shape[1:]))
    drop = list(range(out.ndim, x.ndim))  # input axes the output does not have
    new = list(range(x.ndim, out.ndim))  # output axes the input does not have
    return da.map_blocks(
        _predict_block, x, path, batch_size, dtype=out.dtype, chunks=chunks,
        drop_axis=drop or None, new_axis=new or None, meta=np.empty((0,) * out.ndim, out.dtype),
    )  # fmt: skip


def __dir__():  # what tab completion and dir() show: the public names only
    return __all__
