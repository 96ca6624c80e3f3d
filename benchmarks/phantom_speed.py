"""Phantom generation speed per study at each size, side by side in one run.

python benchmarks/phantom_speed.py [--repeats N] [--full-repeats M] [--sizes small medium full]

Prints, per size, the image size, the median (and min) CPU seconds and wall seconds to generate one study in
memory (``generate_study``), and to write it (``write_study``: four DICOM files, truth.json, masks). CPU time
is the process's own (it stays meaningful on a shared, loaded machine); the target for ``small`` is < 0.5 s
per study on one core. Threads are pinned to one.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402


def _time(fn):
    cpu, wall = time.process_time(), time.perf_counter()
    result = fn()
    return result, time.process_time() - cpu, time.perf_counter() - wall


def main() -> None:
    from MammoDNNLib.phantom import generate_study, study_seed, write_study

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="studies per size (small, medium)")
    parser.add_argument("--full-repeats", type=int, default=3, help="studies at full size")
    parser.add_argument("--sizes", nargs="+", default=["small", "medium", "full"])
    args = parser.parse_args()

    generate_study(0, "small")  # warm imports and caches
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            n = args.full_repeats if size == "full" else args.repeats
            gen_cpu, gen_wall, write_cpu, write_wall = [], [], [], []
            shape = None
            for k in range(n):
                phantom, cpu, wall = _time(lambda k=k, size=size: generate_study(study_seed(12345, k), size))
                gen_cpu.append(cpu)
                gen_wall.append(wall)
                shape = phantom.pixel_data["R-CC"].shape
                folder = Path(tmp) / f"{size}_{k}"
                _, cpu, wall = _time(lambda phantom=phantom, folder=folder: write_study(phantom, folder))
                write_cpu.append(cpu)
                write_wall.append(wall)
            rows.append((size, shape, n, gen_cpu, gen_wall, write_cpu, write_wall))

    small = next((r for r in rows if r[0] == "small"), None)
    print(
        f"{'size':<7} {'image (rows x cols)':<20} {'n':>2}  {'generate cpu s':>15} {'(min)':>6} "
        f"{'generate wall s':>16} {'write cpu s':>12} {'x small':>8}"
    )
    for size, shape, n, gen_cpu, gen_wall, write_cpu, _write_wall in rows:
        ratio = statistics.median(gen_cpu) / statistics.median(small[3]) if small else float("nan")
        image = f"{shape[0]} x {shape[1]}"
        print(
            f"{size:<7} {image:<20} {n:>2}  {statistics.median(gen_cpu):>15.3f} {min(gen_cpu):>6.3f} "
            f"{statistics.median(gen_wall):>16.3f} {statistics.median(write_cpu):>12.3f} {ratio:>8.1f}"
        )
    print(f"load average (1, 5, 15 min): {', '.join(f'{v:.1f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
