"""Sound datasets laid out as ESC-10 (`meta.csv` + `audio/*.flac`) as benchmark datasets: their
FLACs through the runbook's steps 01-04 as if they were videos, split lists, and a fold's
accuracy. Shared by bench_esc10.py and bench_recipes.py (a module, no main).

  ESC-10 (K. J. Piczak 2015): 10 classes x 40 clips of 5 s, 5 folds.
  FSDD (the Free Spoken Digit Dataset, Jakobovski et al.): 10 digits x 6 speakers x 50
  takes, most clips shorter than one 0.96 s patch (one zero-padded patch each); its
  meta.csv's fold is the speaker. Two protocols: ``fsdd_fewshot_rows`` (class = digit x
  speaker, 60 classes; takes 0-5 train, 6-49 are scored) and ``fsdd_speaker_rows`` (class =
  digit; the folds are the speakers, so a fold split is speaker-held-out).
"""
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
DEFAULT_FSDD_ROOT = REPO.parent / "shared" / "data" / "fsdd"
FSDD_FEWSHOT_TRAIN_TAKES = 6          # takes 0-5 of each digit x speaker train, the rest score
DEFAULT_RECIPE = REPO / "recipes" / "audio_scratch.yaml"


def read_meta(esc_root, group=None):
    """meta.csv -> list of (fold int, category, flac path), sorted by fold then file name.
    group(row dict) -> (fold, category) regroups the clips (FSDD's protocols); default the
    file's own fold and category."""
    rows = []
    with open(Path(esc_root) / "meta.csv", newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            fold, category = group(r) if group else (int(r["fold"]), r["category"])
            rows.append((fold, category, Path(esc_root) / "audio" / r["filename"]))
    if not rows:
        raise ValueError(f"{esc_root}/meta.csv lists no clips")
    return sorted(rows, key=lambda r: (r[0], r[2].name))


def fsdd_fewshot_rows(root):
    """FSDD few-shot, many classes: class = <digit>_<speaker> (60); "fold" 1 = takes 0-5 (the
    training clips, 6 per class), fold 2 = takes 6-49 (scored)."""
    return read_meta(root, lambda r: (1 if int(r["take"]) < FSDD_FEWSHOT_TRAIN_TAKES else 2,
                                      f"{r['category']}_{r['speaker']}"))


def fsdd_speaker_rows(root):
    """FSDD by speaker: class = the digit, fold = the speaker (1-6)."""
    return read_meta(root)


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


def prepare(esc_root, common, quiet=True, workers=None, dataset=DATASET, rows=None,
            plan=None):
    """Steps 01-04 on a meta.csv folder; returns (Paths, folds).

    Args:
      esc_root: folder with meta.csv and audio/.
      common: argv given to every step: --config RECIPE and any --data-root, --output-root.
      workers: --workers of steps 02-03 (the steps that take it); None: config.py's.
      dataset: the dataset name (esc10; fsdd_fewshot, fsdd_speaker).
      rows: (fold, category, flac) of every clip (default: read_meta(esc_root)).
      plan: folds -> [(split, member folds)] of the splits step 04 indexes (default: each
        fold's test_f<k> and train_f<k>).
    """
    cfg = cli.parse(cli.parser(None, cli.FRONT_END_KEYS), common + ["--dataset", dataset],
                    log_unused=False)
    paths = datafiles.Paths(cfg)
    rows = read_meta(esc_root) if rows is None else rows
    folds = sorted({r[0] for r in rows})
    link_tree(rows, paths.video_root)
    fold_splits = [f"fold{f}" for f in folds]
    args = common + ["--dataset", dataset]
    work = ["--workers", str(workers)] if workers else []
    flac = ["--video-extensions", ".flac"]
    logs = [run_step("01_make_file_lists", args + flac + ["--splits", *fold_splits,
                                                          "--train-split", fold_splits[0]]),
            run_step("02_extract_audio", args + work + flac + ["--splits", *fold_splits]),
            run_step("03_make_audio_images", args + work + ["--splits", *fold_splits])]
    splits = (union_lists(paths, plan(folds)) if plan else fold_split_lists(paths, folds))
    logs.append(run_step("04_make_datalists", args + ["--splits", *splits]))
    if not quiet:
        print("".join(line + "\n" for log in logs for line in log.splitlines()
                      if line.startswith("[0")), end="")
    for split in splits:  # every clip must have made it through
        n_listed = len(datafiles.read_lines(paths.video_list(split)))
        with np.load(paths.datalist(split)) as d:
            if len(d["ids"]) != n_listed:
                raise RuntimeError(f"{paths.datalist(split)}: {len(d['ids'])} clips with "
                                   f"features, {n_listed} listed; see file_lists/{dataset}/")
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
