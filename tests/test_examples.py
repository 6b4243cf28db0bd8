"""Every script in examples/ runs in its quick mode and prints what it promises."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

from conftest import import_peer

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


def _run(script, *args):
    out = subprocess.run([sys.executable, str(EXAMPLES / script), "--quick", *args],
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_hihello():
    out = _run("hihello.py")
    assert "prediction:" in out and "SimpleRNN activation=relu" in out


def test_noisy_sine(tmp_path):
    out = _run("noisy_sine.py", "--plot", str(tmp_path / "p.png"))
    assert "SimpleRNN  test MSE" in out and "LSTM       test MSE" in out
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


def test_char_lm():
    out = _run("char_lm.py")
    assert out.count("-- temperature") == 3


@pytest.mark.parametrize("script", sorted(p.name for p in EXAMPLES.glob("*.py")))
def test_every_example_has_a_quick_mode(script):
    assert "--quick" in (EXAMPLES / script).read_text()


def test_torch_ddp_in_one_process():
    import_peer("torch")
    out = _run("torch_ddp.py")
    assert out.startswith("1 process(es): loss")


def test_forecasting(tmp_path):
    out = _run("forecasting.py", "--plot", str(tmp_path / "f.png"), "--seeds", "0", "1")
    for what in ["1 ahead: deep RNN", "10 ahead: deep RNN, iterated", "seq2seq LSTM",
                 "seq2seq GRU", "layer-normalised", "Conv1D + GRU", "WaveNet", "MC dropout",
                 "within ±2 std"]:  # fmt: skip
        assert what in out
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
    assert "mean ± std over seeds [0, 1]" in out and out.count("== seed") == 2


def test_sentiment_offline_synthetic():
    out = _run("sentiment.py", "--offline")
    assert "SYNTHETIC reviews (not IMDB)" in out and "test accuracy" in out
    assert out.count("P(positive)") == 3


def test_sentiment_reads_an_aclimdb_folder_and_an_npz(tmp_path):
    from test_text_datasets import _write_acl, _write_npz

    _write_acl(tmp_path / "aclImdb")
    out = _run("sentiment.py", "--data", str(tmp_path / "aclImdb"), "--num-words", "50")
    assert "IMDB reviews from" in out and "4 train" not in out and "test accuracy" in out
    _write_npz(tmp_path / "imdb.npz", n_train=40, n_test=10)
    out = _run("sentiment.py", "--data", str(tmp_path / "imdb.npz"), "--num-words", "100")
    assert "IMDB from" in out and "36 train / 4 valid / 10 test" in out


def test_seq2seq_functional(tmp_path):
    out = _run("seq2seq_functional.py", "--plot", str(tmp_path / "s.png"))
    rows = {line.split("|")[1].strip(): float(line.split("|")[2]) for line in out.splitlines()
            if line.startswith("| ") and "val MSE" not in line}  # fmt: skip
    assert rows["encoder-decoder LSTM(32), step by step"] < rows["naive (last value)"]
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
