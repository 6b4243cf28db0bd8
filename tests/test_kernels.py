"""Tier 2: the fused kernels against the NumPy reference, float64 and float32, 1 and 2 threads."""

import itertools

import numpy as np
import pytest

import rnncore
from rnncore import reference

from conftest import CELL_IDS, CELLS, make_case, rel_err

F64_TOL = 1e-10
F32_TOL = 1e-5
F32_SCALE_FLOOR = 0.1  # see conftest.rel_err


def _err(a, b, tol):
    return rel_err(a, b, F32_SCALE_FLOOR if tol == F32_TOL else 0.0)


def _check_inference(case):
    """Runs the inference path (no training cache) on a float32 `case` against the reference."""
    expected, _ = case.astype(np.float64).run(reference)
    got = case.cell.fn(rnncore)(**case.arrays, **case.options)
    for a, b in zip(got, expected):
        if b is not None:
            assert _err(a, b, F32_TOL) <= F32_TOL


def _compare(case, tol, expected=None):
    """Runs the kernels on `case`; checks against the reference (computed in float64 from the
    same, possibly float32-rounded, inputs); returns the kernel results."""
    if expected is None:
        expected = case.astype(np.float64).run(reference)
    got = case.run(rnncore)
    (ref_out, ref_grads), (out, grads) = expected, got
    for name, a, b in zip(["y", "h_n", "c_n"], out, ref_out):
        if b is None:
            assert a is None
            continue
        assert a.dtype == case.arrays["x"].dtype
        assert _err(a, b, tol) <= tol, f"{name}: {_err(a, b, tol):.2e}"
    assert set(grads) == set(ref_grads)
    for name, b in ref_grads.items():
        if b is None:
            assert grads[name] is None, name
            continue
        assert grads[name].dtype == case.arrays["x"].dtype
        err = _err(grads[name], b, tol)
        assert err <= tol, f"{name}: {err:.2e}"
    return got


def _assert_identical(a, b):
    (out_a, grads_a), (out_b, grads_b) = a, b
    for x, y in zip(out_a, out_b):
        assert (x is None and y is None) or np.array_equal(x, y)
    for k in grads_a:
        assert (grads_a[k] is None and grads_b[k] is None) or np.array_equal(grads_a[k], grads_b[k])


def _compare_on_1_2_3_threads(case, set_threads):
    """`case` in float64 and float32 against the reference on 1, 2 and 3 threads, whose
    results must be bitwise the same."""
    for dtype, tol in [(np.float64, F64_TOL), (np.float32, F32_TOL)]:
        typed = case.astype(dtype)
        expected = typed.astype(np.float64).run(reference)
        results = []
        for n in (1, 2, 3):
            set_threads(n)
            results.append(_compare(typed, tol, expected))
        _assert_identical(results[0], results[1])
        _assert_identical(results[0], results[2])


GRID = list(itertools.product([1, 2, 7, 33], [1, 3, 16], [1, 5, 17], [1, 4, 20, 33, 64]))


@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
@pytest.mark.parametrize("T,B,I,H", GRID)
def test_kernels_match_reference_on_grid(cell, T, B, I, H, threads):
    # The variant options rotate with the shape so the grid covers all of them.
    rng = np.random.default_rng([T, B, I, H])
    options = {
        "lengths": "ragged" if rng.random() < 0.6 else None,
        "reverse": bool(rng.random() < 0.5),
        "batch_first": bool(rng.random() < 0.4),
        "bias": bool(rng.random() < 0.8),
        "h0": bool(rng.random() < 0.7),
        "dh_n": bool(rng.random() < 0.7),
    }
    case = make_case(cell, T, B, I, H, seed=T * 1000 + B * 100 + I * 10 + H, **options)
    for dtype, tol in [(np.float64, F64_TOL), (np.float32, F32_TOL)]:
        typed = case.astype(dtype)
        expected = typed.astype(np.float64).run(reference)
        threads(1)
        one = _compare(typed, tol, expected)
        threads(2)
        two = _compare(typed, tol, expected)
        _assert_identical(one, two)  # bitwise, not just close


