"""The IMDB movie-review sentiment set (25,000 train / 25,000 test reviews, label 1 = positive).

`load_data(path, num_words)` returns sequences in the Keras encoding from either
  - the standard `aclImdb` folder (train|test / pos|neg / *.txt), tokenised here, or
  - the common `imdb.npz` file (ragged int sequences), read without general unpickling,
and, with no path, the cached `imdb.npz` (downloaded once, checked against its SHA-256).
Encoding: 0 = padding, `start_char` opens each review, `oov_char` stands for a word outside the
`num_words` most frequent, and the word of frequency rank r (1 = most frequent) is r + index_from.

`load_texts(path)` gives the raw reviews of an aclImdb folder; `synthetic_texts(n, seed)` is a
clearly labelled stand-in corpus so tutorials run offline.
"""

from __future__ import annotations

import hashlib
import io
import os
import pathlib
import pickle
import re
import urllib.request
import zipfile

import numpy as np

from .._files import atomic_write
from ..text import Tokenizer

__all__ = ["load_data", "load_texts", "synthetic_texts", "URL", "SHA256", "cache_dir"]

URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/imdb.npz"
SHA256 = "69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f"
_MAX_DOWNLOAD = 64 << 20  # the real file is 17 MB


def cache_dir() -> pathlib.Path:
    """Where downloads go: $RNNCORE_DATA, else ~/.rnncore/datasets."""
    return pathlib.Path(
        os.environ.get("RNNCORE_DATA") or pathlib.Path.home() / ".rnncore" / "datasets"
    )


# ---- reading the two file formats ----------------------------------------------------------


def load_texts(path):
    """((train_texts, train_labels), (test_texts, test_labels)) from an aclImdb folder,
    files in name order, positives first; HTML line breaks become spaces."""
    root = pathlib.Path(path)
    if not (root / "train").is_dir() or not (root / "test").is_dir():
        raise FileNotFoundError(f"path: {str(root)!r} is not an aclImdb folder (expected "
                                "train/ and test/ with pos/ and neg/ inside)")  # fmt: skip
    return _read_split(root / "train"), _read_split(root / "test")


def _read_split(folder):
    texts, labels = [], []
    for label, sub in ((1, "pos"), (0, "neg")):
        if not (folder / sub).is_dir():
            raise FileNotFoundError(f"path: missing folder {str(folder / sub)!r}")
        for f in sorted((folder / sub).glob("*.txt")):
            texts.append(re.sub(r"<br\s*/?>", " ", f.read_text(encoding="utf-8", errors="replace")))
            labels.append(label)
    return texts, np.array(labels, dtype=np.int64)


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """imdb.npz stores ragged lists as pickled object arrays: allow rebuilding NumPy arrays
    of plain Python objects and nothing else (no arbitrary code from a downloaded file)."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"imdb.npz: refusing to load {module}.{name}")
        return super().find_class(module, name)


def _check_rows_are_their_own(name, rows, nbytes):
    """Refuses rows that share one list: the pickle format lets a 2 KB file make every row
    the same long list, which the conversion to per-row int lists would copy 25,000 times.
    Every token a row really holds takes at least one byte of the array's pickle."""
    if not isinstance(rows, np.ndarray):
        return  # refused by the shape check
    tokens = 0
    for row in rows.ravel():
        if not isinstance(row, (list, tuple, np.ndarray)):
            raise ValueError(f"imdb.npz: {name} rows must be sequences of word ids")
        tokens += len(row)
        if tokens > nbytes:
            raise ValueError(
                f"imdb.npz: {name}'s rows hold more word ids than its {nbytes:,} bytes can: "
                "they are shared references to the same lists; refusing the file"
            )


def _read_npz_array(zf, name):
    try:
        raw = zf.read(name + ".npy")
    except KeyError:
        raise ValueError(f"imdb.npz: missing array {name!r}") from None
    f = io.BytesIO(raw)
    fmt = np.lib.format
    version = fmt.read_magic(f)
    read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
    shape, _, dtype = read_header(f)
    if dtype.hasobject:
        arr = _ArrayOnlyUnpickler(f).load()
        _check_rows_are_their_own(name, arr, len(raw))
    else:
        arr = np.frombuffer(f.read(), dtype=dtype, count=int(np.prod(shape)))
    if not isinstance(arr, np.ndarray) or arr.shape != tuple(shape):
        raise ValueError(f"imdb.npz: array {name!r} does not have its declared shape {shape}")
    return arr


def _read_npz(path):
    try:
        with zipfile.ZipFile(path) as zf:
            arrays = {k: _read_npz_array(zf, k) for k in ("x_train", "y_train", "x_test", "y_test")}
    except (zipfile.BadZipFile, pickle.UnpicklingError, EOFError) as e:
        raise ValueError(f"path: {str(path)!r} is not a valid imdb.npz file ({e})") from None
    for part in ("train", "test"):
        x, y = arrays[f"x_{part}"], arrays[f"y_{part}"]
        if len(x) != len(y):
            raise ValueError(f"imdb.npz: {len(x)} x_{part} reviews but {len(y)} labels")
    seqs = {k: [list(map(int, s)) for s in arrays[k]] for k in ("x_train", "x_test")}
    return ((seqs["x_train"], arrays["y_train"].astype(np.int64)),
            (seqs["x_test"], arrays["y_test"].astype(np.int64)))  # fmt: skip


def _encode_folder(path):
    """aclImdb texts -> 0-based-rank sequences (rank 1 = most frequent training word)."""
    (tr_x, tr_y), (te_x, te_y) = load_texts(path)
    tok = Tokenizer().fit_on_texts(tr_x)  # ranked on training reviews only: no test leakage
    return (tok.texts_to_sequences(tr_x), tr_y), (tok.texts_to_sequences(te_x), te_y)


