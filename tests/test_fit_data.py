"""Data in fit / evaluate / predict as Keras takes it: sample and class weights (Keras as the
oracle), generators, iterators and PyDatasets, steps_per_epoch, validation_freq."""

from __future__ import annotations

import os

import numpy as np
import pytest

import rnncore
from rnncore import layers as L
from rnncore import utils

from conftest import import_peer

STEPS, FEATURES, CLASSES = 6, 3, 3


def _data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, STEPS, FEATURES)).astype(np.float32)
    y = rng.integers(0, CLASSES, n)
    return x, y


def _ours(seed=0, per_step=False):
    rnncore.utils.set_random_seed(seed)
    model = rnncore.Sequential([rnncore.Input((STEPS, FEATURES)),
                                L.LSTM(4, return_sequences=per_step),
                                L.Dense(CLASSES, activation="softmax")])  # fmt: skip
    model.compile(rnncore.optimizers.SGD(0.5), "sparse_categorical_crossentropy", ["accuracy"])
    return model


def _keras_twin(ours, per_step=False):
    os.environ.setdefault("KERAS_BACKEND", "torch")  # the compare extra's backend
    keras = import_peer("keras")
    model = keras.Sequential([keras.Input((STEPS, FEATURES)),
                              keras.layers.LSTM(4, return_sequences=per_step),
                              keras.layers.Dense(CLASSES, activation="softmax")])  # fmt: skip
    model.set_weights(ours.get_weights())
    model.compile(
        keras.optimizers.SGD(0.5), "sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    return model


@pytest.mark.parametrize("how", ["sample_weight", "class_weight", "temporal"])
def test_weighted_training_matches_keras(how):
    x, y = _data()
    per_step = how == "temporal"  # a label and a weight per step
    ours = _ours(per_step=per_step)
    theirs = _keras_twin(ours, per_step=per_step)
    rng = np.random.default_rng(1)
    kw = {"sample_weight": rng.uniform(0, 2, len(x))}
    if per_step:
        y = rng.integers(0, CLASSES, (len(x), STEPS))
        kw = {"sample_weight": rng.uniform(0, 2, (len(x), STEPS))}
    if how == "class_weight":
        kw = {"class_weight": {0: 0.2, 1: 1.0, 2: 3.0}}
    got = ours.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0, **kw)
    want = theirs.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0, **kw)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got.history["loss"], want.history["loss"], rtol=1e-4)
    ev = {"sample_weight": kw.get("sample_weight")}
    np.testing.assert_allclose(ours.evaluate(x, y, **ev), theirs.evaluate(x, y, verbose=0, **ev),
                               rtol=1e-4, atol=1e-6)  # fmt: skip


def test_weights_change_the_loss_as_defined():
    x, y = _data()
    model = _ours()
    sw = np.zeros(len(x))
    sw[:10] = 2.0
    p = model.predict(x)
    per_sample = -np.log(p[np.arange(len(y)), y])
    expected = (per_sample * sw).sum() / len(x)  # Keras: sum of weighted losses / count
    loss = model.evaluate(x, y, sample_weight=sw, batch_size=len(x), return_dict=True)["loss"]
    assert loss == pytest.approx(expected, rel=1e-5)
    before = [w.copy() for w in model.get_weights()]
    model.train_on_batch(x, y, sample_weight=np.zeros(len(x)))  # all weights zero: no step
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)