VARIANTS = list(itertools.product([None, "ragged"], [False, True], [False, True], [False, True]))


@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
@pytest.mark.parametrize("lengths,reverse", [(None, False), ("ragged", True), ("ragged", False)])
def test_recurrent_dropout_mask(cell, lengths, reverse, threads):
    for n in (1, 2):
        threads(n)
        case = make_case(cell, 8, 5, 6, 21, seed=4, lengths=lengths, reverse=reverse,
                         recurrent_mask=True)  # fmt: skip
        _compare(case, F64_TOL)
        _compare(case.astype(np.float32), F32_TOL)


@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
@pytest.mark.parametrize("lengths,reverse,batch_first,bias", VARIANTS)
def test_every_variant_combination(cell, lengths, reverse, batch_first, bias):
    for h0 in (False, True):
        case = make_case(
            cell,
            9,
            6,
            7,
            24,
            seed=3,
            lengths=lengths,
            reverse=reverse,
            batch_first=batch_first,
            bias=bias,
            h0=h0,
        )
        _compare(case, F64_TOL)
        _compare(case.astype(np.float32), F32_TOL)


@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
def test_bitwise_identical_across_thread_counts_large(cell, threads):
    # Large enough that the kernels really split work over threads.
    case = make_case(cell, 12, 32, 48, 96, seed=11, reverse=True).astype(np.float32)
    results = []
    for n in (1, 2, 3):
        threads(n)
        results.append(case.run(rnncore))
    _assert_identical(results[0], results[1])
    _assert_identical(results[0], results[2])


@pytest.mark.parametrize("cell", CELLS[:2], ids=CELL_IDS[:2])
def test_simple_rnn_backward_in_chunks_of_steps_matches_reference(cell, threads):
    # SimpleRNN backward works through about 1 MiB of gate gradients at a time: at B=64
    # H=300 float32 that is 13 of the 20 steps, so the loop crosses a chunk boundary (and
    # float64 crosses two), with ragged and empty rows, the mask, either direction, layout.
    for lengths, reverse, batch_first, mask in [
        ("ragged", True, False, True),
        ("ragged", False, True, False),
        (None, False, False, True),
        (None, True, True, False),
    ]:
        case = make_case(cell, 20, 64, 7, 300, seed=3, lengths=lengths, reverse=reverse,
                         batch_first=batch_first, recurrent_mask=mask)  # fmt: skip
        _compare_on_1_2_3_threads(case, threads)


@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
def test_weight_gradients_packed_or_in_place_match_reference(cell, threads):
    # A thread with 256 or more rows of dW_hh (here each of 1, 2 and 3 for LSTM and GRU; one
    # for SimpleRNN) packs its operands in chunks of 128 of the T*B = 150 rows, with H = 260
    # columns that end in a partial panel; dW_ih (I = 130 columns over 150 rows) and fewer
    # rows read them in place. Both add the same terms in the same order.
    case = make_case(cell, 50, 3, 130, 260, seed=13, reverse=True)
    _compare_on_1_2_3_threads(case, threads)


@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
def test_training_on_a_kept_workspace_block_matches_reference(cell):
    # Workspaces of 16 MiB or more (60 x 64 rows, H = 256; SimpleRNN, which keeps only its
    # states, 130 x 64 rows, H = 512) live on blocks that released ones left behind, so a
    # forward meets the previous step's values: poisoned with NaN there, every one that
    # backward reads must have been written again.
    T, H = (130, 512) if cell.gates == 1 else (60, 256)
    rnncore._core.release_workspaces()
    poison = make_case(cell, T, 64, 8, H, seed=4, lengths=None).astype(np.float32)
    poison.arrays["x"][:] = np.nan
    out, _ = poison.run(rnncore)  # its workspace block is kept when the cache goes
    assert np.isnan(out[0]).all()
    for reverse in (False, True):  # ragged rows: padded steps that no forward step writes
        case = make_case(cell, T, 64, 8, H, seed=5, reverse=reverse).astype(np.float32)
        _compare(case, F32_TOL)
    assert rnncore._core.release_workspaces() >= 16 << 20
    assert rnncore._core.release_workspaces() == 0


