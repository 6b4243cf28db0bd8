"""torch.nn.RNN / LSTM / GRU on rnncore's fused kernels, and `convert`.

The modules derive from torch.nn.RNNBase, so their constructor, parameters (names, shapes,
initialisation), state_dict, repr and device/dtype handling are torch's own; only `forward`
differs. It runs the kernels through torch.ops.rnncore.layer_forward (autograd included) when
they can: CPU tensors of float32 or float64, input and parameters of one dtype, and no LSTM
projection (proj_size). Anything else (CUDA, bfloat16, float16, proj_size > 0, mixed dtypes)
runs torch's own implementation of the same module with the same parameters.

They are not subclasses of torch.nn.LSTM etc.: torch.compile refuses to trace those, and these
must compile with fullgraph=True.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from .. import _cells
from . import _ops  # noqa: F401  (registers torch.ops.rnncore.*)

__all__ = ["GRU", "LSTM", "RNN", "InputError", "convert"]

_KERNEL_DTYPES = (torch.float32, torch.float64)


class InputError(ValueError, RuntimeError):
    """A wrong input or state shape: a ValueError, and a RuntimeError as torch raises for these."""


class _FusedRNNBase(torch.nn.RNNBase):
    """torch.nn.RNNBase whose forward runs rnncore's kernels (see the module docstring)."""

    _torch_class: type[torch.nn.RNNBase]  # torch's module of this kind: the fallback forward

    def __init__(self, mode: str, *args, **kwargs):
        super().__init__(mode, *args, **kwargs)
        # Looked up once here: forward reads plain ints, which torch.compile traces freely.
        if mode == "LSTM":
            kind = _cells.kind_of("lstm")
        elif mode == "GRU":
            kind = _cells.kind_of("gru", reset_after=True)
        else:
            kind = _cells.kind_of("rnn", nonlinearity=mode[4:].lower())  # RNN_TANH, RNN_RELU
        self._cell_code, self._has_cell_state = kind.code_int, kind.has_cell_state

    def _kernels_can_run(self, x: Tensor) -> bool:
        """True when the kernels run this call; False sends it to torch's implementation."""
        if x.device.type != "cpu" or x.dtype not in _KERNEL_DTYPES or self.proj_size:
            return False
        return all(w.device.type == "cpu" and w.dtype == x.dtype for w in self._parameters_list())

    def _parameters_list(self) -> list[Tensor]:
        """Every weight and bias, in torch's order (weight_ih_l0, weight_hh_l0, ...)."""
        return [getattr(self, name) for name in self._flat_weights_names]

    def forward(self, input, hx=None):  # noqa: D417 (torch's signature and docs)
        """Runs the layers over `input` (a Tensor, batched or not, or a PackedSequence).

        Returns what torch.nn's module returns: (output, h_n), or (output, (h_n, c_n)) for
        LSTM; output is a PackedSequence when input is one.
        """
        packed = isinstance(input, PackedSequence)
        data = input.data if packed else input
        if not isinstance(data, Tensor):
            got = type(input).__name__
            raise TypeError(f"input: expected a Tensor or PackedSequence, got {got}")
        if not self._kernels_can_run(data):
            return self._torch_class.forward(self, input, hx)
        if packed:
            return self._forward_packed(input, hx)
        return self._forward_tensor(input, hx)

    # ---- the two kinds of input ----
    def _forward_tensor(self, x: Tensor, hx):
        if x.dim() not in (2, 3):
            raise InputError(f"input: expected a 2-D (unbatched) or 3-D tensor, got {x.dim()}-D")
        batched = x.dim() == 3
        if not batched:
            x = x.unsqueeze(0 if self.batch_first else 1)
        h0, c0 = self._initial_states(hx, x.shape[0 if self.batch_first else 1], batched)
        y, h_n, c_n = self._run_layers(x, h0, c0, None, self.batch_first)
        if not batched:
            y = y.squeeze(0 if self.batch_first else 1)
            h_n, c_n = h_n.squeeze(1), (None if c_n is None else c_n.squeeze(1))
        return y, (h_n if c_n is None else (h_n, c_n))

    def _forward_packed(self, packed: PackedSequence, hx):
        # Rows in the caller's order, as hx and h_n are; steps past a row's length are
        # skipped by the kernels (their outputs are zeros, dropped again when packing).
        x, lengths = pad_packed_sequence(packed)  # x (T, B, I), lengths (B,) int64 on CPU
        h0, c0 = self._initial_states(hx, x.shape[1], True)
        y, h_n, c_n = self._run_layers(x, h0, c0, lengths, False)
        order = packed.sorted_indices
        if order is not None:
            y, lengths = y.index_select(1, order), lengths.index_select(0, order.cpu())
        y_data = pack_padded_sequence(y, lengths, enforce_sorted=True).data
        y_packed = PackedSequence(y_data, packed.batch_sizes, order, packed.unsorted_indices)
        return y_packed, (h_n if c_n is None else (h_n, c_n))

    # ---- states and layers ----
    def _initial_states(self, hx, batch: int, batched: bool):
        """(h0, c0) as (L*D, B, H) tensors, or None for zeros; checks their shapes."""
        lstm = self.mode == "LSTM"
        if hx is None:
            return None, None
        if lstm and not (isinstance(hx, (tuple, list)) and len(hx) == 2):
            raise InputError("hx: expected a tuple (h_0, c_0) for LSTM, got " + type(hx).__name__)
        states = tuple(hx) if lstm else (hx,)
        expected = (self.num_layers * (2 if self.bidirectional else 1), batch, self.hidden_size)
        checked = []
        for name, state in zip(("h_0", "c_0"), states):
            if not isinstance(state, Tensor):
                raise TypeError(f"{name}: expected a Tensor, got {type(state).__name__}")
            if state.dim() != (3 if batched else 2):
                raise InputError(
                    f"{name}: expected a {3 if batched else 2}-D tensor for "
                    f"{'batched 3-D' if batched else 'unbatched 2-D'} input, got {state.dim()}-D"
                )
            state = state if batched else state.unsqueeze(1)
            if tuple(state.shape) != expected:
                raise InputError(
                    f"{name}: expected shape {expected}, got {tuple(state.shape)}"
                    + ("" if batched else " (with the batch axis added)")
                )
            dtype = self.weight_ih_l0.dtype
            if state.dtype != dtype:
                raise TypeError(f"{name}: expected {dtype} (the parameters'), got {state.dtype}")
            checked.append(state.contiguous())
        return checked[0], (checked[1] if lstm else None)

    def _layer_weights(self, layer: int, direction: int):
        suffix = f"_l{layer}" + ("_reverse" if direction else "")
        w_ih, w_hh = getattr(self, "weight_ih" + suffix), getattr(self, "weight_hh" + suffix)
        if not self.bias:
            return w_ih, w_hh, None, None
        return w_ih, w_hh, getattr(self, "bias_ih" + suffix), getattr(self, "bias_hh" + suffix)

    def _run_layers(self, x: Tensor, h0, c0, lengths: Tensor | None, batch_first: bool):
        """Every layer and direction; x (T, B, I) or (B, T, I). Returns (y, h_n, c_n or None)."""
        if x.shape[-1] != self.input_size:
            raise InputError(
                f"input: expected {self.input_size} features (input_size), got {x.shape[-1]}"
            )
        training = torch.is_grad_enabled() and (
            x.requires_grad
            or any(s is not None and s.requires_grad for s in (h0, c0))
            or any(w.requires_grad for w in self._parameters_list())
        )
        directions = 2 if self.bidirectional else 1
        h_n, c_n = [], []
        for layer in range(self.num_layers):
            x = x.contiguous()  # the kernels read it in place (and compiled graphs keep layouts)
            outputs = []
            for direction in range(directions):
                index = layer * directions + direction
                y, h, c, _ = torch.ops.rnncore.layer_forward(
                    x, *self._layer_weights(layer, direction),
                    None if h0 is None else h0[index], None if c0 is None else c0[index],
                    lengths, self._cell_code, direction == 1, batch_first, training, True,
                )  # fmt: skip
                outputs.append(y)
                h_n.append(h)
                c_n.append(c)
            x = outputs[0] if directions == 1 else torch.cat(outputs, dim=-1)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, training=True)  # between layers, as torch
        return x, torch.stack(h_n), (torch.stack(c_n) if self._has_cell_state else None)

    @classmethod
    def from_torch(cls, module: torch.nn.RNNBase) -> _FusedRNNBase:
        """A module of this class sharing `module`'s parameters (the same Parameter objects).

        An optimizer made for `module` keeps working; training mode is kept.
        """
        if not isinstance(module, cls._torch_class):
            raise TypeError(
                f"module: expected a {cls._torch_class.__module__}.{cls._torch_class.__name__}, "
                f"got {type(module).__name__}"
            )
        # Made on the meta device: no memory and no draws from torch's generator, then given
        # the original parameters.
        fused = cls(**_constructor_args(module), device="meta")
        for name in module._flat_weights_names:
            setattr(fused, name, getattr(module, name))
        fused.train(module.training)
        return fused


