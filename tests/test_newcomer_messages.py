"""What a newcomer meets: messages that name the right thing, and the command line."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import rnncore
from rnncore import nn


def test_stream_blames_the_recurrent_weights_it_takes_h_from():
    w_ih, w_hh = np.zeros((256, 16), np.float32), np.zeros((256, 5), np.float32)
    with pytest.raises(ValueError, match=r"w_hh: expected shape \(G\*H, H\) with G=4"):
        rnncore.Stream("lstm", w_ih, w_hh)


def test_stream_reset_takes_the_state_names_too():
    w_ih, w_hh = np.zeros((8, 3), np.float32), np.zeros((8, 2), np.float32)
    s = rnncore.Stream("lstm", w_ih, w_hh)
    s.reset(h=np.ones(2, np.float32), c=np.full(2, 2.0, np.float32))
    np.testing.assert_array_equal(s.h, [[1, 1]])
    np.testing.assert_array_equal(s.c, [[2, 2]])


def test_nn_backward_before_any_call_says_so():
    m = nn.GRU(3, 4)
    with pytest.raises(RuntimeError, match="no forward call to differentiate yet"):
        m.backward(np.zeros((5, 1, 4), np.float32))
    m.eval()
    m(np.zeros((5, 1, 3), np.float32))
    with pytest.raises(RuntimeError, match="eval mode"):
        m.backward(np.zeros((5, 1, 4), np.float32))


def test_nn_repr_shows_every_non_default_argument():
    m = nn.LSTM(3, 4, num_layers=2, bias=False, batch_first=True, dropout=0.25)
    assert repr(m) == "LSTM(3, 4, num_layers=2, bias=False, batch_first=True, dropout=0.25)"
    assert repr(nn.RNN(3, 4, nonlinearity="relu")) == "RNN(3, 4, nonlinearity='relu')"


def test_nn_points_a_packed_sequence_to_lengths():
    class PackedSequence:  # what torch.nn.utils.rnn.pack_padded_sequence returns
        pass

    with pytest.raises(TypeError, match="lengths=lengths"):
        nn.LSTM(3, 4)(PackedSequence())


@pytest.mark.parametrize(
    "content, kind",
    [(b"PK\x03\x04rest", "zip archive"), (b"\x89HDF\r\n\x1a\nrest", "HDF5 file"),
     (b"\x80\x04\x95rest-of-pickle", "pickle"), (b"hello world, not a model", "")],
)  # fmt: skip
def test_loading_a_file_that_is_not_a_model_says_so_first(tmp_path, content, kind):
    path = tmp_path / "thing.bin"
    path.write_bytes(content * 4)
    with pytest.raises(ValueError) as info:
        rnncore.models.load_model(path)
    message = str(info.value)
    assert message.startswith(f"{path}: not an rnncore model file"), message
    assert kind in message


def test_predict_progress_ends_its_line(capsys):
    model = rnncore.Sequential([rnncore.Input((3,)), rnncore.layers.Dense(2)])
    model.predict(np.zeros((70, 3), np.float32), verbose=1)
    assert capsys.readouterr().out.endswith("\n")


def test_cli_prints_its_version():
    out = subprocess.run([sys.executable, "-m", "rnncore.cli", "--version"], capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0
    assert out.stdout.startswith(f"rnncore {rnncore.__version__} (")
    assert "threads)" in out.stdout


def test_bench_table_has_a_legend_and_no_nan(capsys):
    from rnncore import bench

    row = {"cell": "gru", "shape": "tiny", "mode": "training", "rnncore": 0.5, "gflops": 3.0,
           "pct_peak": 2.0, "peers": {"torch": 1.5}, "speedup": 3.0}  # fmt: skip
    result = {"threads": 2, "quick": True, "isa": "avx2", "peers": ["torch 2.13.0"],
              "skipped": [], "fma_peak_gflops": 100.0, "rows": [row]}  # fmt: skip
    bench.print_table(result)
    out = capsys.readouterr().out
    assert "nan" not in out
    assert "tiny (32, 50, 1, 20)" in out and "stream: batch-1 sequences" in out
    assert "MiB" not in out  # memory was not measured: no memory columns
    line = next(x for x in out.splitlines() if x.startswith("gru  tiny"))
    assert line.split() == ["gru", "tiny", "training", "0.500", "3.0", "2", "1.500", "-", "-",
                            "3.00x"]  # fmt: skip


def test_demo_table_leaves_published_figures_out_of_a_quick_run():
    from rnncore import demo

    rows = [("lstm", 0.04, 5061, 0.6)]
    assert "published" in demo.table(rows).split("\n")[0]
    quick = demo.table(rows, quick=True)
    assert "published" not in quick.split("\n")[0] and "quick run" in quick


def test_demo_plot_has_a_title_labels_and_a_legend_outside_the_axes(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from rnncore import demo

    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    rng = np.random.default_rng(0)
    valid = (rng.standard_normal((3, 10, 1)), rng.standard_normal((3, 1)))
    predictions = {"naive": valid[1] + 0.1, "lstm": valid[1] - 0.1}
    histories = {"lstm": {"val_loss": [0.5, 0.2]}}
    demo.plot(tmp_path / "p.png", histories, predictions, valid)
    assert (tmp_path / "p.png").stat().st_size > 10_000
    (fig,) = figures
    assert fig._suptitle is not None and "forecasts" in fig._suptitle.get_text()
    for ax in fig.axes:
        assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()
        assert ax.get_legend() is None  # the one legend is the figure's, below the panels
    assert fig.legends and {t.get_text() for t in fig.legends[0].get_texts()} >= {"naive", "lstm"}
    markers = {line.get_marker() for line in fig.axes[0].get_lines()[2:]}
    assert len(markers) == 2  # each model's forecast has its own marker


@pytest.mark.parametrize("name", ["char_lm", "forecasting", "hihello", "noisy_sine", "sentiment"])
def test_example_help_documents_every_option_in_full(name):
    from pathlib import Path

    path = Path(__file__).parent.parent / "examples" / f"{name}.py"
    out = subprocess.run([sys.executable, str(path), "--help"], capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    intro, _, options = out.stdout.partition("options:")
    description = " ".join(intro.split("\n\n", 1)[1].split())
    assert description.endswith("."), description  # the whole first paragraph, not one line
    lines = options.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("  --"):
            flag, _, rest = line.strip().partition("  ")
            described = rest.strip() or (i + 1 < len(lines) and lines[i + 1].startswith("     "))
            assert described, f"{name}: {flag} has no help text"


def test_nn_reports_a_wrong_output_gradient_in_the_callers_layout():
    m = nn.GRU(3, 4, batch_first=True)
    out, _ = m(np.zeros((2, 5, 3), np.float32))  # (B, T, H) = (2, 5, 4)
    with pytest.raises(
        ValueError, match=r"expected the output's shape \(2, 5, 4\), got \(2, 5, 3\)"
    ):
        m.backward(np.zeros((2, 5, 3), np.float32))


def test_forecasting_quick_run_prints_no_published_figures():
    from pathlib import Path

    script = Path(__file__).parent.parent / "examples" / "forecasting.py"
    out = subprocess.run([sys.executable, str(script), "--quick", "--seeds", "0", "1"],
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "published 0." not in out.stdout and "| published |" not in out.stdout
    assert "the full run compares with the published MSE" in out.stdout
