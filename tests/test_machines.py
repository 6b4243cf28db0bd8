"""Every machine, not just one: forked children, more threads than CPUs, allocation failure
on a team thread. Each case runs in a child process with a timeout, so a hang fails the test
instead of stopping the suite."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import rnncore
from rnncore import _core

from conftest import CELL_IDS, CELLS, make_case, rel_err

HERE = Path(__file__).parent


def _python(code: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, cwd=HERE)  # fmt: skip


_FORK_SCRIPT = """
    import multiprocessing as mp
    import numpy as np
    import rnncore
    from rnncore.layers import LSTM, Dense

    rnncore.set_num_threads(2)
    rng = np.random.default_rng(0)
    T, B, I, H = 20, 64, 32, 128  # large enough that the calls use two threads
    x = rng.standard_normal((T, B, I), dtype=np.float32)
    w_ih = (rng.standard_normal((4 * H, I)) * 0.1).astype(np.float32)
    w_hh = (rng.standard_normal((4 * H, H)) * 0.1).astype(np.float32)
    xs = rng.standard_normal((256, 10, 4)).astype(np.float32)
    ys = rng.standard_normal((256, 1)).astype(np.float32)

    def functional():
        y, h, c, cache = rnncore.lstm_forward(x, w_ih, w_hh, training=True)
        g = rnncore.lstm_backward(cache, np.ones_like(y))
        return [y, h, c, g["dx"], g["dw_hh"]]

    def stream():
        s = rnncore.Stream("lstm", w_ih, w_hh, batch_size=B)
        return [s.step(x_t).copy() for x_t in x[:3]]

    def fit():
        rnncore.utils.set_random_seed(7)
        model = rnncore.Sequential([rnncore.Input((10, 4)), LSTM(64), Dense(1)])
        model.compile(optimizer="adam", loss="mse")
        model.fit(xs, ys, epochs=1, batch_size=128, verbose=0)
        return model.get_weights()

    def child(q):
        q.put([[a.tobytes() for a in f()] for f in (functional, stream, fit)])

    parent = [[a.tobytes() for a in f()] for f in (functional, stream, fit)]
    assert rnncore._core.pool_workers() >= 1, "the parent's calls did not use a second thread"
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=child, args=(q,))
    p.start()
    got = q.get(timeout=60)
    p.join(10)
    assert p.exitcode == 0, p.exitcode
    assert got == parent, "the forked child's results differ from the parent's"
    print("fork ok")
