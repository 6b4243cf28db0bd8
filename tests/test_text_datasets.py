"""rnncore.text (Tokenizer, pad_sequences), rnncore.data.stratified_split and the IMDB loaders,
tested on small files generated here in both formats (aclImdb folder, imdb.npz)."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import zipfile

import numpy as np
import pytest

from rnncore.data import stratified_split
from rnncore.datasets import imdb
from rnncore.text import Tokenizer, pad_sequences, text_to_word_sequence

TEXTS = ["The cat sat on the mat.", "The dog ate the cat!", "A dog, a cat; a bird?"]


# ---- Tokenizer ------------------------------------------------------------------------------


def test_word_index_ranks_by_frequency_first_seen_wins_ties():
    tok = Tokenizer().fit_on_texts(TEXTS)
    assert tok.word_index == {"the": 1, "cat": 2, "a": 3, "dog": 4, "sat": 5, "on": 6,
                              "mat": 7, "ate": 8, "bird": 9}  # fmt: skip
    assert tok.document_count == 3 and tok.word_counts["the"] == 4
    assert tok.texts_to_sequences(["the cat, the BIRD"]) == [[1, 2, 1, 9]]


def test_num_words_and_oov_token():
    tok = Tokenizer(num_words=4, oov_token="<unk>").fit_on_texts(TEXTS)
    assert tok.word_index["<unk>"] == 1 and tok.word_index["the"] == 2
    # only indices < num_words survive (the, cat); everything else becomes <unk>
    assert tok.texts_to_sequences(["the cat and a fish"]) == [[2, 3, 1, 1, 1]]
    no_oov = Tokenizer(num_words=3).fit_on_texts(TEXTS)
    assert no_oov.texts_to_sequences(["the cat and a fish"]) == [[1, 2]]


def test_sequences_to_texts_and_json_round_trip():
    tok = Tokenizer(oov_token="?").fit_on_texts(TEXTS)
    seqs = tok.texts_to_sequences(TEXTS)
    assert tok.sequences_to_texts(seqs)[1] == "the dog ate the cat"
    back = Tokenizer.from_json(tok.to_json())
    assert back.word_index == tok.word_index and back.texts_to_sequences(TEXTS) == seqs


def test_char_level_and_word_split():
    tok = Tokenizer(char_level=True).fit_on_texts(["abba"])
    assert tok.texts_to_sequences(["ab"]) == [[2, 1]] or tok.texts_to_sequences(["ab"]) == [[1, 2]]
    assert text_to_word_sequence("Hello, World!  x") == ["hello", "world", "x"]


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda: Tokenizer(num_words=0), ValueError, "num_words"),
        (lambda: Tokenizer(oov_token=3), TypeError, "oov_token"),
        (lambda: Tokenizer().fit_on_texts("one string"), TypeError, "texts"),
        (lambda: Tokenizer().fit_on_texts(["ok", 5]), TypeError, "texts[1]"),
        (lambda: Tokenizer().texts_to_sequences(["x"]), ValueError, "fit_on_texts"),
    ],
)
def test_tokenizer_errors(call, error, words):
    with pytest.raises(error, match=words.replace("[", r"\[").replace("]", r"\]")):
        call()


# ---- pad_sequences --------------------------------------------------------------------------

SEQS = [[1, 2, 3, 4], [5], []]


@pytest.mark.parametrize(
    "padding, truncating, expected",
    [
        ("pre", "pre", [[2, 3, 4], [0, 0, 5], [0, 0, 0]]),
        ("post", "pre", [[2, 3, 4], [5, 0, 0], [0, 0, 0]]),
        ("pre", "post", [[1, 2, 3], [0, 0, 5], [0, 0, 0]]),
        ("post", "post", [[1, 2, 3], [5, 0, 0], [0, 0, 0]]),
    ],
)
def test_pad_sequences_padding_and_truncating(padding, truncating, expected):
    out = pad_sequences(SEQS, maxlen=3, padding=padding, truncating=truncating)
    assert out.dtype == np.int32 and out.tolist() == expected


def test_pad_sequences_defaults_value_dtype_and_feature_axes():
    assert pad_sequences(SEQS).tolist() == [[1, 2, 3, 4], [0, 0, 0, 5], [0, 0, 0, 0]]
    out = pad_sequences([[0.5]], maxlen=2, dtype="float32", value=-1.0)
    assert out.dtype == np.float32 and out.tolist() == [[-1.0, 0.5]]
    steps = pad_sequences([np.ones((2, 3)), np.ones((1, 3))], padding="post")
    assert steps.shape == (2, 2, 3) and steps[1, 1].tolist() == [0, 0, 0]
    assert pad_sequences([], maxlen=4).shape == (0, 4)


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        ({"padding": "middle"}, ValueError, "padding"),
        ({"truncating": "both"}, ValueError, "truncating"),
        ({"maxlen": -1}, ValueError, "maxlen"),
        ({"sequences": "abc"}, TypeError, "sequences"),
        ({"sequences": [1, 2]}, ValueError, r"sequences\[0\]"),
        ({"sequences": [np.ones((1, 2)), np.ones((1, 3))]}, ValueError, r"sequences\[1\]"),
    ],
)
def test_pad_sequences_errors(kwargs, error, words):
    kwargs = {"sequences": SEQS, **kwargs}
    with pytest.raises(error, match=words):
        pad_sequences(**kwargs)


# ---- stratified_split -----------------------------------------------------------------------


def test_stratified_split_keeps_class_shares():
    y = np.array([0] * 80 + [1] * 20)
    x = np.arange(100)
    (xa, ya), (xb, yb) = stratified_split(x, y, 0.25, seed=1)
    assert len(xb) == 25 and ya.sum() == 15 and yb.sum() == 5
    assert sorted(np.concatenate([xa, xb]).tolist()) == list(range(100))
    assert np.array_equal(y[xa], ya) and np.array_equal(y[xb], yb)  # rows stay with labels
    with pytest.raises(ValueError, match="fraction"):
        stratified_split(x, y, 1.5)
    with pytest.raises(ValueError, match="same number of rows"):
        stratified_split(x[:5], y, 0.5)


# ---- IMDB loaders ---------------------------------------------------------------------------


def _write_npz(path, n_train=6, n_test=4):
    """Reviews whose first word id encodes the row, labels = row parity, as Keras stores them."""

    def ragged(n, base):  # noqa: E306
        arr = np.empty(n, dtype=object)
        arr[:] = [[base + i] + [1, 2, 3][: i % 3] for i in range(n)]
        return arr

    np.savez(path, x_train=ragged(n_train, 10), y_train=np.arange(n_train) % 2,
             x_test=ragged(n_test, 50), y_test=np.arange(n_test) % 2)  # fmt: skip


def test_npz_keras_encoding_shuffle_and_labels(tmp_path):
    _write_npz(tmp_path / "imdb.npz")
    (xtr, ytr), (xte, yte) = imdb.load_data(tmp_path / "imdb.npz")
    assert xtr.dtype == object and len(xtr) == 6 and len(xte) == 4
    for x, y, base in ((xtr, ytr, 10), (xte, yte, 50)):
        for seq, label in zip(x, y):
            assert seq[0] == 1  # start_char
            row = seq[1] - 3 - base  # index_from = 3
            assert label == row % 2 and seq[2:] == [w + 3 for w in [1, 2, 3][: row % 3]]
    assert sorted(s[1] for s in xtr) == list(range(13, 19))  # a permutation of all rows
    again = imdb.load_data(tmp_path / "imdb.npz")
    assert [list(s) for s in again[0][0]] == [list(s) for s in xtr]  # seed=113 reproducible


def test_npz_num_words_skip_top_maxlen(tmp_path):
    _write_npz(tmp_path / "imdb.npz")
    (xtr, _), _ = imdb.load_data(tmp_path / "imdb.npz", num_words=6, skip_top=1, maxlen=3)
    assert all(len(s) < 3 for s in xtr)
    assert all(w == 2 or 1 <= w < 6 for s in xtr for w in s)  # 2 = oov_char
    (xtr, _), _ = imdb.load_data(tmp_path / "imdb.npz", num_words=5, oov_char=None,
                                 start_char=None, index_from=0)  # fmt: skip
    assert all(w < 5 for s in xtr for w in s)
    with pytest.raises(ValueError, match="maxlen"):
        imdb.load_data(tmp_path / "imdb.npz", maxlen=1)


def test_npz_refuses_code_and_garbage(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    evil = tmp_path / "evil.npz"
    with zipfile.ZipFile(evil, "w") as zf:
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {"descr": "|O", "fortran_order": False,
                                                      "shape": (1,)})  # fmt: skip
        payload = pickle.dumps(np.array([Evil()], dtype=object))
        zf.writestr("x_train.npy", header.getvalue() + payload)
    with pytest.raises(ValueError, match="refusing to load"):
        imdb.load_data(evil)
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="not a valid imdb.npz"):
        imdb.load_data(tmp_path / "junk.npz")
    np.savez(tmp_path / "partial.npz", x_train=np.zeros(2))
    with pytest.raises(ValueError, match="missing array 'y_train'"):
        imdb.load_data(tmp_path / "partial.npz")


def _write_acl(root):
    reviews = {("train", "pos"): ["Great film!<br /><br />Loved it.", "great great cast"],
               ("train", "neg"): ["Awful film.", "dull, awful plot"],
               ("test", "pos"): ["great plot"], ("test", "neg"): ["awful unseenword"]}  # fmt: skip
    for (split, label), texts in reviews.items():
        (root / split / label).mkdir(parents=True)
        for i, t in enumerate(texts):
            (root / split / label / f"{i}_{7 if label == 'pos' else 2}.txt").write_text(t)


def test_acl_folder_texts_and_encoded(tmp_path):
    _write_acl(tmp_path / "aclImdb")
    (tr_x, tr_y), (te_x, te_y) = imdb.load_texts(tmp_path / "aclImdb")
    assert tr_x[0] == "Great film!  Loved it." and tr_y.tolist() == [1, 1, 0, 0]
    assert te_y.tolist() == [1, 0]
    (xtr, ytr), (xte, yte) = imdb.load_data(tmp_path / "aclImdb", seed=0)
    decoded = {tuple(s): int(y) for s, y in zip(xtr, ytr)}
    # ranks: great, film, awful, loved, it, ... (ties: first seen first)
    assert decoded[(1, 4, 5, 7, 8)] == 1  # "great film loved it"
    test_seqs = {tuple(s): int(y) for s, y in zip(xte, yte)}
    assert (1, 6) in test_seqs and test_seqs[(1, 6)] == 0  # the unseen word is dropped


def test_missing_paths_and_no_download(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        imdb.load_data(tmp_path / "nope.npz")
    (tmp_path / "half" / "train").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="aclImdb"):
        imdb.load_texts(tmp_path / "half")
    monkeypatch.setenv("RNNCORE_DATA", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match="download_if_missing=False"):
        imdb.load_data(download_if_missing=False)


def test_download_checks_sha256_and_is_atomic(tmp_path):
    _write_npz(tmp_path / "src.npz")
    url = (tmp_path / "src.npz").as_uri()
    good = hashlib.sha256((tmp_path / "src.npz").read_bytes()).hexdigest()
    dest = tmp_path / "cache" / "imdb.npz"
    with pytest.raises(OSError, match="does not match"):
        imdb.download(dest, url=url, sha256="0" * 64)
    assert list((tmp_path / "cache").iterdir()) == []  # nothing half-written left behind
    imdb.download(dest, url=url, sha256=good)
    assert dest.read_bytes() == (tmp_path / "src.npz").read_bytes()
    assert list((tmp_path / "cache").iterdir()) == [dest]


def test_synthetic_corpus_is_labelled_by_its_opinions():
    texts, labels = imdb.synthetic_texts(400, seed=3)
    assert texts == imdb.synthetic_texts(400, seed=3)[0]
    assert 0.35 < labels.mean() < 0.65
    positive, negative = set(imdb._POSITIVE), set(imdb._NEGATIVE)
    for text, label in zip(texts, labels):  # re-score every review from its words
        score = 0
        for sentence in text.split(" . "):
            words = sentence.rstrip(" .").split()
            sign = sum((w in positive) - (w in negative) for w in words)
            score += -sign if "not" in words else sign
        assert score != 0 and label == (score > 0), text
    assert any(" not " in t for t in texts)
