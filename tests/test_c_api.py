"""The C API (librnncore, rnncore/rnncore.h): layer calls, models, streams, the CMake package.

Called through ctypes (tests/capi.py) on the library C programs link, and through the C and
C++ examples built with CMake against the installed package.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest

import rnncore
from rnncore import _cells
from rnncore import layers as L

import capi

# ---- layer calls: the same kernels as Python's functional API, bit for bit ----


def _layer_case(cell, dtype, seed=0):
    rng = np.random.default_rng(seed)
    T, B, I, H = 5, 3, 4, 6
    GH = cell.gates * H
    arr = lambda *s: rng.standard_normal(s).astype(dtype) * 0.5  # noqa: E731
    p = {"x": arr(B, T, I), "w_ih": arr(GH, I), "w_hh": arr(GH, H), "b_ih": arr(GH),
         "b_hh": arr(GH), "h0": arr(B, H), "c0": arr(B, H) if cell.has_cell_state else None,
         "lengths": np.array([5, 2, 0], np.int64)}  # fmt: skip
    return (T, B, I, H), p


def _python_forward(cell, p, reverse):
    fwd = getattr(rnncore, cell.family + "_forward")
    states = [p["h0"], p["c0"]] if cell.has_cell_state else [p["h0"]]
    out = fwd(p["x"], p["w_ih"], p["w_hh"], p["b_ih"], p["b_hh"], *states, lengths=p["lengths"],
              reverse=reverse, batch_first=True, training=True, **cell.options)  # fmt: skip
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cell", _cells.CELLS, ids=lambda c: c.name)
@pytest.mark.parametrize("reverse", [False, True])
def test_layer_calls_equal_the_functional_api(cell, dtype, reverse):
    (T, B, I, H), p = _layer_case(cell, dtype)
    kind = "f32" if dtype == np.float32 else "f64"
    fp, api = (capi.F32 if kind == "f32" else capi.F64), capi.LAYER[kind]
    dims = capi.Dims(T, B, I, H, 1, int(reverse))
    ws = np.zeros(capi.workspace_size(cell.code_int, dims), dtype)
    y, h_n = np.zeros((B, T, H), dtype), np.zeros((B, H), dtype)
    c_n = np.zeros((B, H), dtype) if cell.has_cell_state else None
    arrays = dict(p, y=y, h_n=h_n, c_n=c_n, workspace=ws)
    args = api["Forward"](
        **{k: capi.ptr(v, capi.I64 if k == "lengths" else fp) for k, v in arrays.items()}
    )
    assert api["training_forward"](cell.code_int, dims, args) == 0, capi.error()
    want = _python_forward(cell, p, reverse)
    np.testing.assert_array_equal(y, want[0])
    np.testing.assert_array_equal(h_n, want[1])
    if cell.has_cell_state:
        np.testing.assert_array_equal(c_n, want[2])
    # backward from the C workspace equals Python's backward from its cache
    rng = np.random.default_rng(1)
    dy = rng.standard_normal(y.shape).astype(dtype)
    grads = {k: np.zeros_like(p[k]) for k in ("x", "w_ih", "w_hh", "b_ih", "b_hh", "h0")}
    grads["c0"] = np.zeros((B, H), dtype) if cell.has_cell_state else None
    bargs = api["Backward"](x=capi.ptr(p["x"], fp), w_ih=capi.ptr(p["w_ih"], fp),
                            w_hh=capi.ptr(p["w_hh"], fp), lengths=capi.ptr(p["lengths"], capi.I64),
                            workspace=capi.ptr(ws, fp), dy=capi.ptr(dy, fp),
                            **{"d" + k: capi.ptr(v, fp) for k, v in grads.items()})  # fmt: skip
    assert api["backward"](cell.code_int, dims, bargs) == 0, capi.error()
    py = getattr(rnncore, cell.family + "_backward")(want[-1], dy)
    for k, v in grads.items():
        if v is not None:
            np.testing.assert_array_equal(v, py["d" + k], err_msg=k)
    args.h_n = args.c_n = None  # the final states are optional
    assert api["forward"](cell.code_int, dims, args) == 0  # inference: the same outputs
    np.testing.assert_array_equal(y, want[0])


def test_layer_calls_refuse_bad_arguments_with_a_code_and_a_message():
    lstm = _cells.kind_of("lstm").code_int
    (T, B, I, H), p = _layer_case(_cells.kind_of("lstm"), np.float32)
    y = np.zeros((B, T, H), np.float32)
    fwd = capi.LAYER["f32"]["forward"]
    good = {k: capi.ptr(v, capi.I64 if k == "lengths" else capi.F32) for k, v in p.items()}
    dims = capi.Dims(T, B, I, H, 1, 0)
    cases = [
        (lstm, dims, dict(good, x=None, y=capi.ptr(y)), "args->x: expected a pointer, got NULL"),
        (lstm, dims, dict(good), "args->y: expected a pointer"),
        (99, dims, dict(good, y=capi.ptr(y)), "cell: expected an rnncore_cell (0..4), got 99"),
        (lstm, capi.Dims(T, 0, I, H, 1, 0), dict(good, y=capi.ptr(y)),
         "dims->batch: expected >= 1, got 0"),
        (lstm, capi.Dims(2**62, 2**10, I, H, 1, 0), dict(good, y=capi.ptr(y)), "overflows"),
    ]  # fmt: skip
    for cell, d, fields, message in cases:
        assert fwd(cell, d, capi.LAYER["f32"]["Forward"](**fields)) == 1
        assert message in capi.error(), (message, capi.error())
    bad_lengths = np.array([5, 6, 0], np.int64)
    fields = dict(good, y=capi.ptr(y), lengths=capi.ptr(bad_lengths, capi.I64))
    assert fwd(lstm, dims, capi.LAYER["f32"]["Forward"](**fields)) == 1
    assert "lengths: expected values in [0, 5], got 6 at index 1" in capi.error()
    gru = _cells.kind_of("gru").code_int
    c0 = np.zeros((B, H), np.float32)
    fields = dict(good, y=capi.ptr(y), c0=capi.ptr(c0))
    assert fwd(gru, dims, capi.LAYER["f32"]["Forward"](**fields)) == 1
    assert "only an LSTM has a cell state" in capi.error()
    assert fwd(lstm, None, capi.LAYER["f32"]["Forward"](**fields)) == 1
    assert capi.workspace_size(lstm, None) == -1 and "dims" in capi.error()


def test_version_and_threads():
    assert capi.version().decode() == rnncore.__version__
    before = capi.get_num_threads()
    try:
        capi.set_num_threads(1)
        assert capi.get_num_threads() == 1 == rnncore.get_num_threads()  # one library
    finally:
        capi.set_num_threads(before)


# ---- models ----


def _model(layers, steps=10, features=3, seed=0):
    rnncore.utils.set_random_seed(seed)
    return rnncore.Sequential([rnncore.Input((steps, features)), *layers])


MODELS = {
    "lstm-gru-seq": lambda: _model([L.LSTM(8, return_sequences=True),
                                    L.GRU(5, return_sequences=True)]),
    "rnn-relu-last": lambda: _model([L.SimpleRNN(7, activation="relu")]),
    "gru-before-backwards": lambda: _model([L.GRU(6, reset_after=False, go_backwards=True,
                                                  return_sequences=True)]),
    "bidir-concat": lambda: _model([L.Bidirectional(L.LSTM(4, return_sequences=True)),
                                    L.Bidirectional(L.GRU(3), merge_mode="sum")]),
    "bidir-mul-ave": lambda: _model([L.Bidirectional(L.SimpleRNN(4, return_sequences=True),
                                                     merge_mode="mul"),
                                     L.Bidirectional(L.LSTM(3), merge_mode="ave")]),
    "dense-softmax": lambda: _model([L.LSTM(8), L.Dropout(0.3), L.Dense(4, activation="softmax")]),
    "timedistributed": lambda: _model([L.GRU(8, return_sequences=True),
                                       L.TimeDistributed(L.Dense(2, activation="tanh"))]),
    "flatten-activations": lambda: _model([L.SimpleRNN(4, return_sequences=True), L.Flatten(),
                                           L.Dense(5, activation="elu"),
                                           L.Dense(5, activation="softplus"),
                                           L.Dense(3, activation="sigmoid", use_bias=False),
                                           L.Dense(2, activation="relu")]),
    "masking": lambda: _model([L.Masking(0.0), L.LSTM(5, return_sequences=True),
                               L.Bidirectional(L.GRU(3, go_backwards=False)),
                               L.Dense(2)]),
    "masking-backwards": lambda: _model([L.Masking(0.0),
                                         L.Bidirectional(L.SimpleRNN(4, return_sequences=True),
                                                         merge_mode="ave"),
                                         L.GRU(3, go_backwards=True, return_sequences=True)]),
    "conv-layernorm": lambda: _model([L.Conv1D(4, 3, padding="same", strides=2,
                                               activation="relu"),
                                      L.LayerNormalization(),
                                      L.Conv1D(3, 2, dilation_rate=2), L.GRU(4)]),
    "causal-conv": lambda: _model([L.Conv1D(4, 3, padding="causal", dilation_rate=2),
                                   L.LayerNormalization(epsilon=1e-4, center=False),
                                   L.LSTM(5, return_sequences=True), L.Dense(2)]),
}  # fmt: skip
ID_MODELS = {  # token ids in: (batch, steps) in Python, (batch, steps, 1) floats in C
    "embedding-mask-zero": lambda: rnncore.Sequential([rnncore.Input((10,)),
                                                       L.Embedding(20, 4, mask_zero=True),
                                                       L.LSTM(5, return_sequences=True),
                                                       L.GRU(3)]),
    "embedding": lambda: rnncore.Sequential([rnncore.Input((10,)), L.Embedding(20, 4),
                                             L.GRU(3, return_sequences=True)]),
}  # fmt: skip


def _masked_inputs(seed=2):
    """(5, 10, 3) inputs with whole steps of zeros (masked by Masking) at the ends and inside."""
    x = np.random.default_rng(seed).standard_normal((5, 10, 3)).astype(np.float32)
    x[0, 7:] = 0  # right padding
    x[1, :3] = 0  # left padding
    x[2, 4:6] = 0  # a hole
    x[3, :] = 0  # nothing real
    return x


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_predict_equals_python(name, tmp_path):
    model = MODELS[name]()
    path = tmp_path / "m.rnncore"
    model.save(path)
    x = _masked_inputs()
    want = model.predict(x).reshape(5, -1)
    c_model = capi.Model(path)
    assert capi.model_input_features(c_model.handle) == 3
    assert capi.model_input_steps(c_model.handle) == 10
    got = c_model.predict(x)
    np.testing.assert_array_equal(got, want)  # every layer runs the same compiled code


@pytest.mark.parametrize("name", sorted(ID_MODELS))
def test_models_of_token_ids_equal_python(name, tmp_path):
    model = ID_MODELS[name]()
    path = tmp_path / "m.rnncore"
    model.save(path)
    ids = np.random.default_rng(3).integers(1, 20, (4, 10))
    ids[0, 6:] = 0  # padding (masked with mask_zero)
    ids[1, :] = 0
    c_model = capi.Model(path)
    assert capi.model_input_features(c_model.handle) == 1
    got = c_model.predict(ids[..., None].astype(np.float32))
    np.testing.assert_array_equal(got, model.predict(ids).reshape(4, -1))
    bad = ids[..., None].astype(np.float32)
    bad[2, 3] = 20.0  # out of the vocabulary
    y = np.empty_like(got)
    assert capi.model_predict(c_model.handle, capi.ptr(bad), 4, 10, capi.ptr(y)) == 1
    assert "x: token ids must be whole numbers in [0, 20), got 20" in capi.error()


def _python_stream(model, x):
    """Python's step loop: an rnncore.Stream per recurrent layer, NumPy for Dense."""
    outs = []
    streams = [rnncore.Stream(layer.cell.name, *(layer.params.get(k) for k in
                              ("w_ih", "w_hh", "b_ih", "b_hh")), batch_size=len(x))
               if hasattr(layer, "cell") else layer for layer in model.layers]  # fmt: skip
    for t in range(x.shape[1]):
        v = x[:, t]
        for s in streams:
            if isinstance(s, rnncore.Stream):
                v = s.step(np.ascontiguousarray(v)).copy()
            elif len(s.built_shape) == 2:  # after a layer returning its last step
                v = s(v)
            else:  # a per-step layer over a sequence of one step
                v = s(v[:, None])[:, 0]
        outs.append(v)
    return np.stack(outs, axis=1)