@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
def test_inference_equals_training_forward(cell):
    case = make_case(cell, 6, 4, 5, 8, seed=5)
    inference = case.cell.fn(rnncore)(**case.arrays, **case.options)
    training = case.forward(rnncore)
    assert training[-1] is not None
    assert case.forward(rnncore, training=False)[-1] is None
    for a, b in zip(inference, training[:-1]):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
def test_padded_steps_output_zero_and_state_from_last_real_step(cell):
    case = make_case(cell, 8, 5, 3, 6, seed=2, lengths=np.array([8, 0, 3, 5, 1]))
    y, h_n = case.cell.fn(rnncore)(**case.arrays, **case.options)[:2]
    assert np.all(y[3:, 2] == 0) and np.all(y[:, 1] == 0)
    assert np.array_equal(h_n[1], case.arrays["h0"][1])  # length 0 keeps h0
    assert np.array_equal(h_n[2], y[2, 2])  # last real step of a length-3 row
    # Reverse: the row's final state is the one after t = 0.
    y_rev, h_rev = case.cell.fn(rnncore)(**case.arrays, **dict(case.options, reverse=True))[:2]
    assert np.array_equal(h_rev[2], y_rev[0, 2])
    assert np.all(y_rev[3:, 2] == 0)


@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
def test_layouts_and_read_only_inputs_work(cell):
    case = make_case(cell, 5, 4, 6, 7, seed=9)
    expected = case.cell.fn(rnncore)(**case.arrays, **case.options)
    fortran = {k: (None if v is None else np.asfortranarray(v)) for k, v in case.arrays.items()}
    strided = {
        k: (None if v is None else np.repeat(v, 2, axis=-1)[..., ::2])
        for k, v in case.arrays.items()
    }
    flipped = {
        k: (None if v is None else np.flip(np.flip(v, -1).copy(), -1))
        for k, v in case.arrays.items()
    }
    readonly = {}
    for k, v in case.arrays.items():
        readonly[k] = None if v is None else v.copy()
        if v is not None:
            readonly[k].setflags(write=False)
    for arrays in (fortran, strided, flipped, readonly):
        got = case.cell.fn(rnncore)(**arrays, **case.options)
        for a, b in zip(got, expected):
            assert np.array_equal(a, b)


@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
@pytest.mark.parametrize("T,B", [(0, 3), (4, 0), (0, 0)])
def test_empty_time_or_batch(cell, T, B):
    case = make_case(cell, T, B, 3, 5, seed=1, lengths=None)
    out, grads = case.run(rnncore)
    ref_out, ref_grads = case.run(reference)
    assert out[0].shape == (T, B, 5)
    for a, b in zip(out, ref_out):
        assert (a is None and b is None) or np.array_equal(a, b)
    for k, v in ref_grads.items():
        assert (v is None and grads[k] is None) or np.allclose(grads[k], v, rtol=0, atol=1e-12)
    if B:
        assert np.array_equal(out[1], case.arrays["h0"])  # T=0: the state is h0


@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
def test_nan_and_inf_propagate_without_crashing(cell):
    case = make_case(cell, 5, 3, 4, 6, seed=4, lengths=None)
    case.arrays["x"][2, 1, 0] = np.nan
    case.arrays["x"][1, 0, 1] = np.inf
    out, grads = case.run(rnncore)
    assert np.isnan(out[0][2:, 1]).any()
    assert np.all(np.isfinite(out[0][:1]))  # steps before the bad values are untouched
    assert np.isnan(grads["dw_ih"]).any()


@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
@pytest.mark.parametrize("H", [20, 300])
def test_batch_rows_split_over_threads_match_reference(cell, H, threads):
    # With enough batch rows the time loops give each thread its own rows (no barrier);
    # with small weights forward does too, with large ones it splits units (backward rows).
    for lengths, reverse, batch_first, mask in [
        ("ragged", True, False, True),
        ("ragged", False, True, False),
        (None, False, False, True),
    ]:
        case = make_case(cell, 6, 29, 5, H, seed=H, lengths=lengths, reverse=reverse,
                         batch_first=batch_first, recurrent_mask=mask)  # fmt: skip
        _compare_on_1_2_3_threads(case, threads)


