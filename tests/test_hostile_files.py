"""Crafted files every reader must refuse quickly, in bounded memory, reading nothing else."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

import rnncore
from rnncore.layers import Dense

h5py = pytest.importorskip("h5py")


def _model():
    return rnncore.Sequential([rnncore.Input((3, 2)), Dense(4)])


def _keras_file(path, make_vars):
    """A Keras 3 weights file whose dense layer's `vars` group `make_vars(group)` fills."""
    with h5py.File(path, "w") as f:
        make_vars(f.create_group("layers/dense/vars"))
    return path


def _secret(tmp_path):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.arange(8, dtype=np.float32).tobytes() + b"API-KEY-0123456789abcdef")
    return secret


def _assert_refused(model, path, error, match):
    before = model.get_weights()
    with pytest.raises(error, match=match):
        rnncore.io.load_keras_weights(model, path)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)  # nothing changed


def test_external_links_are_not_followed(tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["kernel"] = np.full((2, 4), 7.0, np.float32)

    def make(vars_):
        vars_["0"] = h5py.ExternalLink(str(other), "/kernel")
        vars_["1"] = np.zeros(4, np.float32)

    _assert_refused(_model(), _keras_file(tmp_path / "m.weights.h5", make), ValueError,
                    "ExternalLink")  # fmt: skip


def test_soft_links_are_not_followed(tmp_path):
    def make(vars_):
        vars_["1"] = np.zeros(4, np.float32)
        vars_["0"] = h5py.SoftLink("/somewhere/else")

    _assert_refused(_model(), _keras_file(tmp_path / "m.weights.h5", make), ValueError,
                    "SoftLink")  # fmt: skip


def test_external_raw_storage_is_refused(tmp_path):
    secret = _secret(tmp_path)

    def make(vars_):
        vars_.create_dataset("0", (2, 4), np.float32, external=[(str(secret), 0, 32)])
        vars_["1"] = np.zeros(4, np.float32)

    _assert_refused(_model(), _keras_file(tmp_path / "m.weights.h5", make), ValueError,
                    "other files")  # fmt: skip


def test_virtual_datasets_are_refused(tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["kernel"] = np.full((2, 4), 7.0, np.float32)

    def make(vars_):
        layout = h5py.VirtualLayout(shape=(2, 4), dtype=np.float32)
        layout[:] = h5py.VirtualSource(str(other), "kernel", shape=(2, 4))
        vars_.create_virtual_dataset("0", layout)
        vars_["1"] = np.zeros(4, np.float32)

    _assert_refused(_model(), _keras_file(tmp_path / "m.weights.h5", make), ValueError,
                    "other files")  # fmt: skip


def test_a_group_that_contains_itself_is_refused(tmp_path):
    path = tmp_path / "m.weights.h5"
    with h5py.File(path, "w") as f:
        dense = f.create_group("layers/dense")
        dense["cell"] = dense  # a hard link back to itself
    _assert_refused(_model(), path, ValueError, "contains itself")


def test_non_float_weights_are_refused(tmp_path):
    def make(vars_):
        vars_["0"] = np.ones((2, 4), np.int64)
        vars_["1"] = np.zeros(4, np.float32)

    _assert_refused(_model(), _keras_file(tmp_path / "m.weights.h5", make), TypeError,
                    "expected float weights, got dtype int64")  # fmt: skip


def test_a_huge_unwritten_dataset_is_refused_before_it_is_read(tmp_path):
    path = _keras_file(tmp_path / "m.weights.h5", lambda v: (
        v.create_dataset("0", (16384, 16384), np.float32, chunks=(64, 64)),
        v.create_dataset("1", (4,), np.float32)))  # fmt: skip
    assert path.stat().st_size < 100_000
    code = textwrap.dedent(f"""
        import resource, rnncore
        from rnncore.layers import Dense
        model = rnncore.Sequential([rnncore.Input((3, 2)), Dense(4)])
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            rnncore.io.load_keras_weights(model, {str(path)!r})
        except ValueError as e:
            assert "expected shape (2, 4), got (16384, 16384)" in str(e), e
        grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        print(grew)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) < 64 * 1024, out.stdout  # KiB: nothing near the 1 GiB dataset


def test_a_keras_zip_with_an_oversized_member_is_refused(tmp_path):
    path = tmp_path / "m.keras"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("model.weights.h5", b"\0" * (64 << 20))  # compresses to ~64 KiB
    assert path.stat().st_size < 1 << 20
    _assert_refused(_model(), path, ValueError, "larger than this model's weights could need")


def _npz_with_rows(path, x_train):
    """An imdb.npz whose x_train is the given object array, pickled as NumPy does."""
    buf = io.BytesIO()
    np.lib.format.write_array(buf, x_train, allow_pickle=True)
    small = io.BytesIO()
    np.lib.format.write_array(small, np.zeros(len(x_train), np.int64))
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("x_train.npy", buf.getvalue())
        zf.writestr("x_test.npy", buf.getvalue())
        zf.writestr("y_train.npy", small.getvalue())
        zf.writestr("y_test.npy", small.getvalue())


def test_imdb_rows_sharing_one_list_are_refused(tmp_path):
    from rnncore.datasets import imdb

    shared = list(range(1, 20_000))  # every row is this one list: a tiny pickle
    rows = np.empty(25_000, dtype=object)
    for i in range(len(rows)):
        rows[i] = shared
    path = tmp_path / "imdb.npz"
    _npz_with_rows(path, rows)
    assert path.stat().st_size < 1 << 20
    with pytest.raises(ValueError, match="shared"):
        imdb.load_data(path=path)


def test_imdb_rows_of_their_own_still_load(tmp_path):
    from rnncore.datasets import imdb

    rows = np.empty(3, dtype=object)
    for i in range(3):
        rows[i] = [1, 5 + i, 9]
    path = tmp_path / "imdb.npz"
    _npz_with_rows(path, rows)
    (x_train, y_train), _ = imdb.load_data(path=path)
    # start_char 1, then each id shifted by index_from=3; the rows come shuffled
    assert sorted(map(tuple, x_train)) == [(1, 4, 8, 12), (1, 4, 9, 12), (1, 4, 10, 12)]


def _lstm_args(T=5, B=2, I=3, H=4, dtype=np.float32):
    rng = np.random.default_rng(0)
    return [rng.standard_normal(s).astype(dtype) for s in [(T, B, I), (4 * H, I), (4 * H, H)]]


def test_masked_arrays_are_refused_not_silently_unmasked():
    x, w_ih, w_hh = _lstm_args()
    with pytest.raises(TypeError, match="x: a masked array's mask would be ignored"):
        rnncore.lstm(np.ma.masked_array(x, mask=x > 1), w_ih, w_hh)


def test_a_float32_dtype_with_metadata_is_float32():
    x, w_ih, w_hh = _lstm_args()
    tagged = x.view(np.dtype(np.float32, metadata={"unit": "volt"}))
    np.testing.assert_array_equal(
        rnncore.lstm(tagged, w_ih, w_hh)[0], rnncore.lstm(x, w_ih, w_hh)[0]
    )


def test_memory_limit_reads_the_usual_spellings():
    from rnncore._validate import parse_bytes

    assert parse_bytes("8G") == parse_bytes("8GiB") == parse_bytes("8gb") == 8 * 2**30
    assert parse_bytes("1e9") == 10**9 and parse_bytes("512M") == 512 * 2**20
    assert parse_bytes("4096") == 4096
    for bad in ("", "lots", "-1", "0", "1e400", "8X"):
        assert parse_bytes(bad) is None, bad
    code = ("import numpy as np, rnncore\n"
            "try:\n    rnncore.lstm(np.zeros((100, 64, 64), np.float32),"
            " np.zeros((256, 64), np.float32), np.zeros((256, 64), np.float32))\n"
            "except MemoryError as e:\n    print('refused', e)\n")  # fmt: skip
    env = dict(__import__("os").environ, RNNCORE_MEMORY_LIMIT="1M")
    out = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True,
                         text=True, env=env, timeout=120)  # fmt: skip
    assert out.returncode == 0 and out.stdout.startswith("refused"), out.stdout + out.stderr


def test_an_architecture_nested_thousands_deep_is_a_value_error(tmp_path):
    import json

    from rnncore import _safetensors

    dense = json.dumps({"class_name": "Dense", "config": {"units": 1}})
    wrap = '{"class_name": "TimeDistributed", "config": {"layer": '
    spec = wrap * 5000 + dense + "}}" * 5000  # too deep for json.dumps to write
    arch = '{"class_name": "Sequential", "config": {"name": "m", "layers": [' + spec + "]}}"
    path = tmp_path / "deep.rnncore"
    _safetensors.write(path, {}, {"format": "rnncore.sequential/1", "architecture": arch})
    with pytest.raises(ValueError, match="deep.rnncore"):
        rnncore.models.load_model(path)


def test_a_bidirectional_spec_without_its_layers_is_a_value_error():
    with pytest.raises(ValueError, match="Bidirectional config: expected a 'backward_layer'"):
        rnncore.layers.deserialize({"class_name": "Bidirectional", "config": {
            "layer": rnncore.layers.serialize(rnncore.layers.LSTM(2))}})  # fmt: skip


def test_a_stream_without_hidden_units_is_a_value_error():
    with pytest.raises(ValueError, match="w_hh: expected at least one hidden unit"):
        rnncore.Stream("gru", np.zeros((0, 3), np.float32), np.zeros((0, 0), np.float32))


def test_an_empty_batch_of_a_trillion_steps_returns_at_once():
    code = ("import numpy as np, rnncore\n"
            "x = np.empty((10**12, 0, 3), np.float32)\n"
            "w_ih, w_hh = np.zeros((16, 3), np.float32), np.zeros((16, 4), np.float32)\n"
            "y, h, c = rnncore.lstm(x, w_ih, w_hh)\n"
            "print(y.shape, h.shape)\n")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert out.returncode == 0 and out.stdout.strip() == "(1000000000000, 0, 4) (0, 4)", out


def test_model_files_with_integer_weights_are_refused(tmp_path):
    from rnncore import _safetensors

    model = _model()
    model.build()
    path = tmp_path / "m.rnncore"
    model.save(path)
    tensors, metadata = _safetensors.read(path)
    tensors = {k: np.ones(v.shape, np.int64) for k, v in tensors.items()}
    _safetensors.write(path, tensors, metadata)
    with pytest.raises(TypeError, match="expected a float dtype, got int64"):
        rnncore.models.load_model(path)
