"""ESC-10 as a benchmark dataset: its FLACs through the runbook's steps 01-04, fold splits,
and a fold's accuracy. Shared by bench_esc10.py and bench_recipes.py (a module, no main)."""
import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from soundtrack import cli
from soundtrack import datafiles
from soundtrack import metrics

REPO = Path(__file__).resolve().parents[1]
DATASET = "esc10"
DEFAULT_ESC10_ROOT = REPO.parent / "shared" / "data" / "esc10"
DEFAULT_RECIPE = REPO / "recipes" / "audio_scratch.yaml"


def read_meta(esc_root):
    """meta.csv -> list of (fold int, category, flac path), sorted by fold then file name."""
    rows = []
    with open(Path(esc_root) / "meta.csv", newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            rows.append((int(r["fold"]), r["category"], Path(esc_root) / "audio" / r["filename"]))
    if not rows:
        raise ValueError(f"{esc_root}/meta.csv lists no clips")
    return sorted(rows, key=lambda r: (r[0], r[2].name))


def link_tree(rows, video_root):
    """Symlink each clip as <video_root>/fold<f>/<category>/<name>.flac (step 01's layout)."""
    for fold, category, flac in rows:
        if not flac.is_file():
            raise FileNotFoundError(f"{flac} is listed in meta.csv but missing")
        link = Path(video_root) / f"fold{fold}" / category / flac.name
        target = flac.resolve()
        if link.is_symlink() and Path(os.readlink(link)) == target:
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        tmp = datafiles.partial_path(link)
        tmp.unlink(missing_ok=True)
        os.symlink(target, tmp)
        os.replace(tmp, link)  # atomic: a rerun never sees a half-made link


def run_step(script, args):
    """Run scripts/<script>.py with args; any non-zero exit is an error (ESC-10 is clean)."""
    argv = [sys.executable, str(REPO / "scripts" / f"{script}.py"), *args]
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{script} exited {proc.returncode}:\n{proc.stdout[-4000:]}")
    return proc.stdout


def union_lists(paths, plan):
    """plan: [(split, member folds)] -> that split's video and audio lists = the union of its
    folds' (ids sorted). -> the splits."""
    for split, members in plan:
        rows, audio_ids = [], []
        for f in members:
            rows += datafiles.read_lines(paths.video_list(f"fold{f}"))
            audio_ids += datafiles.read_ids(paths.audio_list(f"fold{f}"))
        datafiles.write_lines(paths.video_list(split), sorted(rows))
        datafiles.write_lines(paths.audio_list(split), sorted(audio_ids))
    return [split for split, _ in plan]


def fold_split_lists(paths, folds):
    """file_lists test_f<k> (= fold k) and train_f<k> (= the other folds), ids sorted."""
    return union_lists(paths, [(split, members) for k in folds for split, members in
                               ((f"test_f{k}", [k]), (f"train_f{k}", [f for f in folds if f != k]))])


def prepare(esc_root, common, quiet=True, workers=None):
    """Steps 01-04 on the ESC folder; returns (Paths, folds).

    Args:
      esc_root: folder with meta.csv and audio/.
      common: argv given to every step: --config RECIPE and any --data-root, --output-root
        (the dataset is always esc10).
      workers: --workers of steps 02-03 (the steps that take it); None: config.py's.
    """
    cfg = cli.parse(cli.parser(None, cli.FRONT_END_KEYS), common + ["--dataset", DATASET])
    paths = datafiles.Paths(cfg)
    rows = read_meta(esc_root)
    folds = sorted({r[0] for r in rows})
    link_tree(rows, paths.video_root)
    fold_splits = [f"fold{f}" for f in folds]
    args = common + ["--dataset", DATASET]
    work = ["--workers", str(workers)] if workers else []
    flac = ["--video-extensions", ".flac"]
    logs = [run_step("01_make_file_lists", args + flac + ["--splits", *fold_splits,
                                                          "--train-split", fold_splits[0]]),
            run_step("02_extract_audio", args + work + flac + ["--splits", *fold_splits]),
            run_step("03_make_audio_images", args + work + ["--splits", *fold_splits])]
    splits = fold_split_lists(paths, folds)
    logs.append(run_step("04_make_datalists", args + ["--splits", *splits]))
    if not quiet:
        print("".join(line + "\n" for log in logs for line in log.splitlines()
                      if line.startswith("[0")), end="")
    for split in splits:  # every clip must have made it through
        n_listed = len(datafiles.read_lines(paths.video_list(split)))
        with np.load(paths.datalist(split)) as d:
            if len(d["ids"]) != n_listed:
                raise RuntimeError(f"{paths.datalist(split)}: {len(d['ids'])} clips with "
                                   f"features, {n_listed} listed; see file_lists/{DATASET}/")
    return paths, folds


def fold_accuracy(paths, run, k):
    """Clip accuracy (percent) of run's test_f<k> scores; scores and labels joined by id."""
    npy = paths.npy_dir(run) / f"test_f{k}_scores.npy"
    scores, ids = datafiles.load_scores(npy, datafiles.ids_path_for(npy))
    video_ids, _ = datafiles.read_video_list(paths.video_list(f"test_f{k}"))
    if set(ids) != set(video_ids):
        raise ValueError(f"{npy}: its ids are not the clips of fold {k}")
    y = datafiles.labels_for(paths.video_list(f"test_f{k}"), ids)
    return metrics.topk_accuracy(scores, y, 1), scores.argmax(1), y
