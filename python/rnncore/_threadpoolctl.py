"""threadpoolctl sees rnncore's thread pool: `threadpool_limits(1)`, as scikit-learn, Dask
and joblib apply it to their workers, limits rnncore's kernels too.

Registered when rnncore is imported, if threadpoolctl is installed (it is not a dependency).
"""

from __future__ import annotations

import importlib.util

from . import _core
from ._version import __version__


def register() -> bool:
    """Registers rnncore's controller with threadpoolctl; False when threadpoolctl is absent."""
    if importlib.util.find_spec("threadpoolctl") is None:
        return False
    import threadpoolctl

    if not hasattr(threadpoolctl, "register"):  # before threadpoolctl 3.5
        return False

    class RnncoreController(threadpoolctl.LibController):
        """rnncore's kernels: the most threads a call may use (rnncore.set_num_threads)."""

        user_api = "rnncore"
        internal_api = "rnncore"
        filename_prefixes = ("_core.",)  # rnncore/_core.cpython-*.so, the compiled module

        def get_num_threads(self):
            return _core.get_num_threads()

        def set_num_threads(self, num_threads):
            most = 4 * _core.usable_cpus()  # what set_num_threads accepts
            _core.set_num_threads(max(1, min(int(num_threads), most)))

        def get_version(self):
            return __version__

    threadpoolctl.register(RnncoreController)
    return True