"""


def test_a_child_forked_after_two_thread_calls_runs_kernels_stream_and_fit():
    """A fork() child (multiprocessing's default on Linux before 3.14, DataLoader workers,
    pre-forking servers) of a parent that used the kernels on two threads finishes its own
    functional calls, Stream steps and fit with the parent's bits (libgomp hung here)."""
    out = _python(_FORK_SCRIPT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "fork ok" in out.stdout


def test_teams_never_have_more_threads_than_usable_cpus(threads):
    """set_num_threads above the CPU count does not oversubscribe: threads would only take
    turns (30x slower for a tiny call on 2 CPUs). Results are the one-thread bits."""
    cell = CELLS[2]  # LSTM
    case = make_case(cell, 30, 64, 64, 128, seed=1).astype(np.float32)
    threads(1)
    want = case.run(rnncore)
    threads(4 * _core.usable_cpus())
    got = case.run(rnncore)
    assert _core.pool_workers() <= _core.usable_cpus() - 1
    for a, b in zip(want[0], got[0]):
        assert a is None or np.array_equal(a, b)
    for k in want[1]:
        assert (want[1][k] is None and got[1][k] is None) or np.array_equal(want[1][k], got[1][k])


def test_allocation_failure_on_a_team_thread_is_a_memory_error():
    """Under an address-space limit (RLIMIT_AS, as batch schedulers set it) a two-thread call
    whose per-thread buffers do not fit raises MemoryError; it used to abort the process
    (std::bad_alloc inside the parallel region reached std::terminate)."""
    out = _python(
        """
        import resource
        import numpy as np
        import rnncore

        rnncore.set_num_threads(2)
        H, I = 2048, 8
        rng = np.random.default_rng(0)
        x = rng.standard_normal((1, 1, I), dtype=np.float32)
        w_ih = rng.standard_normal((4 * H, I), dtype=np.float32)
        w_hh = rng.standard_normal((4 * H, H), dtype=np.float32)  # 64 MiB, packed per thread
        rnncore.lstm(x, w_ih[:1024], w_hh[:1024, :256])  # two threads: the pool's worker
        assert rnncore._core.pool_workers() >= 1  # exists before the limit
        with open("/proc/self/status") as f:
            vm = next(int(ln.split()[1]) * 1024 for ln in f if ln.startswith("VmSize"))
        resource.setrlimit(resource.RLIMIT_AS, (vm + (24 << 20), resource.RLIM_INFINITY))
        outcomes = []
        for _ in range(3):
            try:
                rnncore.lstm(x, w_ih, w_hh)
                outcomes.append("ok")
            except MemoryError:
                outcomes.append("MemoryError")
        resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        y = rnncore.lstm(x, w_ih, w_hh)[0]  # and the pool still works afterwards
        assert np.isfinite(y).all()
        print(outcomes)
        """
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "MemoryError" in out.stdout, out.stdout


def _permuted(case, perm):
    """The same case with its batch rows in the order `perm` (time-major arrays)."""
    arrays = {k: v for k, v in case.arrays.items()}
    arrays["x"] = case.arrays["x"][:, perm]
    for k in ("h0", "c0", "recurrent_mask"):
        if arrays.get(k) is not None:
            arrays[k] = case.arrays[k][perm]
    options = dict(case.options, lengths=case.options["lengths"][perm])
    extra = [None if g is None else (g[:, perm] if g.ndim == 3 else g[perm])
             for g in (case.dy, case.dh_n, case.dc_n)]  # fmt: skip
    return type(case)(case.cell, arrays, options, *extra)


@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
@pytest.mark.parametrize("shape", [(25, 40, 6, 33), (12, 9, 5, 70)], ids=["rows", "units"])
def test_ragged_batches_give_each_row_the_same_bits_in_any_row_order(cell, shape, threads):
    """Steps run over the rows still running only (rows ordered by length per call, as packed
    sequences do) and the GEMMs after the loop over real steps only; a row's results cannot
    depend on which rows share its batch or in what order: shuffling the rows shuffles every
    output and gradient row, bit for bit, on one thread and on two."""
    T, B, I, H = shape
    case = make_case(cell, T, B, I, H, seed=11, recurrent_mask=True).astype(np.float32)
    perm = np.random.default_rng(1).permutation(B)
    for n in (1, 2):
        threads(n)
        (y, h_n, *c_n), g = case.run(rnncore)
        (y2, h_n2, *c_n2), g2 = _permuted(case, perm).run(rnncore)
        assert np.array_equal(y[:, perm], y2) and np.array_equal(h_n[perm], h_n2)
        if cell.has_c:
            assert np.array_equal(c_n[0][perm], c_n2[0])
        assert np.array_equal(g["dx"][:, perm], g2["dx"])
        for k in ("dh0", "dc0"):
            if g.get(k) is not None:
                assert np.array_equal(g[k][perm], g2[k])
        for k in ("dw_ih", "dw_hh", "db_ih", "db_hh"):  # sums over rows: another order
            assert rel_err(g2[k], g[k]) < 1e-5, k


def _run_child(code, timeout=300):
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                         text=True, timeout=timeout)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_thread_count_has_an_upper_bound():
    most = 4 * rnncore._core.usable_cpus()
    before = rnncore.get_num_threads()
    with pytest.raises(ValueError, match=f"n: expected at most {most} threads"):
        rnncore.set_num_threads(most + 1)
    assert rnncore.get_num_threads() == before
    rnncore.set_num_threads(most)  # the bound itself is accepted
    rnncore.set_num_threads(before)


def test_many_calling_threads_share_a_bounded_number_of_workers():
    out = _run_child("""
        import threading, numpy as np, rnncore
        cpus = rnncore._core.usable_cpus()
        rnncore.set_num_threads(4 * cpus)
        x = np.ones((20, 64, 32), np.float32)
        w_ih, w_hh = np.ones((512, 32), np.float32) * .01, np.ones((512, 128), np.float32) * .01
        go, done = threading.Barrier(33), threading.Barrier(33)
        def call():
            go.wait()
            rnncore.lstm(x, w_ih, w_hh)
            done.wait()  # every pool still alive while the threads are counted
            done.wait()
        def count():
            with open("/proc/self/status") as f:
                return next(int(l.split()[1]) for l in f if l.startswith("Threads:"))
        base = count()  # the main thread and NumPy's BLAS threads
        threads = [threading.Thread(target=call) for _ in range(32)]
        for t in threads:
            t.start()
        go.wait()
        done.wait()
        live = count()
        done.wait()
        for t in threads:
            t.join()
        print(live - base, cpus)
    """)
    started, cpus = map(int, out.split())
    # 32 callers and at most 4 workers per CPU in all (not 32 teams' worth)
    assert started <= 32 + 4 * cpus, (started, cpus)


def test_kept_blocks_are_capped_and_released():
    out = _run_child("""
        import numpy as np, rnncore
        def rss():
            with open("/proc/self/status") as f:
                return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:")) // 1024
        rnncore.set_num_threads(2)
        small = np.ones((10, 64, 256), np.float32)
        w_ih, w_hh = np.full((1024, 256), .01, np.float32), np.full((1024, 256), .01, np.float32)
        rnncore.lstm(small, w_ih, w_hh)  # packed weights (1 MiB each) are kept ...
        freed = rnncore._core.release_workspaces()
        base = rss()
        # ... and a huge call's buffers (a 128 MiB gate buffer per thread) are not
        big = np.ones((1, 32768, 8), np.float32)
        y = rnncore.lstm(big, np.full((2048, 8), .01, np.float32),
                         np.full((2048, 512), .01, np.float32))
        del y
        print(freed, rss() - base)
    """)
    freed, grew_mib = map(int, out.split())
    assert freed >= 2 << 20, freed  # both packed weight matrices came back
    assert grew_mib < 100, grew_mib


def test_default_thread_count_follows_omp_num_threads():
    code = "import rnncore; print(rnncore.get_num_threads())"
    env = dict(__import__("os").environ, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=60)  # fmt: skip
    assert out.returncode == 0 and out.stdout.strip() == "1", out


def test_cgroup_quota_and_limits_are_read(tmp_path, monkeypatch):
    from rnncore import _environment

    v2 = tmp_path / "grp"
    v2.mkdir()
    (v2 / "cpu.max").write_text("150000 100000\n")  # 1.5 CPUs -> 2
    (v2 / "memory.max").write_text("1073741824\n")
    proc = tmp_path / "cgroup"
    proc.write_text("0::/grp\n")
    real_read = _environment._read
    monkeypatch.setattr(_environment, "_CGROUP_ROOT", str(tmp_path))
    fake = lambda p: real_read(str(proc) if p == "/proc/self/cgroup" else p)  # noqa: E731
    monkeypatch.setattr(_environment, "_read", fake)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)  # the quota alone caps the threads
    assert _environment.cpu_quota() == 2
    assert _environment.memory_limits()["cgroup"] == 1 << 30
    assert _environment.default_threads(8) == 2
    (v2 / "cpu.max").write_text("max 100000\n")
    assert _environment.cpu_quota() is None


