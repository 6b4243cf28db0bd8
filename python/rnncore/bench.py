"""Benchmark harness: rnncore against the installed peers, same inputs and thread count.

Used by `rnncore bench` and benchmarks/compare.py. Times are medians of repeated runs after a
warm-up, the libraries of a case interleaved in blocks (interleaved_medians); ratios compare
peers measured in the same process, since absolute times drift.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import statistics
import subprocess
import sys
import time

import numpy as np

import rnncore

from . import _cells

SHAPES = {  # name: (B, T, I, H)
    "tiny": (32, 50, 1, 20),
    "medium": (64, 100, 128, 256),
    "large": (64, 100, 512, 512),
    "stream": (1, 100, 128, 256),
}
CELLS = {family: _cells.family_kinds(family)[0] for family in _cells.FAMILIES}  # default kinds
MODES = ("inference", "training")


BLOCK_S = 0.1  # seconds of one library's runs before the next library's turn
# Seconds of rest before each block: thread pools spin for milliseconds after their last
# call (libgomp, ORT's, XLA's) and would take the cores from whoever runs next. Measured here:
# GRU B=64 H=256 took 20 ms interleaved with ORT in 20 ms blocks without rest, 9.5 with 30 ms.
PAUSE_S = 0.05


def interleaved_medians(fns: dict, budget_s: float, min_reps: int = 3) -> dict:
    """Median milliseconds per call of each fn, timed in alternating blocks of about BLOCK_S
    (each library in turn, until each has had budget_s and min_reps calls). This machine's
    speed drifts by up to 2x over seconds; interleaving makes such a phase hit every library
    alike, so the ratios hold. Each block follows a rest of PAUSE_S (when there are others),
    and a block of fast calls starts with an untimed one, which brings its library's weights
    back into the cache that the others' blocks used."""
    times = {name: [] for name in fns}
    spent = dict.fromkeys(fns, 0.0)
    per_call = {}
    for name, fn in fns.items():  # warm-up: first-call allocation, graph compilation
        t0 = time.perf_counter()
        fn()
        per_call[name] = time.perf_counter() - t0
    while True:
        due = [n for n in fns if spent[n] < budget_s or len(times[n]) < min_reps]
        if not due:
            return {n: statistics.median(t) * 1e3 for n, t in times.items()}
        for name in due:
            fn, calls = fns[name], times[name]
            if len(fns) > 1:
                time.sleep(PAUSE_S)
            if (statistics.median(calls) if calls else per_call[name]) < BLOCK_S / 4:
                fn()
            start = time.perf_counter()
            while True:
                t0 = time.perf_counter()
                fn()
                calls.append(time.perf_counter() - t0)
                if time.perf_counter() - start >= BLOCK_S:
                    break
            spent[name] += time.perf_counter() - start


def forward_flops(cell: str, B, T, I, H) -> float:
    return 2.0 * T * B * CELLS[cell].gates * H * (I + H)


def case_flops(cell, mode, shape) -> float:
    # Backward costs two GEMMs per forward GEMM (inputs and weights).
    return forward_flops(cell, *shape) * (1 if mode == "inference" else 3)


def _ours(cell, mode, x, params, dy):
    fn = getattr(rnncore, cell + ("_forward" if mode == "training" else ""))
    back = getattr(rnncore, cell + "_backward")
    if mode == "inference":
        return lambda: fn(x, *params)
    return lambda: back(fn(x, *params, training=True)[-1], dy)


def _torch_case(torch, cell, mode, x, dy, I, H):
    module = getattr(torch.nn, CELLS[cell].torch_module)(I, H)
    xt, dyt = torch.tensor(x), torch.tensor(dy)
    params = [p.detach().numpy() for p in module.parameters()]
    if mode == "inference":

        def run():
            with torch.no_grad():
                module(xt)

    else:
        xg = xt.clone().requires_grad_(True)

        def run():
            module.zero_grad(set_to_none=True)
            xg.grad = None
            module(xg)[0].backward(dyt)

    return run, params


