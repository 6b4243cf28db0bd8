"""rnncore's fused kernels inside PyTorch: drop-in torch.nn.RNN/LSTM/GRU and torch operators.

Imported only on request (``import rnncore`` never imports torch); needs the extra
``pip install "rnncore[torch]"`` (torch >= 2.4).

- `RNN`, `LSTM`, `GRU`: torch.nn modules with torch's constructor, parameters and
  state_dict, whose forward runs the fused kernels with autograd, torch.compile
  (fullgraph) and DistributedDataParallel. Inputs the kernels do not take (CUDA, bfloat16,
  float16, LSTM proj_size) run torch's own implementation with the same parameters.
- `convert(model)`: every torch.nn.RNN/LSTM/GRU inside `model` replaced by these.
- ``torch.ops.rnncore.layer_forward`` / ``layer_backward``: one layer on the kernels, as
  custom operators with fake implementations and a registered autograd formula.

Example:
    >>> import rnncore.torch
    >>> model = rnncore.torch.convert(model)  # then train as before
"""

try:
    import torch  # noqa: F401
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        'rnncore.torch needs PyTorch: pip install "rnncore[torch]" (torch >= 2.4)'
    ) from error

from ._modules import GRU, LSTM, RNN, InputError, convert
from ._ops import layer_backward, layer_forward

__all__ = ["GRU", "LSTM", "RNN", "InputError", "convert", "layer_backward", "layer_forward"]


def __dir__():  # what tab completion and dir() show: the public names only
    return __all__
