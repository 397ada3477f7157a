"""Step 05: track scores, the mean of a track's patch scores, with top-1/top-5 accuracy.

Reads  npy_files/<dataset>/<run>/ the output contract that train.py writes for each split:
         <split>_scores.npy        float32 [n_tracks, n_classes]  mean of patch softmax
         <split>_labels.npy        int64 [n_tracks]
         <split>_ids.txt           row order
         <split>_patch_logits.npy  float32 [n_patches, n_classes]
         <split>_patch_track.npy   int64 [n_patches]  row of each patch's track
         record.json               what made the folder (records.py): its classes must be
                                   classes.txt's and the split must be listed with these rows
       file_lists/<dataset>/<split>_videos.txt  the labels, looked up by id
       file_lists/<dataset>/classes.txt
Writes npy_files/<dataset>/<run>/<split>_metrics.json  {"n_tracks", "n_patches",
         "track_top1", "track_top5", "patch_top1", "per_class_top1"} in percent, and
         "above_chance": track top-1 against the best constant guess, a one-sided exact
         binomial test ({"n", "n_correct", "chance_top1", "binomial_p"}, metrics.above_chance)
and prints them. The contract itself has one writer, train.py; this step checks it: every id
is in the video list with the label the contract holds, the rows agree, and the scores are the
mean of the patches' softmax (metrics.track_scores), or it stops naming the file and row.
Accuracy follows metrics.topk_accuracy's tie rule (a tie counts against the row).
"""
import json

import numpy as np

from soundtrack import cli
from soundtrack import datafiles
from soundtrack import metrics
from soundtrack import records


def check_contract(out, split, video_list, classes_path):
    """Load and cross-check one split's contract files and the folder's record. -> dict of
    arrays and ids."""
    ids = datafiles.read_ids(out / f"{split}_ids.txt")
    records.check(records.read_folder(out), records.folder_record(out),
                  classes=datafiles.read_classes(classes_path), classes_where=str(classes_path),
                  split=split, rows=len(ids))
    scores, _ = datafiles.load_scores(out / f"{split}_scores.npy", out / f"{split}_ids.txt")
    labels = np.load(out / f"{split}_labels.npy")
    logits = np.load(out / f"{split}_patch_logits.npy")
    track = np.load(out / f"{split}_patch_track.npy")
    if len(labels) != len(ids) or len(track) != len(logits):
        raise ValueError(f"{out}: {split}_labels.npy has {len(labels)} rows for {len(ids)} ids; "
                         f"{split}_patch_track.npy {len(track)} rows for {len(logits)} patches")
    listed = datafiles.labels_for(video_list, ids)
    wrong = np.flatnonzero(listed != labels)
    if len(wrong):
        r = int(wrong[0])
        raise ValueError(f"{out}/{split}_labels.npy row {r} ({ids[r]!r}) has label "
                         f"{labels[r]}, {video_list} says {listed[r]}")
    expected = metrics.track_scores(logits, track, len(ids))
    off = np.abs(expected - scores).max(axis=1)
    if np.any(off > 1e-5):
        r = int(np.argmax(off))
        raise ValueError(f"{out}/{split}_scores.npy row {r} ({ids[r]!r}) is not the mean of "
                         f"its patches' softmax (off by {off[r]:.2e})")
    return dict(ids=ids, scores=scores, labels=labels, logits=logits, track=track)


def main(argv=None):
    parser = cli.parser(__doc__, ["RUN"], eval_splits=True)
    cfg = cli.parse(parser, argv)
    paths = datafiles.Paths(cfg)
    out = paths.npy_dir()
    for split in cfg.eval_splits or [cfg.eval_split]:
        try:
            c = check_contract(out, split, paths.video_list(split), paths.classes)
        except (OSError, ValueError) as e:
            cli.fail(cli.explain(e))
        n_classes = c["scores"].shape[1]
        correct = metrics.true_class_rank(c["scores"], c["labels"]) < 1
        labelled = c["labels"] >= 0
        report = {
            "n_tracks": len(c["ids"]), "n_patches": int(len(c["logits"])),
            "track_top1": metrics.topk_accuracy(c["scores"], c["labels"], 1),
            "track_top5": metrics.topk_accuracy(c["scores"], c["labels"], 5),
            "patch_top1": metrics.topk_accuracy(c["logits"], c["labels"][c["track"]], 1),
            "per_class_top1": [float(100 * correct[labelled & (c["labels"] == k)].mean())
                               if np.any(labelled & (c["labels"] == k)) else None
                               for k in range(n_classes)],
            "above_chance": metrics.above_chance(c["scores"], c["labels"])}
        chance = report["above_chance"]
        datafiles.write_text(out / f"{split}_metrics.json", json.dumps(report, indent=2) + "\n")
        print(f"[05] {cfg.run} {split}: {report['n_tracks']} tracks ({report['n_patches']} "
              f"patches): track top-1 {report['track_top1']:.2f} %, top-5 "
              f"{report['track_top5']:.2f} % (patch top-1 {report['patch_top1']:.2f} %); "
              f"{chance['n_correct']}/{chance['n']} correct, chance "
              f"{chance['chance_top1']:.1f} %, one-sided binomial p = "
              f"{chance['binomial_p']:.2g} -> {out / f'{split}_metrics.json'}")


if __name__ == "__main__":
    cli.run_script(main)
