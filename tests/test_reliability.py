"""Reliability: concurrency, determinism, resource hygiene, crash safety, numerical safety.

(Fuzzing and the sanitizer build live in tests/fuzz and .ci/run.)
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import rnncore
from rnncore import callbacks as C
from rnncore import layers as L
from rnncore import reference

from conftest import CELL_IDS, CELLS, make_case, rel_err

HERE = Path(__file__).parent

# ---- concurrency ----------------------------------------------------------------------------


def _digest(arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        if a is not None:
            h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _run_digest(case) -> str:
    out, grads = case.run(rnncore)
    return _digest(list(out) + [grads[k] for k in sorted(grads)])


@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
def test_eight_threads_on_shared_weights_equal_serial_calls(cell):
    """Eight Python threads run forward + backward on the same weight arrays (different
    inputs) at once; every result is bitwise the serial one."""
    base = make_case(cell, 12, 4, 9, 16, seed=5).astype(np.float32)
    cases = []
    for i in range(8):
        case = make_case(cell, 12, 4, 9, 16, seed=100 + i).astype(np.float32)
        for name in ("w_ih", "w_hh", "b_ih", "b_hh"):
            case.arrays[name] = base.arrays[name]  # the very same arrays
        cases.append(case)
    serial = [_run_digest(c) for c in cases]
    for _ in range(3):
        with ThreadPoolExecutor(8) as pool:
            assert list(pool.map(_run_digest, cases)) == serial


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_each_thread_stepping_its_own_stream_equals_serial(cell):
    G = {"lstm": 4, "gru": 3, "rnn": 1}[cell]
    rng = np.random.default_rng(0)
    w = [rng.uniform(-0.3, 0.3, s).astype(np.float32) for s in [(G * 32, 8), (G * 32, 32)]]
    xs = [rng.standard_normal((50, 1, 8)).astype(np.float32) for _ in range(8)]

    def stream_run(x):
        s = rnncore.Stream(cell, *w)
        return _digest([s.step(x[t]) for t in range(len(x))])

    serial = [stream_run(x) for x in xs]
    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(stream_run, xs)) == serial


def test_two_threads_kernel_calls_overlap(threads):
    """While thread A is inside one long kernel call, thread B completes many kernel calls
    of its own: the kernels release the GIL, so two threads' calls run at the same time.
    (Were the GIL held, B could finish only the few calls that fit in one 5 ms switch
    interval after A returned.)"""
    threads(1)
    long_case = make_case(CELLS[2], 1500, 32, 64, 128, seed=0, lengths=None).astype(np.float32)
    short_case = make_case(CELLS[2], 4, 2, 8, 8, seed=1, lengths=None).astype(np.float32)
    inside, done, completed = threading.Event(), threading.Event(), []

    def a():
        inside.set()
        long_case.cell.fn(rnncore)(**long_case.arrays, **long_case.options)
        done.set()

    def b():
        inside.wait()
        while not done.is_set():
            short_case.cell.fn(rnncore)(**short_case.arrays, **short_case.options)
            if not done.is_set():
                completed.append(1)

    ta, tb = threading.Thread(target=a), threading.Thread(target=b)
    tb.start()
    ta.start()
    ta.join()
    tb.join()
    assert len(completed) >= 50, f"only {len(completed)} calls of B ran during A's call"


def test_a_model_predicts_from_several_threads_at_once():
    model = rnncore.Sequential(
        [
            L.Input((None, 3)),
            L.Bidirectional(L.LSTM(8, return_sequences=True, seed=1)),
            L.GRU(6, seed=2),
            L.Dense(2, seed=3),
        ]  # fmt: skip
    )
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((5, 7 + i, 3)).astype(np.float32) for i in range(8)]
    serial = [model.predict(x) for x in xs]
    for _ in range(3):
        with ThreadPoolExecutor(8) as pool:
            for got, want in zip(pool.map(model.predict, xs), serial):
                np.testing.assert_array_equal(got, want)


# ---- determinism ----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
def test_bitwise_identical_for_1_2_and_4_threads_and_repeated_calls(cell, dtype, threads):
    case = make_case(cell, 20, 9, 33, 70, seed=11).astype(dtype)  # H split over the threads
    digests = set()
    for n in (1, 2, 4, 2, 1):
        threads(n)
        digests.add(_run_digest(case))
    assert len(digests) == 1


_ISA_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    sys.path.insert(0, {tests!r})
    import rnncore
    from conftest import CELLS, make_case
    out = {{}}
    for cell in CELLS:
        for dtype in (np.float32, np.float64):
            o, g = make_case(cell, 15, 5, 33, 37, seed=3).astype(dtype).run(rnncore)
            arrays = [a for a in list(o) + [g[k] for k in sorted(g)] if a is not None]
            out[cell.name + "/" + np.dtype(dtype).name] = [a.tolist() for a in arrays]
    print(json.dumps(out))
    """
)


