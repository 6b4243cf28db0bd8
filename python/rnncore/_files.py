"""Files written whole or not at all, with the permissions a plain open() would give."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile


def _umask() -> int:
    """The process's umask, read without changing it where Linux says it."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere: read by setting (briefly) and restoring it
    os.umask(mask)
    return mask


def _final_mode(target: str) -> int:
    """An existing file's own mode (open() keeps it), else 0o666 less the umask."""
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        return 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_write(path, prefix=".rnncore-"):
    """Yield a binary file next to `path`; when the block ends cleanly it is fsynced and
    renamed over `path`, and on any error (or interrupt) it is deleted, so readers of `path`
    only ever see the old or the complete new file.

    A symlink is written through (its target is replaced, the link stays), and the file gets
    the mode open() would give it (an existing file's, else 0o666 less the umask).
    """
    shown = os.fspath(path)
    target = os.path.realpath(shown)  # through symlinks, as open() writes
    folder = os.path.dirname(target)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"path: {shown!r}: the folder {folder!r} does not exist")
    mode = _final_mode(target)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