class _Windows(utils.PyDataset):
    def __init__(self, x, y, size):
        super().__init__()
        self.x, self.y, self.size, self.epochs_ended = x, y, size, 0

    def __len__(self):
        return -(-len(self.x) // self.size)

    def __getitem__(self, i):
        sl = slice(i * self.size, (i + 1) * self.size)
        return self.x[sl], self.y[sl]

    def on_epoch_end(self):
        self.epochs_ended += 1


def _batches(x, y, size, sw=None):
    while True:  # endless, as Keras generators usually are
        for start in range(0, len(x), size):
            sl = slice(start, start + size)
            yield (x[sl], y[sl]) if sw is None else (x[sl], y[sl], sw[sl])


def test_generators_and_pydatasets_train_as_the_arrays_do():
    x, y = _data()
    sw = np.random.default_rng(2).uniform(0, 1, len(x))
    reference = _ours()
    h_ref = reference.fit(x, y, batch_size=10, epochs=3, shuffle=False, verbose=0,
                          sample_weight=sw, validation_data=(x[:8], y[:8]))  # fmt: skip
    from_generator = _ours()
    h_gen = from_generator.fit(_batches(x, y, 10, sw), steps_per_epoch=4, epochs=3, verbose=0,
                               validation_data=_batches(x[:8], y[:8], 8),
                               validation_steps=1)  # fmt: skip
    for a, b in zip(from_generator.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert h_gen.history == h_ref.history
    dataset = _Windows(x, y, 10)
    from_dataset = _ours()
    from_dataset.fit(dataset, epochs=3, verbose=0, sample_weight=None)
    assert dataset.epochs_ended == 3
    unweighted = _ours()
    unweighted.fit(x, y, batch_size=10, epochs=3, shuffle=False, verbose=0)
    for a, b in zip(from_dataset.get_weights(), unweighted.get_weights()):
        np.testing.assert_array_equal(a, b)
    # evaluate and predict take them too
    assert from_dataset.evaluate(_Windows(x, y, 10), return_dict=True) == pytest.approx(
        from_dataset.evaluate(x, y, batch_size=10, return_dict=True), rel=1e-6
    )
    np.testing.assert_array_equal(from_dataset.predict(_Windows(x, y, 10)),
                                  from_dataset.predict(x, batch_size=10))  # fmt: skip
    np.testing.assert_array_equal(
        from_dataset.predict(xb for xb in np.array_split(x, 4)), from_dataset.predict(x)
    )


def test_a_finite_generator_ends_training_with_a_warning():
    x, y = _data(20)
    model = _ours()
    finite = ((x[i : i + 5], y[i : i + 5]) for i in range(0, 20, 5))
    with pytest.warns(UserWarning, match="ran out of data"):
        history = model.fit(finite, epochs=5, verbose=0)
    assert len(history.history["loss"]) == 1  # the second epoch found nothing and stopped


def test_steps_per_epoch_cuts_array_epochs_and_progress_counts_unknown_steps(capsys):
    x, y = _data()
    model = _ours()
    model.fit(x, y, batch_size=10, steps_per_epoch=2, epochs=1, verbose=1)
    assert "2/2 [" in capsys.readouterr().out
    finite = ((x[i : i + 10], y[i : i + 10]) for i in range(0, 40, 10))
    model.fit(finite, epochs=1, verbose=1)
    assert "4/4 [" in capsys.readouterr().out


@pytest.mark.parametrize("freq, validated", [(2, [1, 3]), ([1, 4], [0, 3]), (1, [0, 1, 2, 3])])
def test_validation_freq(freq, validated):
    x, y = _data()
    seen = []
    cb = rnncore.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: seen.append(epoch) if "val_loss" in logs else None
    )
    history = _ours().fit(x, y, epochs=4, verbose=0, validation_split=0.25,
                          validation_freq=freq, callbacks=[cb])  # fmt: skip
    assert seen == validated
    assert len(history.history["val_loss"]) == len(validated)


def test_clear_errors_for_bad_data_arguments():
    x, y = _data()
    model = _ours()
    cases = [
        (dict(x=x, y=y, sample_weight=np.ones(3)), ValueError,
         r"sample_weight: expected shape \(40,\)"),
        (dict(x=x, y=y, sample_weight=np.ones(40), class_weight={0: 1.0}), ValueError,
         "give one of them, not both"),
        (dict(x=x, y=y, class_weight=[1.0, 2.0]), TypeError, "class_weight: expected a dict"),
        (dict(x=_batches(x, y, 10), y=y), ValueError, "pass x alone"),
        (dict(x=x, y=y, steps_per_epoch=0), ValueError, "steps: expected a positive int"),
        (dict(x=x, y=y, validation_freq=0), ValueError, "validation_freq: expected"),
        (dict(x=x, y=y, validation_data=(x, y, np.ones(3))), ValueError, "sample_weight"),
        (dict(x=iter([[1, 2]]), steps_per_epoch=1), ValueError,
         r"expected batches \(x, y\) or \(x, y, sample_weight\)"),
    ]  # fmt: skip
    for kwargs, error, message in cases:
        with pytest.raises(error, match=message):
            model.fit(epochs=1, verbose=0, **kwargs)


class _Kill(rnncore.callbacks.Callback):
    """Stands in for a killed process: raises after the backup of epoch `at` is written."""

    def __init__(self, at):
        self.at = at

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.at:
            raise KeyboardInterrupt


def _dropout_model():
    rnncore.utils.set_random_seed(3)
    layers = [L.LSTM(5, dropout=0.2, recurrent_dropout=0.2), L.Dropout(0.3),
              L.Dense(CLASSES, activation="softmax")]  # fmt: skip
    model = rnncore.Sequential([rnncore.Input((STEPS, FEATURES)), *layers])
    model.compile("adam", "sparse_categorical_crossentropy", ["accuracy"])
    return model


def test_backup_and_restore_resumes_a_killed_fit_with_the_same_results(tmp_path):
    x, y = _data()
    straight = _dropout_model()
    h_straight = straight.fit(x, y, batch_size=8, epochs=5, verbose=0)
    backup = rnncore.callbacks.BackupAndRestore(tmp_path / "backup")
    killed = _dropout_model()
    with pytest.raises(KeyboardInterrupt):
        killed.fit(x, y, batch_size=8, epochs=5, verbose=0, callbacks=[backup, _Kill(at=2)])
    assert (tmp_path / "backup" / "state.json").exists()  # an interrupted fit keeps it
    resumed = _dropout_model()  # a new process: the model built again from the script
    history = resumed.fit(x, y, batch_size=8, epochs=5, verbose=0, callbacks=[backup])
    assert history.epoch == [3, 4]  # it resumed after the last backed-up epoch
    for a, b in zip(resumed.get_weights(), straight.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert history.history["loss"] == h_straight.history["loss"][3:]
    assert not (tmp_path / "backup" / "state.json").exists()  # deleted after completing


def test_backup_and_restore_refuses_a_foreign_backup(tmp_path):
    x, y = _data()
    backup = rnncore.callbacks.BackupAndRestore(tmp_path)
    model = _ours()
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, epochs=2, verbose=0, callbacks=[backup, _Kill(at=0)])
    other = _dropout_model()  # other layers: the weights file does not fit
    with pytest.raises(ValueError):
        other.fit(x, y, epochs=2, verbose=0, callbacks=[backup])
    import zipfile

    with zipfile.ZipFile(tmp_path / "weights.npz", "w", zipfile.ZIP_DEFLATED) as bomb:
        bomb.writestr("w0.npy", b"\0" * (64 << 20))  # 64 MiB of zeros, a few KiB packed
    with pytest.raises(ValueError, match="larger or more numerous"):
        _ours().fit(x, y, epochs=1, verbose=0, callbacks=[backup])
    (tmp_path / "state.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a backup record"):
        _ours().fit(x, y, epochs=1, verbose=0, callbacks=[backup])
