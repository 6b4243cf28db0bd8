"""The port test: classic Keras RNN tutorials written as their authors wrote them, with only the
import changed (`import rnncore as keras`), on synthetic data of the real shapes (fewer
samples and epochs). Each asserts that the program ran to its end and learned or produced
what the tutorial shows. Also the keras.ops, preprocessing, utils and `weights` names they
reach for."""

# ruff: noqa: NPY002  (the tutorials use NumPy's legacy global generator; so does this copy)

from __future__ import annotations

import difflib

import numpy as np
import pytest

import rnncore as keras
from rnncore import layers


def test_working_with_rnns_guide(capsys):
    # keras.io "Working with RNNs": built-in layers, outputs and states, cells, statefulness.
    model = keras.Sequential()
    model.add(layers.Embedding(input_dim=1000, output_dim=64))
    model.add(layers.LSTM(128))
    model.add(layers.Dense(10))
    model.build((None, 20))
    model.summary()
    assert "Total params: " in capsys.readouterr().out

    model = keras.Sequential()
    model.add(layers.Embedding(input_dim=1000, output_dim=64))
    model.add(layers.GRU(256, return_sequences=True))  # output (batch_size, timesteps, 256)
    model.add(layers.SimpleRNN(128))  # output (batch_size, 128)
    model.add(layers.Dense(10))
    assert model.predict(np.random.randint(1000, size=(3, 11)), verbose=0).shape == (3, 10)

    model = keras.Sequential()
    model.add(layers.Bidirectional(layers.LSTM(64, return_sequences=True), input_shape=(5, 10)))
    model.add(layers.Bidirectional(layers.LSTM(32)))
    model.add(layers.Dense(10))
    assert model.predict(np.random.random((2, 5, 10)), verbose=0).shape == (2, 10)

    # layers.RNN(layers.LSTMCell(units)) is the slow path in Keras; here the same fused kernel
    batch_size, input_dim, units, output_size = 64, 28, 64, 10
    for allow_cudnn_kernel in (True, False):
        if allow_cudnn_kernel:
            lstm_layer = keras.layers.LSTM(units, input_shape=(None, input_dim))
        else:
            lstm_layer = keras.layers.RNN(keras.layers.LSTMCell(units),
                                          input_shape=(None, input_dim))  # fmt: skip
        model = keras.models.Sequential([lstm_layer, keras.layers.BatchNormalization(),
                                         keras.layers.Dense(output_size)])  # fmt: skip
        x_train = np.random.random((256, 28, 28)).astype("float32")
        y_train = np.random.randint(0, 10, 256)
        model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      optimizer="sgd", metrics=["accuracy"])  # fmt: skip
        history = model.fit(x_train, y_train, batch_size=batch_size, epochs=1, verbose=0)
        assert set(history.history) == {"loss", "accuracy"}

    # cross-batch statefulness: a stateful layer carries its state across calls
    paragraph1 = np.random.random((20, 10, 50)).astype(np.float32)
    paragraph2 = np.random.random((20, 10, 50)).astype(np.float32)
    lstm_layer = layers.LSTM(64, stateful=True)
    output = lstm_layer(paragraph1)
    output = lstm_layer(paragraph2)
    carried = np.array(output)
    lstm_layer.reset_states()
    assert not np.allclose(lstm_layer(paragraph2), carried)


def test_imdb_bidirectional_lstm():
    # keras/examples/imdb_bidirectional_lstm.py (Keras 2), import changed only
    from rnncore.preprocessing import sequence

    max_features, maxlen, batch_size = 20000, 100, 32
    rng = np.random.default_rng(0)
    lengths = rng.integers(20, 200, 512)
    y = rng.integers(0, 2, 512)
    # reviews whose words 1..9 hint at the label, so there is something to learn
    x = [list(rng.integers(10, max_features, n)) + [1 + 5 * int(label)] * 5
         for n, label in zip(lengths, y)]  # fmt: skip
    x_train, y_train, x_test, y_test = x[:384], y[:384], x[384:], y[384:]
    x_train = sequence.pad_sequences(x_train, maxlen=maxlen)
    x_test = sequence.pad_sequences(x_test, maxlen=maxlen)
    assert x_train.shape == (384, maxlen)
    model = keras.Sequential()
    model.add(layers.Embedding(max_features, 128, input_length=maxlen))
    model.add(layers.Bidirectional(layers.LSTM(64)))
    model.add(layers.Dropout(0.5))
    model.add(layers.Dense(1, activation="sigmoid"))
    model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    history = model.fit(x_train, y_train, batch_size=batch_size, epochs=3,
                        validation_data=[x_test, y_test], verbose=0)  # fmt: skip
    assert history.history["val_accuracy"][-1] > 0.9


