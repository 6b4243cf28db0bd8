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