@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
def test_inference_reusing_a_kept_gate_slab_matches_reference(cell):
    # Inference keeps its gate slab (over 1 MiB here) for the thread's next call, without
    # clearing it: a smaller call that reuses the block, with padded steps, must not see
    # the previous call's numbers.
    H = 256 // cell.gates  # slabs of T x B x 256 floats: 1.35 MB, then 1.11 MB
    big = make_case(cell, 40, 33, 3, H, seed=1, lengths=None).astype(np.float32)
    small = make_case(cell, 34, 32, 2, H, seed=2, lengths="ragged").astype(np.float32)
    for case in (big, small, big):
        _check_inference(case)


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
def test_input_projection_in_blocks_of_steps_matches_reference(cell, reverse, threads):
    # The loop projects the inputs of a few steps at a time (512 KiB of gates), into a ring
    # of gate rows in inference. These shapes make blocks of 1 to 9 steps, so T = 11 wraps
    # the ring for every cell; ragged lengths with reverse give each row its own time at a
    # step. On 2 threads, B = 30 with H = 256 splits rows, the others split units.
    for n in (1, 2):
        threads(n)
        for B, H in [(30, 256), (30, 768), (7, 640)]:
            case = make_case(cell, 11, B, 5, H, seed=B, reverse=reverse).astype(np.float32)
            _check_inference(case)
            _compare(case, F32_TOL)


def _one_row(case, b):
    """`case` cut down to batch row b (time-major)."""
    rows = {k: (None if v is None else v[:, b : b + 1] if k == "x" else v[b : b + 1])
            for k, v in case.arrays.items() if k in ("x", "h0", "c0")}  # fmt: skip
    return {**case.arrays, **rows}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
def test_inference_with_rows_in_vector_lanes_matches_each_row_alone(cell, dtype, threads):
    # Where H fills vectors poorly (1, 8, 20, 50 units) and a thread owns a vector's worth of
    # rows, inference runs on transposed state, one batch row per lane. Its sums keep their
    # order, so every row equals that row computed alone (one row: the row-major path) bit
    # for bit, and the training forward (always row-major) gives the same y.
    for n in (1, 2):
        threads(n)
        for T, B, I, H, bias in [(6, 32, 1, 20, True), (4, 40, 3, 8, False), (3, 64, 19, 50, True),
                                 (5, 16, 2, 1, True)]:  # fmt: skip
            case = make_case(cell, T, B, I, H, seed=B + H, lengths=None, bias=bias).astype(dtype)
            for reverse in (False, True):
                opts = {**case.options, "reverse": reverse}
                got = case.cell.fn(rnncore)(**case.arrays, **opts)
                trained = case.cell.fn(rnncore, "_forward")(**case.arrays, **opts, training=True)
                np.testing.assert_array_equal(got[0], trained[0])
                for b in (0, B // 2 + 1, B - 1):
                    alone = case.cell.fn(rnncore)(**_one_row(case, b), **opts)
                    np.testing.assert_array_equal(got[0][:, b : b + 1], alone[0])
                    for full, row in zip(got[1:], alone[1:]):
                        if row is not None:
                            np.testing.assert_array_equal(full[b : b + 1], row)
            if dtype == np.float32:
                _check_inference(case)


@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
def test_calls_reusing_kept_packed_weights_match_reference(cell, threads):
    # Packed weights of 256 KiB or more are kept per thread and reused, uncleared, by the
    # next call that fits: new weights and a narrower layer must be packed afresh, and a
    # batch-1 call splits units over threads (each packs its own columns).
    for n in (1, 2):
        threads(n)
        for seed, B, I, H in [(3, 1, 96, 256), (4, 1, 80, 200), (5, 13, 96, 256)]:
            case = make_case(cell, 3, B, I, H, seed=seed, lengths=None).astype(np.float32)
            _check_inference(case)
            _compare(case, F32_TOL)  # training packs W_ih and W_hh into kept blocks too
