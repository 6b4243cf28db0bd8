"""Fuzzing the file readers (model files, weight files, the IMDB npz loader) with damaged bytes,
and the pure-Python public functions (text, data, losses, metrics, activations, initializers,
optimizers) with random and wrong arguments.

Property: a correct result or ValueError / TypeError / MemoryError, never anything else.
"""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import rnncore
from rnncore import activations, data, initializers, losses, metrics, optimizers, text
from rnncore import layers as L
from rnncore.datasets import imdb

from fuzzlib import EXPECTED_ERRORS, bad_values, damage, damaged, outcome


@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory):
    """A saved model file (and its weights-only file) plus the predictions they must give."""
    model = rnncore.Sequential([L.Input((None, 2)), L.LSTM(3, seed=0), L.Dense(1, seed=0)])
    x = np.linspace(-1, 1, 12, dtype=np.float32).reshape(2, 3, 2)
    folder = tmp_path_factory.mktemp("model")
    model.save(folder / "m.rnncore")
    model.save_weights(folder / "m.weights.safetensors")
    files = {
        kind: (folder / name).read_bytes()
        for kind, name in [("model", "m.rnncore"), ("weights", "m.weights.safetensors")]
    }
    return files, x, model.predict(x)


@given(how=damage(4096), which=st.sampled_from(["model", "weights"]))
def test_damaged_model_files_load_correctly_or_are_refused(model_bytes, tmp_path_factory, how,
                                                           which):  # fmt: skip
    files, x, want = model_bytes
    path = tmp_path_factory.mktemp("damaged") / ("f.rnncore" if which == "model" else "w.st")
    path.write_bytes(damaged(files[which], how))
    if which == "model":
        model = outcome(rnncore.models.load_model, path)
    else:
        model = rnncore.Sequential([L.Input((None, 2)), L.LSTM(3), L.Dense(1)])
        model.build((None, 2))
        before = [w.copy() for w in model.get_weights()]
        if outcome(model.load_weights, path) is None:  # refused: nothing was half-loaded
            for a, b in zip(model.get_weights(), before):
                np.testing.assert_array_equal(a, b)
            return
    if model is not None:  # accepted: the damage hit only payload bytes, or none that matter
        got = model.predict(x)
        assert got.shape == want.shape


@given(content=st.one_of(st.binary(max_size=256), st.builds(lambda entries: _zip(entries),
       st.dictionaries(st.sampled_from(["x_train.npy", "y_train.npy", "x_test.npy",
                                        "y_test.npy", "junk"]),
                       st.binary(max_size=64), max_size=5))))  # fmt: skip
def test_damaged_imdb_archives_are_refused(tmp_path_factory, content):
    path = tmp_path_factory.mktemp("imdb") / "imdb.npz"
    path.write_bytes(content)
    assert outcome(imdb.load_data, path) is None