def _constructor_args(module: torch.nn.RNNBase) -> dict:
    args: dict[str, object] = dict(
        input_size=module.input_size, hidden_size=module.hidden_size,
        num_layers=module.num_layers, bias=module.bias, batch_first=module.batch_first,
        dropout=module.dropout, bidirectional=module.bidirectional,
    )  # fmt: skip
    if module.mode == "LSTM":
        args["proj_size"] = module.proj_size
    elif module.mode.startswith("RNN_"):
        args["nonlinearity"] = module.nonlinearity
    return args


class RNN(_FusedRNNBase):
    """torch.nn.RNN (Elman, tanh or relu) on rnncore's fused kernels.

    The constructor, parameters and returns are torch.nn.RNN's; see that class's documentation.
    """

    _torch_class = torch.nn.RNN

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None):  # fmt: skip
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__("RNN_" + nonlinearity.upper(), input_size, hidden_size, num_layers,
                         bias, batch_first, dropout, bidirectional,
                         device=device, dtype=dtype)  # fmt: skip


class LSTM(_FusedRNNBase):
    """torch.nn.LSTM on rnncore's fused kernels (proj_size > 0 runs torch's implementation).

    The constructor, parameters and returns are torch.nn.LSTM's; see that class's documentation.
    """

    _torch_class = torch.nn.LSTM
    # torch.nn.LSTM's forward (the fallback) calls these LSTM-specific methods.
    get_expected_cell_size = torch.nn.LSTM.get_expected_cell_size
    check_forward_args = torch.nn.LSTM.check_forward_args  # type: ignore[assignment]
    permute_hidden = torch.nn.LSTM.permute_hidden  # type: ignore[assignment]

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, device=None, dtype=None):  # fmt: skip
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, proj_size, device=device, dtype=dtype)  # fmt: skip


