"""Bad input to the models API: clear errors naming what was expected, never a crash."""

from __future__ import annotations

import json
import os
import struct

import numpy as np
import pytest

import rnncore
from rnncore import layers as L
from rnncore.models import load_model


def _model():
    m = rnncore.Sequential([rnncore.Input((5, 2)), L.LSTM(3), L.Dense(2, activation="softmax")])
    m.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    return m


def test_wrong_input_shapes():
    m = _model()
    with pytest.raises(ValueError, match=r"expected input shape \(None, 5, 2\), got \(4, 5\)"):
        m.predict(np.zeros((4, 5)))
    with pytest.raises(ValueError, match=r"expected input shape \(None, 5, 2\), got \(4, 5, 3\)"):
        m.predict(np.zeros((4, 5, 3)))
    with pytest.raises(ValueError, match="rank >= 3"):
        L.GRU(2)(np.zeros((4, 5)))
    gru = L.GRU(2)
    gru(np.zeros((1, 3, 4)))
    with pytest.raises(ValueError, match=r"expected input shape \(None, None, 4\)"):
        gru(np.zeros((1, 3, 5)))
    with pytest.raises(TypeError, match="numeric"):
        m.predict(np.array([["a"]]))
    with pytest.raises(ValueError, match="token ids must be in"):
        L.Embedding(5, 2)(np.array([[1, 5]]))
    with pytest.raises(TypeError, match="integer token ids"):
        L.Embedding(5, 2)(np.array([[1.5]]))


def test_labels_that_do_not_fit_the_loss():
    m = _model()
    x = np.zeros((4, 5, 2))
    with pytest.raises(ValueError, match=r"class ids in \[0, 2\)"):
        m.fit(x, np.array([0, 1, 2, 1]), verbose=0)
    with pytest.raises(ValueError, match=r"labels of shape \(4,\)"):
        m.fit(x, np.zeros((4, 3)), verbose=0)
    with pytest.raises(ValueError, match="expected 4 samples"):
        m.fit(x, np.zeros(3), verbose=0)
    m.compile("adam", "mse")
    with pytest.raises(ValueError, match=r"labels shape \(4, 3\) does not match the model output"):
        m.fit(x, np.zeros((4, 3)), verbose=0)
    m.compile("adam", "binary_crossentropy")
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        m.evaluate(x, np.full((4, 2), 2.0))


def test_unknown_names_and_unsupported_options():
    m = _model()
    with pytest.raises(ValueError, match="unknown optimizer 'adamw2'"):
        m.compile("adamw2", "mse")
    with pytest.raises(ValueError, match="unknown loss 'msee'"):
        m.compile("adam", "msee")
    with pytest.raises(ValueError, match="unknown metric 'f1'"):
        m.compile("adam", "mse", ["f1"])
    with pytest.raises(ValueError, match="unknown activation 'swishy'"):
        L.Dense(2, activation="swishy")
    with pytest.raises(ValueError, match="unknown initializer"):
        L.LSTM(2, kernel_initializer="nope")
    with pytest.raises(NotImplementedError, match="recurrent_activation must be 'sigmoid'"):
        L.GRU(2, recurrent_activation="hard_sigmoid")
    with pytest.raises(ValueError, match="units: expected a positive int"):
        L.LSTM(0)
    with pytest.raises(ValueError, match=r"dropout: expected a float in \[0, 1\)"):
        L.LSTM(2, dropout=1.0)
    with pytest.raises(ValueError, match="padding"):
        L.Conv1D(2, 3, padding="full")
    with pytest.raises(ValueError, match="merge_mode"):
        L.Bidirectional(L.LSTM(2), merge_mode="max")


def test_empty_datasets():
    m = _model()
    x, y = np.zeros((4, 5, 2)), np.zeros(4, dtype=int)
    with pytest.raises(ValueError, match="x: expected at least one sample"):
        m.fit(x[:0], y[:0], verbose=0)
    with pytest.raises(ValueError, match="validation_data: expected at least one sample"):
        m.fit(x, y, validation_data=(x[:0], y[:0]), verbose=0)
    with pytest.raises(ValueError, match="validation_data: expected at least one sample"):
        m.fit(x[:1], y[:1], validation_split=0.1, verbose=0)
    with pytest.raises(ValueError, match="x: expected at least one sample"):
        m.evaluate(x[:0], y[:0])


