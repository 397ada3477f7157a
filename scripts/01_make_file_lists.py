"""Step 01: list the videos of each split and number the classes.

Reads  <video_root>/<split>/<class>/<name>.<ext>   (ext in VIDEO_EXTENSIONS; a file directly
       in <split>/ is unlabelled, label -1, as in the Kinetics test set)
Writes file_lists/<dataset>/classes.txt            class names of TRAIN_SPLIT, sorted;
                                                   label = line number (0-based); taken
                                                   from TRAIN_SPLIT's folders even when
                                                   SPLITS does not list it
       file_lists/<dataset>/<split>_videos.txt     `id<TAB>label`, sorted by id, where
                                                   id = <split>/<class>/<name> (no extension)
       file_lists/<dataset>/<split>_unlisted.txt   `path<TAB>reason` for files left out

Row order is by id everywhere downstream; ids, never positions, join the stages.
A class folder in another split that TRAIN_SPLIT lacks is an error (labels would shift).
"""
import sys

from soundtrack import cli
from soundtrack import datafiles


def list_split(video_root, split, extensions):
    """-> (rows [(id, class_name or None)], unlisted [(path, reason)])."""
    rows, unlisted, seen = [], [], {}
    for path in datafiles.scan_videos(video_root / split, extensions):
        rel = path.relative_to(video_root)
        try:
            vid = datafiles.video_id(path, video_root)
        except ValueError as e:
            unlisted.append((repr(str(rel)), str(e)))
            continue
        if vid in seen:
            unlisted.append((str(rel), f"same id as {seen[vid]} (two files differ only "
                                       "in extension)"))
            continue
        seen[vid] = str(rel)
        parts = rel.parts
        rows.append((vid, parts[1] if len(parts) > 2 else None))
    return rows, unlisted


def main(argv=None):
    parser = cli.parser(__doc__, ["SPLITS", "TRAIN_SPLIT", "VIDEO_EXTENSIONS"])
    cfg = cli.parse(parser, argv)
    paths = datafiles.Paths(cfg)
    if not paths.video_root.is_dir():
        parser.error(f"video root {paths.video_root} does not exist "
                     "(set --video-root, or make the demo with scripts/00_make_demo_dataset.py)")
    listed = {s: list_split(paths.video_root, s, cfg.video_extensions) for s in cfg.splits}
    train_rows = (listed[cfg.train_split][0] if cfg.train_split in listed else
                  list_split(paths.video_root, cfg.train_split, cfg.video_extensions)[0])
    classes = sorted({c for _, c in train_rows if c is not None})
    if not classes:
        parser.error(f"no class folders with videos under {paths.video_root / cfg.train_split}")
    label = {c: i for i, c in enumerate(classes)}
    datafiles.write_lines(paths.classes, classes)
    for split, (rows, unlisted) in listed.items():
        unknown = sorted({c for _, c in rows if c is not None and c not in label})
        if unknown:
            sys.exit(f"error: {split} has class folders that {cfg.train_split} lacks: "
                     f"{', '.join(unknown[:10])}")
        datafiles.write_lines(paths.video_list(split),
                              [f"{i}\t{label[c] if c is not None else -1}" for i, c in rows])
        datafiles.write_lines(paths.stage_list(split, "unlisted"),
                              [f"{p}\t{r}" for p, r in unlisted])
        n_unlabelled = sum(c is None for _, c in rows)
        print(f"[01] {split}: {len(rows)} videos in {len({c for _, c in rows})} classes"
              + (f", {n_unlabelled} unlabelled" if n_unlabelled else "")
              + (f"; {len(unlisted)} files left out (see {paths.stage_list(split, 'unlisted')})"
                 if unlisted else ""))
        for p, r in unlisted[:10]:
            print(f"  left out {p}: {r}")
    print(f"[01] {len(classes)} classes -> {paths.classes}")


if __name__ == "__main__":
    main()
