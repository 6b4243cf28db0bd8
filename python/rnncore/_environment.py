"""What the process may use, as batch systems and containers set it: CPU quota, thread
requests, memory limits. Read once, at import; each reader returns None when it finds nothing
(not Linux, no cgroup, no limit set)."""

from __future__ import annotations

import math
import os

try:
    import resource
except ImportError:  # not POSIX: no rlimits to read
    resource = None  # type: ignore[assignment]

_CGROUP_ROOT = "/sys/fs/cgroup"


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _cgroup_files(v2_name: str, v1_controller: str, v1_name: str) -> list[str]:
    """The files of the process's own cgroup (v2, then v1), and the root's as a fallback."""
    paths = []
    for line in (_read("/proc/self/cgroup") or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, where = parts
        if controllers == "":  # cgroup v2: "0::/path"
            paths.append(os.path.join(_CGROUP_ROOT, where.lstrip("/"), v2_name))
        elif v1_controller in controllers.split(","):
            paths.append(os.path.join(_CGROUP_ROOT, v1_controller, where.lstrip("/"), v1_name))
    paths += [os.path.join(_CGROUP_ROOT, v2_name),
              os.path.join(_CGROUP_ROOT, v1_controller, v1_name)]  # fmt: skip
    return paths


def cpu_quota() -> int | None:
    """CPUs the cgroup's quota allows (rounded up), or None without a quota."""
    for path in _cgroup_files("cpu.max", "cpu", "cpu.cfs_quota_us"):
        text = _read(path)
        if text is None:
            continue
        if path.endswith("cpu.max"):  # "quota period", or "max period"
            quota, _, period = text.partition(" ")
        else:
            quota = text
            period = _read(path.replace("cpu.cfs_quota_us", "cpu.cfs_period_us")) or ""
        try:
            q, p = int(quota), int(period or 0)
        except ValueError:  # "max": no quota
            return None
        return max(1, math.ceil(q / p)) if q > 0 and p > 0 else None
    return None


def requested_threads() -> int | None:
    """OMP_NUM_THREADS, which Dask, joblib, Ray and MPI launchers set per worker."""
    text = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    return int(text) if text.isdigit() and int(text) > 0 else None


def memory_limits() -> dict[str, int]:
    """The memory limits that apply to this process, by source: the cgroup's limit and the
    address-space rlimit (what HPC and batch jobs set)."""
    limits = {}
    for path in _cgroup_files("memory.max", "memory", "memory.limit_in_bytes"):
        text = _read(path)
        if text is not None:
            if text.isdigit() and int(text) < 1 << 60:  # "max" or a huge v1 value: none
                limits["cgroup"] = int(text)
            break
    if resource is not None:
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            limits["RLIMIT_AS"] = soft
    return limits


def default_threads(usable_cpus: int) -> int:
    """The thread count to use when the user sets none: the CPUs this process may run on,
    capped by the cgroup's CPU quota and by OMP_NUM_THREADS."""
    caps = [c for c in (cpu_quota(), requested_threads()) if c is not None]
    return max(1, min([usable_cpus, *caps]))