def _results_under(isa: str) -> dict:
    env = {**os.environ, "RNNCORE_ISA": isa}
    proc = subprocess.run([sys.executable, "-c", _ISA_SCRIPT.format(tests=str(HERE))],
                          capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_results_across_instruction_sets_and_processes():
    """AVX-512 and AVX2 give bitwise identical results (both fuse multiply-add and sum in
    the same order); the portable path has no FMA, so it rounds differently: within 1e-5
    (float32) and 1e-12 (float64) of the others. A second process reproduces the first.
    Which paths run is asked of the module, so an AVX2-only CPU checks avx2 and generic."""
    from rnncore import _core

    supported = _core.supported_isas()
    assert "generic" in supported
    avx2, generic = _results_under("avx2"), _results_under("generic")
    if "avx512" in supported:
        assert _results_under("avx512") == avx2
    assert _results_under("avx2") == avx2  # across runs
    for key, arrays in avx2.items():
        tol = 1e-5 if key.endswith("float32") else 1e-12
        for got, want in zip(generic[key], arrays):
            assert rel_err(np.array(got), np.array(want), floor=1.0) <= tol, key


# ---- resource hygiene -----------------------------------------------------------------------


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


needs_proc = pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc")


@needs_proc
def test_ten_thousand_forward_backward_calls_keep_memory_flat():
    case = make_case(CELLS[2], 20, 4, 8, 16, seed=0).astype(np.float32)  # ~40 KB per call
    for _ in range(500):  # warm up allocator pools
        case.run(rnncore)
    before = _rss_bytes()
    for _ in range(10_000):
        case.run(rnncore)
    grown = _rss_bytes() - before
    assert grown < 16 * 2**20, f"resident memory grew by {grown / 2**20:.1f} MiB"


@needs_proc
def test_streams_created_and_dropped_keep_memory_flat():
    w_ih, w_hh = np.ones((4 * 256, 128), np.float32), np.ones((4 * 256, 256), np.float32)
    x = np.ones(128, np.float32)
    for _ in range(50):
        rnncore.Stream("lstm", w_ih, w_hh).step(x)
    before = _rss_bytes()
    for _ in range(1000):  # each holds ~1.5 MB of packed weights
        rnncore.Stream("lstm", w_ih, w_hh).step(x)
    assert _rss_bytes() - before < 16 * 2**20


@needs_proc
def test_hundred_save_load_cycles_keep_memory_and_file_handles_flat(tmp_path):
    model = rnncore.Sequential([L.Input((None, 4)), L.LSTM(32, seed=0), L.Dense(2, seed=1)])
    x = np.ones((2, 5, 4), np.float32)
    want = model.predict(x)
    for _ in range(10):
        model.save(tmp_path / "m.rnncore")
        rnncore.models.load_model(tmp_path / "m.rnncore")
    rss, fds = _rss_bytes(), _open_fds()
    for _ in range(100):
        model.save(tmp_path / "m.rnncore")
        model.save_weights(tmp_path / "w.safetensors")
        loaded = rnncore.models.load_model(tmp_path / "m.rnncore")
        loaded.load_weights(tmp_path / "w.safetensors")
    np.testing.assert_array_equal(loaded.predict(x), want)
    assert _open_fds() == fds
    assert _rss_bytes() - rss < 16 * 2**20
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.rnncore", "w.safetensors"]


# ---- crash safety ---------------------------------------------------------------------------

_TRAIN = """
import sys, time
import numpy as np
import rnncore
from rnncore import callbacks as C, layers as L
rnncore.utils.set_random_seed(0)
x = np.random.default_rng(0).standard_normal((256, 20, 3)).astype(np.float32)
y = x.sum(axis=1)
model = rnncore.Sequential([L.Input((20, 3)), L.LSTM(32), L.Dense(3)])
model.compile("adam", "mse")
"""

_KILL_DURING_SAVE = (
    _TRAIN
    + """
from rnncore import _safetensors

class HangOnSecondSave(C.Callback):
    # after the first checkpoint is on disk, the next save writes half its bytes and hangs
    def on_epoch_end(self, epoch, logs=None):
        if epoch != 0:
            return
        real_write = _safetensors.atomic_write

        def half_then_hang(path, *a, **k):
            cm = real_write(path, *a, **k)
            f = cm.__enter__()
            f.write(b"\\0" * 4096)
            f.flush()
            print("SAVING", flush=True)
            time.sleep(600)

        _safetensors.atomic_write = half_then_hang
        print("SAVED", flush=True)

model.fit(x, y, epochs=3, batch_size=64, verbose=0,
          callbacks=[C.ModelCheckpoint(sys.argv[1], monitor="loss"), HangOnSecondSave()])
"""
)


def _wait_for(proc, word):
    for line in proc.stdout:
        if line.strip() == word:
            return
    raise AssertionError(f"the child never printed {word}: {proc.stderr.read()}")


def test_sigkill_while_checkpointing_leaves_the_previous_checkpoint_loadable(tmp_path):
    path = tmp_path / "ckpt.rnncore"
    proc = subprocess.Popen([sys.executable, "-c", _KILL_DURING_SAVE, str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        _wait_for(proc, "SAVED")
        first = path.read_bytes()
        _wait_for(proc, "SAVING")  # the second save is half-written to a temporary file
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert path.read_bytes() == first  # the checkpoint was never touched in place
    model = rnncore.models.load_model(path)
    assert np.isfinite(model.predict(np.ones((1, 20, 3), np.float32))).all()


_CTRL_C_IN_FIT = (
    _TRAIN
    + """
import signal
# Ctrl-C must raise KeyboardInterrupt even when the launcher ignored SIGINT (a shell's
# background job inherits SIG_IGN, and Python then leaves it ignored).
signal.signal(signal.SIGINT, signal.default_int_handler)
class Announce(C.Callback):  # at the start of epoch 2: the first is in the history by then
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            print("EPOCH1", flush=True)

try:
    model.fit(x, y, epochs=10_000, batch_size=8, verbose=0, callbacks=[Announce()])
    print("NOT INTERRUPTED")
except KeyboardInterrupt:
    h = model.history.history
    assert len(h["loss"]) >= 1 and all(np.isfinite(h["loss"])), h
    assert model.stop_training
    assert np.isfinite(model.predict(x[:4])).all()
    model.fit(x[:64], y[:64], epochs=1, verbose=0)  # still trainable
    print("CLEAN", len(h["loss"]))
"""
)


def test_ctrl_c_during_fit_stops_cleanly_with_history_intact():
    proc = subprocess.Popen([sys.executable, "-c", _CTRL_C_IN_FIT],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        _wait_for(proc, "EPOCH1")
        proc.send_signal(signal.SIGINT)  # lands anywhere: in a kernel, the optimizer, Python
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert out.startswith("CLEAN"), (out, err)


def test_keyboard_interrupt_mid_epoch_runs_callbacks_and_keeps_history():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((64, 6, 2)), rng.standard_normal((64, 1))
    model = rnncore.Sequential([L.Input((6, 2)), L.GRU(4), L.Dense(1)])
    model.compile("sgd", "mse")
    events = []

    class Interrupt(C.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if len(model.history.epoch) == 2 and batch == 1:
                raise KeyboardInterrupt

        def on_train_end(self, logs=None):
            events.append("train_end")

    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, epochs=5, batch_size=16, verbose=0, callbacks=[Interrupt()])
    assert events == ["train_end"]
    assert model.history.epoch == [0, 1] and len(model.history.history["loss"]) == 2
    assert np.isfinite(model.predict(x)).all()


# ---- numerical safety -----------------------------------------------------------------------


@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
def test_ten_thousand_steps_with_saturating_inputs_stay_finite(cell):
    """T = 10,000 with weights and inputs large enough to saturate every gate: no overflow,
    no NaN, bounded states for the tanh cells, and float64 still equal to the reference."""
    case = make_case(cell, 10_000, 2, 3, 4, seed=2, lengths=None)
    case.arrays["x"] = case.arrays["x"] * 1e3
    for name in ("w_ih", "w_hh"):
        case.arrays[name] = case.arrays[name] * 10
    if cell.name == "rnn_relu":  # relu is unbounded by design: keep it contracting
        case.arrays["w_hh"] = case.arrays["w_hh"] * 0.02
    for dtype in (np.float32, np.float64):
        (y, h_n, *_), grads = case.astype(dtype).run(rnncore)
        assert np.isfinite(y).all() and all(
            np.isfinite(g).all() for g in grads.values() if g is not None
        )
        if cell.name != "rnn_relu":
            assert np.abs(y).max() <= 1
    (want_y, *_), want_grads = case.run(reference)
    (got_y, *_), got_grads = case.run(rnncore)
    assert rel_err(got_y, want_y) <= 1e-9
    assert rel_err(got_grads["dw_hh"], want_grads["dw_hh"], floor=1.0) <= 1e-8


@pytest.mark.parametrize("v", [1e4, 1e30, 3e38, np.inf])
def test_sigmoid_and_tanh_saturate_exactly_in_float32(v):
    """One LSTM step whose gate pre-activations are ±v: the gates reach exactly 0 and 1."""
    w_ih = np.array([[1.0], [-1.0], [1.0], [1.0]], np.float32)  # i, f, g, o = σ(v), σ(-v), ...
    y, h, c = rnncore.lstm(np.full((1, 1, 1), v, np.float32), w_ih, np.zeros((4, 1), np.float32))
    assert c[0, 0] == 1.0 and abs(h[0, 0] - np.tanh(1.0)) < 1e-6


@pytest.mark.parametrize("option", ["clipnorm", "clipvalue", "global_clipnorm"])
def test_gradient_clipping_bounds_every_update_in_fit(option):
    """Targets a million times too large: without clipping SGD blows the weights up; with
    it every step moves the weights by at most learning_rate * clip."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((32, 5, 2)), rng.standard_normal((32, 1)) * 1e6
    model = rnncore.Sequential([L.Input((5, 2)), L.SimpleRNN(4, seed=0), L.Dense(1, seed=1)])
    model.compile(rnncore.optimizers.SGD(0.1, **{option: 0.5}), "mse")
    steps = []

    class Watch(C.Callback):
        def on_train_begin(self, logs=None):
            self.last = model.get_weights()

        def on_train_batch_end(self, batch, logs=None):
            now = model.get_weights()
            steps.append([a - b for a, b in zip(now, self.last)])
            self.last = now

    model.fit(x, y, epochs=2, batch_size=8, verbose=0, shuffle=False, callbacks=[Watch()])
    for deltas in steps:
        if option == "clipvalue":
            assert max(np.abs(d).max() for d in deltas) <= 0.1 * 0.5 * (1 + 1e-6)
        elif option == "clipnorm":
            assert max(np.linalg.norm(d) for d in deltas) <= 0.1 * 0.5 * (1 + 1e-6)
        else:
            total = np.sqrt(sum(np.linalg.norm(d) ** 2 for d in deltas))
            assert total <= 0.1 * 0.5 * (1 + 1e-6)
    assert all(np.isfinite(w).all() for w in model.get_weights())


def test_terminate_on_nan_stops_at_the_first_nan_batch(capsys):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((40, 4, 2)), rng.standard_normal((40, 1))
    y[17] = np.nan  # batch 2 (rows 16..23) has a NaN target: its loss is NaN
    model = rnncore.Sequential([L.Input((4, 2)), L.LSTM(3), L.Dense(1)])
    model.compile("adam", "mse")
    seen = []

    class Count(C.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append((batch, logs["loss"]))

    model.fit(x, y, epochs=3, batch_size=8, shuffle=False, verbose=0,
              callbacks=[C.TerminateOnNaN(), Count()])  # fmt: skip
    assert [b for b, _ in seen] == [0, 1, 2] and np.isnan(seen[-1][1])
    assert model.history.epoch == [0]  # the epoch ends there and no other starts
    assert "Invalid loss" in capsys.readouterr().out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_denormals_are_flushed_in_kernels_and_the_callers_mode_restored(dtype, threads):
    """Inputs below the normal range read as zero inside the kernels (on every team thread
    and in Stream), so eight of them no longer sum to a normal number; NumPy on the calling
    thread keeps its denormals afterwards."""
    threads(2)
    tiny = np.finfo(dtype).tiny / 4  # a denormal: 8 of them would sum to 2 * tiny
    x = np.full((3, 64, 8), tiny, dtype)
    w_ih, w_hh = np.ones((256, 8), dtype), np.zeros((256, 256), dtype)
    y, _ = rnncore.rnn(x, w_ih, w_hh, nonlinearity="relu")
    assert not y.any()
    s = rnncore.Stream("rnn", w_ih, w_hh, nonlinearity="relu", batch_size=64)
    assert not s.step(x[0]).any()
    assert dtype(tiny) * dtype(8) == 2 * np.finfo(dtype).tiny  # the caller's mode is intact


_MEMORY_LIMIT_SCRIPT = textwrap.dedent(
    """
    import warnings
    import numpy as np
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import rnncore
    print(len(caught), rnncore._validate.memory_limit())
    w_ih, w_hh = np.zeros((80, 8), np.float32), np.zeros((80, 20), np.float32)
    rnncore.lstm(np.zeros((5, 2, 8), np.float32), w_ih, w_hh)  # ~10 KiB: fits
    try:
        rnncore.lstm(np.zeros((500, 64, 8), np.float32), w_ih, w_hh)  # ~30 MB by its estimate
    except MemoryError as e:
        print("MemoryError:", e)
    """
)


def _run_with_memory_limit(value: str) -> list[str]:
    env = {**os.environ, "RNNCORE_MEMORY_LIMIT": value}
    proc = subprocess.run([sys.executable, "-c", _MEMORY_LIMIT_SCRIPT], capture_output=True,
                          text=True, env=env, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_memory_limit_from_the_environment_refuses_larger_calls():
    lines = _run_with_memory_limit("1000000")
    assert lines[0].split() == ["0", "1000000"]
    refused = lines[1]
    assert refused.startswith("MemoryError: lstm: needs about") and "T=500, B=64" in refused


def test_memory_limit_that_is_not_a_byte_count_warns_and_uses_physical_memory():
    lines = _run_with_memory_limit("lots")
    warned, limit = lines[0].split()
    assert warned == "1" and int(limit) > 1 << 20
    assert len(lines) == 1  # the larger call ran


_UNEVEN_UNITS_SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import rnncore
    rng = np.random.default_rng(0)
    B, I, H = 16, 64, 24  # on two threads, units split [0, 0) and [0, 24)
    x = rng.standard_normal((5, B, I), dtype=np.float32)
    for cell, G in [("rnn", 1), ("lstm", 4), ("gru", 3)]:
        w_ih = rng.uniform(-0.2, 0.2, (G * H, I)).astype(np.float32)
        w_hh = rng.uniform(-0.2, 0.2, (G * H, H)).astype(np.float32)
        outs = []
        for n in (1, 2):
            rnncore.set_num_threads(n)
            outs.append(getattr(rnncore, cell)(x, w_ih, w_hh)[0])
        assert np.array_equal(outs[0], outs[1]), cell
    print("ok")
    """
)


def test_inference_whose_units_split_unevenly_over_threads_finishes():
    # One thread owning every unit once took the rows-in-lanes path and left its team, and
    # the other waited for it at the first step barrier forever. A child process, so that a
    # regression fails here instead of hanging the run.
    proc = subprocess.run([sys.executable, "-c", _UNEVEN_UNITS_SCRIPT], capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
