"""rnncore.torch: the drop-in torch.nn modules, the custom operators, compile, DDP, fallback.

Every result is checked against torch.nn's own RNN/LSTM/GRU with the same parameters (float32:
outputs within 2e-5, gradients within 2e-4, relative to the largest value).
"""

import importlib.util
import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest

import rnncore

from conftest import import_torch

torch = import_torch()
from torch.nn.utils.rnn import pack_padded_sequence  # noqa: E402

import rnncore.torch as rt  # noqa: E402  (needs torch, imported or skipped above)

ROOT = Path(__file__).resolve().parents[1]
OUT_TOL, GRAD_TOL = 2e-5, 2e-4
FAMILIES = ["RNN_TANH", "RNN_RELU", "LSTM", "GRU"]


def _pair(family, I, H, **kw):
    """(torch.nn module, rnncore.torch module) with the same parameters."""
    torch.manual_seed(0)
    if family.startswith("RNN_"):
        kw["nonlinearity"] = family[4:].lower()
        ref, ours = torch.nn.RNN(I, H, **kw), rt.RNN(I, H, **kw)
    else:
        ref, ours = getattr(torch.nn, family)(I, H, **kw), getattr(rt, family)(I, H, **kw)
    ours.load_state_dict(ref.state_dict())
    return ref, ours


def _rel(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()


def _states(family, L, B, H, given, gen):
    if not given:
        return None
    h0 = torch.randn(L, B, H, generator=gen, requires_grad=True)
    if family == "LSTM":
        return (h0, torch.randn(L, B, H, generator=gen, requires_grad=True))
    return h0


def _leaves(hx):
    return [] if hx is None else (list(hx) if isinstance(hx, tuple) else [hx])


def _run(module, x, hx, lengths, batch_first, gen_seed):
    """Forward, then backward of a random weighting of every output; returns all results."""
    inputs = x
    if lengths is not None:
        inputs = pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False)
    y, states = module(inputs, hx)
    y = y.data if lengths is not None else y
    states = list(states) if isinstance(states, tuple) else [states]
    gen = torch.Generator().manual_seed(gen_seed)
    loss = sum((t * torch.randn(t.shape, generator=gen)).sum() for t in [y, *states])
    leaves = [x, *_leaves(hx), *module.parameters()]
    grads = torch.autograd.grad(loss, leaves)
    return [y, *states], grads


CASES = list(itertools.product(FAMILIES, [1, 2], [False, True], [False, True], [False, True],
                               [False, True]))  # fmt: skip


@pytest.mark.parametrize(
    "family,layers,bidirectional,batch_first,packed,given_states",
    CASES,
    ids=[
        f"{f}-L{n}-{'bi' if b else 'uni'}-{'bf' if bf else 'tf'}-{'packed' if p else 'dense'}"
        f"-{'hx' if s else 'nohx'}"
        for f, n, b, bf, p, s in CASES
    ],  # fmt: skip
)
def test_outputs_and_gradients_match_torch_nn(family, layers, bidirectional, batch_first, packed,
                                              given_states):  # fmt: skip
    I, H, B, T = 5, 7, 4, 6
    ref, ours = _pair(family, I, H, num_layers=layers, bidirectional=bidirectional,
                      batch_first=batch_first)  # fmt: skip
    gen = torch.Generator().manual_seed(1)
    x = torch.randn((B, T, I) if batch_first else (T, B, I), generator=gen, requires_grad=True)
    lengths = torch.tensor([6, 2, 5, 1]) if packed else None
    hx = _states(family, layers * (2 if bidirectional else 1), B, H, given_states, gen)
    outs_ref, grads_ref = _run(ref, x, hx, lengths, batch_first, 2)
    outs, grads = _run(ours, x, hx, lengths, batch_first, 2)
    for a, b in zip(outs, outs_ref):
        assert a.shape == b.shape
        assert _rel(a, b) < OUT_TOL
    for a, b in zip(grads, grads_ref):
        assert a.shape == b.shape
        assert _rel(a, b) < GRAD_TOL