def _zip(entries: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, blob in entries.items():
            zf.writestr(name, blob)
    return buf.getvalue()


TEXTS = st.lists(st.text(max_size=30), max_size=6)
SEQUENCES = st.lists(st.lists(st.integers(-3, 50), max_size=7), max_size=5)


@given(
    sequences=st.one_of(SEQUENCES, bad_values()),
    maxlen=st.one_of(st.none(), st.integers(-2, 8), bad_values()),
    padding=st.sampled_from(["pre", "post", "middle", 3]),
    truncating=st.sampled_from(["pre", "post", None]),
    value=st.one_of(st.integers(-1, 1), st.floats(allow_nan=True)),
)
def test_pad_sequences(sequences, maxlen, padding, truncating, value):
    out = outcome(text.pad_sequences, sequences, maxlen=maxlen, padding=padding,
                  truncating=truncating, value=value)  # fmt: skip
    if out is None:
        return
    lens = [len(s) for s in sequences]
    width = maxlen if maxlen is not None else max(lens, default=0)
    assert out.shape[:2] == (len(sequences), width)  # (+ the items' own shape, as in Keras)
    for row, seq in zip(out, sequences):
        kept = seq[-width:] if truncating == "pre" else seq[:width]
        kept = kept if width else []
        got = row[width - len(kept) :] if padding == "pre" else row[: len(kept)]
        np.testing.assert_array_equal(got, np.asarray(kept, dtype=out.dtype))


@given(texts=st.one_of(TEXTS, bad_values()), num_words=st.one_of(st.none(), st.integers(-1, 5)),
       oov=st.sampled_from([None, "<oov>"]), more=st.one_of(TEXTS, bad_values()))  # fmt: skip
def test_tokenizer(texts, num_words, oov, more):
    tok = outcome(text.Tokenizer, num_words=num_words, oov_token=oov)
    if tok is None or outcome(lambda: tok.fit_on_texts(texts) or "fitted") is None:
        return
    seqs = outcome(tok.texts_to_sequences, more)
    if seqs is None:
        return
    assert len(seqs) == len(more)
    limit = num_words if num_words else len(tok.word_index) + 1
    assert all(0 < i < max(limit, 2) for s in seqs for i in s)
    assert len(outcome(tok.sequences_to_texts, seqs) or seqs) == len(seqs)


@given(n=st.one_of(st.integers(-2, 40), bad_values()), fraction=st.one_of(st.floats(-1, 2),
       bad_values()), classes=st.integers(1, 4), seed=st.integers(0, 10))  # fmt: skip
def test_stratified_split(n, fraction, classes, seed):
    if isinstance(n, int) and not isinstance(n, bool) and 0 <= n:
        x, y = np.arange(n), np.arange(n) % classes
    else:
        x, y = n, n
    out = outcome(data.stratified_split, x, y, fraction, seed=seed)
    if out is None:
        return
    (x1, y1), (x2, y2) = out
    assert len(x1) + len(x2) == len(x)  # every row lands on exactly one side
    np.testing.assert_array_equal(np.sort(np.concatenate([x1, x2])), np.sort(x))
    np.testing.assert_array_equal(np.sort(np.concatenate([y1, y2])), np.sort(y))


@given(batch=st.one_of(st.integers(-1, 4), bad_values()),
       steps=st.one_of(st.integers(-1, 6), bad_values()))  # fmt: skip
def test_generate_time_series(batch, steps):
    out = outcome(data.generate_time_series, batch, steps, seed=0)
    if out is not None:
        assert out.shape == (batch, steps, 1) and np.isfinite(out).all()


LOSS_NAMES = ["mse", "mae", "huber", "binary_crossentropy", "categorical_crossentropy",
              "sparse_categorical_crossentropy"]  # fmt: skip


@given(
    name=st.sampled_from(LOSS_NAMES),
    shape=st.tuples(st.integers(0, 3), st.integers(1, 3)),
    y_true=st.one_of(st.just("matching"), bad_values()),
    y_pred=st.one_of(st.just("matching"), bad_values()),
    seed=st.integers(0, 100),
)
def test_losses_and_metrics(name, shape, y_true, y_pred, seed):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(shape[1]), size=shape[0]) if shape[0] else np.zeros((0, shape[1]))
    t = (rng.integers(0, shape[1], (shape[0], 1)) if name.startswith("sparse")
         else np.eye(shape[1])[rng.integers(0, shape[1], shape[0])])  # fmt: skip
    generated = isinstance(y_true, str) and isinstance(y_pred, str)
    y_true = t if isinstance(y_true, str) else y_true
    y_pred = p if isinstance(y_pred, str) else y_pred
    loss = losses.get(name)
    value = outcome(loss, y_true, y_pred)
    if value is not None and generated:  # (NaN labels may give a NaN loss, visibly)
        assert np.isfinite(value)
    for metric in ["accuracy", "mae", "mse"]:
        m = outcome(metrics.get, metric, loss, shape[1])
        if m is not None:
            outcome(m.values, y_true, y_pred)


ACTIVATIONS = ["relu", "tanh", "sigmoid", "softmax", "linear", None, "swish"]


@given(
    name=st.one_of(st.sampled_from(ACTIVATIONS), bad_values()),
    x=st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), max_size=6),
)
def test_activations(name, x):
    act = outcome(activations.get, name)
    if act is not None:
        y = act(np.asarray(x, np.float32).reshape(1, -1))
        assert y.shape == (1, len(x))
        finite = np.isfinite(np.asarray(x, np.float32))
        if name in ("tanh", "sigmoid") and finite.all():
            assert np.isfinite(y).all() and np.abs(y).max(initial=0) <= 1


@given(name=st.one_of(st.sampled_from(["glorot_uniform", "orthogonal", "zeros", "ones",
                                        "uniform", "he_normal"]), bad_values()),
       shape=st.tuples(st.integers(0, 4), st.integers(0, 4)))  # fmt: skip
def test_initializers(name, shape):
    init = outcome(initializers.get, name, "kernel_initializer")
    if init is not None:
        w = init(shape, np.random.default_rng(0))
        assert np.shape(w) == shape and np.isfinite(w).all()


@given(name=st.sampled_from(["sgd", "adam", "rmsprop", "adagrad"]),
       option=st.sampled_from(["learning_rate", "clipnorm", "clipvalue", "global_clipnorm"]),
       value=st.one_of(st.floats(-1, 10), st.just(float('nan')), bad_values()))  # fmt: skip
def test_optimizer_options(name, option, value):
    cls = {"sgd": optimizers.SGD, "adam": optimizers.Adam, "rmsprop": optimizers.RMSprop,
           "adagrad": optimizers.Adagrad}[name]  # fmt: skip
    opt = outcome(cls, **{option: value})
    if opt is None:
        return
    assert value is None or (np.isfinite(value) and value > 0)  # only positive finite values
    params = {"w": np.ones(3, np.float32)}
    opt.apply(params, {"w": np.array([1e30, -1e30, 3.0], np.float32)})  # (g*g).sum() overflows
    assert np.isfinite(params["w"]).all()


@given(bad=bad_values())
def test_set_num_threads_refuses_bad_values(bad):
    before = rnncore.get_num_threads()
    try:
        rnncore.set_num_threads(bad)
    except EXPECTED_ERRORS:
        assert rnncore.get_num_threads() == before
        return
    rnncore.set_num_threads(before)
