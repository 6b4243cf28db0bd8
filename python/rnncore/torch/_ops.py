"""The fused kernels as PyTorch custom operators: torch.ops.rnncore.layer_forward / layer_backward.

Each runs one recurrent layer (one direction) of any cell kind on CPU float32/float64 tensors,
with torch.nn's weight layout. The tensors are read in place through NumPy views (no copies
when they are contiguous) and the kernels' output arrays become tensors without copies.

Both operators have fake (meta) implementations, so torch.compile traces them without a graph
break, and layer_forward has a registered autograd formula that calls layer_backward.
"""

# No `from __future__ import annotations`: torch.library reads these annotations at runtime
# to infer each operator's schema.
from typing import Optional

import torch
from torch import Tensor

from .. import _cells, _core

__all__ = ["layer_backward", "layer_forward"]


def _array(t: Optional[Tensor]):
    """A NumPy view of a CPU tensor (a contiguous copy first only when it is strided)."""
    return None if t is None else t.detach().contiguous().numpy()


def _tensor(a, like: Tensor) -> Tensor:
    """The kernel's output array as a tensor sharing its memory; an empty one for None."""
    return like.new_empty(0) if a is None else torch.from_numpy(a)


def _steps_batch(x: Tensor, batch_first: bool):
    return (x.shape[1], x.shape[0]) if batch_first else (x.shape[0], x.shape[1])