def test_timeseries_weather_forecasting_with_a_generator(tmp_path):
    # keras.io "Timeseries forecasting for weather prediction", on 7 synthetic features
    rng = np.random.default_rng(1)
    t = np.arange(3000)
    features = np.stack([np.sin(t / 24 + k) + 0.1 * rng.standard_normal(3000)
                         for k in range(7)], axis=1).astype("float32")  # fmt: skip
    train_split, past, future, step = 2400, 120, 12, 6
    learning_rate, batch_size, epochs = 0.001, 256, 3
    x_train, y_train = features[:train_split], features[past + future :][:train_split, 1:2]
    sequence_length = int(past / step)
    dataset_train = keras.preprocessing.timeseries_dataset_from_array(
        x_train, y_train, sequence_length=sequence_length, sampling_rate=step,
        batch_size=batch_size,
    )  # fmt: skip
    x_val = features[train_split : -(past + future)]
    y_val = features[train_split + past + future :, 1:2]
    dataset_val = keras.preprocessing.timeseries_dataset_from_array(
        x_val, y_val, sequence_length=sequence_length, sampling_rate=step,
        batch_size=batch_size,
    )  # fmt: skip
    for batch in dataset_train:
        inputs, targets = batch
        break
    assert inputs.shape == (256, 20, 7) and targets.shape == (256, 1)
    model = keras.Sequential([keras.layers.Input(shape=(inputs.shape[1], inputs.shape[2])),
                              keras.layers.LSTM(32), keras.layers.Dense(1)])  # fmt: skip
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss="mse")
    path_checkpoint = str(tmp_path / "model_checkpoint.weights.h5")
    es_callback = keras.callbacks.EarlyStopping(monitor="val_loss", min_delta=0, patience=5)
    modelckpt_callback = keras.callbacks.ModelCheckpoint(
        monitor="val_loss", filepath=path_checkpoint, verbose=0, save_weights_only=True,
        save_best_only=True,
    )  # fmt: skip
    history = model.fit(dataset_train, epochs=epochs, validation_data=dataset_val,
                        callbacks=[es_callback, modelckpt_callback], verbose=0)  # fmt: skip
    loss = history.history["val_loss"]
    assert loss[-1] < loss[0]
    model.load_weights(path_checkpoint)
    assert model.predict(inputs, verbose=0).shape == (256, 1)


