"""Audio training recipes on several development tasks: one table, means over tasks and seeds.

A recipe (a YAML file of config.py keys, like recipes/audio_scratch.yaml, the default) is judged by its mean over
the tasks and its spread over seeds, never by one task. Tasks (all trained from scratch by
train.py, the LAST epoch's checkpoint scored unless the recipe says otherwise; a track's
score is the mean of its patch softmax):

  esc10      ESC-10 5-fold cross-validation: train on 4 folds (32 clips per class), score
             the 5th; the task's accuracy is the mean over the 5 folds
  esc10_low  ESC-10 low data: train on ONE fold (8 clips per class), score the other four
             (320 clips); rotated over the 5 folds, mean over the rotations
  demo       the built-in demo dataset's sound (scripts/00-04 with their defaults; made here
             when data/demo is missing): train on train, score val (tracks with sound)
  fsdd_fewshot  FSDD, few-shot with many classes: class = digit x speaker (60 classes),
             train on takes 0-5 (6 clips per class, 360), score takes 6-49 (2640 clips)
  fsdd_speaker  FSDD by speaker: class = the digit; train on 5 speakers, score the 6th, one
             part per held-out speaker (--fsdd-speakers: a subset, the same for every recipe,
             where all six cost too much)

Reads  ../shared/data/esc10 (meta.csv, audio/*.flac; --esc10-root), ../shared/data/fsdd (the
       same layout, fold = speaker; --fsdd-root), data/demo (made if absent)
Writes data/esc10, file_lists/esc10 ... as benchmarks/bench_esc10.py (shared; low-data lists
       train_l<k> / test_l<k> beside its train_f<k> / test_f<k>),
       runs/<dataset>/<prefix>_<task>_<part>_s<seed>/ and npy_files/... of every train.py run,
       npy_files/bench_recipes/<recipe name>[+<digest of the overrides>].json   accuracies
                                                    per task, part and seed,
                                                    seconds per run, load, the recipe text

  python benchmarks/bench_recipes.py --seeds 0 1          # recipes/audio_scratch.yaml
  python benchmarks/bench_recipes.py --recipes recipes/esc10.yaml recipes/new.yaml --tasks esc10_low
  python benchmarks/bench_recipes.py --recipes recipes/esc10.yaml --tasks esc10_low --epochs 160
  python benchmarks/bench_recipes.py --tasks esc10_low --parts l1 l5 --seeds 0 --learning-rate 0.001
  python benchmarks/bench_recipes.py --table npy_files/bench_recipes/*.json   # print, run nothing

A finished (task, part, seed) run is reused when its recipe's settings (the YAML's keys and
values; comments may change) and overrides are unchanged (recorded in the JSON), so an
interrupted comparison resumes; two processes of one recipe may run different --seeds at
once (each save merges the other's runs under a lock). Without ESC-10 the esc10 tasks
are skipped with a message.
"""
import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import esc10 as esc

from soundtrack import cli
from soundtrack import datafiles
from soundtrack import metrics

REPO = Path(__file__).resolve().parents[1]
TASKS = ("esc10", "esc10_low", "demo", "fsdd_fewshot", "fsdd_speaker")


def low_data_lists(paths, folds):
    """file_lists train_l<k> (= fold k alone) and test_l<k> (= the other folds), ids sorted."""
    return esc.union_lists(paths, [(split, members) for k in folds for split, members in
                                   ((f"train_l{k}", [k]), (f"test_l{k}", [f for f in folds
                                                                           if f != k]))])


def step(script, args):
    return esc.run_step(script, args)


def prepare_esc(esc_root, recipe, common, workers=None):
    """ESC-10 through steps 01-04 (esc10.prepare) plus the low-data lists and datalists.
    -> (Paths, folds)"""
    paths, folds = esc.prepare(esc_root, ["--config", str(recipe), *common], workers=workers)
    splits = low_data_lists(paths, folds)
    step("04_make_datalists", ["--config", str(recipe), *common, "--dataset", esc.DATASET,
                               "--splits", *splits])
    return paths, folds


def prepare_fsdd(fsdd_root, task, recipe, common, workers=None):
    """FSDD through steps 01-04 for one protocol (esc10.prepare with its rows). -> (Paths,
    folds): the few-shot task's one part (train_fs / test_fs), or the speakers."""
    if task == "fsdd_fewshot":
        return esc.prepare(fsdd_root, ["--config", str(recipe), *common], workers=workers,
                           dataset="fsdd_fewshot", rows=esc.fsdd_fewshot_rows(fsdd_root),
                           plan=lambda folds: [("train_fs", [1]), ("test_fs", [2])])
    return esc.prepare(fsdd_root, ["--config", str(recipe), *common], workers=workers,
                       dataset="fsdd_speaker", rows=esc.fsdd_speaker_rows(fsdd_root))


