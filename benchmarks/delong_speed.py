"""Speed of the fast DeLong algorithm (Sun & Xu 2014) against the textbook O(n_pos · n_neg) computation.

Run: ``python benchmarks/delong_speed.py [--large 1000000] [--small 4000] [--repeats 5]``

Part 1 times both methods side by side on the same ``--small`` cases (where the naive method is still feasible),
checks they agree, and prints the medians and their ratio. Part 2 times the fast method alone on ``--large``
cases (AUC + variance of one score, and the full two-score paired test), the size at which the naive method
would need an n_pos × n_neg matrix of ~2.5e11 entries.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from MammoDNNLib.evaluation.roc import analyze_roc, delong_covariance, delong_test, naive_auc_variance


def _cases(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.random(n) < 0.5
    a = rng.normal(size=n) + 1.0 * truth
    b = 0.6 * a + 0.8 * rng.normal(size=n) + 0.3 * truth
    return truth, np.round(a, 3), np.round(b, 3)  # rounding makes ties, as real scores have


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=4000, help="cases for the side-by-side comparison")
    parser.add_argument("--large", type=int, default=1_000_000, help="cases for the fast method alone")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    truth, a, _ = _cases(args.small, seed=1)
    fast_auc, fast_cov = delong_covariance(truth, a)
    naive_auc, naive_var = naive_auc_variance(truth, a)
    assert abs(fast_auc[0] - naive_auc) < 1e-12 and abs(fast_cov[0, 0] - naive_var) < 1e-12, "methods disagree"
    t_fast = _median_time(lambda: delong_covariance(truth, a), args.repeats)
    t_naive = _median_time(lambda: naive_auc_variance(truth, a), args.repeats)
    print(f"n = {args.small:,} cases ({int(truth.sum()):,} positive), one score, median of {args.repeats} runs:")
    print(f"  naive O(n_pos*n_neg): {t_naive * 1e3:10.2f} ms")
    print(f"  fast  O(n log n)    : {t_fast * 1e3:10.2f} ms")
    print(f"  ratio naive / fast  : {t_naive / t_fast:10.1f} x   (AUC {fast_auc[0]:.6f}, var {fast_cov[0, 0]:.3e}, "
          "identical in both)")

    truth, a, b = _cases(args.large, seed=2)
    t_one = _median_time(lambda: delong_covariance(truth, a), args.repeats)
    t_pair = _median_time(lambda: delong_test(truth, a, b), args.repeats)
    t_full = _median_time(lambda: analyze_roc(truth, {"a": a, "b": b}), max(1, args.repeats // 2))
    result = delong_test(truth, a, b)
    naive_estimate = t_naive * (truth.sum() * (~truth).sum()) / (args.small**2 / 4)
    print(f"n = {args.large:,} cases, median of {args.repeats} runs:")
    print(f"  fast, one score (AUC + variance)     : {t_one:8.3f} s")
    print(f"  fast, paired test of two scores      : {t_pair:8.3f} s   (Z = {result.statistic:.2f})")
    print(f"  analyze_roc, two scores (all of `stats roc`: curves, CIs, Youden, test): {t_full:6.3f} s")
    print(f"  naive, one score (extrapolated)      : {naive_estimate:8.0f} s   "
          f"(~{naive_estimate / t_one:,.0f} x slower, and an n_pos x n_neg matrix of "
          f"{truth.sum() * (~truth).sum() * 8 / 1e9:,.0f} GB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