def _onnx_session(ort, onnx, cell, params, I, H, threads, ragged=False):
    """An ONNX Runtime session running one RNN/LSTM/GRU operator with torch's weights:
    inputs X [T, B, I] and initial_h [1, B, H] (and initial_c), and sequence_lens [B] when
    ragged, outputs Y_h (and Y_c)."""
    from onnx import TensorProto, helper, numpy_helper

    from ._onnx_export import onnx_weights

    kind = CELLS[cell]
    inits = [numpy_helper.from_array(a[None], n)
             for a, n in zip(onnx_weights(kind, *params), ("W", "R", "B"))]  # fmt: skip
    f32 = TensorProto.FLOAT
    states = ["initial_h"] + (["initial_c"] if kind.has_cell_state else [])
    outs = ["Y", "Y_h"] + (["Y_c"] if kind.has_cell_state else [])
    attrs = {"hidden_size": H} | ({"linear_before_reset": 1} if kind.family == "gru" else {})
    lens = "sequence_lens" if ragged else ""
    node = helper.make_node(kind.onnx_op,
                            ["X", "W", "R", "B", lens, *states], outs, **attrs)  # fmt: skip
    lens_info = [helper.make_tensor_value_info(lens, TensorProto.INT32, ["B"])] if ragged else []
    graph = helper.make_graph(
        [node], "bench",
        [helper.make_tensor_value_info("X", f32, ["T", "B", I])] + lens_info
        + [helper.make_tensor_value_info(n, f32, [1, "B", H]) for n in states],
        [helper.make_tensor_value_info(n, f32, None) for n in outs], inits)  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def _ort_case(peers, cell, x, params, I, H, threads):
    sess = _onnx_session(peers["onnxruntime"], peers["onnx"], cell, params, I, H, threads)
    feed = {"X": x, "initial_h": np.zeros((1, x.shape[1], H), np.float32)}
    if CELLS[cell].has_cell_state:
        feed["initial_c"] = feed["initial_h"]
    return lambda: sess.run(None, feed)


def _keras_case(keras, cell, mode, x, dy, H):
    """Keras's own layer (default arguments, return_sequences=True) on the same data, which
    Keras takes batch-major (B, T, I); compiled where its backend compiles (tf.function,
    jax.jit), eager on torch, as Keras's own trainer runs it."""
    layer = getattr(keras.layers, CELLS[cell].keras_layer)(H, return_sequences=True)
    xb = np.ascontiguousarray(x.transpose(1, 0, 2))
    dyb = np.ascontiguousarray(dy.transpose(1, 0, 2))
    layer.build(xb.shape)
    run = {"torch": _keras_torch, "tensorflow": _keras_tensorflow, "jax": _keras_jax}
    return run[keras.backend.backend()](layer, mode, xb, dyb)


def _keras_torch(layer, mode, xb, dyb):
    import torch

    xt, dyt = torch.from_numpy(xb), torch.from_numpy(dyb)
    if mode == "inference":

        def infer():
            with torch.no_grad():
                layer(xt, training=False)

        return infer
    xg = xt.clone().requires_grad_(True)
    weights = [v.value for v in layer.trainable_weights]

    def train():
        for w in weights:
            w.grad = None
        xg.grad = None
        layer(xg, training=True).backward(dyt)

    return train


def _keras_tensorflow(layer, mode, xb, dyb):
    import tensorflow as tf

    xt, dyt = tf.constant(xb), tf.constant(dyb)
    if mode == "inference":
        infer = tf.function(lambda x: layer(x, training=False))
        return lambda: infer(xt)

    @tf.function
    def train(x, dy):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
        return tape.gradient(y, [x, *layer.trainable_weights], output_gradients=dy)

    return lambda: train(xt, dyt)


def _keras_jax(layer, mode, xb, dyb):
    import jax

    trainable = [v.value for v in layer.trainable_variables]
    fixed = [v.value for v in layer.non_trainable_variables]

    def forward(tv, x, training):
        return layer.stateless_call(tv, fixed, x, training=training)[0]

    if mode == "inference":
        infer = jax.jit(lambda tv, x: forward(tv, x, False))
        return lambda: infer(trainable, xb).block_until_ready()
    # The gradient of sum(y * dy) is the backward pass with dy given.
    grads = jax.jit(jax.grad(lambda tv, x: (forward(tv, x, True) * dyb).sum(), argnums=(0, 1)))
    return lambda: jax.block_until_ready(grads(trainable, xb))


