"""Step 11: a linear probe (logistic regression) on frozen embeddings, scores for steps 06-07.

The cheap path for pretrained backbones on a CPU: score the tracks once with the frozen
network (``train.py --model panns_cnn14 --init-checkpoint Cnn14_mAP=0.431.pth --epochs 0
--eval-splits train val``), then fit this probe on the training split's embeddings.

Reads  npy_files/<dataset>/<run>/   the output contract of that train.py run, per split:
         <split>_embedding.npy  float32 [n, d]   mean of the patches' embeddings
         <split>_labels.npy     int64 [n]        (-1 = unlabelled; TRAIN_SPLIT must be labelled)
         <split>_ids.txt        row order
         record.json            what made it (records.py): its classes must be classes.txt's,
                                and it must hold each split read, with these rows
       file_lists/<dataset>/classes.txt            the classes (label = line number)
Writes npy_files/<dataset>/<run>_probe/, per scored split (--eval-splits, default EVAL_SPLIT),
       rows in <split>_ids.txt order (that of the embeddings):
         <split>_scores.npy     float32 [n, n_classes]  the probe's softmax probabilities
         <split>_labels.npy     int64 [n]
         <split>_ids.txt        one id per line
         probe.json             the l2 grid with each penalty's minival top-1, the chosen
                                penalty, the rows, the source run, each scored split's top-1/5
         record.json            records.py: the probe's classes, splits and rows, and the
                                source run's record
Standardised features; softmax regression by L-BFGS with an L2 penalty chosen from
PROBE_L2_GRID by top-1 on a minival carved from TRAIN_SPLIT (MINIVAL_FRACTION of each class's
tracks, SEED), then refitted on all of TRAIN_SPLIT (soundtrack/linear_probe.py). Steps 06-07 take
<split>_scores.npy and <split>_ids.txt like any other score file.
"""
import json

import numpy as np

from soundtrack import cli
from soundtrack import datafiles
from soundtrack import linear_probe
from soundtrack import metrics
from soundtrack import records

PROBE_KEYS = ["RUN", "PROBE_L2_GRID", "MINIVAL_FRACTION", "SEED"]


def load_embeddings(folder, split, record=None, classes=None, classes_path=None):
    """A split's embeddings, labels and ids from the output contract, checked row by row and
    against the folder's `record` (classes, split, rows) when given."""
    ids = datafiles.read_ids(folder / f"{split}_ids.txt")
    path = folder / f"{split}_embedding.npy"
    x = np.load(path, allow_pickle=False)
    labels = np.load(folder / f"{split}_labels.npy", allow_pickle=False)
    if x.ndim != 2 or len(x) != len(ids) or len(labels) != len(ids):
        raise ValueError(f"{path}: shape {x.shape} and {len(labels)} labels for {len(ids)} ids "
                         f"in {split}_ids.txt (expected [n_ids, d] and n_ids labels)")
    if record is not None:
        records.check(record, records.folder_record(folder), classes=classes,
                      classes_where=str(classes_path), split=split, rows=len(ids))
    bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
    if len(bad):
        raise ValueError(f"{path}: row {bad[0]} ({ids[bad[0]]!r}) holds non-finite values")
    return x.astype(np.float64), labels.astype(np.int64), ids


def main(argv=None):
    parser = cli.parser(__doc__, PROBE_KEYS, eval_splits=True)
    cfg = cli.parse(parser, argv)
    paths = datafiles.Paths(cfg)
    source, out = paths.npy_dir(), paths.npy_dir(f"{cfg.run}_probe")
    try:
        classes = datafiles.read_classes(paths.classes)
        n_classes = len(classes)
        source_record = records.read_folder(source)
        check = dict(record=source_record, classes=classes, classes_path=paths.classes)
        x, y, _ = load_embeddings(source, cfg.train_split, **check)
        if len(y) == 0 or y.min() < 0 or y.max() >= n_classes:
            raise ValueError(f"{source}/{cfg.train_split}_labels.npy: the probe needs labels "
                             f"0..{n_classes - 1} on every training row")
        predict, report = linear_probe.choose_and_fit(x, y, n_classes, cfg.probe_l2_grid,
                                                      cfg.minival_fraction, cfg.seed)
        report.update(source=str(source), train_split=cfg.train_split, dim=int(x.shape[1]),
                      grid=list(cfg.probe_l2_grid), splits={})
        print(f"[11] {cfg.run}: {len(y)} {cfg.train_split} tracks, {x.shape[1]}-d; l2 "
              f"{report['l2']:g} (minival top-1 by l2: "
              + ", ".join(f"{k:g}: {v:.1f} %" for k, v in report["minival_top1"].items())
              + ")")
        for split in cfg.eval_splits or [cfg.eval_split]:
            xs, ys, ids = load_embeddings(source, split, **check)
            if xs.shape[1] != x.shape[1]:
                raise ValueError(f"{source}/{split}_embedding.npy is {xs.shape[1]}-d, "
                                 f"{cfg.train_split}'s {x.shape[1]}-d")
            scores = predict(xs)
            datafiles.save_npy(out / f"{split}_scores.npy", scores)
            datafiles.save_npy(out / f"{split}_labels.npy", ys)
            datafiles.write_lines(out / f"{split}_ids.txt", ids)
            result = {"n": len(ids), "top1": metrics.topk_accuracy(scores, ys, 1),
                      "top5": metrics.topk_accuracy(scores, ys, 5)}
            report["splits"][split] = result
            record = records.new("11_linear_probe.py", source_record["modality"], classes,
                                 model="linear_probe", front_end=source_record["front_end"],
                                 frames=source_record["frames"])
            record["sources"] = {"embeddings": paths.relative(records.folder_record(source))}
            records.add_split(records.folder_record(out), record, split, len(ids))
            print(f"[11] {split}: {len(ids)} tracks, top-1 {result['top1']:.2f} %, top-5 "
                  f"{result['top5']:.2f} % -> {out / f'{split}_scores.npy'}")
    except (OSError, ValueError) as e:
        cli.fail(cli.explain(e))
    datafiles.write_text(out / "probe.json", json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    cli.run_script(main)
