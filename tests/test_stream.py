"""rnncore.Stream: step-by-step inference equals the whole-sequence kernels, for every cell,
dtype, thread count and instruction set; state handling; bad input; threads."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import rnncore

CELLS = [
    ("lstm", 4, {}),
    ("gru", 3, {}),
    ("gru", 3, {"reset_after": False}),
    ("rnn", 1, {}),
    ("rnn", 1, {"nonlinearity": "relu"}),
]


def _weights(G, I, H, dtype, seed=0, bias=True):
    rng = np.random.default_rng(seed)
    w = [rng.standard_normal((G * H, I)) * 0.4, rng.standard_normal((G * H, H)) * 0.4]
    b = [rng.standard_normal(G * H) * 0.2, rng.standard_normal(G * H) * 0.2] if bias else [None] * 2
    return [None if a is None else a.astype(dtype) for a in w + b]


def _sequence_reference(cell, kw, weights, x, h0=None, c0=None):
    fn = getattr(rnncore, cell)
    states = [h0, c0] if cell == "lstm" else [h0]
    return fn(x, *weights, *states, **kw)


@pytest.mark.parametrize("cell, G, kw", CELLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bias", [True, False])
# (1, 40, 300): two threads split the units at 144, inside a packed weight panel
@pytest.mark.parametrize("B, I, H", [(1, 5, 6), (3, 4, 33), (2, 128, 256), (1, 40, 300)])
def test_steps_equal_the_sequence_kernels(cell, G, kw, dtype, bias, B, I, H, threads):
    weights = _weights(G, I, H, dtype, bias=bias)
    x = np.random.default_rng(1).standard_normal((6, B, I)).astype(dtype)
    ref = _sequence_reference(cell, kw, weights, x)
    outs = {}
    for n in (1, 2):
        threads(n)
        s = rnncore.Stream(cell, *weights, batch_size=B, **kw)
        outs[n] = np.stack([s.step(x[t]) for t in range(len(x))])
    # float32: the summation order differs, and rounding grows with the length of the sums
    tol = 1e-12 if dtype == np.float64 else 3e-5 * max(1, np.sqrt((I + H) / 64))
    assert np.abs(outs[1] - ref[0]).max() <= tol * max(1, np.abs(ref[0]).max())
    assert np.array_equal(outs[1], outs[2])  # bitwise the same for any thread count
    assert np.array_equal(s.h, outs[2][-1])
    if cell == "lstm":
        assert np.abs(s.c - ref[2]).max() <= tol * max(1, np.abs(ref[2]).max())


@pytest.mark.parametrize("cell, G, kw", CELLS[:2])
def test_state_reset_and_initial_state(cell, G, kw):
    weights = _weights(G, 3, 4, np.float32)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 2, 3)).astype(np.float32)
    h0 = rng.standard_normal((2, 4)).astype(np.float32)
    c0 = rng.standard_normal((2, 4)).astype(np.float32) if cell == "lstm" else None
    s = rnncore.Stream(cell, *weights, batch_size=2, **kw)
    first = [s.step(x[t]).copy() for t in range(5)]
    s.reset()
    assert not s.h.any()
    assert np.array_equal(np.stack([s.step(x[t]) for t in range(5)]), np.stack(first))
    s.reset(h0, c0)
    ref = _sequence_reference(cell, kw, weights, x, h0, c0)
    got = np.stack([s.step(x[t]) for t in range(5)])
    assert np.abs(got - ref[0]).max() < 2e-6


def test_unbatched_input_and_out_argument():
    weights = _weights(4, 3, 4, np.float32)
    s = rnncore.Stream("lstm", *weights)
    x = np.ones(3, np.float32)
    h = s.step(x)
    assert h.shape == (4,)
    out = np.empty(4, np.float32)
    assert s.step(x, out=out) is out and not np.array_equal(out, h)
    s.step([0.5, 0.5, 0.5])  # lists are converted
    h.fill(7)  # a returned array is the caller's own, not a view of the state
    assert not np.any(s.h == 7)


@pytest.mark.parametrize(
    "make, error, words",
    [
        (lambda w: rnncore.Stream("cnn", *w), ValueError, "cell"),
        (lambda w: rnncore.Stream("rnn", *w, nonlinearity="gelu"), ValueError, "nonlinearity"),
        (lambda w: rnncore.Stream("lstm", w[0][:5], *w[1:]), ValueError, r"w_ih: expected shape"),
        (lambda w: rnncore.Stream("lstm", w[0], w[1], w[2][:3]), ValueError, "b_ih"),
        (lambda w: rnncore.Stream("lstm", list(w[0]), w[1]), TypeError, "w_ih"),
        (lambda w: rnncore.Stream("lstm", w[0].astype(int), w[1]), TypeError, "dtype"),
        (lambda w: rnncore.Stream("lstm", *w, batch_size=0), ValueError, "batch_size"),
        (lambda w: rnncore.Stream("lstm", *w).step(np.ones(4)), ValueError, r"x_t: expected"),
        (lambda w: rnncore.Stream("lstm", *w, batch_size=2).step(np.ones(3)), ValueError, "x_t"),
        (lambda w: rnncore.Stream("lstm", *w).reset(np.ones((1, 5))), ValueError, "h0"),
        (lambda w: rnncore.Stream("gru", *_weights(3, 3, 4, np.float32)).c, AttributeError, "c"),
        (
            lambda w: rnncore.Stream("gru", *_weights(3, 3, 4, np.float32)).reset(c0=np.ones(4)),
            ValueError,
            "c0",
        ),  # fmt: skip
    ],
)
def test_bad_arguments(make, error, words):
    with pytest.raises(error, match=words):
        make(_weights(4, 3, 4, np.float32))


def test_threads_with_their_own_streams_match_serial():
    weights = _weights(4, 16, 32, np.float32)
    xs = np.random.default_rng(3).standard_normal((8, 50, 1, 16)).astype(np.float32)

    def run(x):
        s = rnncore.Stream("lstm", *weights)
        return np.stack([s.step(x[t]) for t in range(len(x))])

    serial = [run(x) for x in xs]
    results = [None] * 8
    workers = [threading.Thread(target=lambda i=i: results.__setitem__(i, run(xs[i])))
               for i in range(8)]  # fmt: skip
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    for a, b in zip(serial, results):
        assert np.array_equal(a, b)


def test_one_stream_shared_by_two_threads_refuses_or_stays_correct():
    weights = _weights(4, 256, 512, np.float32)
    x = np.ones((1, 256), np.float32)
    s = rnncore.Stream("lstm", *weights)
    errors, steps = [], [0, 0]

    def hammer(k):
        for _ in range(200):
            try:
                s.step(x)
                steps[k] += 1
            except RuntimeError as e:
                errors.append(str(e))

    workers = [threading.Thread(target=hammer, args=(k,)) for k in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert all("already stepping in another thread" in e for e in errors)
    # the state is exactly what that many serial steps give: no step was half-applied
    ref = rnncore.Stream("lstm", *weights)
    for _ in range(sum(steps)):
        ref.step(x)
    assert np.array_equal(ref.h, s.h)