# Peak memory of one training forward + backward, measured in a fresh process per library
# so that neither sees the other's allocations or caches: the rise of resident memory above
# what the inputs and weights already occupy (Linux: the high-water mark is reset through
# /proc/self/clear_refs after a warm-up call). Every block of 16 KiB or more is mmapped and
# the heap is trimmed on every free, so a block counts when touched and stops counting when
# freed. With blocks up to 128 KiB left in malloc's heap, pages the warm-up step had freed
# stayed resident and counted in the base: torch's per-step 64 KiB tensors of SimpleRNN
# B=64 H=256 then read 11.8 to 23.7 MiB between processes, 19.3 every time here.
_MEMORY_SCRIPT = """
import json, sys
import numpy as np
lib, cell, B, T, I, H, threads = json.loads(sys.argv[1])
rng = np.random.default_rng(0)
x = rng.standard_normal((T, B, I), dtype=np.float32)
dy = rng.standard_normal((T, B, H), dtype=np.float32)
if lib == "torch":
    import torch
    torch.set_num_threads(threads)
    m = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](I, H)
    xg, dyt = torch.tensor(x).requires_grad_(True), torch.tensor(dy)
    def step():
        m(xg)[0].backward(dyt)  # the gradients stay on the tensors: counted at the peak
    def release():
        m.zero_grad(set_to_none=True)
        xg.grad = None
else:
    import rnncore
    rnncore.set_num_threads(threads)
    G = {"rnn": 1, "lstm": 4, "gru": 3}[cell]
    p = [rng.uniform(-0.1, 0.1, s).astype(np.float32)
         for s in [(G * H, I), (G * H, H), (G * H,), (G * H,)]]
    fwd, bwd = getattr(rnncore, cell + "_forward"), getattr(rnncore, cell + "_backward")
    def step():
        bwd(fwd(x, *p, training=True)[-1], dy)  # the gradients live until the step returns
    def release():  # the measured step allocates its workspace afresh, as a first step does
        rnncore._core.release_workspaces()
step()
release()  # both start from no gradients held: freeing the last ones must not offset the peak
def status(key):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith(key))
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
base = status("VmRSS:")
step()
print((status("VmHWM:") - base) / 1024)
"""


def peak_memory_mb(lib: str, cell: str, shape, threads: int, samples: int = 1) -> float | None:
    """MiB that one training step of `lib` ("rnncore" or "torch") adds at its peak, from a
    state holding no gradients, its own gradients included, and (rnncore) no workspace block
    kept from the warm-up step: the median over `samples` fresh processes; None where it
    cannot be measured (no /proc, or a child failed)."""
    if not os.path.exists("/proc/self/clear_refs"):
        return None
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "16384", "MALLOC_TRIM_THRESHOLD_": "0"}
    args = json.dumps([lib, cell, *shape, threads])
    readings = []
    for _ in range(samples):
        proc = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, args], capture_output=True,
                              text=True, env=env, timeout=600)  # fmt: skip
        if proc.returncode != 0:
            return None
        readings.append(float(proc.stdout))
    return statistics.median(readings)


# Processes per memory reading. Readings of 5 MiB or more agree within 2% between processes,
# smaller ones less closely (torch's LSTM tiny: 1.75 to 1.96 MiB); the median of three keeps
# one odd process from deciding a row.
MEMORY_SAMPLES = 3


def _import_keras(threads: int):
    """Keras 3 on its configured backend. With none configured and TensorFlow (its default)
    absent, JAX (compiled) or else torch when installed, rather than failing to import."""
    if "keras" not in sys.modules and not os.environ.get("KERAS_BACKEND"):
        if importlib.util.find_spec("tensorflow") is None:
            found = [b for b in ("jax", "torch") if importlib.util.find_spec(b)]
            if found:
                os.environ["KERAS_BACKEND"] = found[0]
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        try:  # only possible before TensorFlow starts its thread pools
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:
            pass
    return keras


def find_peers(threads: int = 1) -> tuple[dict, list[str]]:
    found, skipped = {}, []
    for name in ("torch", "onnxruntime", "onnx"):
        try:
            found[name] = __import__(name)
        except ImportError:
            skipped.append(f"{name} (pip install 'rnncore[compare]')")
    if "onnx" not in found:
        found.pop("onnxruntime", None)
    try:
        found["keras"] = _import_keras(threads)
    except Exception as e:  # not installed, or no usable backend
        skipped.append(f"keras ({type(e).__name__}: {e})".splitlines()[0])
    return found, skipped