@torch.library.custom_op("rnncore::layer_forward", mutates_args=())
def layer_forward(
    x: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Optional[Tensor],
    b_hh: Optional[Tensor],
    h0: Optional[Tensor],
    c0: Optional[Tensor],
    lengths: Optional[Tensor],
    cell: int,
    reverse: bool,
    batch_first: bool,
    training: bool,
    consume_workspace: bool = False,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One recurrent layer forward on the fused kernels.

    Args:
        x: Inputs, (T, B, I), or (B, T, I) with `batch_first`.
        w_ih: Input weights, (G*H, I) (G gates of the cell, torch's order).
        w_hh: Recurrent weights, (G*H, H).
        b_ih: Input bias, (G*H,), or None.
        b_hh: Recurrent bias, (G*H,), or None.
        h0: Initial hidden state, (B, H), or None for zeros.
        c0: Initial cell state, (B, H) (LSTM), or None for zeros.
        lengths: Real steps per row, (B,) int64 in [0, T], or None (all T).
        cell: The cell kind's code (rnncore._core.Cell).
        reverse: Run each row from its last real step back to step 0.
        batch_first: x and y are (B, T, ·).
        training: Return the workspace layer_backward needs (else an empty tensor).
        consume_workspace: The caller never reads the returned workspace, so eager autograd
            may let the kernel overwrite it instead of working on a copy (the modules pass
            True; compiled graphs always use the copy).

    Returns:
        (y, h_n, c_n, workspace): c_n is empty for cells without a cell state.
    """
    y, h_n, c_n, workspace = _core.forward(
        cell, _array(x), _array(w_ih), _array(w_hh), _array(b_ih), _array(b_hh), _array(h0),
        _array(c0), _array(lengths), reverse, batch_first, training,
    )  # fmt: skip
    return _tensor(y, x), _tensor(h_n, x), _tensor(c_n, x), _tensor(workspace, x)


@layer_forward.register_fake
def _layer_forward_fake(x, w_ih, w_hh, b_ih, b_hh, h0, c0, lengths, cell, reverse, batch_first,
                        training, consume_workspace=False):  # fmt: skip
    T, B = _steps_batch(x, batch_first)
    H = w_hh.shape[1]
    y = x.new_empty((*x.shape[:2], H))
    h_n = x.new_empty((B, H))
    c_n = x.new_empty((B, H)) if _cells.by_code(cell).has_cell_state else x.new_empty(0)
    if not training:
        return y, h_n, c_n, x.new_empty(0)
    if all(isinstance(n, int) for n in (T, B, H)):
        size = _core.workspace_size(cell, T, B, H)
    else:  # symbolic shapes: only layer_backward reads it, and it does not need the size
        size = torch.library.get_ctx().new_dynamic_size()
    return y, h_n, c_n, x.new_empty(size)


@torch.library.custom_op("rnncore::layer_backward", mutates_args=())
def layer_backward(
    x: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    has_b_ih: bool,
    has_b_hh: bool,
    lengths: Optional[Tensor],
    cell: int,
    reverse: bool,
    batch_first: bool,
    workspace: Tensor,
    dy: Optional[Tensor],
    dh_n: Optional[Tensor],
    dc_n: Optional[Tensor],
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Gradients of one layer_forward(training=True), from its workspace.

    Args:
        x: As given to layer_forward.
        w_ih: As given to layer_forward.
        w_hh: As given to layer_forward.
        has_b_ih: The forward had an input bias.
        has_b_hh: The forward had a recurrent bias.
        lengths: As given to layer_forward.
        cell: As given to layer_forward.
        reverse: As given to layer_forward.
        batch_first: As given to layer_forward.
        workspace: The workspace layer_forward returned (left unchanged).
        dy: Gradient of y, or None for zeros.
        dh_n: Gradient of h_n, (B, H), or None for zeros.
        dc_n: Gradient of c_n, (B, H) (LSTM), or None for zeros.

    Returns:
        (dx, dw_ih, dw_hh, db_ih, db_hh, dh0, dc0); absent biases and dc0 are empty tensors.
    """
    # The kernel overwrites its workspace with gate gradients: this pure operator (what
    # compiled graphs call) gives it a copy. Eager autograd skips the copy (_backward).
    scratch = workspace.detach().numpy().copy()
    return _kernel_backward(x, w_ih, w_hh, has_b_ih, has_b_hh, lengths, cell, reverse,
                            batch_first, scratch, dy, dh_n, dc_n)  # fmt: skip


def _kernel_backward(x, w_ih, w_hh, has_b_ih, has_b_hh, lengths, cell, reverse, batch_first,
                     scratch, dy, dh_n, dc_n):  # fmt: skip
    """_core.backward on tensors; `scratch` (a NumPy workspace) is overwritten."""
    grads = _core.backward(
        cell, _array(x), _array(w_ih), _array(w_hh), has_b_ih, has_b_hh, _array(lengths),
        reverse, batch_first, scratch, _array(dy), _array(dh_n), _array(dc_n),
    )  # fmt: skip
    return tuple(_tensor(g, x) for g in grads)


@layer_backward.register_fake
def _layer_backward_fake(x, w_ih, w_hh, has_b_ih, has_b_hh, lengths, cell, reverse, batch_first,
                         workspace, dy, dh_n, dc_n):  # fmt: skip
    _, B = _steps_batch(x, batch_first)
    H, GH = w_hh.shape[1], w_hh.shape[0]

    def maybe(present, shape):
        return x.new_empty(shape) if present else x.new_empty(0)

    return (
        x.new_empty(x.shape),  # contiguous, as the kernel's outputs are
        w_ih.new_empty(w_ih.shape),
        w_hh.new_empty(w_hh.shape),
        maybe(has_b_ih, (GH,)),
        maybe(has_b_hh, (GH,)),
        x.new_empty((B, H)),
        maybe(_cells.by_code(cell).has_cell_state, (B, H)),
    )


def _setup_context(ctx, inputs, output):
    x, w_ih, w_hh, b_ih, b_hh, h0, c0, lengths, cell, reverse, batch_first, training, consume = (
        inputs
    )
    ctx.mark_non_differentiable(output[3])
    ctx.set_materialize_grads(False)  # absent gradients stay None: never a workspace of zeros
    ctx.save_for_backward(x, w_ih, w_hh, b_ih, b_hh, h0, c0, lengths)
    # Kept outside save_for_backward: eager backward may overwrite it in place (_backward), and
    # a second backward over a retained graph makes a fresh one instead (_workspace).
    ctx.workspace = output[3]
    ctx.call = (cell, reverse, batch_first, training)
    ctx.consume = consume


def _workspace(ctx, inputs):
    """The forward's workspace for this backward; a recomputed one if a backward used it."""
    cell, reverse, batch_first, training = ctx.call
    if not training:
        raise RuntimeError(
            "rnncore.layer_forward ran with training=False, so it kept nothing for backward; "
            "run it with training=True to take gradients"
        )
    workspace, ctx.workspace = ctx.workspace, None
    if workspace is None:  # the graph was retained and backward runs again
        workspace = torch.ops.rnncore.layer_forward(*inputs, cell, reverse, batch_first, True)[3]
    return workspace


def _backward(ctx, dy, dh_n, dc_n, _dworkspace):
    inputs = ctx.saved_tensors
    x, w_ih, w_hh, b_ih, b_hh, h0, c0, lengths = inputs
    cell, reverse, batch_first, _ = ctx.call
    workspace = _workspace(ctx, inputs)
    args = (x, w_ih, w_hh, b_ih is not None, b_hh is not None, lengths, cell, reverse,
            batch_first)  # fmt: skip
    dc_n = dc_n if _cells.by_code(cell).has_cell_state else None
    # Contiguous gradients: the kernels read them as such, and compiled graphs then hand the
    # operator the layout its trace saw.
    dy, dh_n, dc_n = (None if g is None else g.contiguous() for g in (dy, dh_n, dc_n))
    traced = torch.compiler.is_compiling() or type(workspace) is not torch.Tensor
    if ctx.consume and not traced:  # eager, and the caller dropped the workspace: no copy
        grads = _kernel_backward(*args, workspace.numpy(), dy, dh_n, dc_n)
    else:
        grads = torch.ops.rnncore.layer_backward(*args, workspace, dy, dh_n, dc_n)
    dx, dw_ih, dw_hh, db_ih, db_hh, dh0, dc0 = grads
    return (dx, dw_ih, dw_hh, db_ih if b_ih is not None else None,
            db_hh if b_hh is not None else None, dh0 if h0 is not None else None,
            dc0 if c0 is not None else None, *[None] * 6)  # fmt: skip


torch.library.register_autograd("rnncore::layer_forward", _backward, setup_context=_setup_context)