@pytest.mark.parametrize("name", ["lstm-gru-seq", "timedistributed", "dense-softmax",
                                  "causal-conv"])  # fmt: skip
def test_stream_steps_equal_the_python_step_loop(name, tmp_path):
    model = MODELS[name]()
    path = tmp_path / "m.rnncore"
    model.save(path)
    x = np.random.default_rng(3).standard_normal((2, 10, 3)).astype(np.float32)
    c_model = capi.Model(path)
    stream = capi.model_stream(c_model.handle, 2)
    assert stream, capi.error()
    del c_model  # the stream holds what it needs
    n = capi.stream_output_size(stream)
    try:
        for _ in range(2):  # reset starts a new sequence
            got = np.empty((2, 10, n), np.float32)
            for t in range(10):
                y_t = np.empty((2, n), np.float32)
                assert capi.stream_step(stream, capi.ptr(np.ascontiguousarray(x[:, t])),
                                        capi.ptr(y_t)) == 0, capi.error()  # fmt: skip
                got[:, t] = y_t
            capi.stream_reset(stream)
            # a causal model's outputs at every step are its step-by-step outputs
            want = model.predict(x) if name == "causal-conv" else _python_stream(model, x)
            np.testing.assert_array_equal(got, want)  # the same kernels and row ops
    finally:
        capi.stream_free(stream)


