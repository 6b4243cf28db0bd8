"""Interop: rnncore.nn against torch.nn (packed variable-length input, gradients, state_dict
both ways), Keras weight files, ONNX export run in ONNX Runtime, and model files read by the
safetensors package."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import rnncore
from rnncore import io as rio
from rnncore import layers as L
from rnncore import nn

from conftest import import_peer

FIXTURES = Path(__file__).parent / "fixtures"
sys.path.insert(0, str(FIXTURES))
from keras_cases import FILE_CASES, build  # noqa: E402

LENGTHS = np.array([6, 3, 1, 5])


def _rel(a, b):
    return np.abs(np.asarray(a) - np.asarray(b)).max() / max(np.abs(np.asarray(b)).max(), 1e-3)


def _torch_module(torch, name, dtype, **kw):
    torch.manual_seed(0)
    cls = getattr(torch.nn, name)
    return cls(3, 5, num_layers=2, bidirectional=True, batch_first=True, **kw).to(dtype)


def _torch_packed_run(torch, module, x, lengths, hx=None):
    xt = torch.tensor(x, requires_grad=True)
    packed = torch.nn.utils.rnn.pack_padded_sequence(xt, torch.tensor(lengths), batch_first=True,
                                                     enforce_sorted=False)  # fmt: skip
    out, states = module(packed, hx)
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
    return xt, out, states


@pytest.mark.parametrize("name, kw", [("LSTM", {}), ("GRU", {}), ("RNN", {"nonlinearity": "relu"})])
def test_two_layer_bidirectional_packed_matches_torch(name, kw):
    torch = import_peer("torch")
    tm = _torch_module(torch, name, torch.float32, **kw)
    ours = rio.from_torch(tm)
    assert isinstance(ours, getattr(nn, name)) and ours.training
    x = np.random.default_rng(0).standard_normal((4, 6, 3)).astype(np.float32)
    out, states = ours(x, lengths=LENGTHS)
    _, t_out, t_states = _torch_packed_run(torch, tm, x, LENGTHS)
    assert _rel(out, t_out.detach().numpy()) <= 2e-5
    for s, ts in zip(states if name == "LSTM" else [states],
                     t_states if name == "LSTM" else [t_states]):  # fmt: skip
        assert s.shape == tuple(ts.shape) and _rel(s, ts.detach().numpy()) <= 2e-5
    assert np.all(out[1, 3:] == 0) and np.all(out[2, 1:] == 0)  # padded steps are zero


@pytest.mark.parametrize("name", ["LSTM", "GRU", "RNN"])
def test_gradients_match_torch_with_initial_state(name):
    torch = import_peer("torch")
    tm = _torch_module(torch, name, torch.float64)
    ours = rio.from_torch(tm)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 6, 3))
    h0 = rng.standard_normal((4, 4, 5))
    hx = (h0, rng.standard_normal((4, 4, 5))) if name == "LSTM" else h0
    out, _ = ours(x, hx, lengths=LENGTHS)
    t_hx = tuple(torch.tensor(h, requires_grad=True) for h in (hx if name == "LSTM" else [hx]))
    xt, t_out, t_states = _torch_packed_run(
        torch, tm, x, LENGTHS, t_hx if name == "LSTM" else t_hx[0]
    )
    w_out = rng.standard_normal(out.shape)
    w_h = rng.standard_normal(h0.shape)
    t_h_n = t_states[0] if name == "LSTM" else t_states
    ((t_out * torch.tensor(w_out)).sum() + (t_h_n * torch.tensor(w_h)).sum()).backward()
    grads = ours.backward(w_out, w_h)
    for pname, p in tm.named_parameters():
        assert _rel(grads[pname], p.grad.numpy()) < 1e-10, pname
    assert _rel(grads["input"], xt.grad.numpy()) < 1e-10
    assert _rel(grads["hx"], t_hx[0].grad.numpy()) < 1e-10
    if name == "LSTM":
        assert _rel(grads["cx"], t_hx[1].grad.numpy()) < 1e-10


def test_round_trip_rnncore_torch_rnncore_and_eval_mode():
    torch = import_peer("torch")
    ours = nn.GRU(3, 4, num_layers=2, dropout=0.5, seed=3).eval()
    tm = rio.to_torch(ours)
    assert not tm.training and tm.dropout == 0.5
    back = rio.from_torch(tm)
    for k, v in ours.state_dict().items():
        assert np.array_equal(back.state_dict()[k], v) and back.state_dict()[k].dtype == v.dtype
    x = np.random.default_rng(0).standard_normal((5, 2, 3)).astype(np.float32)  # time-major
    out, h = back(x)
    t_out, t_h = tm(torch.tensor(x))
    assert _rel(out, t_out.detach().numpy()) <= 2e-5 and _rel(h, t_h.detach().numpy()) <= 2e-5
    # torch's own load_state_dict takes ours (wrapped as tensors)
    fresh = torch.nn.GRU(3, 4, num_layers=2)
    fresh.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})


def test_unbatched_input_and_attribute_access():
    torch = import_peer("torch")
    m = nn.LSTM(3, 4, seed=0).eval()
    x = np.random.default_rng(0).standard_normal((6, 3)).astype(np.float32)
    out, (h, c) = m(x)
    assert out.shape == (6, 4) and h.shape == (1, 4) and c.shape == (1, 4)
    tm = rio.to_torch(m)
    t_out, (t_h, _) = tm(torch.tensor(x))
    assert _rel(out, t_out.detach().numpy()) <= 2e-5 and _rel(h, t_h.detach().numpy()) <= 2e-5
    assert m.weight_ih_l0.shape == (16, 3) and len(m.parameters()) == 4
    with pytest.raises(AttributeError):
        m.weight_ih_l5  # noqa: B018


def test_inter_layer_dropout_trains_through_the_kernels():
    m = nn.RNN(2, 3, num_layers=2, dropout=0.4, dtype="float64", seed=0)
    x = np.random.default_rng(0).standard_normal((5, 3, 2))
    w = np.random.default_rng(1).standard_normal((5, 3, 3))

    def loss():
        m._rng = np.random.default_rng(7)  # the same dropout mask every call
        return float((m(x)[0] * w).sum())

    loss()
    grads = m.backward(w)
    p, eps = m.weight_hh_l0, 1e-6
    for idx in [(0, 0), (1, 2), (2, 1)]:
        old = p[idx]
        p[idx] = old + eps
        up = loss()
        p[idx] = old - eps
        down = loss()
        p[idx] = old
        assert abs((up - down) / (2 * eps) - grads["weight_hh_l0"][idx]) < 1e-6
    eval_out = m.eval()(x)[0]
    assert not np.allclose(eval_out, m.train()(x)[0])  # dropout acts only in training


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda m: m.load_state_dict({"weight_ih_l0": np.zeros((6, 3))}), KeyError, "missing"),
        (
            lambda m: m.load_state_dict({**m.state_dict(), "weight_ih_l0": np.zeros((4, 3))}),
            ValueError,
            r"weight_ih_l0: expected shape \(6, 3\)",
        ),  # fmt: skip
        (lambda m: m.load_state_dict([1, 2]), TypeError, "mapping"),
        (lambda m: m(np.zeros((5, 2, 4))), ValueError, "expected 3 features"),
        (lambda m: m(np.zeros((5,))), ValueError, "2-D or 3-D"),
        (lambda m: m(np.zeros((5, 2, 3)), np.zeros((2, 2, 2))), ValueError, "hx: expected shape"),
        (lambda m: m.eval().backward(np.zeros((5, 2, 2))), RuntimeError, "training mode"),
        (
            lambda m: (m(np.zeros((5, 2, 3))), m.backward(np.zeros((5, 2, 3))))[1],
            ValueError,
            "d_output",
        ),  # fmt: skip
        (lambda m: nn.GRU(3, 0), ValueError, "hidden_size"),
        (lambda m: nn.GRU(3, 2, dropout=1.0), ValueError, "dropout"),
        (lambda m: nn.RNN(3, 2, nonlinearity="sigmoid"), ValueError, "nonlinearity"),
        (lambda m: nn.LSTM(3, 2, proj_size=1), NotImplementedError, "proj_size"),
        (lambda m: nn.LSTM(3, 2)(np.zeros((5, 2, 3)), np.zeros((1, 2, 2))), TypeError, "tuple"),
        (lambda m: rio.from_torch(object()), TypeError, "torch.nn.RNN, LSTM or GRU"),
    ],
)
def test_nn_errors(call, error, words):
    if "from_torch" in words or "torch.nn" in words:
        import_peer("torch")
    with pytest.raises(error, match=words):
        call(nn.GRU(3, 2))


# ---- Keras files ----------------------------------------------------------------------------


def _keras_case(name):
    with np.load(FIXTURES / "keras" / f"{name}.npz", allow_pickle=False) as f:
        data = dict(f)
    return data["x"], data["y"], [data[f"w{i}"] for i in range(sum(k[0] == "w" for k in data))]


@pytest.mark.parametrize("name", FILE_CASES)
@pytest.mark.parametrize("suffix", [".weights.h5", ".keras"])
def test_keras_files_load_and_match_keras(name, suffix):
    import_peer("h5py")
    x, y_keras, weights = _keras_case(name)
    model = build(rnncore, name)
    rio.load_keras_weights(model, FIXTURES / "keras" / f"{name}{suffix}")
    for w, k in zip(model.get_weights(), weights, strict=True):
        assert np.array_equal(w, k)
    assert _rel(model.predict(x), y_keras) < 2e-5
    # Keras layout round trip: another model takes get_weights() and predicts the same
    twin = build(rnncore, name)
    twin.set_weights(model.get_weights())
    assert np.array_equal(twin.predict(x), model.predict(x))


def test_keras_file_errors(tmp_path):
    import_peer("h5py")
    path = FIXTURES / "keras" / "file_mix.weights.h5"
    with pytest.raises(ValueError, match="build it first"):
        rio.load_keras_weights(rnncore.Sequential([L.Dense(2)]), path)
    short = rnncore.Sequential([rnncore.Input((7, 3)), L.Conv1D(4, 2, padding="causal")])
    with pytest.raises(ValueError, match="layers the model lacks"):
        rio.load_keras_weights(short, path)
    wrong = rnncore.Sequential([rnncore.Input((7, 3)), L.LSTM(4)])
    with pytest.raises(ValueError, match="no layer group 'lstm'"):
        rio.load_keras_weights(wrong, FIXTURES / "keras" / "stacked_sentiment.weights.h5")
    resized = build(rnncore, "file_mix")
    resized.layers[0] = L.Conv1D(5, 2, padding="causal")
    resized.layers[0].ensure_built((None, 7, 3))
    with pytest.raises(ValueError, match="expected shape"):
        rio.load_keras_weights(resized, path)
    last_resized = build(rnncore, "file_mix")  # the mismatch is in the last layer
    last_resized.layers[-1] = L.Dense(5)
    last_resized.layers[-1].ensure_built((None, 3))
    before = last_resized.get_weights()
    with pytest.raises(ValueError, match="expected shape"):
        rio.load_keras_weights(last_resized, path)
    for got, want in zip(last_resized.get_weights(), before):  # all or nothing
        np.testing.assert_array_equal(got, want)
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="not a Keras weights file"):
        rio.load_keras_weights(build(rnncore, "file_mix"), tmp_path / "junk.h5")
    with zipfile.ZipFile(tmp_path / "empty.keras", "w") as zf:
        zf.writestr("config.json", "{}")
    with pytest.raises(ValueError, match="without model.weights.h5"):
        rio.load_keras_weights(build(rnncore, "file_mix"), tmp_path / "empty.keras")
    with pytest.raises(FileNotFoundError):
        rio.load_keras_weights(build(rnncore, "file_mix"), tmp_path / "missing.h5")


# ---- ONNX -----------------------------------------------------------------------------------


def _ids():
    ids = np.random.default_rng(0).integers(1, 20, (5, 7))
    for b, n in enumerate([7, 3, 5, 1, 6]):
        ids[b, n:] = 0  # post padding: ONNX sequence_lens
    return ids


def _floats(*shape, zero_tail=False):
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    if zero_tail:
        x[1, 4:] = 0
        x[2, 2:] = 0
    return x


ONNX_MODELS = {
    "embedding_bidirectional_lengths": lambda: (
        [rnncore.Input((7,)), L.Embedding(20, 4, mask_zero=True),
         L.Bidirectional(L.LSTM(3, return_sequences=True)),
         L.Bidirectional(L.GRU(3), merge_mode="sum"), L.Dense(2, activation="softmax")], _ids()),
    "conv_rnn_gru_reset_before": lambda: (
        [rnncore.Input((9, 2)),
         L.Conv1D(4, 3, padding="causal", dilation_rate=2, activation="relu"),
         L.Conv1D(4, 2, padding="same", strides=2),
         L.SimpleRNN(3, activation="relu", return_sequences=True),
         L.GRU(3, reset_after=False, return_sequences=True), L.LayerNormalization(),
         L.TimeDistributed(L.Dense(2)), L.Flatten(), L.Dense(3, activation="tanh")],
        _floats(4, 9, 2)),
    "backwards_and_merges": lambda: (
        [rnncore.Input((6, 2)), L.LSTM(3, go_backwards=True, return_sequences=True),
         L.Bidirectional(L.SimpleRNN(2, return_sequences=True), merge_mode="mul"),
         L.Bidirectional(L.LSTM(2), merge_mode="ave"), L.Dropout(0.3), L.Dense(1)],
        _floats(4, 6, 2)),
    "masking": lambda: (
        [rnncore.Input((6, 2)), L.Masking(0.0), L.LSTM(3, return_sequences=True), L.GRU(2)],
        _floats(4, 6, 2, zero_tail=True)),
    # Conv1D drops the mask (in rnncore as in Keras): the next RNN sees every step.
    "mask_ends_at_conv_same": lambda: (
        [rnncore.Input((7,)), L.Embedding(20, 4, mask_zero=True),
         L.Conv1D(4, 3, padding="same"), L.LSTM(3), L.Dense(2)], _ids()),
    "mask_ends_at_conv_valid": lambda: (
        [rnncore.Input((7,)), L.Embedding(20, 4, mask_zero=True),
         L.Conv1D(4, 3, padding="valid"), L.GRU(3), L.Dense(2)], _ids()),
    # Each direction keeps its own activation.
    "bidirectional_own_directions": lambda: (
        [rnncore.Input((6, 2)),
         L.Bidirectional(L.SimpleRNN(3, return_sequences=True),
                         backward_layer=L.SimpleRNN(3, activation="relu", go_backwards=True,
                                                    return_sequences=True)),
         L.Flatten(), L.Dense(1)], _floats(4, 6, 2)),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(ONNX_MODELS))
def test_onnx_export_runs_in_onnxruntime(name, tmp_path):
    import_peer("onnx")
    ort = import_peer("onnxruntime")
    layers, x = ONNX_MODELS[name]()
    model = rnncore.Sequential(layers)
    path = tmp_path / "m.onnx"
    rio.export_onnx(model, path)
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]  # no temporary file left
    session = ort.InferenceSession(str(path))
    y = session.run(None, {"x": x.astype(np.int64) if x.dtype.kind == "i" else x})[0]
    assert _rel(y, model.predict(x)) < 2e-5
    y_half = session.run(None, {"x": (x.astype(np.int64) if x.dtype.kind == "i" else x)[:2]})[0]
    assert _rel(y_half, model.predict(x[:2])) < 2e-5  # the batch axis is dynamic


def test_bidirectional_checks_its_backward_layer_as_keras_does():
    with pytest.raises(ValueError, match="go_backwards=True"):
        L.Bidirectional(L.LSTM(3), backward_layer=L.LSTM(3))
    with pytest.raises(ValueError, match="return_sequences=True"):
        L.Bidirectional(L.LSTM(3, return_sequences=True),
                        backward_layer=L.LSTM(3, go_backwards=True))  # fmt: skip
    with pytest.raises(ValueError, match="merge_mode='sum' needs as many units"):
        L.Bidirectional(L.GRU(3), merge_mode="sum", backward_layer=L.GRU(4, go_backwards=True))
    with pytest.raises(TypeError, match="backward_layer: expected a SimpleRNN"):
        L.Bidirectional(L.GRU(3), backward_layer=L.Dense(3))
    # concat joins unequal widths: the shape the model reports is the one it returns
    layer = L.Bidirectional(L.GRU(3), backward_layer=L.GRU(5, go_backwards=True))
    model = rnncore.Sequential([rnncore.Input((4, 2)), layer])
    assert model.predict(_floats(2, 4, 2)).shape == (2, 8) == (2, layer.output_shape((2, 4, 2))[-1])


def test_onnx_export_refuses_directions_it_cannot_map(tmp_path):
    import_peer("onnx")
    layer = L.Bidirectional(L.GRU(3), backward_layer=L.GRU(3, reset_after=False, go_backwards=True))
    model = rnncore.Sequential([rnncore.Input((4, 2)), layer])
    with pytest.raises(NotImplementedError, match="reset_after"):
        rio.export_onnx(model, tmp_path / "m.onnx")


def test_onnx_export_refuses_what_it_cannot_map(tmp_path):
    import_peer("onnx")
    cases = [
        (L.LayerNormSimpleRNN(3), NotImplementedError, "no ONNX mapping"),
        (L.TimeDistributed(L.LayerNormalization()), NotImplementedError, "wraps"),
    ]
    for layer, error, words in cases:
        model = rnncore.Sequential([rnncore.Input((5, 2)), layer])
        with pytest.raises(error, match=words):
            rio.export_onnx(model, tmp_path / "x.onnx")
    masked = rnncore.Sequential([rnncore.Input((5, 2)), L.Masking(),
                                 L.LSTM(3, go_backwards=True, return_sequences=True)])  # fmt: skip
    with pytest.raises(NotImplementedError, match="go_backwards with a mask"):
        rio.export_onnx(masked, tmp_path / "x.onnx")
    with pytest.raises(ValueError, match="build it first"):
        rio.export_onnx(rnncore.Sequential([L.Dense(1)]), tmp_path / "x.onnx")
    assert list(tmp_path.iterdir()) == []


# ---- our own files, read by the safetensors package -----------------------------------------


def test_model_file_is_plain_safetensors(tmp_path):
    st = import_peer("safetensors")
    import_peer("safetensors.numpy")
    model = rnncore.Sequential([rnncore.Input((5, 2)), L.LSTM(3), L.Dense(1)])
    model.save(tmp_path / "m.safetensors")
    arrays = st.numpy.load_file(str(tmp_path / "m.safetensors"))
    assert sorted(a.shape for a in arrays.values()) == sorted(w.shape for w in model.get_weights())
    with st.safe_open(str(tmp_path / "m.safetensors"), "np") as f:
        meta = f.metadata()
    assert meta["rnncore_version"] == rnncore.__version__ and "LSTM" in meta["architecture"]
