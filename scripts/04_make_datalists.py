"""Step 04: index the audio images of each split for training and evaluation.

Reads  file_lists/<dataset>/<split>_videos.txt (labels, by id), <split>_audio.txt,
       <feature_root>/<feature>/<id>.npy
Writes datalists/<dataset>/<feature>_<split>.npz with
         ids        str   [n_tracks]   sorted; the row order of every per-track output
         labels     int64 [n_tracks]   (-1 = unlabelled)
         n_patches  int64 [n_tracks]
         offsets    int64 [n_tracks + 1]  patch rows of track t: offsets[t]:offsets[t+1]
         patch_shape int64 [2 or 3]    (64, 96) or (3, 64, 96)
         dtype      str                feature dtype on disk
       with --packed, also datalists/<dataset>/<feature>_<split>_patches.npy: all patches
         of the split in one array [n_patches_total, ...], rows in offsets order, opened with
         mmap_mode='r' by AudioDataLoader (one file instead of one per track).

Tracks without features (skipped in step 03) are left out and counted.
"""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cli  # noqa: E402
import datafiles  # noqa: E402


def index_split(paths, split):
    """-> dict of datalist arrays for the tracks of `split` that have features."""
    video_ids, video_labels = datafiles.read_video_list(paths.video_list(split))
    label_of = dict(zip(video_ids, video_labels.tolist()))
    ids, labels, counts, missing = [], [], [], 0
    shape = dtype = None
    for vid in cli.progress(sorted(datafiles.read_ids(paths.stage_list(split, "audio"))),
                            desc=f"04 index {split}", unit="track"):
        f = paths.feature_dir / (vid + ".npy")
        if not f.exists():
            missing += 1
            continue
        arr = np.load(f, mmap_mode="r")
        if shape is None:
            shape, dtype = arr.shape[1:], arr.dtype
        elif arr.shape[1:] != shape or arr.dtype != dtype:
            raise ValueError(f"{f}: patches {arr.shape[1:]} {arr.dtype}, expected "
                             f"{shape} {dtype} like the other tracks")
        ids.append(vid)
        labels.append(label_of[vid])
        counts.append(arr.shape[0])
    counts = np.asarray(counts, dtype=np.int64)
    return dict(ids=np.asarray(ids, dtype=str), labels=np.asarray(labels, dtype=np.int64),
                n_patches=counts, offsets=np.concatenate([[0], np.cumsum(counts)]),
                patch_shape=np.asarray(shape or (0,), dtype=np.int64),
                dtype=np.asarray(str(dtype))), missing


def pack(paths, split, index):
    """Copy all patches of the split into one .npy, in offsets order, atomically."""
    total = int(index["offsets"][-1])
    shape = (total, *index["patch_shape"].tolist())

    def write(tmp):
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=str(index["dtype"]), shape=shape)
        for vid, a, b in zip(cli.progress(index["ids"], desc=f"04 pack {split}", unit="track"),
                             index["offsets"][:-1], index["offsets"][1:]):
            out[a:b] = np.load(paths.feature_dir / (vid + ".npy"))
        out.flush()
        del out
    datafiles.atomic_write(paths.packed(split), write)


def main(argv=None):
    parser = cli.parser(__doc__, ["SPLITS", "FEATURE_ROOT", "FEATURE", "DELTAS", "PACKED"])
    cfg = cli.parse(parser, argv)
    paths = datafiles.Paths(cfg)
    for split in cfg.splits:
        index, missing = index_split(paths, split)
        datafiles.save_npz(paths.datalist(split), **index)
        if cfg.packed:
            pack(paths, split, index)
        print(f"[04] {split}: {len(index['ids'])} tracks, {int(index['offsets'][-1])} patches "
              f"of {tuple(index['patch_shape'].tolist())} {index['dtype']}"
              + (f"; {missing} tracks without features left out" if missing else "")
              + f" -> {paths.datalist(split)}" + (" (+ packed)" if cfg.packed else ""))


if __name__ == "__main__":
    main()