def test_fit_before_compile():
    m = rnncore.Sequential([L.Dense(1, input_shape=(3,))])
    with pytest.raises(RuntimeError, match="compile"):
        m.fit(np.zeros((2, 3)), np.zeros((2, 1)))
    with pytest.raises(RuntimeError, match="compile"):
        m.evaluate(np.zeros((2, 3)), np.zeros((2, 1)))
    with pytest.raises(ValueError, match="a loss is required"):
        m.compile("adam")


def test_summary_needs_a_shape():
    with pytest.raises(ValueError, match="input shape"):
        rnncore.Sequential([L.Dense(1)]).summary()


# ---- model files ----


def _write_raw(path, header: dict, data: bytes, header_len=None):
    head = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head) if header_len is None else header_len))
        f.write(head)
        f.write(data)


def _saved(tmp_path):
    m = _model()
    path = tmp_path / "model.rnncore"
    m.save(path)
    return m, path


def _header(path):
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def test_damaged_files_give_clear_errors(tmp_path):
    _, path = _saved(tmp_path)
    header, data = _header(path)
    bad = tmp_path / "bad"

    bad.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(ValueError, match="truncated"):
        load_model(bad)
    bad.write_bytes(b"\x01\x02")
    with pytest.raises(ValueError, match="not a safetensors file"):
        load_model(bad)
    _write_raw(bad, header, data, header_len=10**6)
    with pytest.raises(ValueError, match="runs past the end"):
        load_model(bad)
    _write_raw(bad, header, data, header_len=2**62)
    with pytest.raises(ValueError, match="exceeds"):
        load_model(bad)
    bad.write_bytes(struct.pack("<Q", 4) + b"{{{{")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_model(bad)

    def mutate(fn, match):
        h = json.loads(json.dumps(header))
        fn(h)
        _write_raw(bad, h, data)
        with pytest.raises(ValueError, match=match):
            load_model(bad)

    first = next(k for k in header if k != "__metadata__")
    mutate(lambda h: h[first].update(dtype="Q99"), "unknown or unsupported dtype")
    mutate(lambda h: h[first].update(shape=[10**9, 10**9]), "needs")
    mutate(lambda h: h[first].update(data_offsets=[0, 10**12]), "needs|covers")
    mutate(lambda h: h[first].update(data_offsets=[-1, 3]), "invalid data_offsets")

    def overlap(h):
        names = sorted((k for k in h if k != "__metadata__"), key=lambda k: h[k]["data_offsets"])
        a, b = h[names[0]], h[names[1]]
        size = b["data_offsets"][1] - b["data_offsets"][0]
        b["data_offsets"] = [a["data_offsets"][0], a["data_offsets"][0] + size]

    mutate(overlap, "overlaps|gap|needs")
    mutate(lambda h: h["__metadata__"].update(format="something-else"), "not an rnncore model file")
    mutate(lambda h: h["__metadata__"].update(architecture="{"), "invalid architecture")
    mutate(lambda h: h["__metadata__"].pop("format"), "not an rnncore model file")


def test_weights_for_a_different_architecture(tmp_path):
    _, path = _saved(tmp_path)
    other = rnncore.Sequential([rnncore.Input((5, 2)), L.GRU(3), L.Dense(2)])
    with pytest.raises(ValueError, match="expected shape|do not fit"):
        other.load_weights(path)
    header, data = _header(path)
    arch = json.loads(header["__metadata__"]["architecture"])
    arch["config"]["layers"][0]["config"]["units"] = 4
    header["__metadata__"]["architecture"] = json.dumps(arch)
    _write_raw(tmp_path / "bad", header, data)
    with pytest.raises(ValueError, match="expected shape"):
        load_model(tmp_path / "bad")


def test_foreign_safetensors_file(tmp_path):
    from rnncore import _safetensors

    _safetensors.write(tmp_path / "f.safetensors", {"weight": np.zeros((2, 2), np.float32)}, {})
    with pytest.raises(ValueError, match="not an rnncore model file"):
        load_model(tmp_path / "f.safetensors")
    tensors, meta = _safetensors.read(tmp_path / "f.safetensors")
    assert tensors["weight"].shape == (2, 2) and meta == {}


def test_a_failed_save_leaves_the_old_file(tmp_path, monkeypatch):
    m, path = _saved(tmp_path)
    before = path.read_bytes()

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    m.layers[0].params["w_ih"] += 1
    with pytest.raises(OSError, match="disk full"):
        m.save(path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["model.rnncore"]
