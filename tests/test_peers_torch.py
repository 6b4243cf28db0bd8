"""Tier 3: outputs and all gradients against torch.nn.RNN / LSTM / GRU (float32).

Bidirectional torch layers are matched with a forward and a reverse=True rnncore call;
variable lengths go through pack_padded_sequence on the torch side.
(GRU reset_after=False has no torch counterpart; tier 2 covers it against the reference.)
"""

import numpy as np
import pytest

import rnncore

from conftest import CELLS, import_torch, rel_err

TORCH_CELLS = [c for c in CELLS if c.name != "gru_reset_before"]
OUT_TOL, GRAD_TOL = 2e-5, 2e-4


def _torch_module(torch, cell, I, H, bias, batch_first):
    kw = {"bias": bias, "batch_first": batch_first, "bidirectional": True}
    if cell.family == "rnn":
        return torch.nn.RNN(I, H, nonlinearity=cell.kwargs["nonlinearity"], **kw)
    return {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell.family](I, H, **kw)


def _run_torch(torch, module, x, h0, c0, lengths, batch_first, weights):
    """Forward + backward of sum(out * wy) + sum(h_n * wh) (+ sum(c_n * wc)) in torch."""
    xt = torch.tensor(x, requires_grad=True)
    h0t = torch.tensor(h0, requires_grad=True)
    c0t = torch.tensor(c0, requires_grad=True) if c0 is not None else None
    inp = xt
    if lengths is not None:
        inp = torch.nn.utils.rnn.pack_padded_sequence(
            xt, torch.tensor(lengths), batch_first=batch_first, enforce_sorted=False
        )
    out, state = module(inp, (h0t, c0t) if c0t is not None else h0t)
    if lengths is not None:
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(
            out, batch_first=batch_first, total_length=x.shape[1 if batch_first else 0]
        )
    h_n, c_n = state if c0t is not None else (state, None)
    wy, wh, wc = weights
    loss = (out * torch.tensor(wy)).sum() + (h_n * torch.tensor(wh)).sum()
    if c_n is not None:
        loss = loss + (c_n * torch.tensor(wc)).sum()
    loss.backward()
    grads = {"dx": xt.grad.numpy(), "dh0": h0t.grad.numpy()}
    if c0t is not None:
        grads["dc0"] = c0t.grad.numpy()
    for name, p in module.named_parameters():
        grads[name] = p.grad.numpy()
    outs = (
        out.detach().numpy(),
        h_n.detach().numpy(),
        None if c_n is None else c_n.detach().numpy(),
    )
    return outs, grads


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("ragged", [False, True])
@pytest.mark.parametrize("cell", TORCH_CELLS, ids=[c.name for c in TORCH_CELLS])
def test_bidirectional_layer_matches_torch(cell, ragged, bias, batch_first):
    torch = import_torch()
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    T, B, I, H = 11, 6, 7, 16
    module = _torch_module(torch, cell, I, H, bias, batch_first)
    x = rng.standard_normal((B, T, I) if batch_first else (T, B, I)).astype(np.float32)
    h0 = rng.standard_normal((2, B, H)).astype(np.float32)
    c0 = rng.standard_normal((2, B, H)).astype(np.float32) if cell.has_c else None
    lengths = np.array([T, 1, 5, T, 8, 3]) if ragged else None  # torch needs lengths >= 1
    y_shape = (B, T, 2 * H) if batch_first else (T, B, 2 * H)
    weights = (
        rng.standard_normal(y_shape).astype(np.float32),
        rng.standard_normal((2, B, H)).astype(np.float32),
        rng.standard_normal((2, B, H)).astype(np.float32),
    )
    t_out, t_grads = _run_torch(torch, module, x, h0, c0, lengths, batch_first, weights)

    params = {n: p.detach().numpy() for n, p in module.named_parameters()}
    forward = cell.fn(rnncore, "_forward")
    backward = cell.fn(rnncore, "_backward")
    ours_y, ours_h, ours_c, dx = [], [], [], np.zeros_like(x)
    for d, suffix in enumerate(["", "_reverse"]):
        args = [
            params["weight_ih_l0" + suffix],
            params["weight_hh_l0" + suffix],
            params.get("bias_ih_l0" + suffix),
            params.get("bias_hh_l0" + suffix),
            h0[d],
        ]
        if cell.has_c:
            args.append(c0[d])
        out = forward(
            x, *args, lengths=lengths, reverse=bool(d), batch_first=batch_first, **cell.kwargs
        )
        ours_y.append(out[0])
        ours_h.append(out[1])
        dy = weights[0][..., d * H : (d + 1) * H]
        extra = {"dc_n": weights[2][d]} if cell.has_c else {}
        g = backward(out[-1], np.ascontiguousarray(dy), dh_n=weights[1][d], **extra)
        if cell.has_c:
            ours_c.append(out[2])
            assert rel_err(g["dc0"], t_grads["dc0"][d]) <= GRAD_TOL
        dx += g["dx"]
        assert rel_err(g["dh0"], t_grads["dh0"][d]) <= GRAD_TOL
        for ours, theirs in [
            ("dw_ih", "weight_ih_l0"),
            ("dw_hh", "weight_hh_l0"),
            ("db_ih", "bias_ih_l0"),
            ("db_hh", "bias_hh_l0"),
        ]:
            if not bias and ours.startswith("db"):
                assert g[ours] is None
                continue
            err = rel_err(g[ours], t_grads[theirs + suffix])
            assert err <= GRAD_TOL, f"{ours}{suffix}: {err:.2e}"
    assert rel_err(np.concatenate(ours_y, axis=-1), t_out[0]) <= OUT_TOL
    assert rel_err(np.stack(ours_h), t_out[1]) <= OUT_TOL
    if cell.has_c:
        assert rel_err(np.stack(ours_c), t_out[2]) <= OUT_TOL
    assert rel_err(dx, t_grads["dx"]) <= GRAD_TOL


@pytest.mark.parametrize("cell", TORCH_CELLS, ids=[c.name for c in TORCH_CELLS])
def test_default_state_matches_torch(cell):
    """No h0/c0 given on either side: both start from zeros."""
    torch = import_torch()
    torch.manual_seed(3)
    module = _torch_module(torch, cell, 5, 9, True, False)
    x = np.random.default_rng(2).standard_normal((6, 4, 5)).astype(np.float32)
    with torch.no_grad():
        t_out = module(torch.tensor(x))[0].numpy()
    p = {n: v.detach().numpy() for n, v in module.named_parameters()}
    fwd = cell.fn(rnncore)(
        x, p["weight_ih_l0"], p["weight_hh_l0"], p["bias_ih_l0"], p["bias_hh_l0"], **cell.kwargs
    )[0]
    rev = cell.fn(rnncore)(
        x,
        p["weight_ih_l0_reverse"],
        p["weight_hh_l0_reverse"],
        p["bias_ih_l0_reverse"],
        p["bias_hh_l0_reverse"],
        reverse=True,
        **cell.kwargs,
    )[0]
    assert rel_err(np.concatenate([fwd, rev], -1), t_out) <= OUT_TOL
