"""Text to integer sequences, the way Keras's classic preprocessing does it.

`Tokenizer` ranks words by frequency (index 1 = most frequent, 0 stays free for padding; an
`oov_token` takes index 1 and shifts the rest). `pad_sequences` turns ragged lists into one
(n, maxlen) array, padding and truncating at the front ("pre") or the back ("post").
"""

from __future__ import annotations

import json
from collections import Counter

import numpy as np

__all__ = ["Tokenizer", "pad_sequences", "text_to_word_sequence"]

DEFAULT_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'


def text_to_word_sequence(text, filters=DEFAULT_FILTERS, lower=True, split=" "):
    """Words of `text`: lower-cased, every filter character turned into a separator."""
    if not isinstance(text, str):
        raise TypeError(f"text: expected a str, got {type(text).__name__}")
    if lower:
        text = text.lower()
    text = text.translate(str.maketrans({c: split for c in filters}))
    return [w for w in text.split(split) if w]


def _texts(texts, argument="texts"):
    if isinstance(texts, str):
        raise TypeError(f"{argument}: expected a list of strings, got a single str")
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"{argument}[{i}]: expected a str, got {type(t).__name__}")
    return texts


class Tokenizer:
    """Word-level vocabulary. Only the `num_words - 1` most frequent words are kept when
    converting (the rest become `oov_token`'s index, or are dropped when there is none)."""

    def __init__(self, num_words=None, filters=DEFAULT_FILTERS, lower=True, split=" ",
                 char_level=False, oov_token=None):  # fmt: skip
        if num_words is not None and (
            isinstance(num_words, bool) or not isinstance(num_words, int) or num_words < 1
        ):
            raise ValueError(f"num_words: expected a positive int or None, got {num_words!r}")
        if oov_token is not None and not isinstance(oov_token, str):
            raise TypeError(f"oov_token: expected a str or None, got {type(oov_token).__name__}")
        if not isinstance(split, str) or not split:
            raise ValueError(f"split: expected a non-empty str, got {split!r}")
        self.num_words, self.filters, self.lower = num_words, filters, bool(lower)
        self.split, self.char_level, self.oov_token = split, bool(char_level), oov_token
        self.word_counts: Counter = Counter()  # word -> occurrences over all fitted texts
        self.document_count = 0
        self.word_index: dict[str, int] = {}  # word -> index (1 = most frequent)
        self.index_word: dict[int, str] = {}

    def _words(self, text):
        if self.char_level:
            return list(text.lower() if self.lower else text)
        return text_to_word_sequence(text, self.filters, self.lower, self.split)

    def fit_on_texts(self, texts):
        """Count words; rebuild the index, most frequent first (ties: first seen first)."""
        for text in _texts(texts):
            self.document_count += 1
            self.word_counts.update(self._words(text))
        ranked = sorted(self.word_counts, key=lambda w: -self.word_counts[w])  # stable
        if self.oov_token is not None:
            ranked = [self.oov_token] + [w for w in ranked if w != self.oov_token]
        self.word_index = {w: i + 1 for i, w in enumerate(ranked)}
        self.index_word = {i: w for w, i in self.word_index.items()}
        return self

    def texts_to_sequences(self, texts) -> list[list[int]]:
        """Each text as the list of its words' indices (unknown words left out, or oov)."""
        if not self.word_index:
            raise ValueError("Tokenizer: call fit_on_texts before texts_to_sequences")
        oov = self.word_index.get(self.oov_token) if self.oov_token is not None else None
        limit = self.num_words or len(self.word_index) + 1
        out = []
        for text in _texts(texts):
            seq = []
            for w in self._words(text):
                i = self.word_index.get(w)
                i = i if i is not None and i < limit else oov
                if i is not None:
                    seq.append(i)
            out.append(seq)
        return out

    def sequences_to_texts(self, sequences) -> list[str]:
        """Inverse of texts_to_sequences (unknown indices and padding 0 are skipped)."""
        limit = self.num_words or len(self.word_index) + 1
        sep = "" if self.char_level else " "
        return [sep.join(self.index_word[i] for i in map(int, seq) if 0 < i < limit
                         and i in self.index_word) for seq in sequences]  # fmt: skip

    def to_json(self) -> str:
        """The tokenizer's vocabulary and settings as JSON text."""
        return json.dumps({"config": {k: getattr(self, k) for k in (
            "num_words", "filters", "lower", "split", "char_level", "oov_token")},
            "word_counts": dict(self.word_counts), "document_count": self.document_count,
            "word_index": self.word_index})  # fmt: skip

    @classmethod
    def from_json(cls, text: str) -> Tokenizer:
        """A tokenizer from `to_json()`'s text."""
        data = json.loads(text)
        tok = cls(**data["config"])
        tok.word_counts = Counter(data["word_counts"])
        tok.document_count = int(data["document_count"])
        tok.word_index = {w: int(i) for w, i in data["word_index"].items()}
        tok.index_word = {i: w for w, i in tok.word_index.items()}
        return tok


def _pre_post(name, value):
    if value not in ("pre", "post"):
        raise ValueError(f"{name}: expected 'pre' or 'post', got {value!r}")
    return value


def pad_sequences(sequences, maxlen=None, dtype="int32", padding="pre", truncating="pre",
                  value=0.0) -> np.ndarray:  # fmt: skip
    """(n, maxlen[, ...]) array from n sequences: shorter ones padded with `value`, longer
    ones cut, both at the front ("pre", the Keras default) or at the back ("post")."""
    _pre_post("padding", padding)
    _pre_post("truncating", truncating)
    if maxlen is not None and (isinstance(maxlen, bool) or not isinstance(maxlen, int)
                               or maxlen < 0):  # fmt: skip
        raise ValueError(f"maxlen: expected a non-negative int or None, got {maxlen!r}")
    if isinstance(sequences, (str, bytes)):
        raise TypeError("sequences: expected a list of sequences, got a str")
    try:
        seqs = [np.asarray(s) for s in sequences]
    except TypeError:
        raise TypeError(f"sequences: expected an iterable of sequences, got "
                        f"{type(sequences).__name__}") from None  # fmt: skip
    for i, s in enumerate(seqs):
        if s.ndim == 0:
            raise ValueError(f"sequences[{i}]: expected a sequence, got the scalar {s!r}")
    tail = next((s.shape[1:] for s in seqs if s.size), ())  # feature shape of each step
    if maxlen is None:
        maxlen = max((len(s) for s in seqs), default=0)
    out = np.full((len(seqs), maxlen) + tail, value, dtype=dtype)  # [n, maxlen, ...]
    for i, s in enumerate(seqs):
        if not len(s) or not maxlen:
            continue
        if s.shape[1:] != tail:
            raise ValueError(f"sequences[{i}]: expected steps of shape {tail}, got {s.shape[1:]}")
        s = s[-maxlen:] if truncating == "pre" else s[:maxlen]
        if padding == "post":
            out[i, : len(s)] = s
        else:
            out[i, maxlen - len(s) :] = s
    return out


def __dir__():  # what tab completion and dir() show: the public names only
    return __all__
