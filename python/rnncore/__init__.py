"""rnncore: fused multithreaded C++ SimpleRNN, LSTM and GRU kernels, forward and backward."""


def _in_subinterpreter() -> bool:
    """Whether this is not the main interpreter (mod_wsgi's default, for one)."""
    try:
        import ctypes

        api = ctypes.pythonapi
        state = ctypes.PYFUNCTYPE(ctypes.c_void_p)
        current = state(("PyInterpreterState_Get", api))()
        return current != state(("PyInterpreterState_Main", api))()
    except (ImportError, AttributeError, OSError):  # no ctypes, or no such functions
        return False


# The compiled module cannot start in a sub-interpreter: loading it there waited for ever on
# the GIL. Refusing at once says what to do instead.
if _in_subinterpreter():
    raise ImportError(
        "rnncore cannot be imported in a Python sub-interpreter; run it in the main "
        "interpreter (mod_wsgi: WSGIApplicationGroup %{GLOBAL})"
    )

from . import (
    _core,
    _environment,
    _threadpoolctl,
    activations,
    callbacks,
    constraints,
    data,
    datasets,
    distribution,
    io,
    layers,
    losses,
    metrics,
    models,
    nn,
    ops,
    optimizers,
    preprocessing,
    reference,
    regularizers,
    text,
    utils,
)
from ._core import get_num_threads, set_num_threads
from ._native import get_cmake_dir, get_include, get_library_dir
from ._version import __version__
from .functional import Model
from .layers import Input
from .models import Sequential
from .ops import (
    Cache,
    gru,
    gru_backward,
    gru_forward,
    lstm,
    lstm_backward,
    lstm_forward,
    rnn,
    rnn_backward,
    rnn_forward,
)
from .stream import Stream

__all__ = [
    "Cache",
    "Input",
    "Model",
    "Sequential",
    "Stream",
    "__version__",
    "get_cmake_dir",
    "get_include",
    "get_library_dir",
    "get_num_threads",
    "gru",
    "gru_backward",
    "gru_forward",
    "lstm",
    "lstm_backward",
    "lstm_forward",
    "activations",
    "callbacks",
    "constraints",
    "data",
    "datasets",
    "distribution",
    "io",
    "layers",
    "losses",
    "metrics",
    "models",
    "nn",
    "ops",
    "optimizers",
    "preprocessing",
    "reference",
    "regularizers",
    "text",
    "utils",
    "rnn",
    "rnn_backward",
    "rnn_forward",
    "set_num_threads",
]


# The default thread count follows the cgroup's CPU quota and OMP_NUM_THREADS (what Dask,
# joblib and Ray set for their workers) as well as the CPU affinity the kernels read.
_DEFAULT_THREADS = _environment.default_threads(_core.usable_cpus())
if _DEFAULT_THREADS < _core.get_num_threads():
    set_num_threads(_DEFAULT_THREADS)
_threadpoolctl.register()  # threadpool_limits() then limits the kernels too


def __dir__():  # the public names only: not the private modules or their imports
    return __all__