def test_character_level_text_generation():
    # keras.io "Character-level text generation with LSTM", on a small repetitive text
    keras.utils.set_random_seed(0)
    # 46 characters: windows taken every 3rd step still start at every phase of the text
    text = ("the quick brown fox jumps over the lazy dogs. " * 60).lower()
    chars = sorted(list(set(text)))
    char_indices = dict((c, i) for i, c in enumerate(chars))
    indices_char = dict((i, c) for i, c in enumerate(chars))
    maxlen, step = 40, 3
    sentences, next_chars = [], []
    for i in range(0, len(text) - maxlen, step):
        sentences.append(text[i : i + maxlen])
        next_chars.append(text[i + maxlen])
    x = np.zeros((len(sentences), maxlen, len(chars)), dtype="bool")
    y = np.zeros((len(sentences), len(chars)), dtype="bool")
    for i, sentence in enumerate(sentences):
        for t, char in enumerate(sentence):
            x[i, t, char_indices[char]] = 1
        y[i, char_indices[next_chars[i]]] = 1
    model = keras.Sequential([keras.Input(shape=(maxlen, len(chars))), layers.LSTM(128),
                              layers.Dense(len(chars), activation="softmax")])  # fmt: skip
    optimizer = keras.optimizers.RMSprop(learning_rate=0.01)
    model.compile(loss="categorical_crossentropy", optimizer=optimizer)

    def sample(preds, temperature=1.0):
        preds = np.asarray(preds).astype("float64")
        preds = np.log(preds) / temperature
        exp_preds = np.exp(preds)
        preds = exp_preds / np.sum(exp_preds)
        probas = np.random.multinomial(1, preds, 1)
        return np.argmax(probas)

    for _ in range(12):
        model.fit(x, y, batch_size=128, epochs=1, verbose=0)
    generated, sentence = "", text[:maxlen]
    for _ in range(40):
        x_pred = np.zeros((1, maxlen, len(chars)))
        for t, char in enumerate(sentence):
            x_pred[0, t, char_indices[char]] = 1.0
        preds = model.predict(x_pred, verbose=0)[0]
        next_char = indices_char[sample(preds, 0.2)]
        sentence = sentence[1:] + next_char
        generated += next_char
    # it learned the sentence (sampling at temperature 0.2 may still slip a character)
    want = text[maxlen : maxlen + 40]
    assert difflib.SequenceMatcher(None, generated, want).ratio() > 0.9, (generated, want)


def test_keras_ops_preprocessing_and_weights_names():
    from rnncore import ops

    def last_time_step_mse(y_true, y_pred):  # Géron's metric, written with keras.ops
        return ops.mean(ops.square(y_true[:, -1] - y_pred[:, -1]))

    y_true, y_pred = np.ones((4, 5, 1)), np.zeros((4, 5, 1))
    assert ops.convert_to_numpy(last_time_step_mse(y_true, y_pred)) == 1.0
    assert ops.sigmoid(0.0) == 0.5 and ops.cast([1.7], "int32")[0] == 1
    with pytest.raises(AttributeError, match="no attribute 'not_an_op'"):
        ops.not_an_op  # noqa: B018
    tok = keras.preprocessing.text.Tokenizer(num_words=10)
    tok.fit_on_texts(["a b b", "b c"])
    assert keras.utils.pad_sequences(tok.texts_to_sequences(["b a"]), maxlen=3).tolist() == [
        [0, 1, 2]
    ]
    model = keras.Sequential([keras.Input((4, 2)), layers.GRU(3), layers.Dense(1)])
    assert [w.name for w in model.weights] == ["kernel", "recurrent_kernel", "bias", "kernel",
                                               "bias"]  # fmt: skip
    assert [tuple(w.shape) for w in model.trainable_weights][:3] == [(2, 9), (3, 9), (2, 9)]
    model.layers[1].trainable = False
    assert [w.path for w in model.non_trainable_weights] == [
        f"{model.layers[1].name}/kernel",
        f"{model.layers[1].name}/bias",
    ]
    model.weights[3].assign(np.full((3, 1), 2.0))
    assert np.array_equal(model.layers[1].get_weights()[0], np.full((3, 1), 2.0))


def test_timeseries_windows_follow_the_documented_formula():
    data = np.arange(100 * 2).reshape(100, 2)
    targets = np.arange(100) * 10
    ds = keras.utils.timeseries_dataset_from_array(
        data, targets, sequence_length=5, sequence_stride=2, sampling_rate=3, batch_size=7,
        start_index=4, end_index=90,
    )  # fmt: skip
    xs = np.concatenate([x for x, _ in ds])
    ys = np.concatenate([y for _, y in ds])
    starts = 4 + np.arange(0, 90 - 4 - 4 * 3, 2)
    assert len(ds) == -(-len(starts) // 7)
    np.testing.assert_array_equal(xs, data[starts[:, None] + 3 * np.arange(5)])
    np.testing.assert_array_equal(ys, targets[starts])
    with pytest.raises(ValueError, match="sequence_length: expected a positive int"):
        keras.utils.timeseries_dataset_from_array(data, None, sequence_length=0)