# ---- download ------------------------------------------------------------------------------


def download(dest=None, url=URL, sha256=SHA256, timeout=30.0) -> pathlib.Path:
    """Fetch `url` into `dest` atomically and verify its SHA-256; a bad download is deleted."""
    dest = pathlib.Path(dest or cache_dir() / "imdb.npz")
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest, n = hashlib.sha256(), 0
    with atomic_write(dest, prefix=".imdb-") as out:
        with urllib.request.urlopen(url, timeout=timeout) as src:
            for block in iter(lambda: src.read(1 << 20), b""):
                n += len(block)
                if n > _MAX_DOWNLOAD:
                    raise OSError(f"download from {url} is larger than {_MAX_DOWNLOAD} bytes")
                digest.update(block)
                out.write(block)
        if digest.hexdigest() != sha256:  # raised inside: the partial file is deleted
            raise OSError(
                f"download from {url}: SHA-256 {digest.hexdigest()} does not match {sha256}"
            )
    return dest


# ---- the Keras-style loader ----------------------------------------------------------------


def load_data(path=None, num_words=None, skip_top=0, maxlen=None, seed=113, start_char=1,
              oov_char=2, index_from=3, download_if_missing=True):  # fmt: skip
    """((x_train, y_train), (x_test, y_test)): object arrays of int lists and int64 labels,
    each split shuffled with `seed` (as Keras's loader does).

    path: an aclImdb folder, an imdb.npz file, or None for the cached download."""
    for name, v in (("num_words", num_words), ("maxlen", maxlen)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ValueError(f"{name}: expected a positive int or None, got {v!r}")
    if path is None:
        path = cache_dir() / "imdb.npz"
        if not path.exists():
            if not download_if_missing:
                raise FileNotFoundError(f"{path} is missing and download_if_missing=False")
            try:
                download(path)
            except OSError as e:
                raise OSError(
                    f"IMDB is not cached at {path} and could not be downloaded ({e}); "
                    "pass path= to a local aclImdb folder or imdb.npz"
                ) from None
    path = pathlib.Path(path)
    if path.is_dir():
        (xtr, ytr), (xte, yte) = _encode_folder(path)
    elif path.is_file():
        (xtr, ytr), (xte, yte) = _read_npz(path)
    else:
        raise FileNotFoundError(f"path: {str(path)!r} does not exist")
    rng = np.random.RandomState(seed)
    splits = []
    for x, y in ((xtr, ytr), (xte, yte)):
        order = np.arange(len(x))
        rng.shuffle(order)
        x = [_encode(x[i], start_char, index_from) for i in order]
        y = y[order]
        if maxlen:
            keep = [i for i, s in enumerate(x) if len(s) < maxlen]
            x, y = [x[i] for i in keep], y[keep]
        splits.append((x, y))
    if maxlen and not (splits[0][0] and splits[1][0]):
        raise ValueError(f"maxlen={maxlen}: no review is that short; increase maxlen")
    top = num_words or max((max(s, default=0) for x, _ in splits for s in x), default=0) + 1
    out = []
    for x, y in splits:
        if oov_char is not None:
            x = [[w if skip_top <= w < top else oov_char for w in s] for s in x]
        else:
            x = [[w for w in s if skip_top <= w < top] for s in x]
        arr = np.empty(len(x), dtype=object)
        arr[:] = x
        out.append((arr, y))
    return out[0], out[1]


def _encode(ranks, start_char, index_from):
    seq = [r + index_from for r in ranks]
    return seq if start_char is None else [start_char] + seq


# ---- offline stand-in ----------------------------------------------------------------------

_POSITIVE = (
    "great wonderful brilliant superb moving delightful excellent charming gripping fun".split()
)
_NEGATIVE = "awful boring dull terrible weak clumsy tedious bland poor painful".split()
_NOUNS = "film movie plot acting cast script story ending music direction dialogue pacing".split()
_INTENSIFIERS = ["", "", "really ", "very ", "truly ", "quite "]
_FILLER = [
    "i watched it on a rainy sunday",
    "my friend recommended it to me",
    "it runs for about two hours",
    "the cinema was almost empty",
    "i had read the book before",
    "it was released last year",
    "we saw it with the whole family",
]


def synthetic_texts(n=2000, seed=0):
    """(texts, labels): SYNTHETIC movie reviews, not IMDB. Each mixes opinion sentences
    ("the plot was not dull", "what a superb cast") with neutral filler; the label is 1 when
    the opinions sum positive. Negation flips a word's polarity, so word counts alone mislead."""
    rng = np.random.default_rng(seed)
    texts, labels = [], np.empty(n, dtype=np.int64)
    for k in range(n):
        sentences, score = [], 0
        while score == 0:  # re-draw ties so every review has a clear label
            sentences, score = [], 0
            for _ in range(rng.integers(3, 9)):
                if rng.random() < 0.3:
                    sentences.append(_FILLER[rng.integers(len(_FILLER))])
                    continue
                polarity = 1 if rng.random() < 0.5 else -1
                adj = rng.choice(_POSITIVE if polarity > 0 else _NEGATIVE)
                noun = rng.choice(_NOUNS)
                negated = rng.random() < 0.25
                if negated:
                    sentences.append(f"the {noun} was not {adj}")
                elif rng.random() < 0.5:
                    sentences.append(f"the {noun} was {rng.choice(_INTENSIFIERS)}{adj}")
                else:
                    sentences.append(f"what a {adj} {noun}")
                score += -polarity if negated else polarity
        texts.append(" . ".join(sentences) + " .")
        labels[k] = int(score > 0)
    return texts, labels


def __dir__():  # what tab completion and dir() show: the public names only
    return __all__