def test_models_that_cannot_stream_or_load_say_why(tmp_path):
    bidir = tmp_path / "b.rnncore"
    MODELS["bidir-concat"]().save(bidir)
    m = capi.Model(bidir)
    assert capi.model_stream(m.handle, 1) is None
    assert "cannot run step by step" in capi.error()
    assert capi.model_stream(m.handle, 0) is None and "batch: expected >= 1" in capi.error()
    assert capi.model_output_size(m.handle, 9) == -1
    assert "steps: the model takes 10 steps, got 9" in capi.error()
    x = np.zeros((1, 10, 3), np.float32)
    assert capi.model_predict(m.handle, capi.ptr(x), 1, 10, None) == 1
    assert "y: expected a pointer, got NULL" in capi.error()
    assert capi.model_predict(None, capi.ptr(x), 1, 10, capi.ptr(x)) == 1
    flat = tmp_path / "e.rnncore"
    rnncore.Sequential([rnncore.Input((6,)), L.Dense(3)]).save(flat)
    other = tmp_path / "c.rnncore"
    _model([L.LayerNormSimpleRNN(4), L.Dense(2)]).save(other)
    f64 = tmp_path / "d.rnncore"
    rnncore.Sequential([rnncore.Input((4, 2)), L.LSTM(3)], dtype="float64").save(f64)
    for path, message in [(other, "the C runtime has no LayerNormSimpleRNN layer"),
                          (flat, "(steps, features) inputs"),
                          (f64, "the C runtime runs float32 models"),
                          (tmp_path / "missing.rnncore", "cannot open"),
                          ]:  # fmt: skip
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
            capi.Model(path)
    assert capi.model_load(None) is None and "path: expected a file name" in capi.error()