def test_memory_check_uses_the_address_space_limit():
    code = textwrap.dedent("""
        import resource, numpy as np
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, resource.RLIM_INFINITY))
        import rnncore
        x = np.zeros((2000, 64, 1), np.float32)
        w_ih, w_hh = np.zeros((4096, 1), np.float32), np.zeros((4096, 1024), np.float32)
        try:  # about 6 GiB for y, the gates and their gradients: over the 3 GiB limit
            rnncore.lstm_forward(x, w_ih, w_hh)
        except MemoryError as e:
            print("refused:", e)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    # refused by the pre-check (which names its estimate), not by a failed allocation
    assert out.returncode == 0 and "needs about" in out.stdout, out.stdout + out.stderr


@pytest.mark.skipif(sys.version_info >= (3, 13), reason="the private module is renamed there")
def test_import_in_a_sub_interpreter_fails_fast_instead_of_hanging():
    code = textwrap.dedent("""
        import _xxsubinterpreters as interpreters
        interp = interpreters.create()
        try:
            interpreters.run_string(interp, "import rnncore")
        except Exception as e:
            print(type(e).__name__, e)
    """)
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "ImportError" in out.stdout and "sub-interpreter" in out.stdout, out.stdout


def test_threadpoolctl_limits_the_kernels():
    code = textwrap.dedent("""
        import rnncore
        from threadpoolctl import threadpool_info, threadpool_limits
        assert any(i["internal_api"] == "rnncore" for i in threadpool_info())
        before = rnncore.get_num_threads()
        with threadpool_limits(limits=1):
            inside = rnncore.get_num_threads()
        print(before, inside, rnncore.get_num_threads())
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    before, inside, after = map(int, out.stdout.split())
    assert inside == 1 and after == before
