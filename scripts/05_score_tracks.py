"""Step 05: track scores, the mean of a track's patch scores, with top-1/top-5 accuracy.

Reads  npy_files/<dataset>/<run>/<split>_patch_logits.npy  float32 [n_patches, n_classes]
       npy_files/<dataset>/<run>/<split>_patch_track.npy   int64 [n_patches] (track row)
       npy_files/<dataset>/<run>/<split>_track_ids.txt     (written by train.py)
       file_lists/<dataset>/<split>_videos.txt             labels, looked up by id
Writes npy_files/<dataset>/<run>/<split>_audio_scores.npy  float32 [n_tracks, n_classes]:
                                                           mean of patch softmax probabilities
       npy_files/<dataset>/<run>/<split>_audio_ids.txt     row order (one id per line)
       npy_files/<dataset>/<run>/<split>_audio_labels.npy  int64 [n_tracks] (-1 = unlabelled)
and prints track top-1/top-5 (and patch top-1) in percent.
"""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cli  # noqa: E402
import datafiles  # noqa: E402
import metrics  # noqa: E402


def main(argv=None):
    parser = cli.parser(__doc__, ["RUN", "EVAL_SPLIT"])
    parser.add_argument("--splits", nargs="+", default=None,
                        help="splits to score (default: EVAL_SPLIT)")
    cfg = cli.parse(parser, argv)
    paths = datafiles.Paths(cfg)
    out = paths.npy_dir()
    for split in cfg.splits or [cfg.eval_split]:
        logits = np.load(out / f"{split}_patch_logits.npy")
        track = np.load(out / f"{split}_patch_track.npy")
        ids = datafiles.read_ids(out / f"{split}_track_ids.txt")
        if len(track) != len(logits):
            sys.exit(f"error: {out}/{split}_patch_track.npy has {len(track)} rows, "
                     f"{split}_patch_logits.npy {len(logits)}")
        video_ids, video_labels = datafiles.read_video_list(paths.video_list(split))
        label_of = dict(zip(video_ids, video_labels.tolist()))
        missing = [i for i in ids if i not in label_of]
        if missing:
            sys.exit(f"error: {len(missing)} track ids are not in {paths.video_list(split)}, "
                     f"e.g. {missing[0]!r}")
        labels = np.asarray([label_of[i] for i in ids], dtype=np.int64)
        scores = metrics.track_scores(logits, track, len(ids))
        scores_path = out / f"{split}_audio_scores.npy"
        datafiles.save_npy(scores_path, scores)
        datafiles.write_lines(datafiles.ids_path_for(scores_path), ids)
        datafiles.save_npy(out / f"{split}_audio_labels.npy", labels)
        print(f"[05] {cfg.run} {split}: {len(ids)} tracks ({len(logits)} patches): "
              f"track top-1 {metrics.topk_accuracy(scores, labels, 1):.2f} %, "
              f"top-5 {metrics.topk_accuracy(scores, labels, 5):.2f} % "
              f"(patch top-1 {metrics.topk_accuracy(logits, labels[track], 1):.2f} %) "
              f"-> {scores_path}")


if __name__ == "__main__":
    main()