def prepare_demo(recipe, common, workers=None):
    """The demo dataset's steps 00-04 (each skips what is done). -> Paths"""
    args = ["--config", str(recipe), *common, "--dataset", "demo"]
    work = ["--workers", str(workers)] if workers else []
    for script in ("00_make_demo_dataset", "01_make_file_lists", "02_extract_audio",
                   "03_make_audio_images", "04_make_datalists"):
        # steps 00-01 take the demo's own settings (a recipe's SEED is the training seed)
        argv = [sys.executable, str(REPO / "scripts" / f"{script}.py"),
                *(args if script[:2] > "01" else args[2:]),
                *(work if script[:2] in ("00", "02", "03") else [])]
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if proc.returncode not in (0, 3):      # 3: the demo's special files, listed on purpose
            raise RuntimeError(f"{script} exited {proc.returncode}:\n{proc.stdout[-3000:]}")
    cfg = cli.parse(cli.parser(None, cli.FRONT_END_KEYS), args, log_unused=False)
    return datafiles.Paths(cfg)


def accuracy(paths, run, split):
    """Track top-1 (percent) of a run's <split>_scores.npy, labels joined by id -> (acc, n)."""
    npy = paths.npy_dir(run) / f"{split}_scores.npy"
    scores, ids = datafiles.load_scores(npy, datafiles.ids_path_for(npy))
    y = datafiles.labels_for(paths.video_list(split), ids)
    return metrics.topk_accuracy(scores, y, 1), len(y)


def parts(task, folds, speakers=None):
    """(part name, dataset, train split, eval split) of a task."""
    if task == "fsdd_fewshot":
        return [("fs", "fsdd_fewshot", "train_fs", "test_fs")]
    if task == "fsdd_speaker":
        return [(f"sp{k}", "fsdd_speaker", f"train_f{k}", f"test_f{k}") for k in folds
                if not speakers or k in speakers]
    if task == "esc10":
        return [(f"f{k}", esc.DATASET, f"train_f{k}", f"test_f{k}") for k in folds]
    if task == "esc10_low":
        return [(f"l{k}", esc.DATASET, f"train_l{k}", f"test_l{k}") for k in folds]
    return [("val", "demo", "train", "val")]


def task_data(task, prepared, recipe, common, args):
    """A task's data through steps 00-04, each dataset prepared once per process (`prepared`
    keeps them) -> (Paths, folds), or None when the dataset is not there (said)."""
    if task.startswith("fsdd"):
        if not (args.fsdd_root / "meta.csv").is_file():
            print(f"[recipes] {task}: skipped, no FSDD at {args.fsdd_root}")
            return None
        if task not in prepared:
            prepared[task] = prepare_fsdd(args.fsdd_root, task, recipe, common, args.workers)
        return prepared[task]
    if task.startswith("esc10"):
        if not (args.esc10_root / "meta.csv").is_file():
            print(f"[recipes] {task}: skipped, no ESC-10 at {args.esc10_root}")
            return None
        if "esc" not in prepared:
            prepared["esc"] = prepare_esc(args.esc10_root, recipe, common, args.workers)
        return prepared["esc"]
    if "demo" not in prepared:
        prepared["demo"] = (prepare_demo(recipe, common, args.workers), [])
    return prepared["demo"]


@contextlib.contextmanager
def locked(path):
    """Hold an exclusive lock on the file `path` (made if missing): two benchmark processes
    side by side take turns (each step writes <file>.partial, then renames it; two at once
    would rename each other's away)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def reusable(old, settings, text, overrides):
    """Whether an earlier result file's runs are this recipe's: the same settings (a file
    written before settings were recorded: the same text) and the same overrides."""
    same = old.get("settings") == settings if "settings" in old else \
        old.get("recipe_text") == text
    return bool(old) and same and old.get("overrides") == overrides


def result_name(recipe, overrides):
    """A recipe's result file and run names: overrides make another recipe."""
    return Path(recipe).stem + (f"+{hashlib.sha1(' '.join(overrides).encode()).hexdigest()[:8]}"
                                if overrides else "")