def test_packed_output_keeps_the_input_order_and_batch_sizes():
    ref, ours = _pair("GRU", 3, 4)
    x = torch.randn(5, 3, 3)
    packed = pack_padded_sequence(x, torch.tensor([2, 5, 3]), enforce_sorted=False)
    (y, h), (y_ref, h_ref) = ours(packed), ref(packed)
    assert isinstance(y, torch.nn.utils.rnn.PackedSequence)
    assert torch.equal(y.batch_sizes, y_ref.batch_sizes)
    assert torch.equal(y.sorted_indices, y_ref.sorted_indices)
    assert torch.equal(y.unsorted_indices, y_ref.unsorted_indices)
    assert _rel(y.data, y_ref.data) < OUT_TOL and _rel(h, h_ref) < OUT_TOL


@pytest.mark.parametrize("family", ["RNN_TANH", "LSTM", "GRU"])
def test_unbatched_input_as_torch(family):
    ref, ours = _pair(family, 3, 4, num_layers=2)
    x = torch.randn(6, 3)
    hx = _states(family, 2, 1, 4, True, torch.Generator().manual_seed(0))
    hx = tuple(s[:, 0].detach() for s in hx) if family == "LSTM" else hx[:, 0].detach()
    (y, s), (y_ref, s_ref) = ours(x, hx), ref(x, hx)
    assert y.shape == y_ref.shape == (6, 4)
    for a, b in zip(_leaves(s), _leaves(s_ref)):
        assert a.shape == b.shape == (2, 4)
        assert _rel(a, b) < OUT_TOL
    assert _rel(y, y_ref) < OUT_TOL