class GRU(_FusedRNNBase):
    """torch.nn.GRU on rnncore's fused kernels.

    The constructor, parameters and returns are torch.nn.GRU's; see that class's documentation.
    """

    _torch_class = torch.nn.GRU

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None):  # fmt: skip
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, device=device, dtype=dtype)  # fmt: skip


_FUSED_OF: dict[type, type[_FusedRNNBase]] = {torch.nn.RNN: RNN, torch.nn.LSTM: LSTM,
                                               torch.nn.GRU: GRU}  # fmt: skip


def convert(module: torch.nn.Module) -> torch.nn.Module:
    """Replaces every torch.nn.RNN, LSTM and GRU inside `module` by rnncore's.

    Like torch.nn.SyncBatchNorm.convert_sync_batchnorm: the replacements share the original
    Parameter objects (an optimizer already made keeps working) and training mode. Only those
    exact classes are replaced; a user's subclass of them is left as it is.

    Args:
        module: A torch.nn.Module, or a torch.nn.RNN/LSTM/GRU itself.

    Returns:
        `module` with its recurrent submodules replaced (changed in place), or the replacement
        when `module` is itself one of them.

    Example:
        >>> model = rnncore.torch.convert(model)
    """
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"module: expected a torch.nn.Module, got {type(module).__name__}")
    fused = _FUSED_OF.get(type(module))
    if fused is not None:
        return fused.from_torch(module)  # type: ignore[arg-type]  # an RNNBase, by the table
    for name, child in module.named_children():
        replaced = convert(child)
        if replaced is not child:
            setattr(module, name, replaced)
    return module