def run_recipe(recipe, tasks, seeds, args, overrides, common):
    """Every (task, part, seed) of one recipe; -> the result dict (also written as JSON)."""
    name = result_name(recipe, overrides)
    out = REPO / (args.output_root or "") / "npy_files" / "bench_recipes" / f"{name}.json"
    text = recipe.read_text(encoding="utf-8")
    settings = cli.load_yaml(recipe)               # what the runs compute; comments aside
    old = json.loads(out.read_text()) if out.is_file() else {}
    reuse = reusable(old, settings, text, overrides)
    result = {"recipe": str(recipe), "recipe_text": text, "settings": settings,
              "overrides": overrides,
              "runs": old.get("runs", {}) if reuse else {},
              "parts": old.get("parts", {}) if reuse else {}, "cpu_count": os.cpu_count(),
              "torch_threads": args.torch_threads, **datafiles.provenance()}
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    prepared = {}
    for task in tasks:
        with locked(out.parent / "prepare.lock"):   # one process at a time runs steps 00-04
            data = task_data(task, prepared, recipe, common, args)
        if data is None:
            continue
        paths, folds = data
        planned = parts(task, folds, args.fsdd_speakers)
        # the parts a whole seed has: a seed stopped half-way is not averaged as if whole
        add_parts(result, task, [p[0] for p in planned])
        chosen = [p for p in planned if not args.parts or p[0] in args.parts]
        if not chosen:
            print(f"[recipes] {task}: none of its parts ({' '.join(p[0] for p in planned)}) "
                  f"is among --parts {' '.join(args.parts)}; nothing run")
        for seed in seeds:
            for part, dataset, train_split, eval_split in chosen:
                key = f"{task}/{part}/s{seed}"
                if key in result["runs"]:
                    continue
                run = f"{args.run_prefix}_{name}_{task}_{part}_s{seed}"
                t = time.perf_counter()
                argv = [sys.executable, str(REPO / "train.py"), "--config", str(recipe),
                        *common, "--dataset", dataset, "--train-split", train_split,
                        "--eval-split", eval_split, "--run", run, "--overwrite",
                        "--seed", str(seed),
                        "--torch-threads", str(args.torch_threads), *overrides]
                proc = subprocess.run(argv, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True)
                if proc.returncode != 0:
                    raise RuntimeError(f"train.py exited {proc.returncode} ({key}):\n"
                                       f"{proc.stdout[-3000:]}")
                acc, n = accuracy(paths, run, eval_split)
                result["runs"][key] = {"accuracy": acc, "n": n,
                                       "seconds": time.perf_counter() - t,
                                       "load": os.getloadavg()[0]}
                print(f"[recipes] {name} {key}: {acc:.1f} % of {n} "
                      f"({result['runs'][key]['seconds']:.0f} s, load "
                      f"{result['runs'][key]['load']:.1f})", flush=True)
                save(out, result, settings, text, overrides)
    save(out, result, settings, text, overrides)
    return result


def add_parts(result, task, names):
    """Record `names` among the parts a whole seed of `task` has (sorted, each once)."""
    known = result.setdefault("parts", {}).get(task, [])
    result["parts"][task] = sorted(set(known) | set(names))


def save(out, result, settings, text, overrides):
    """Write a recipe's result file, keeping the runs another process (another seed of the
    same recipe: `--seeds 0` and `--seeds 1` side by side) wrote there since this one read
    it; the read-merge-write holds an exclusive lock on <file>.lock."""
    with locked(out.with_name(out.name + ".lock")):
        try:
            theirs = json.loads(out.read_text()) if out.is_file() else {}
        except json.JSONDecodeError:
            theirs = {}
        if reusable(theirs, settings, text, overrides):
            result["runs"] = {**theirs["runs"], **result["runs"]}
            for task, names in theirs.get("parts", {}).items():
                add_parts(result, task, names)
        datafiles.write_text(out, json.dumps(result, indent=1) + "\n")


def summarise(result):
    """{task: (mean over seeds of the task's mean over parts, spread = max - min over seeds,
    n seeds, seconds, n seeds left out)} and the mean over tasks of the task means.

    A seed counts only when it has every part of its task: those the runs planned (recorded
    in the file) and any other seed has (a run stopped after 3 of 5 rotations would otherwise
    be averaged as if whole); the others are left out and counted."""
    by = {}
    for key, r in result["runs"].items():
        task, part, seed = key.split("/")
        by.setdefault(task, {}).setdefault(seed, {})[part] = r
    rows = {}
    for task in TASKS:
        if task not in by:
            continue
        every = set().union(*(set(rs) for rs in by[task].values()),
                            result.get("parts", {}).get(task, ()))
        whole = [rs for rs in by[task].values() if set(rs) == every]
        if not whole:  # no seed has every part: nothing to report
            continue
        per_seed = [float(np.mean([r["accuracy"] for r in rs.values()])) for rs in whole]
        secs = float(np.mean([r["seconds"] for rs in whole for r in rs.values()]))
        rows[task] = (float(np.mean(per_seed)), float(np.ptp(per_seed)), len(per_seed), secs,
                      len(by[task]) - len(whole))
    overall = float(np.mean([v[0] for v in rows.values()])) if rows else float("nan")
    return rows, overall


