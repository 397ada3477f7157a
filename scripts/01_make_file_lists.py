"""Step 01: list the videos of each split and number the classes.

Reads  <video_root>/<split>/<class>/<name>.<ext>   (ext in VIDEO_EXTENSIONS; a file directly
       in <split>/ is unlabelled, label -1, as in the Kinetics test set)
  or, with --annotations FILE.csv ...  a Kinetics download as it comes: the official
       annotation CSVs (label,youtube_id,time_start,time_end,split[,is_cc]; "validate" is
       read as val) and the videos under <video_root>/<split>/, flat as
       <youtube_id>_<start:06d>_<end:06d>.<ext> or inside class folders of any name: the
       classes (spaces kept) and labels come from the CSVs (soundtrack/kinetics.py)
Writes file_lists/<dataset>/classes.txt            class names of TRAIN_SPLIT, sorted;
                                                   label = line number (0-based); taken
                                                   from TRAIN_SPLIT's folders even when
                                                   SPLITS does not list it
       file_lists/<dataset>/<split>_videos.txt     `id<TAB>label`, sorted by id, where
                                                   id = <split>/<class>/<name> (no extension)
       file_lists/<dataset>/<split>_unlisted.txt   `path<TAB>reason` for files left out
                                                   (with --annotations: files no row names)
       file_lists/<dataset>/<split>_missing.txt    with --annotations: `<file stem><TAB>
                                                   reason` for rows without a file; the
                                                   counts reconcile: rows = videos + missing

Row order is by id everywhere downstream; ids, never positions, join the stages.
A class folder in another split that TRAIN_SPLIT lacks is an error (labels would shift).
"""
from pathlib import Path

from soundtrack import cli
from soundtrack import datafiles
from soundtrack import kinetics


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


def write_split(paths, split, rows, label, unlisted, missing=None):
    """A split's video list (labels by class name) and its lists of what was left out."""
    datafiles.write_lines(paths.video_list(split),
                          [f"{i}\t{label[c] if c is not None else -1}" for i, c in rows])
    datafiles.write_lines(paths.stage_list(split, "unlisted"),
                          [f"{p}\t{r}" for p, r in unlisted])
    if missing is not None:
        datafiles.write_lines(paths.stage_list(split, "missing"),
                              [f"{p}\t{r}" for p, r in missing])


def from_annotations(cfg, paths):
    """--annotations: classes and labels from the Kinetics CSVs, videos found on disk."""
    try:
        rows = kinetics.read_annotations(cfg.annotations)
    except (OSError, ValueError) as e:
        cli.fail(cli.explain(e))
    classes = kinetics.classes_of(rows, cfg.train_split)
    if not classes:
        cli.fail(f"no labelled row in {', '.join(map(str, cfg.annotations))}")
    label = {c: i for i, c in enumerate(classes)}
    in_csv = sorted({r.split for r in rows})
    for split in cfg.splits:
        mine = [r for r in rows if r.split == split]
        if not mine:
            cli.fail(f"no annotation row is in split {split!r} (the CSVs hold {in_csv}): "
                     f"pass --splits {' '.join(in_csv)}")
        unknown = sorted({r.label for r in mine if r.label and r.label not in label})
        if unknown:
            cli.fail(f"{split} has classes that {cfg.train_split} lacks: "
                     f"{', '.join(unknown[:10])}")
    datafiles.write_lines(paths.classes, classes)
    for split in cfg.splits:
        found = kinetics.list_split(paths.video_root, split, [r for r in rows
                                                              if r.split == split],
                                    cfg.video_extensions)
        write_split(paths, split, found.rows, label, found.unlisted, found.missing)
        print(f"[01] {split}: {found.n_rows} annotation rows = {len(found.rows)} videos found "
              f"+ {len(found.missing)} missing"
              + (f" (see {paths.stage_list(split, 'missing')})" if found.missing else "")
              + (f"; {len(found.unlisted)} files on disk that no row names (see "
                 f"{paths.stage_list(split, 'unlisted')})" if found.unlisted else ""))
        for p, r in found.missing[:5]:
            print(f"  missing {p}: {r}")
    print(f"[01] {len(classes)} classes (from the annotations) -> {paths.classes}")


def main(argv=None):
    parser = cli.parser(__doc__, ["SPLITS"])
    parser.add_argument("--annotations", nargs="+", type=Path, default=None, metavar="FILE.csv",
                        help="Kinetics annotation CSVs (label,youtube_id,time_start,time_end,"
                             "split): classes and labels from them, videos found flat or in "
                             "class folders under <video_root>/<split>/")
    cfg = cli.parse(parser, argv)
    paths = datafiles.Paths(cfg)
    if not paths.video_root.is_dir():
        cli.fail(f"video root {paths.video_root} does not exist: set --video-root to your "
                 f"videos (<root>/<split>/...), or make the demo with "
                 f"scripts/00_make_demo_dataset.py --dataset {cfg.dataset}")
    if cfg.annotations:
        return from_annotations(cfg, paths)
    listed = {s: list_split(paths.video_root, s, cfg.video_extensions) for s in cfg.splits}
    train_rows = (listed[cfg.train_split][0] if cfg.train_split in listed else
                  list_split(paths.video_root, cfg.train_split, cfg.video_extensions)[0])
    classes = sorted({c for _, c in train_rows if c is not None})
    if not classes:
        cli.fail(f"no class folders with videos under {paths.video_root / cfg.train_split} "
                 f"(with flat folders and Kinetics CSVs, pass --annotations)")
    label = {c: i for i, c in enumerate(classes)}
    datafiles.write_lines(paths.classes, classes)
    for split, (rows, unlisted) in listed.items():
        unknown = sorted({c for _, c in rows if c is not None and c not in label})
        if unknown:
            cli.fail(f"{split} has class folders that {cfg.train_split} lacks: "
                     f"{', '.join(unknown[:10])}")
        write_split(paths, split, rows, label, unlisted)
        n_unlabelled = sum(c is None for _, c in rows)
        print(f"[01] {split}: {len(rows)} videos in {len({c for _, c in rows})} classes"
              + (f", {n_unlabelled} unlabelled" if n_unlabelled else "")
              + (f"; {len(unlisted)} files left out (see {paths.stage_list(split, 'unlisted')})"
                 if unlisted else ""))
        for p, r in unlisted[:10]:
            print(f"  left out {p}: {r}")
    print(f"[01] {len(classes)} classes -> {paths.classes}")


if __name__ == "__main__":
    cli.run_script(main)
