"""The `rnncore` command: `info`, `demo` (the forecasting tutorial), `selfcheck`, `bench`."""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def _version_line() -> str:
    """`rnncore 0.1.0 (avx512, 2 threads)`: the version and `info`'s summary."""
    import rnncore
    from rnncore import _core

    return (f"rnncore {rnncore.__version__} ({_core.build_info()['isa']}, "
            f"{rnncore.get_num_threads()} threads)")  # fmt: skip


def _info(_args) -> int:
    import rnncore
    from rnncore import _core

    build = _core.build_info()
    print(f"rnncore {rnncore.__version__}")
    print(f"compiler: {build['compiler']}")
    print(f"threading: {build['threading']}")
    print(f"threads: {rnncore.get_num_threads()}")
    print(f"isa: {build['isa']}")
    return 0


def _rel_err(a, b) -> float:
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)) if b.size else 0.0


def self_check(seed: int = 0) -> list[tuple[str, float, float, float]]:
    """Kernel vs NumPy reference for every cell on one shape with ragged lengths.

    Returns (cell, worst float64 relative error, worst float32 relative error, kernel ms)."""
    import rnncore
    from rnncore import _cells, reference

    rng = np.random.default_rng(seed)
    T, B, I, H = 20, 8, 12, 32
    rows = []
    for cell in _cells.CELLS:
        name, family, G, kw = cell.name, cell.family, cell.gates, dict(cell.options)
        x = rng.standard_normal((T, B, I))
        w = [rng.uniform(-0.3, 0.3, s) for s in [(G * H, I), (G * H, H), (G * H,), (G * H,)]]
        kw = dict(kw, lengths=rng.integers(0, T + 1, B))
        dy = rng.standard_normal((T, B, H))
        worst = {}
        elapsed = 0.0
        for dtype in (np.float64, np.float32):
            args = [a.astype(dtype) for a in (x, *w)]
            start = time.perf_counter()
            out = getattr(rnncore, family + "_forward")(*args, **kw)
            grads = getattr(rnncore, family + "_backward")(out[-1], dy.astype(dtype))
            elapsed = (time.perf_counter() - start) * 1e3
            ref = getattr(reference, family + "_forward")(
                *(a.astype(np.float64) for a in args), **kw
            )
            ref_grads = getattr(reference, family + "_backward")(ref[-1], dy)
            errs = [_rel_err(out[0], ref[0])] + [_rel_err(grads[k], ref_grads[k]) for k in grads]
            worst[dtype] = max(errs)
        rows.append((name, worst[np.float64], worst[np.float32], elapsed))
    return rows


def _selfcheck(args) -> int:
    import rnncore

    if args.threads:
        rnncore.set_num_threads(args.threads)
    print(f"rnncore {rnncore.__version__}: kernel self-check against the NumPy reference")
    print("(forward + backward, T=20 B=8 I=12 H=32, ragged lengths)\n")
    print(f"{'cell':<18}{'float64 rel err':>17}{'float32 rel err':>17}{'float32 ms':>12}")
    ok = True
    for name, e64, e32, ms in self_check(args.seed):
        good = e64 <= 1e-10 and e32 <= 1e-5
        ok &= good
        print(f"{name:<18}{e64:>17.2e}{e32:>17.2e}{ms:>12.2f}  {'ok' if good else 'FAIL'}")
    print("\nall cells match the reference" if ok else "\nSELF-CHECK FAILED")
    return 0 if ok else 1


def main(argv=None) -> int:
    """The `rnncore` command; returns the exit status."""
    parser = argparse.ArgumentParser(prog="rnncore", description=__doc__)
    parser.add_argument("--version", action="version", version=_version_line())
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="version, compiler, threading, threads, instruction set")
    demo = sub.add_parser("demo", help="train and compare the classic one-step forecasters")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--threads", type=int, default=0, help="kernel threads (default: all cores)")
    demo.add_argument("--quick", action="store_true", help="a smaller, shorter run")
    demo.add_argument("--plot", metavar="PATH", help="write forecasts and learning curves (PNG)")
    check = sub.add_parser("selfcheck", help="kernels vs the NumPy reference, every cell")
    check.add_argument("--seed", type=int, default=0)
    check.add_argument("--threads", type=int, default=0, help="kernel threads (default: all cores)")
    bench = sub.add_parser("bench", help="time rnncore against the installed peers")
    bench.add_argument("--threads", type=int, default=0, help="threads (default: all cores)")
    bench.add_argument("--quick", action="store_true", help="shorter timing budget per case")
    bench.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    bench.add_argument("--memory", action=argparse.BooleanOptionalAction, default=None,
                       help="measure training peak memory, ours and torch's, one process "
                            "each (default: on, off with --quick)")  # fmt: skip
    bench.add_argument("--contended", action="store_true",
                       help="instead: rnncore on 1 thread, every CPU and too many threads, and "
                            "torch, quiet and with one busy core")  # fmt: skip
    args = parser.parse_args(argv)
    if args.command == "bench" and args.contended:
        from . import bench_contended

        result = bench_contended.run(args.quick)
        bench_contended.print_table(result)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(result, f, indent=1)
        return 0
    if args.command == "bench":
        from . import bench as bench_module

        return bench_module.main(args)
    if args.command == "demo":
        from . import demo as demo_module

        return demo_module.main(args)
    return {"info": _info, "selfcheck": _selfcheck}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