def table(results, files=None):
    """The markdown table; the last column is the mean over the tasks EVERY row has (a
    recipe run on fewer tasks would otherwise be compared on other tasks). A result file
    renamed to keep it (an earlier version of a recipe) is named in its row's label."""
    summaries = [summarise(r)[0] for r in results]
    tasks = [t for t in TASKS if any(t in rows for rows in summaries)]
    shared = [t for t in tasks if all(t in rows for rows in summaries)]
    head = ("| recipe | " + " | ".join(tasks) + " | mean over "
            + (", ".join(shared) if shared else "no task all rows have") + " |")
    lines = [head, "|" + "---|" * (len(tasks) + 2)]
    for i, (r, rows) in enumerate(zip(results, summaries)):
        cells = [(f"{rows[t][0]:.1f} ± {rows[t][1] / 2:.1f} (n={rows[t][2]} seeds, "
                  f"{rows[t][3]:.0f} s/run"
                  + (f"; {rows[t][4]} incomplete seed(s) left out" if rows[t][4] else "")
                  + ")" if t in rows else "-") for t in tasks]
        overall = f"{np.mean([rows[t][0] for t in shared]):.1f}" if shared else "-"
        label = Path(r["recipe"]).stem + (f" + {' '.join(r['overrides'])}"
                                          if r.get("overrides") else "")
        if files and Path(files[i]).stem != result_name(r["recipe"], r.get("overrides")):
            label += f" [{Path(files[i]).name}]"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {overall} |")
    return "\n".join(lines) + ("\n(± is half the range over seeds; each task's value is the "
                               "mean over its folds / rotations)")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, allow_abbrev=False,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipes", nargs="+", type=Path, default=[esc.DEFAULT_RECIPE],
                   metavar="FILE.yaml", help="the recipes to compare (YAML files of config.py "
                   "keys); flags this script does not know go to train.py as overrides and "
                   "make another recipe (its own result file) "
                   f"[default: {esc.DEFAULT_RECIPE.relative_to(REPO)}]")
    p.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS),
                   help="the tasks to run (above) [default: all]")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1],
                   help="training seeds; a task's figure is the mean over them, its spread "
                   "the range [default: 0 1]")
    p.add_argument("--parts", nargs="+", default=None, metavar="PART",
                   help="run only these parts of each task (f<k> folds, l<k> rotations, "
                   "sp<k> speakers; e.g. l1 l5 for a quick screen on two rotations); a seed "
                   "without every part of its task stays out of the table [default: all]")
    p.add_argument("--esc10-root", type=Path, default=esc.DEFAULT_ESC10_ROOT,
                   help="ESC-10: meta.csv and audio/*.flac [default: %(default)s]")
    p.add_argument("--fsdd-root", type=Path, default=esc.DEFAULT_FSDD_ROOT,
                   help="FSDD in the same layout, fold = speaker [default: %(default)s]")
    p.add_argument("--fsdd-speakers", nargs="+", type=int, default=None, metavar="K",
                   help="fsdd_speaker: score only these held-out speakers (1-6; default all)")
    p.add_argument("--run-prefix", default="rb", help="train.py runs are "
                   "<prefix>_<recipe>_<task>_<part>_s<seed>")
    p.add_argument("--torch-threads", type=int, default=os.cpu_count(),
                   help="torch threads of each train.py run (1 when two benchmarks share "
                   "two cores) [default: the CPU count, %(default)s]")
    p.add_argument("--data-root", type=str, default=None,
                   help="config.py's DATA_ROOT for the steps and train.py [default: config.py's]")
    p.add_argument("--output-root", type=str, default=None,
                   help="config.py's OUTPUT_ROOT: runs/, npy_files/ and the result files go "
                   "under it [default: config.py's]")
    p.add_argument("--workers", type=int, default=None, help="workers of steps 02-03 (audio and "
                   "images of a dataset made the first time) [default: the steps' own]")
    p.add_argument("--table", nargs="+", type=Path, default=None, metavar="RESULT.json",
                   help="print the table of earlier results and run nothing")
    args, overrides = p.parse_known_args(argv)
    if args.table:
        print(table([json.loads(f.read_text()) for f in args.table], args.table))
        return 0
    common = []
    for flag, value in (("--data-root", args.data_root), ("--output-root", args.output_root)):
        if value is not None:
            common += [flag, str(value)]
    results = [run_recipe(r, args.tasks, args.seeds, args, overrides, common)
               for r in args.recipes]
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
