"""predict.py's files/s with WORKERS decoding threads against one, on the same real clips.

Runs scripts/predict.py as a user does (its own process), alternating the worker counts
(1, 2, 1, 2, ...) so that the machine's drift falls on both alike, and reads the time of its
scoring loop from predict's own last line (the interpreter's and torch's start-up are left
out: they are the same for both). Prints each run, the median files/s of each count, and the
ratio of the medians with the per-repeat ratios beside it.

  python benchmarks/bench_predict.py runs/demo/cnn_mel/best.pt
  python benchmarks/bench_predict.py runs/demo/demo_video/best.pt --workers 1 2 --repeats 5
  python benchmarks/bench_predict.py runs/demo/cnn_mel/best.pt \\
      --predict-args --fuse npy_files/demo/fusion/weights.json video=runs/demo/demo_video/best.pt

Reads  a checkpoint and the media files under --inputs (default ../shared/data/videos beside
       the repository: real clips, with and without sound; files that fail are counted and
       failed alike in every run)
Writes nothing (prints only)
"""
import argparse
import re
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_INPUTS = REPO.parent / "shared" / "data" / "videos"
LAST_LINE = re.compile(r"\[predict\] (\d+) files scored, (\d+) failed .*; ([\d.]+) s, "
                       r"([\d.]+) files/s with (\d+) workers")


def run(checkpoint, inputs, workers, extra):
    """One predict.py run -> (files scored, failed, seconds of its loop)."""
    argv = [sys.executable, str(REPO / "scripts" / "predict.py"), str(checkpoint),
            *map(str, inputs), "--workers", str(workers), *extra]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    m = LAST_LINE.search(proc.stdout)
    if not m:
        sys.exit(f"predict.py gave no timing line (exit {proc.returncode}):\n"
                 f"{proc.stdout[-1500:]}{proc.stderr[-1500:]}")
    return int(m.group(1)), int(m.group(2)), float(m.group(3))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path, help="a train.py checkpoint (or phase2_F<k>.pt)")
    p.add_argument("--inputs", nargs="+", type=Path, default=[DEFAULT_INPUTS],
                   help="files or folders (default: ../shared/data/videos)")
    p.add_argument("--workers", nargs="+", type=int, default=[1, 2],
                   help="the worker counts compared; the first is the baseline (default 1 2)")
    p.add_argument("--repeats", type=int, default=3, help="runs of each count (default 3)")
    p.add_argument("--predict-args", nargs=argparse.REMAINDER, default=[],
                   help="passed on to predict.py (e.g. --fuse WEIGHTS.json NAME=CKPT)")
    args = p.parse_args(argv)
    if not all(i.exists() for i in args.inputs):
        print(f"skipped: no media at {[str(i) for i in args.inputs]}")
        return 0
    seconds = {w: [] for w in args.workers}
    for r in range(args.repeats):
        for w in args.workers:
            n, failed, s = run(args.checkpoint, args.inputs, w, args.predict_args)
            seconds[w].append(s)
            print(f"repeat {r + 1}, {w} workers: {n} scored + {failed} failed in {s:.2f} s "
                  f"= {(n + failed) / s:.2f} files/s", flush=True)
    base = args.workers[0]
    n_files = n + failed
    for w in args.workers:
        med = statistics.median(seconds[w])
        per = [b / x for b, x in zip(seconds[base], seconds[w])]
        print(f"{w} workers: median {n_files / med:.2f} files/s; x{statistics.median(seconds[base]) / med:.2f} "
              f"the {base}-worker median (per repeat: {', '.join(f'{x:.2f}' for x in per)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