def test_damaged_and_hostile_files_are_refused(tmp_path):
    path = tmp_path / "m.rnncore"
    MODELS["dense-softmax"]().save(path)
    blob = path.read_bytes()
    header_len = int.from_bytes(blob[:8], "little")
    cases = {
        "short": blob[:5],
        "huge header": (2**40).to_bytes(8, "little") + blob[8:],
        "header past the end": (len(blob)).to_bytes(8, "little") + blob[8:],
        "not json": blob[:8] + b"{" * header_len + blob[8 + header_len :],
        "truncated data": blob[:-4],
        "deep nesting": (2000).to_bytes(8, "little") + b"[" * 2000,
    }
    for what, data in cases.items():
        bad = tmp_path / "bad.rnncore"
        bad.write_bytes(data)
        assert capi.model_load(str(bad).encode()) is None, what
        assert str(bad) in capi.error(), (what, capi.error())


def test_one_model_predicts_from_several_threads(tmp_path):
    path = tmp_path / "m.rnncore"
    model = MODELS["lstm-gru-seq"]()
    model.save(path)
    c_model = capi.Model(path)
    xs = [np.random.default_rng(i).standard_normal((4, 10, 3)).astype(np.float32)
          for i in range(4)]  # fmt: skip
    results: dict = {}

    def work(i):
        for _ in range(5):
            results[i] = c_model.predict(xs[i])  # ctypes releases the GIL

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, x in enumerate(xs):
        np.testing.assert_array_equal(results[i], model.predict(x).reshape(4, -1))