@pytest.mark.parametrize("family", ["RNN_RELU", "LSTM", "GRU"])
def test_gradcheck_float64_with_lengths_reverse_and_states(family):
    torch.manual_seed(0)
    cls = rt.RNN if family.startswith("RNN") else getattr(rt, family)
    kw = {"nonlinearity": "relu"} if family == "RNN_RELU" else {}
    m = cls(3, 4, num_layers=2, bidirectional=True, dtype=torch.float64, **kw)
    x = torch.randn(5, 3, 3, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(4, 3, 4, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(4, 3, 4, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([5, 2, 4])

    def f(x, h0, c0):
        packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
        y, s = m(packed, (h0, c0) if family == "LSTM" else h0)
        return (y.data, *(s if isinstance(s, tuple) else (s,)))

    assert torch.autograd.gradcheck(f, (x, h0, c0))


def test_operator_gradcheck_directly():
    op = torch.ops.rnncore.layer_forward
    g = torch.Generator().manual_seed(3)
    x = torch.randn(4, 2, 3, dtype=torch.float64, generator=g, requires_grad=True)
    w_ih = torch.randn(8, 3, dtype=torch.float64, generator=g, requires_grad=True)
    w_hh = torch.randn(8, 2, dtype=torch.float64, generator=g, requires_grad=True)
    b = torch.randn(8, dtype=torch.float64, generator=g, requires_grad=True)
    lengths = torch.tensor([4, 2])
    lstm = int(rnncore._core.Cell.LSTM)

    def f(x, w_ih, w_hh, b):
        y, h, c, _ = op(x, w_ih, w_hh, b, None, None, None, lengths, lstm, True, False, True)
        return y, h, c

    assert torch.autograd.gradcheck(f, (x, w_ih, w_hh, b))
    torch.library.opcheck(op, (x, w_ih, w_hh, b, None, None, None, lengths, lstm, True, False,
                               True))  # fmt: skip


def test_retained_graph_gives_the_same_gradients_twice():
    _, ours = _pair("LSTM", 3, 4, num_layers=2, bidirectional=True)
    x = torch.randn(5, 2, 3, requires_grad=True)
    y, (h, c) = ours(x)
    loss = y.pow(2).sum() + c.sum()
    first = torch.autograd.grad(loss, [x, *ours.parameters()], retain_graph=True)
    second = torch.autograd.grad(loss, [x, *ours.parameters()])
    for a, b in zip(first, second):
        assert torch.equal(a, b)


def test_torch_compile_fullgraph_equals_eager():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = rt.LSTM(3, 8, num_layers=2, batch_first=True, bidirectional=True)
            self.gru = rt.GRU(16, 5)
            self.head = torch.nn.Linear(5, 1)

        def forward(self, x):
            y, _ = self.rnn(x)
            y, _ = self.gru(y.transpose(0, 1))
            return self.head(y[-1])

    torch.manual_seed(0)
    net, x = Net(), torch.randn(4, 6, 3)
    compiled = torch.compile(net, fullgraph=True)  # fullgraph: any graph break is an error
    out = compiled(x)
    out.square().sum().backward()
    grads = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    eager = net(x)
    eager.square().sum().backward()
    assert _rel(out, eager) < 1e-6
    for a, p in zip(grads, net.parameters()):
        assert _rel(a, p.grad) < 1e-6


def test_compile_with_dynamic_shapes_traces_the_operators():
    _, ours = _pair("GRU", 3, 4, bidirectional=True)
    compiled = torch.compile(ours, fullgraph=True, dynamic=True, backend="aot_eager")
    for T in (3, 7):
        x = torch.randn(T, 2, 3, requires_grad=True)
        (y, _), (y_eager, _) = compiled(x), ours(x)
        assert torch.equal(y, y_eager)
        (a,), (b,) = torch.autograd.grad(y.sum(), x), torch.autograd.grad(y_eager.sum(), x)
        assert torch.equal(a, b)


def test_inter_layer_dropout_is_torchs():
    """Training-mode dropout between layers (not after the last), drawn from torch's generator."""
    torch.manual_seed(0)
    ours = rt.GRU(3, 4, num_layers=3, dropout=0.5)
    layers = [rt.GRU(3 if i == 0 else 4, 4) for i in range(3)]
    for i, layer in enumerate(layers):
        layer.load_state_dict({k.replace(f"_l{i}", "_l0"): v for k, v in ours.state_dict().items()
                               if k.endswith(f"_l{i}")})  # fmt: skip
    x = torch.randn(5, 2, 3)
    torch.manual_seed(7)
    y, _ = ours(x)
    torch.manual_seed(7)
    expected = x
    for i, layer in enumerate(layers):
        expected, _ = layer(expected)
        if i < 2:
            expected = torch.nn.functional.dropout(expected, 0.5, training=True)
    assert _rel(y, expected) < 1e-6
    ours.eval()
    ref = torch.nn.GRU(3, 4, num_layers=3, dropout=0.5).eval()
    ref.load_state_dict(ours.state_dict())
    assert _rel(ours(x)[0], ref(x)[0]) < OUT_TOL  # eval: no dropout, as torch


def test_constructor_parameters_initialisation_and_state_dict_are_torchs():
    for make in (lambda m: m.LSTM(5, 7, 2, bias=False, bidirectional=True),
                 lambda m: m.RNN(5, 7, 2, "relu", batch_first=True),
                 lambda m: m.GRU(5, 7, num_layers=3, dropout=0.25)):  # fmt: skip
        torch.manual_seed(11)
        ref = make(torch.nn)
        torch.manual_seed(11)
        ours = make(rt)
        assert [n for n, _ in ours.named_parameters()] == [n for n, _ in ref.named_parameters()]
        for (_, a), (_, b) in zip(ours.named_parameters(), ref.named_parameters()):
            assert torch.equal(a, b)  # same initialisation from the same seed
        assert repr(ours).split("(", 1)[1] == repr(ref).split("(", 1)[1]
        ref.load_state_dict(ours.state_dict())  # both directions
        ours.load_state_dict(ref.state_dict())


def test_convert_replaces_nested_modules_sharing_parameters():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.GRU(4, 5))
            self.blocks = torch.nn.ModuleList([torch.nn.LSTM(5, 5), torch.nn.RNN(5, 5)])

        def forward(self, x):
            y, _ = self.encoder[1](self.encoder[0](x))
            for block in self.blocks:
                y, _ = block(y)
            return y

    class MyLSTM(torch.nn.LSTM):  # a user's subclass: left alone
        pass

    torch.manual_seed(0)
    net = Net()
    net.extra = MyLSTM(2, 2)
    net.eval()
    x = torch.randn(4, 2, 3)
    before = net(x)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    params = list(net.parameters())
    converted = rt.convert(net)
    assert converted is net
    assert isinstance(net.encoder[1], rt.GRU) and isinstance(net.blocks[0], rt.LSTM)
    assert isinstance(net.blocks[1], rt.RNN) and type(net.extra) is MyLSTM
    assert not net.blocks[0].training  # mode kept
    assert all(a is b for a, b in zip(net.parameters(), params))  # same Parameter objects
    assert _rel(net(x), before) < OUT_TOL
    net.train()
    net(x).sum().backward()
    optimizer.step()  # the optimizer made before convert still updates the model
    assert not torch.equal(net.blocks[0].weight_hh_l0, before.new_tensor(0.0))
    single = rt.convert(torch.nn.LSTM(3, 4))
    assert type(single) is rt.LSTM


def test_fallback_to_torch_for_dtypes_and_options_the_kernels_lack():
    x = torch.randn(5, 2, 3)
    for dtype in (torch.bfloat16, torch.float16):
        ref, ours = _pair("GRU", 3, 4)
        ref, ours = ref.to(dtype), ours.to(dtype)
        assert torch.equal(ours(x.to(dtype))[0], ref(x.to(dtype))[0])  # torch's own path
    ref, ours = _pair("LSTM", 3, 4, proj_size=2)
    (y, (h, c)), (y_ref, (h_ref, c_ref)) = ours(x), ref(x)
    assert torch.equal(y, y_ref) and torch.equal(h, h_ref) and torch.equal(c, c_ref)
    assert y.shape == (5, 2, 2)
    ref, ours = _pair("LSTM", 3, 4)
    meta = ours.to("meta")  # another device: torch's implementation (shapes only on meta)
    y, (h, c) = meta(x.to("meta"))
    assert y.device.type == "meta" and y.shape == (5, 2, 4) and h.shape == (1, 2, 4)
    _, ours = _pair("GRU", 3, 4)
    with pytest.raises((RuntimeError, ValueError), match="dtype"):  # torch's own error
        ours(x.double())


def test_bad_inputs_give_clear_errors():
    _, lstm = _pair("LSTM", 3, 4, num_layers=2)
    x = torch.randn(5, 2, 3)
    with pytest.raises(ValueError, match=r"input: expected 3 features \(input_size\), got 6"):
        lstm(torch.randn(5, 2, 6))
    with pytest.raises(RuntimeError, match="input_size"):  # also what torch users catch
        lstm(torch.randn(5, 2, 6))
    with pytest.raises(ValueError, match="input: expected a 2-D .* or 3-D tensor, got 4-D"):
        lstm(torch.randn(1, 5, 2, 3))
    with pytest.raises(ValueError, match=r"h_0: expected shape \(2, 2, 4\), got \(1, 2, 4\)"):
        lstm(x, (torch.zeros(1, 2, 4), torch.zeros(2, 2, 4)))
    with pytest.raises(ValueError, match=r"hx: expected a tuple \(h_0, c_0\)"):
        lstm(x, torch.zeros(2, 2, 4))
    with pytest.raises(TypeError, match="input: expected a Tensor or PackedSequence"):
        lstm(x.numpy())
    with pytest.raises(ValueError, match="nonlinearity"):
        rt.RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(TypeError, match="module: expected a torch.nn.Module"):
        rt.convert("lstm")
    with pytest.raises(ValueError, match="w_ih: expected shape"):  # the operator checks too
        torch.ops.rnncore.layer_forward(x, torch.zeros(16, 5), torch.zeros(16, 4), None, None,
                                        None, None, None, 2, False, False, False)  # fmt: skip


def test_import_rnncore_does_not_import_torch():
    code = "import sys, rnncore; assert 'torch' not in sys.modules; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


def _load_example():
    spec = importlib.util.spec_from_file_location("torch_ddp", ROOT / "examples" / "torch_ddp.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ddp_two_processes_equal_one_process_on_the_whole_batch(tmp_path):
    """torchrun, 2 processes, gloo: 3 steps on two halves equal one process on the batch."""
    out = tmp_path / "ddp.pt"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RANK", "WORLD_SIZE"))}
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         str(ROOT / "examples" / "torch_ddp.py"), "--steps", "3", "--batch", "16",
         "--out", str(out)],
        capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert "2 process(es)" in run.stdout
    example = _load_example()
    model = example.make_model()
    x, y = example.make_data(16)
    example.train(model, x, y, 3)
    trained = torch.load(out)
    for name, value in model.state_dict().items():
        assert _rel(trained[name], value) < 1e-10, name
