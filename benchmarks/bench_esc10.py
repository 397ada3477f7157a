"""ESC-10 benchmark: 5-fold cross-validation of the audio classifier, trained from scratch.

One frozen recipe (config.py keys; by default recipes/audio_scratch.yaml, the from-scratch
default: the earlier recipes/esc10.yaml on the model vgg_plain_half, 50 steps x 40 epochs on
ESC-10's four training folds, over its MIN_TRAIN_STEPS) and the pipeline's own code: the
FLACs go through steps 01-04 as if they were videos, then train.py runs once per fold.
For fold k the classifier learns from the other folds and scores fold k; a clip's score is
the mean of its patch softmax probabilities (train.py's <split>_scores.npy) from the
LAST epoch's checkpoint. Nothing is chosen on the scored fold: the number of epochs and
every other setting are fixed in the recipe, and no checkpoint is picked by a score.

Reads  <esc10-root>/meta.csv (filename, fold, target, category) and audio/*.flac
       (16 kHz mono, 5 s); default ../shared/data/esc10 beside the repository
       recipes/audio_scratch.yaml (or --recipe)
Writes data/esc10/videos/fold<f>/<category>/<name>.flac   symlinks to the FLACs (step 01's
                                                         layout: split = fold<f>)
       data/esc10/audio/16000hz_mono/fold<f>/<category>/<name>.wav   step 02 (16 kHz
                                                         mono PCM16)
       data/esc10/features/<front end>/fold<f>/<category>/<name>.npy  step 03, e.g.
                                                         vggish_mel: float16 [5, 64, 96]
       file_lists/esc10/classes.txt                      the 10 categories, sorted (step 01)
       file_lists/esc10/{train,test}_f<k>_videos.txt, ..._16000hz_mono_audio.txt   fold-split
                                                         lists: test_f<k>
                                                         is fold k, train_f<k> the others
       datalists/esc10/<front end>_{train,test}_f<k>.npz   step 04 (ids sorted)
       runs/esc10/esc10_f<k>/, npy_files/esc10/esc10_f<k>/   train.py; the scores used are
                                                         test_f<k>_scores.npy (+ ids)
       npy_files/esc10/bench_esc10.json                  per-fold accuracy, wall time, load,
                                                         the recipe
A rerun reuses the wavs and features (steps 02-03 skip finished files). Without the data
folder the script says so and exits 0. Each fold runs `train.py` in a subprocess, with
--torch-threads N (TORCH_THREADS; default: the cores here) and OMP_WAIT_POLICY=PASSIVE.

Prints the accuracy of each fold, the mean, and the wall time; the last line is exactly
`mean accuracy: NN.N %`. Extra arguments are passed to every train.py run as overrides of
the recipe (for tuning; the frozen result uses none):

  python benchmarks/bench_esc10.py                        # all 5 folds, the frozen recipe
  python benchmarks/bench_esc10.py --folds 5 --epochs 20  # quick look: train 1-4, score 5
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from esc10 import DATASET, DEFAULT_ESC10_ROOT, DEFAULT_RECIPE, REPO, fold_accuracy, prepare
from soundtrack import cli
from soundtrack import datafiles


def main(argv=None):
    """Prepare ESC-10 (steps 01-04), train and score each fold, print and save the result.

    Longer than ~60 lines on purpose: the fold loop and its report read as one procedure."""
    p = argparse.ArgumentParser(description=__doc__, allow_abbrev=False,  # others go to train.py
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--folds", default=None, help="comma-separated folds to score "
                   "(default: all folds in meta.csv)")
    p.add_argument("--esc10-root", type=Path, default=DEFAULT_ESC10_ROOT)
    p.add_argument("--recipe", type=Path, default=DEFAULT_RECIPE, metavar="FILE.yaml")
    p.add_argument("--run-prefix", default="esc10", help="runs are <prefix>_f<k>")
    p.add_argument("--torch-threads", type=int, default=os.cpu_count(),
                   help="TORCH_THREADS of every training run; the wait policy is passive, so "
                        "threads that share busy cores yield instead of spinning (default: "
                        "%(default)s, the cores of this machine)")
    p.add_argument("--data-root", type=str, default=None)
    p.add_argument("--output-root", type=str, default=None)
    p.add_argument("--workers", type=int, default=None, help="workers of steps 02-03")
    p.add_argument("--prepare-only", action="store_true")
    args, overrides = p.parse_known_args(argv)
    if not (args.esc10_root / "meta.csv").is_file():
        print(f"skipped: no ESC-10 at {args.esc10_root} (expected meta.csv and audio/*.flac)")
        return 0
    common = ["--config", str(args.recipe)]
    for flag, value in (("--data-root", args.data_root), ("--output-root", args.output_root)):
        if value is not None:
            common += [flag, str(value)]

    t0 = time.perf_counter()
    load0 = os.getloadavg()
    paths, all_folds = prepare(args.esc10_root, common, quiet=False, workers=args.workers)
    t_prep = time.perf_counter() - t0
    print(f"[esc10] data ready in {t_prep:.0f} s: {len(all_folds)} folds -> "
          f"{paths.datalists}")
    if args.prepare_only:
        return 0
    folds = [int(f) for f in args.folds.split(",")] if args.folds else all_folds
    unknown = sorted(set(folds) - set(all_folds))
    if unknown:
        p.error(f"--folds {unknown} not in meta.csv's folds {all_folds}")
    if overrides:
        print(f"[esc10] overrides of {args.recipe.name} (not the frozen recipe): "
              f"{' '.join(overrides)}")

    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    results, loads = {}, []
    for k in folds:
        run = f"{args.run_prefix}_f{k}"
        t = time.perf_counter()
        argv_k = [sys.executable, str(REPO / "train.py"), *common, "--dataset", DATASET,
                  "--train-split", f"train_f{k}", "--eval-split", f"test_f{k}",
                  "--run", run, "--overwrite", "--torch-threads", str(args.torch_threads),
                  *overrides]
        subprocess.run(argv_k, env=env, check=True)
        acc, pred, y = fold_accuracy(paths, run, k)
        loads.append(os.getloadavg()[0])
        results[k] = {"accuracy": acc, "seconds": time.perf_counter() - t,
                      "pred": pred.tolist(), "label": y.tolist()}
        print(f"[esc10] fold {k}: {acc:.1f} % ({len(y)} clips, "
              f"{results[k]['seconds']:.0f} s, load average {loads[-1]:.1f})", flush=True)

    wall = time.perf_counter() - t0
    accs = [results[k]["accuracy"] for k in folds]
    mean = float(np.mean(accs))
    classes = datafiles.read_classes(paths.classes)
    pred = np.concatenate([results[k]["pred"] for k in folds])
    y = np.concatenate([results[k]["label"] for k in folds])
    print("[esc10] per class: " + ", ".join(
        f"{c} {100 * np.mean(pred[y == i] == i):.0f}" for i, c in enumerate(classes)
        if np.any(y == i)))
    print("[esc10] per fold: " + ", ".join(f"{k}: {results[k]['accuracy']:.1f}" for k in folds)
          + f"; std {np.std(accs):.1f}")
    print(f"[esc10] wall time {wall / 60:.1f} min ({t_prep:.0f} s data, "
          f"{wall - t_prep:.0f} s training and scoring) on {os.cpu_count()} cores, "
          f"{args.torch_threads} threads; load average {load0[0]:.1f} at start, "
          f"{np.mean(loads):.1f} mean after folds")
    datafiles.write_text(paths.npy / "bench_esc10.json", json.dumps({
        "folds": {str(k): {kk: v for kk, v in results[k].items() if kk in ("accuracy", "seconds")}
                  for k in folds},
        "mean_accuracy": mean, "wall_seconds": wall, "prep_seconds": t_prep,
        "torch_threads": args.torch_threads, "cpu_count": os.cpu_count(),
        "load_average_start": load0[0],
        "load_average_after_folds": loads, "recipe": str(args.recipe),
        "recipe_overrides": overrides,
        "recipe_settings": cli.load_yaml(args.recipe), **datafiles.provenance()},
        indent=2) + "\n")
    print(f"mean accuracy: {mean:.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