# ---- the CMake package and the examples, built as a user builds them ----


def test_cmake_package_builds_and_runs_the_examples(tmp_path):
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.fail("cmake is needed to build the C examples (pip install cmake)")
    root = capi.rnncore_root = __import__("pathlib").Path(__file__).resolve().parents[1]
    data = tmp_path / "data"
    data.mkdir()
    model = MODELS["dense-softmax"]()
    model.save(data / "model.rnncore")
    x = np.random.default_rng(4).standard_normal((4, 10, 3)).astype(np.float32)
    x.tofile(data / "x.f32")
    stream_model = MODELS["lstm-gru-seq"]()
    stream_model.save(data / "stream_model.rnncore")
    frames = np.random.default_rng(5).standard_normal((12, 3)).astype(np.float32)
    frames.tofile(data / "frames.f32")
    build = tmp_path / "build"
    run = lambda *cmd: subprocess.run(cmd, capture_output=True, text=True, timeout=600)  # noqa: E731
    done = run(cmake, "-S", str(root / "examples"), "-B", str(build),
               f"-Drnncore_DIR={rnncore.get_cmake_dir()}", f"-DEXAMPLE_DATA={data}")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    done = run(cmake, "--build", str(build))
    assert done.returncode == 0, done.stdout + done.stderr
    done = run("ctest", "--test-dir", str(build), "--output-on-failure")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "100% tests passed" in done.stdout
    got = np.fromfile(data / "y_c.f32", np.float32).reshape(4, -1)
    np.testing.assert_array_equal(got, model.predict(x))  # same code, same bits
    streamed = np.fromfile(data / "frames_y_c.f32", np.float32).reshape(1, 12, -1)
    np.testing.assert_array_equal(streamed, _python_stream(stream_model, frames[None]))
    allocs = run(str(build / "stream_allocs"), str(data / "stream_model.rnncore"))
    assert allocs.stdout.strip() == "allocations in 100 steps: 0", allocs.stdout + allocs.stderr


def test_wheel_layout_and_helpers():
    import os

    lib = rnncore.get_library_dir()
    libraries = sorted(f for f in os.listdir(lib) if f.startswith("lib"))
    assert libraries == ["librnncore.so", "librnncore.so.0"]
    assert os.path.isfile(os.path.join(rnncore.get_include(), "rnncore", "rnncore.h"))
    assert os.path.isfile(os.path.join(rnncore.get_cmake_dir(), "rnncoreConfig.cmake"))
    out = subprocess.run(["readelf", "-d", os.path.join(lib, "librnncore.so.0")],
                         capture_output=True, text=True)  # fmt: skip
    if out.returncode == 0:
        assert "Library soname: [librnncore.so.0]" in out.stdout
    from importlib.metadata import entry_points

    roots = {e.name: e.value for e in entry_points(group="cmake.root")}
    assert roots.get("rnncore") == "rnncore"  # scikit-build-core projects find the package
    if sys.platform == "linux":  # the Python module uses this library: one copy of the kernels
        maps = open("/proc/self/maps").read()
        assert "librnncore.so.0" in maps