def peer_names(peers: dict) -> list[str]:
    """The timed peers as the table names them, with versions (and Keras's backend)."""
    names = [f"torch {peers['torch'].__version__}"] if "torch" in peers else []
    if "onnxruntime" in peers:
        names.append(f"onnxruntime {peers['onnxruntime'].__version__}")
    if "keras" in peers:
        keras = peers["keras"]
        names.append(f"keras {keras.__version__} ({keras.backend.backend()} backend)")
    return names


def _add_memory(row, peers, threads):
    """Training rows: peak memory of one step, ours and torch's (MiB), and their ratio."""
    shape = STEP_SHAPE if row["shape"] == "step" else SHAPES[row["shape"]]
    row["mem_mb"] = peak_memory_mb("rnncore", row["cell"], shape, threads, MEMORY_SAMPLES)
    if "torch" in peers:
        row["torch_mem_mb"] = peak_memory_mb("torch", row["cell"], shape, threads, MEMORY_SAMPLES)
        if row["mem_mb"] is not None and row["torch_mem_mb"]:
            row["mem_vs_torch"] = row["mem_mb"] / row["torch_mem_mb"]


def _record_times(row: dict, medians: dict) -> None:
    """Ours and the peers' medians into the row, with the speed-up over the fastest peer."""
    row["rnncore"] = medians.pop("rnncore")
    row["peers"] = medians
    if medians:
        row["speedup"] = min(medians.values()) / row["rnncore"]


def run(threads: int, quick: bool, memory: bool | None = None) -> dict:
    rnncore.set_num_threads(threads)
    peers, skipped = find_peers(threads)
    if "torch" in peers:
        peers["torch"].set_num_threads(threads)
    budget = 0.05 if quick else 0.5
    # Calls of the large shapes take ~0.25 s, so the budget alone would give three samples
    # each; five make their medians proof against a slow phase of a second or two.
    reps = 3 if quick else 5
    # Measured here, on this machine: the higher of a probe before the cases and one after,
    # since one probe can meet a slow phase (a single one read 270 GFLOP/s where the
    # machine gives 490-520, and every %peak doubled).
    peak = rnncore._core.fma_peak_gflops(threads)
    rows = []
    rng = np.random.default_rng(0)
    for shape_name, (B, T, I, H) in SHAPES.items():
        for cell in CELLS:
            x = rng.standard_normal((T, B, I), dtype=np.float32)
            dy = rng.standard_normal((T, B, H), dtype=np.float32)
            for mode in MODES:
                row = {"cell": cell, "shape": shape_name, "mode": mode}
                fns, params = {}, None
                if "torch" in peers:
                    fns["torch"], params = _torch_case(peers["torch"], cell, mode, x, dy, I, H)
                if params is None:
                    G = CELLS[cell].gates
                    params = [rng.uniform(-0.1, 0.1, s).astype(np.float32)
                              for s in [(G * H, I), (G * H, H), (G * H,), (G * H,)]]  # fmt: skip
                if "onnxruntime" in peers and mode == "inference":
                    fns["onnxruntime"] = _ort_case(peers, cell, x, params, I, H, threads)
                if "keras" in peers:
                    fns["keras"] = _keras_case(peers["keras"], cell, mode, x, dy, H)
                fns["rnncore"] = _ours(cell, mode, x, params, dy)
                _record_times(row, interleaved_medians(fns, budget, reps))
                row["gflops"] = case_flops(cell, mode, (B, T, I, H)) / row["rnncore"] / 1e6
                rows.append(row)
    rows += [_step_case(peers, cell, threads, budget) for cell in CELLS]
    rows += [_ragged_case(peers, mode, threads, budget, reps) for mode in MODES]
    peak = max(peak, rnncore._core.fma_peak_gflops(threads))
    for row in rows:
        row["pct_peak"] = 100.0 * row["gflops"] / peak
        measured_memory = row["mode"] == "training" and row["shape"] in SHAPES  # not ragged
        if (not quick if memory is None else memory) and measured_memory:
            _add_memory(row, peers, threads)
    return {"threads": threads, "quick": quick, "peers": peer_names(peers),
            "skipped": skipped, "rows": rows,
            "fma_peak_gflops": peak,
            "isa": rnncore._core.build_info()["isa"]}  # fmt: skip


