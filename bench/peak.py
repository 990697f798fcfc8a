"""The machine's fp32 matrix-multiply peak on a given number of threads: the ceiling every training benchmark's
FLOP/s is measured against (its ``*_flops_fraction_of_peak``).

A large square fp32 ``torch.matmul`` (2·n³ FLOPs) timed several times on the benchmark's thread count; the
fastest repetition counts, since on a shared machine the slower ones measure the other tenants.

    .venv/bin/python bench/peak.py [--threads 1] [--size 2048] [--repeats 8]
"""

from __future__ import annotations

import argparse
import json
import time


def matmul_peak_flops(threads: int, size: int = 2048, repeats: int = 8) -> float:
    """FLOP/s of the fastest of ``repeats`` [size, size] @ [size, size] fp32 products on ``threads`` threads."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        g = torch.Generator().manual_seed(0)
        a = torch.randn(size, size, generator=g)
        b = torch.randn(size, size, generator=g)
        out = torch.empty(size, size)
        torch.matmul(a, b, out=out)  # warm-up: thread pool, caches
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            torch.matmul(a, b, out=out)
            best = min(best, time.perf_counter() - start)
    finally:
        torch.set_num_threads(before)
    return 2 * size**3 / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=8)
    args = parser.parse_args()
    peak = matmul_peak_flops(args.threads, args.size, args.repeats)
    print(json.dumps({"bench": "peak", "dtype": "float32", "threads": args.threads, "size": args.size,
                      "repeats": args.repeats, "peak_gflops": round(peak / 1e9, 2)}))


if __name__ == "__main__":
    main()
