"""Runs each fuzz target (tests/fuzz/fuzz_*.py, hypothesis properties over the public API) in
its own Python process: a segfault or abort there fails this test, with the target's output,
instead of killing the whole run."""

import signal
import subprocess
import sys
from pathlib import Path

import pytest

TARGETS = sorted((Path(__file__).parent / "fuzz").glob("fuzz_*.py"))


@pytest.mark.parametrize("target", TARGETS, ids=[t.stem for t in TARGETS])
def test_fuzz_target_passes_in_a_subprocess(target):
    cmd = [sys.executable, "-X", "faulthandler", "-m", "pytest", "-q", "-p", "no:cacheprovider",
           "-W", "ignore::RuntimeWarning", "--hypothesis-show-statistics", str(target)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    how = (
        f"killed by {signal.Signals(-proc.returncode).name}"
        if proc.returncode < 0
        else f"exit code {proc.returncode}"
    )
    assert proc.returncode == 0, (
        f"{target.name}: {how}\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
    )


def test_a_crash_in_a_target_fails_the_wrapper(tmp_path):
    """The harness itself: a target that segfaults is reported, not survived silently."""
    crash = tmp_path / "fuzz_crash.py"
    crash.write_text("import ctypes\n\ndef test_crash():\n    ctypes.string_at(0)\n")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(crash)],
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGSEGV
