"""Step 04: index the audio images of each split for training and evaluation.

Reads  file_lists/<dataset>/<split>_videos.txt (labels, by id),
       <split>_<rate>hz_<channels>_audio.txt (step 02),
       <feature_root>/<name>/features.json and <id>.npy (step 03)
Writes datalists/<dataset>/<name>_<split>.npz with
         ids        str   [n_tracks]   sorted; the row order of every per-track output
         labels     int64 [n_tracks]   (-1 = unlabelled)
         n_patches  int64 [n_tracks]
         offsets    int64 [n_tracks + 1]  patch rows of track t: offsets[t]:offsets[t+1]
         patch_shape int64 [2 or 3]    e.g. (64, 96) or (3, 64, 96)
         dtype      str                feature dtype on disk
         front_end  str                JSON of the resolved front end (features.json's),
                                       which train.py checks and stores in its checkpoints
       with --packed, also datalists/<dataset>/<name>_<split>_patches.npy: all patches
         of the split in one array [n_patches_total, ...], rows in offsets order, opened with
         mmap_mode='r' by AudioDataLoader (one file instead of one per track).

<name> is the resolved front end's folder (see step 03). features.json must describe the
front end these settings resolve to, and every file must hold its patch shape and dtype:
a mismatch is an error naming the key or file. Tracks without features (skipped in step 03)
are left out and counted.
"""
import json

import numpy as np

from soundtrack import cli
from soundtrack import datafiles


def read_record(paths):
    """features.json of the settings' feature folder, checked against the settings ->
    (record, FrontEnd); exits with a message naming the differing keys and both sources."""
    try:
        record, fe = datafiles.read_feature_record(paths.feature_dir)
        datafiles.check_front_end(fe, paths.front_end,
                                  str(paths.feature_dir / datafiles.FEATURES_RECORD),
                                  "these settings")
    except ValueError as e:
        cli.fail(cli.explain(e))
    return record, fe


def index_split(paths, split, fe, dtype):
    """-> dict of datalist arrays for the tracks of `split` that have features."""
    ids, counts, missing = [], [], 0
    shape = tuple(fe.patch_shape)
    for vid in cli.progress(sorted(datafiles.read_ids(paths.audio_list(split))),
                            desc=f"04 index {split}", unit="track"):
        f = paths.feature_dir / (vid + ".npy")
        if not f.exists():
            missing += 1
            continue
        arr = np.load(f, mmap_mode="r")
        if arr.shape[1:] != shape or arr.dtype != dtype:
            raise ValueError(f"{f}: patches {arr.shape[1:]} {arr.dtype}, but "
                             f"{paths.feature_dir / datafiles.FEATURES_RECORD} says "
                             f"{shape} {dtype}")
        ids.append(vid)
        counts.append(arr.shape[0])
    counts = np.asarray(counts, dtype=np.int64)
    labels = datafiles.labels_for(paths.video_list(split), ids)
    return dict(ids=np.asarray(ids, dtype=str), labels=labels,
                n_patches=counts, offsets=np.concatenate([[0], np.cumsum(counts)]),
                patch_shape=np.asarray(shape, dtype=np.int64),
                dtype=np.asarray(str(dtype)),
                front_end=np.asarray(json.dumps(fe.to_dict(), sort_keys=True))), missing


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
    parser = cli.parser(__doc__, ["SPLITS", "FEATURE_ROOT", *cli.FRONT_END_KEYS, "PACKED"])
    cfg = cli.parse(parser, argv)
    paths = datafiles.Paths(cfg)
    record, fe = read_record(paths)
    for split in cfg.splits:
        index, missing = index_split(paths, split, fe, np.dtype(record["feature_dtype"]))
        datafiles.save_npz(paths.datalist(split), **index)
        if cfg.packed:
            pack(paths, split, index)
        print(f"[04] {split}: {len(index['ids'])} tracks, {int(index['offsets'][-1])} patches "
              f"of {tuple(index['patch_shape'].tolist())} {index['dtype']}"
              + (f"; {missing} tracks without features left out" if missing else "")
              + f" -> {paths.datalist(split)}" + (" (+ packed)" if cfg.packed else ""))


if __name__ == "__main__":
    cli.run_script(main)
