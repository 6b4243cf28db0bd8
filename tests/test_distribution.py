"""Data-parallel fit over MPI (2 ranks under mpiexec) and batch scoring on a Dask cluster."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

import rnncore
from rnncore import distribution, layers

from conftest import import_peer

WORKER = pathlib.Path(__file__).resolve().parent / "mpi_fit.py"


def _mpiexec():
    import_peer("mpi4py")
    here = pathlib.Path(sys.executable).parent / "mpiexec"  # the mpich wheel's, in the venv
    found = str(here) if here.exists() else shutil.which("mpiexec")
    if found is None:
        pytest.fail('mpi4py is installed but no mpiexec: pip install "rnncore[mpi]"')
    return found


def _run(scenario, out, ranks=2, check=True):
    out.mkdir(exist_ok=True)
    if ranks:
        cmd = [_mpiexec(), "-n", str(ranks), sys.executable, str(WORKER), scenario, str(out)]
    else:
        cmd = [sys.executable, str(WORKER), scenario, str(out), "--single"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def _load(path):
    with np.load(path) as f:
        weights = [f[k] for k in sorted((k for k in f.files if k.startswith("w")),
                                        key=lambda k: int(k[1:]))]  # fmt: skip
        return weights, json.loads(str(f["info"])), int(f["threads"])


def _assert_close(a, b, rel):
    for wa, wb in zip(a, b):
        scale = np.maximum(np.abs(wb), 1e-3)
        assert np.max(np.abs(wa - wb) / scale) < rel


def test_two_ranks_train_what_one_process_trains(tmp_path):
    _run("auto", tmp_path / "mpi")
    _run("auto", tmp_path / "one", ranks=0)
    (w0, info0, threads0), (w1, info1, _) = (_load(tmp_path / "mpi" / f"rank{r}.npz")
                                             for r in (0, 1))  # fmt: skip
    w_single, info_single, _ = _load(tmp_path / "one" / "single.npz")
    assert len(w0) == len(w_single) == 5
    for a, b in zip(w0, w1):
        assert np.array_equal(a, b)  # ranks agree bit for bit
    _assert_close(w0, w_single, 1e-9)  # float64, 2 epochs, uneven last batch (6 + 7 rows)
    assert info0["history"] == info1["history"]  # identical History on every rank
    for key, values in info_single["history"].items():
        np.testing.assert_allclose(info0["history"][key], values, rtol=1e-9)
    for key, value in info_single["evaluate"].items():
        np.testing.assert_allclose(info0["evaluate"][key], value, rtol=1e-9)
    # Only rank 0 writes files: one checkpoint per epoch, one CSV log with one row per epoch.
    assert [pathlib.Path(p).name for p in info0["written"]] == ["ckpt-1.rnncore",
                                                                "ckpt-2.rnncore"]  # fmt: skip
    assert info1["written"] == []
    assert len((tmp_path / "mpi" / "log.csv").read_text().splitlines()) == 3
    if "OMP_NUM_THREADS" not in os.environ:  # the node's CPUs divided between its 2 ranks
        assert threads0 == max(1, rnncore._core.usable_cpus() // 2)


def test_weights_really_train(tmp_path):
    _run("auto", tmp_path)
    trained, _, _ = _load(tmp_path / "rank0.npz")
    start = rnncore.models.load_model(tmp_path / "ckpt-1.rnncore").get_weights()
    assert max(float(np.abs(a - b).max()) for a, b in zip(trained, start)) > 1e-4


def test_own_shards_per_rank_batches(tmp_path):
    _run("own-shard", tmp_path / "mpi")  # ranks of 100 and 60 rows: 4 steps and 3
    _run("own-shard", tmp_path / "one", ranks=0)
    w0, _, _ = _load(tmp_path / "mpi" / "rank0.npz")
    w1, _, _ = _load(tmp_path / "mpi" / "rank1.npz")
    for a, b in zip(w0, w1):
        assert np.array_equal(a, b)
    _assert_close(w0, _load(tmp_path / "one" / "single.npz")[0], 1e-9)


def test_a_failing_rank_aborts_the_job(tmp_path):
    done = _run("fail", tmp_path, check=False)  # rank 0 waits in the next Allreduce
    assert done.returncode != 0
    assert "rnncore: rank 1 of 2 failed" in done.stderr
    assert "deliberate failure on rank 1" in done.stderr
    assert not (tmp_path / "rank0.npz").exists()


def test_share_covers_every_row_once():
    import_peer("mpi4py")
    dp = distribution.DataParallel()
    for size in (1, 2, 3, 5):
        for n in (0, 1, 7, 64):
            parts = []
            for rank in range(size):
                dp.rank, dp.size = rank, size
                parts.extend(range(n)[dp.share(n)])
            assert parts == list(range(n))


def test_clear_errors():
    import_peer("mpi4py")
    with pytest.raises(TypeError, match="comm: expected an mpi4py communicator"):
        distribution.DataParallel(comm="world")
    with pytest.raises(TypeError, match="value: expected a DataParallel or None"):
        distribution.set_distribution("data-parallel")
    assert distribution.distribution() is None
    with pytest.raises(TypeError, match="x: expected a dask array"):
        distribution.predict_dask("model.rnncore", np.zeros((2, 3, 1)))


def _saved_model(tmp_path):
    rnncore.utils.set_random_seed(0)
    model = rnncore.Sequential([rnncore.Input((7, 3)), layers.GRU(8), layers.Dense(2)])
    path = tmp_path / "model.rnncore"
    model.save(path)
    return model, path


def test_predict_dask_on_a_local_cluster(tmp_path, monkeypatch):
    # LocalCluster sets OMP_NUM_THREADS=1 in this process for its workers and leaves it set;
    # monkeypatch puts the environment back for the tests that follow.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    import_peer("dask")
    distributed = import_peer("distributed")
    import dask.array as da

    model, path = _saved_model(tmp_path)
    x = np.random.default_rng(0).standard_normal((103, 7, 3)).astype(np.float32)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:  # fmt: skip
        with distributed.Client(cluster) as client:
            y = distribution.predict_dask(path, da.from_array(x, chunks=(20, 7, 3)), batch_size=8)
            assert isinstance(y, da.Array) and y.shape == (103, 2) and y.chunks[0][0] == 20
            got = y.compute()
            loads = client.run(lambda: rnncore.distribution._loads)
    np.testing.assert_array_equal(got, model.predict(x, batch_size=8))
    assert sorted(loads.values()) == [1, 1]  # 6 chunks, each worker read the file once


def test_predict_dask_shapes_and_errors(tmp_path):
    import_peer("dask")
    import dask
    import dask.array as da

    model, path = _saved_model(tmp_path)
    x = np.random.default_rng(1).standard_normal((30, 7, 3)).astype(np.float32)
    with dask.config.set(scheduler="synchronous"):
        chunked = da.from_array(x, chunks=(8, 4, 3))  # the step axis split too: joined
        np.testing.assert_array_equal(distribution.predict_dask(path, chunked).compute(),
                                      model.predict(x))  # fmt: skip
    with pytest.raises(ValueError, match="batch_size"):
        distribution.predict_dask(path, chunked, batch_size=0)
    with pytest.raises(ValueError, match="x: expected input shape"):
        distribution.predict_dask(path, da.zeros((4, 7, 5), chunks=2))
    with pytest.raises(FileNotFoundError):
        distribution.predict_dask(tmp_path / "missing.rnncore", chunked)


EXAMPLES = WORKER.parents[1] / "examples"


def test_mpi_example_runs_on_two_ranks(tmp_path):
    out = tmp_path / "m.rnncore"
    cmd = [_mpiexec(), "-n", "2", sys.executable, str(EXAMPLES / "mpi_train.py"), "--quick",
           "--out", str(out)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("Epoch 1/2") == 1  # rank 0 alone prints
    assert "2 rank(s) x" in done.stdout and out.exists()


def test_dask_example_runs(tmp_path):
    import_peer("distributed")
    done = subprocess.run([sys.executable, str(EXAMPLES / "dask_predict.py"), "--quick"],
                          capture_output=True, text=True, timeout=240)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "scored 2000 sequences in 8 chunks on 2 workers" in done.stdout
    assert float(done.stdout.rsplit("max difference ", 1)[1]) < 1e-5