RAGGED_SHAPE = SHAPES["medium"]
RAGGED_SEED = 3  # lengths 1..T drawn once: 46-52% of the steps are real


def _ragged_case(peers, mode, threads, budget, reps):
    """LSTM medium with random lengths 1..T: ours with lengths=, torch with a PackedSequence
    (packed in the timed call, as a training loop does per batch), ONNX Runtime with
    sequence_lens. `vs_full` is our time over our time for the same batch at full length:
    the cost of padded steps (1.0 = they cost as much as real ones)."""
    B, T, I, H = RAGGED_SHAPE
    rng = np.random.default_rng(RAGGED_SEED)
    lengths = rng.integers(1, T + 1, B)
    x = rng.standard_normal((T, B, I), dtype=np.float32)
    dy = (
        rng.standard_normal((T, B, H), dtype=np.float32)
        * (np.arange(T)[:, None] < lengths)[..., None]
    )
    row = {"cell": "lstm", "shape": "ragged", "mode": mode,
           "real_steps": float(lengths.sum() / (B * T))}  # fmt: skip
    fns, params = {}, None
    if "torch" in peers:
        torch = peers["torch"]
        module, xt, lt = torch.nn.LSTM(I, H), torch.from_numpy(x), torch.from_numpy(lengths)
        params = [p.detach().numpy() for p in module.parameters()]
        pack = torch.nn.utils.rnn.pack_padded_sequence
        if mode == "inference":

            def torch_run():
                with torch.no_grad():
                    module(pack(xt, lt, enforce_sorted=False))

        else:
            xg = xt.clone().requires_grad_(True)

            def torch_run():
                module.zero_grad(set_to_none=True)
                xg.grad = None
                out = module(pack(xg, lt, enforce_sorted=False))[0]
                out.data.backward(torch.ones_like(out.data))

        fns["torch"] = torch_run
    if params is None:
        params = [rng.uniform(-0.1, 0.1, s).astype(np.float32)
                  for s in [(4 * H, I), (4 * H, H), (4 * H,), (4 * H,)]]  # fmt: skip
    if "onnxruntime" in peers and mode == "inference":
        sess = _onnx_session(peers["onnxruntime"], peers["onnx"], "lstm", params, I, H, threads,
                             ragged=True)  # fmt: skip
        feed = {"X": x, "sequence_lens": lengths.astype(np.int32),
                "initial_h": np.zeros((1, B, H), np.float32)}  # fmt: skip
        feed["initial_c"] = feed["initial_h"]
        fns["onnxruntime"] = lambda: sess.run(None, feed)
    if mode == "inference":
        fns["rnncore"] = lambda: rnncore.lstm(x, *params, lengths=lengths)
        fns["full"] = lambda: rnncore.lstm(x, *params)
    else:
        fwd, back = rnncore.lstm_forward, rnncore.lstm_backward
        fns["rnncore"] = lambda: back(fwd(x, *params, lengths=lengths, training=True)[-1], dy)
        fns["full"] = lambda: back(fwd(x, *params, training=True)[-1], dy)
    medians = interleaved_medians(fns, budget, reps)
    full = medians.pop("full")
    _record_times(row, medians)
    row["vs_full"] = row["rnncore"] / full
    flops = case_flops("lstm", mode, RAGGED_SHAPE) * row["real_steps"]
    row["gflops"] = flops / row["rnncore"] / 1e6
    return row


STEP_SHAPE = (1, 100, 128, 256)  # 100 .step calls from Python, B=1, I=128, H=256


