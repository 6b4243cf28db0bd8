"""Where the installed C library, its header and its CMake package are (for C and C++ users)."""

from __future__ import annotations

import os

from . import _core

__all__ = ["get_cmake_dir", "get_include", "get_library_dir"]

# The compiled module and the files installed beside it (rnncore/lib, rnncore/include).
_ROOT = os.path.dirname(os.path.abspath(_core.__file__))


def get_include() -> str:
    """The folder to add to the include path for ``#include <rnncore/rnncore.h>``."""
    return os.path.join(_ROOT, "include")


def get_library_dir() -> str:
    """The folder holding ``librnncore.so.0`` (link with ``-L<dir> -lrnncore``)."""
    return os.path.join(_ROOT, "lib")


def get_cmake_dir() -> str:
    """The folder holding ``rnncoreConfig.cmake``: ``-Drnncore_DIR=<dir>`` for find_package."""
    return os.path.join(_ROOT, "lib", "cmake", "rnncore")