def _step_case(peers, cell, threads, budget):
    """Per-step streaming: 100 Stream.step calls vs torch's *Cell modules under no_grad and
    ONNX Runtime run with T=1 and the state fed back."""
    B, T, I, H = STEP_SHAPE
    G = CELLS[cell].gates
    rng = np.random.default_rng(1)
    params = [rng.uniform(-0.06, 0.06, s).astype(np.float32)
              for s in [(G * H, I), (G * H, H), (G * H,), (G * H,)]]  # fmt: skip
    xs = rng.standard_normal((T, B, I), dtype=np.float32)
    row, fns = {"cell": cell, "shape": "step", "mode": "inference"}, {}
    if "torch" in peers:
        torch = peers["torch"]
        m = getattr(torch.nn, CELLS[cell].torch_module + "Cell")(I, H)
        with torch.no_grad():
            for p, v in zip(m.parameters(), params):
                p.copy_(torch.from_numpy(v))
        xt = [torch.from_numpy(x) for x in xs]

        def torch_run():
            with torch.no_grad():
                state = None
                for x in xt:
                    state = m(x, state)

        fns["torch"] = torch_run
    if "onnxruntime" in peers:
        sess = _onnx_session(peers["onnxruntime"], peers["onnx"], cell, params, I, H, threads)
        names = ["initial_h"] + (["initial_c"] if CELLS[cell].has_cell_state else [])

        def ort_run():
            feed = {n: np.zeros((1, B, H), np.float32) for n in names}
            for x in xs:
                out = sess.run(None, {"X": x[None], **feed})
                feed = dict(zip(names, out[1:]))

        fns["onnxruntime"] = ort_run
    stream = rnncore.Stream(cell, *params)
    out = np.empty((B, H), np.float32)

    def ours():
        stream.reset()
        for x in xs:
            stream.step(x, out=out)

    fns["rnncore"] = ours
    _record_times(row, interleaved_medians(fns, budget))
    row["gflops"] = forward_flops(cell, B, T, I, H) / row["rnncore"] / 1e6
    return row


def print_table(result: dict) -> None:
    print(f"rnncore bench: threads={result['threads']} isa={result['isa']}"
          f"{' (quick)' if result['quick'] else ''}")  # fmt: skip
    print("peers timed: " + (", ".join(result["peers"]) or "none"))
    print("peers skipped: " + ("; ".join(result["skipped"]) or "none"))
    print(f"measured FMA peak: {result['fma_peak_gflops']:.0f} GFLOP/s (float32, "
          f"{result['threads']} threads)")  # fmt: skip
    print(f"{'cell':<5}{'shape':<8}{'mode':<10}{'rnncore ms':>11}{'GFLOP/s':>9}{'%peak':>6}"
          f"{'torch ms':>10}{'ORT ms':>9}{'Keras ms':>10}{'speed-up':>9}"
          f"{'MiB':>8}{'torch MiB':>10}")  # fmt: skip
    nan = float("nan")
    for r in result["rows"]:
        mem, tmem = (nan if r.get(k) is None else r[k] for k in ("mem_mb", "torch_mem_mb"))
        print(f"{r['cell']:<5}{r['shape']:<8}{r['mode']:<10}{r['rnncore']:>11.3f}"
              f"{r['gflops']:>9.1f}{r['pct_peak']:>6.0f}{r['peers'].get('torch', nan):>10.3f}"
              f"{r['peers'].get('onnxruntime', nan):>9.3f}{r['peers'].get('keras', nan):>10.3f}"
              f"{r.get('speedup', nan):>8.2f}x"
              f"{mem:>8.1f}{tmem:>10.1f}")  # fmt: skip
    for r in result["rows"]:
        if "vs_full" in r:
            print(f"lstm ragged {r['mode']}: {100 * r['real_steps']:.0f}% of the steps real, "
                  f"{r['vs_full']:.2f}x the time of full lengths")  # fmt: skip
    speedups = [r["speedup"] for r in result["rows"] if "speedup" in r]
    if speedups:
        geo = math.exp(sum(math.log(s) for s in speedups) / len(speedups))
        wins = sum(s >= 1 for s in speedups)
        print(f"geometric mean speed-up vs fastest peer: {geo:.2f}x "
              f"({wins}/{len(speedups)} cases at least as fast)")  # fmt: skip
    # Under 1 MiB the ratio measures page-level noise, not the libraries.
    ratios = [r["mem_vs_torch"] for r in result["rows"]
              if "mem_vs_torch" in r and max(r["mem_mb"], r["torch_mem_mb"]) >= 1]  # fmt: skip
    if ratios:
        within = sum(q <= 1 for q in ratios)
        print(f"training peak memory vs torch: {min(ratios):.2f}x to {max(ratios):.2f}x "
              f"({within}/{len(ratios)} cases of 1 MiB or more at most torch's)")  # fmt: skip


def main(args) -> int:
    result = run(args.threads or rnncore.get_num_threads(), args.quick, args.memory)
    print_table(result)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0
