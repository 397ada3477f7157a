"""Step 06: give each audio track the score row of ITS video, matched by id (never by row).

Reads
  --video-scores FILE   a video model's scores [n_videos, n_video_classes] (logits or
                        probabilities; copied unchanged, step 07 normalises), by extension
                        (soundtrack/score_files.py):
                          .npy  with its ids: --video-ids, the ids file beside it
                                (x_scores.npy -> x_ids.txt), or the order of --video-list
                          .npz  arrays 'scores' [n, C] and 'ids' [n]
                          .csv / .tsv  a header 'id,<class>,<class>,...' (the class names,
                                any order: columns are put in classes.txt order by name; other
                                names are refused), then one row per video
                          .pkl  MMAction2's `tools/test.py --dump results.pkl` (a list of
                                dicts with 'pred_score'), rows in the order of --video-list;
                                read by an unpickler that loads only containers and numpy /
                                torch arrays and refuses (never runs) anything else
                        (default video_classification_results/<dataset>/
                        <video_name>_<split>_scores.npy)
  --video-ids FILE      one id per line: the row order of a .npy (see above)
  --video-list FILE     the row order of a .npy without ids, or of a .pkl: this project's
                        `id<TAB>label` lines, or MMAction2's annotation file (`path label` or
                        `path n_frames label`; the id is the path without its extension)
                        (default file_lists/<dataset>/<split>_videos.txt)
  --match-ids MODE      exact (default): a video id must equal the audio id (e.g.
                        val/abseiling/0wR5jVB-WPk_000417_000427); basename: the file names
                        without folders and extension are matched (they must be unique on
                        both sides, else an error with the counts)
  --video-classes FILE  the class name of each video score column, one per line; columns
                        are reordered by name to classes.txt. Default: the columns are
                        already in classes.txt order (their number must match).
  --audio-ids FILE      the row order of the audio track scores (step 05)
                        (default npy_files/<dataset>/<run>/<split>_ids.txt)
  --classes FILE        default file_lists/<dataset>/classes.txt (label = line number)
  <records>             the records beside --audio-ids (train.py's record.json) and beside
                        --video-scores, where they have one: their classes must be
                        classes.txt's (the video's, unless --video-classes reorders its
                        columns) and they must hold EVAL_SPLIT, else an error naming both
                        files; a file without one is taken as given (a note)
Writes
  --out FILE            float32 [n_tracks, n_classes]: row i is the video score of audio id i,
                        columns in classes.txt order
                        (default video_classification_results/<dataset>/
                        <video_name>_<split>_matched.npy)
  <out ids>             the ids of --out, one per line (x_matched.npy -> x_matched_ids.txt):
                        the audio ids in audio order, less any dropped (--allow-missing)
  <out stem>_match_report.json   what matched and what did not (also printed)
  <out stem>_record.json  the record of --out (records.py): classes, split and rows, and the
                        records of the two inputs; step 07 checks it
  <name>_<split>_all.npy  (beside --out: x_matched.npy -> x_all.npy) float32 [n_videos,
                        n_classes]: the video model's scores of EVERY video it scored, the
                        same columns, with its ids file (x_all_ids.txt) and record: step 07's
                        whole-split report (videos without a sound track keep their video
                        score)

Policies
  - Audio ids with no video score: an error listing them (fusion needs both scores); with
    --allow-missing they are dropped from --out and listed in the report.
  - Video ids with no audio track (videos without sound): expected; counted and reported.
  - An id on several video rows: rows that are exactly equal are kept once (reported); rows
    that differ are an error naming the id and the rows.
  - Class-count mismatch, an unknown or missing class name, non-finite values, an unreadable
    file: errors naming the file and the row, line or column.
"""
import argparse
import json
from pathlib import Path

import numpy as np

from soundtrack import cli
from soundtrack import datafiles
from soundtrack import join
from soundtrack import records
from soundtrack import score_files
from soundtrack.join import SHOW_IDS, examples


def read_video_ids(path, n_rows, scores_path):
    """Ids of the video score rows from a one-per-line file; the count must match the rows."""
    ids = datafiles.read_lines(path)
    if len(ids) != n_rows:
        raise ValueError(f"{scores_path}: {n_rows} rows but {path} has {len(ids)} ids")
    return ids


def dedupe(ids, scores, scores_path, ids_source):
    """Collapse ids listed on several rows when those rows are equal; error otherwise.

    Returns:
      (unique ids in first-seen order, their rows of `scores`, {id: [rows]} of duplicates).
    """
    rows_of = {}
    for row, i in enumerate(ids):
        rows_of.setdefault(i, []).append(row)
    duplicates = {i: rows for i, rows in rows_of.items() if len(rows) > 1}
    for i, rows in duplicates.items():
        for r in rows[1:]:
            if not np.array_equal(scores[rows[0]], scores[r]):
                raise ValueError(f"{scores_path}: id {i!r} (from {ids_source}) is on rows "
                                 f"{rows} (0-based) with different scores, e.g. rows "
                                 f"{rows[0]} and {r}; which one is right cannot be guessed")
    unique = list(rows_of)
    return unique, np.asarray([rows_of[i][0] for i in unique], dtype=np.int64), duplicates


def column_order(video_classes_path, classes, n_columns, scores_path):
    """Column of the video scores for each class of classes.txt, from their class names."""
    names = datafiles.read_ids(video_classes_path)
    if len(names) != n_columns:
        raise ValueError(f"{video_classes_path}: {len(names)} class names but {scores_path} "
                         f"has {n_columns} columns")
    wanted = set(classes)
    for line, name in enumerate(names, 1):
        if name not in wanted:
            raise ValueError(f"{video_classes_path}:{line}: class {name!r} is not in "
                             f"classes.txt")
    col = {name: c for c, name in enumerate(names)}
    for label, name in enumerate(classes):
        if name not in col:
            raise ValueError(f"classes.txt class {name!r} (label {label}) has no column in "
                             f"{video_classes_path}")
    return np.asarray([col[name] for name in classes], dtype=np.int64)


def rows_in_list_order(n_rows, video_list_path, scores_path):
    """Ids of rows that follow a video list (either format), one row per listed video."""
    if video_list_path is None:
        raise ValueError(f"{scores_path}: its rows have no ids; give --video-list (the list "
                         f"its rows follow) or --video-ids")
    ids = score_files.read_any_video_list(video_list_path)
    if len(ids) != n_rows:
        raise ValueError(f"{scores_path}: {n_rows} rows but the video list {video_list_path} "
                         f"has {len(ids)} videos; without an ids file the rows must follow "
                         f"that list (or pass --video-ids)")
    return ids, f"order of {video_list_path}"


def load_video_scores(path, classes, classes_path, video_ids_path, video_list_path,
                      video_classes_path):
    """A video model's score file in any of the formats of the module docstring -> (float32
    [n, C] in classes.txt column order, row ids, where the ids came from)."""
    ext = Path(path).suffix.lower()
    if ext not in score_files.FORMATS:
        raise ValueError(f"{path}: unknown score file type {ext!r}; expected one of "
                         f"{', '.join(score_files.FORMATS)}")
    if not Path(path).is_file():
        raise ValueError(f"{path} not found: the video model's scores (--video-scores)")
    if ext in (".csv", ".tsv"):
        if video_classes_path is not None:
            raise ValueError(f"{path}: a table names its classes in its header; "
                             f"--video-classes is for .npy, .npz and .pkl")
        scores, ids = score_files.read_table(path, classes)
        return scores, ids, f"first column of {path}"
    if ext == ".npz":
        scores, ids = score_files.read_npz(path)
        ids_source = f"'ids' of {path}"
    elif ext in (".pkl", ".pickle"):
        scores = score_files.mmaction_scores(score_files.read_pickle(path), path)
        ids, ids_source = rows_in_list_order(len(scores), video_list_path, path)
    else:
        scores, _ = datafiles.load_scores(path)
        if video_ids_path is not None:
            ids = read_video_ids(video_ids_path, len(scores), path)
            ids_source = str(video_ids_path)
        else:
            ids, ids_source = rows_in_list_order(len(scores), video_list_path, path)
    bad = np.flatnonzero(~np.isfinite(scores).all(axis=1))
    if len(bad):
        raise ValueError(f"{path}: non-finite value in row {bad[0]} ({ids[bad[0]]!r})")
    if video_classes_path is not None:
        scores = scores[:, column_order(video_classes_path, classes, scores.shape[1], path)]
    elif scores.shape[1] != len(classes):
        raise ValueError(f"{path}: {scores.shape[1]} columns but {classes_path} has "
                         f"{len(classes)} classes (pass --video-classes to match columns by "
                         f"class name)")
    return scores, ids, ids_source


def match(video_scores_path, audio_ids_path, classes_path, video_ids_path=None,
          video_list_path=None, video_classes_path=None, allow_missing=False,
          match_ids="exact", split_ids=()):
    """-> (matched float32 [n, C], ids [n], report dict, (every video's scores float32
    [n_videos, C] in classes.txt order, their ids)); see the module docstring."""
    classes = datafiles.read_classes(classes_path)
    scores, ids, ids_source = load_video_scores(video_scores_path, classes, classes_path,
                                                video_ids_path, video_list_path,
                                                video_classes_path)
    audio_ids = datafiles.read_ids(audio_ids_path)
    if match_ids == "basename":      # to the ids of the split's videos (step 01), audio's first
        known = list(audio_ids) + [i for i in split_ids if i not in set(audio_ids)]
        ids = score_files.rename_by_basename(ids, known, f"{video_scores_path} "
                                             f"({ids_source})", f"{audio_ids_path} and the "
                                             f"split's video list")
        ids_source += ", matched by file name"
    video_ids, video_rows, duplicates = dedupe(ids, scores, video_scores_path, ids_source)
    if not set(audio_ids) & set(video_ids):
        raise ValueError(f"none of the {len(audio_ids)} audio ids in {audio_ids_path} has a "
                         f"video score in {video_scores_path} ({ids_source}); e.g. audio id "
                         f"{audio_ids[:1]} vs video id {video_ids[:1]}: files of another split?")
    joined = join.join({"audio": (audio_ids, audio_ids_path),
                        "video": (video_ids, f"{video_scores_path} ({ids_source})")},
                       policy="common" if allow_missing else "subset",
                       hint="; pass --allow-missing to drop them")
    missing = joined.absent["video"]
    out_ids = joined.ids
    matched = np.ascontiguousarray(scores[video_rows[joined.rows["video"]]], dtype=np.float32)
    report = {
        "video_scores": str(video_scores_path),
        "video_ids": ids_source,
        "match_ids": match_ids,
        "video_classes": str(video_classes_path) if video_classes_path else None,
        "audio_ids": str(audio_ids_path),
        "classes": str(classes_path),
        "n_classes": len(classes),
        "n_video_rows": len(scores),
        "n_video_ids": len(video_ids),
        "n_audio_ids": len(audio_ids),
        "n_matched": len(out_ids),
        "audio_without_video": examples(missing),
        "dropped_audio_ids": missing if allow_missing else [],
        "video_without_audio": examples(joined.dropped["video"]),
        "duplicate_video_ids": {**examples(duplicates),
                                "rows": {i: duplicates[i] for i in list(duplicates)[:SHOW_IDS]},
                                "policy": "identical rows kept once"},
    }
    all_scores = np.ascontiguousarray(scores[video_rows], dtype=np.float32)
    return matched, out_ids, report, (all_scores, video_ids)


def all_path_for(out):
    """Where step 06 puts every video's scores beside --out: x_matched.npy -> x_all.npy."""
    stem = out.stem[:-len("_matched")] if out.stem.endswith("_matched") else out.stem
    return out.with_name(stem + "_all.npy")


def check_records(video_scores, audio_ids, classes_path, split, video_columns_are_classes):
    """The records of the audio run and of the video scores, where they have one, against
    classes.txt and the split. -> {"audio": path or None, "video": path or None}"""
    classes = datafiles.read_classes(classes_path)
    found = {"audio": records.find(audio_ids), "video": records.find(video_scores)}
    if found["audio"] is not None:
        records.check(records.read(found["audio"]), found["audio"], classes=classes,
                      classes_where=str(classes_path), split=split,
                      rows=len(datafiles.read_ids(audio_ids)))
    else:
        print(f"06 note: {audio_ids} has no record beside it (not train.py's?): its classes "
              f"and split are taken as given")
    if found["video"] is not None:
        records.check(records.read(found["video"]), found["video"],
                      classes=classes if video_columns_are_classes else None,
                      classes_where=str(classes_path), split=split)
    return found


def main(argv=None):
    parser = cli.parser(__doc__, ["EVAL_SPLIT", "RUN", "VIDEO_NAME"])
    parser.add_argument("--video-scores", type=Path, default=None, metavar="FILE")
    parser.add_argument("--video-ids", type=Path, default=None, metavar="FILE")
    parser.add_argument("--video-list", type=Path, default=None, metavar="FILE")
    parser.add_argument("--video-classes", type=Path, default=None, metavar="FILE")
    parser.add_argument("--audio-ids", type=Path, default=None, metavar="FILE")
    parser.add_argument("--classes", type=Path, default=None, metavar="FILE")
    parser.add_argument("--out", type=Path, default=None, metavar="FILE")
    parser.add_argument("--match-ids", choices=score_files.MATCH_IDS, default="exact",
                        help="exact: video ids equal audio ids; basename: match the file "
                             "names (no folders, no extension), unique on both sides")
    parser.add_argument("--allow-missing", action=argparse.BooleanOptionalAction,
                        default=False, help="drop audio ids that have no video score "
                        "(default: error)")
    cfg = cli.parse(parser, argv)
    paths = datafiles.Paths(cfg)
    split = cfg.eval_split
    video_scores = cfg.video_scores or paths.video_results / f"{cfg.video_name}_{split}_scores.npy"
    video_ids = cfg.video_ids
    if (video_ids is None and Path(video_scores).suffix == ".npy"
            and datafiles.ids_path_for(video_scores).exists()):
        video_ids = datafiles.ids_path_for(video_scores)
    out = cfg.out or paths.video_results / f"{cfg.video_name}_{split}_matched.npy"
    matched, ids, report, (all_scores, all_ids) = match(
        video_scores, cfg.audio_ids or paths.npy_dir() / f"{split}_ids.txt",
        cfg.classes or paths.classes, video_ids_path=video_ids,
        video_list_path=cfg.video_list or paths.video_list(split),
        video_classes_path=cfg.video_classes, allow_missing=cfg.allow_missing,
        match_ids=cfg.match_ids,
        split_ids=(datafiles.read_video_list(paths.video_list(split))[0]
                   if paths.video_list(split).exists() else ()))
    report["out"] = str(out)
    report["out_ids"] = str(datafiles.ids_path_for(out))
    for key in ("video_scores", "video_classes", "audio_ids", "classes", "out", "out_ids"):
        if report[key]:          # relative to the output root or repository: clones agree
            report[key] = paths.relative(report[key])
    if video_ids is not None:
        report["video_ids"] = paths.relative(video_ids)
    found = check_records(video_scores, cfg.audio_ids or paths.npy_dir() / f"{split}_ids.txt",
                          cfg.classes or paths.classes, split, cfg.video_classes is None)
    datafiles.save_npy(out, matched)
    datafiles.write_lines(datafiles.ids_path_for(out), ids)
    record = records.new("06_match_video_to_audio.py", "video",
                         datafiles.read_classes(cfg.classes or paths.classes))
    record["sources"] = {k: paths.relative(v) if v else None for k, v in found.items()}
    records.add_split(records.file_record(out), record, split, len(ids))
    every = all_path_for(out)              # every video's scores, for step 07's whole split
    datafiles.save_npy(every, all_scores)
    datafiles.write_lines(datafiles.ids_path_for(every), all_ids)
    records.add_split(records.file_record(every), record, split, len(all_ids))
    report_path = out.with_name(out.stem + "_match_report.json")
    datafiles.write_text(report_path, json.dumps(report, indent=2) + "\n")
    print(f"06 matched {report['n_matched']} of {report['n_audio_ids']} audio tracks to "
          f"video scores ({report['video_ids']})")
    for key, what in [("audio_without_video", "audio ids without a video score (dropped)"),
                      ("video_without_audio", "video ids without an audio track"),
                      ("duplicate_video_ids", "video ids on several identical rows")]:
        if report[key]["count"]:
            print(f"   {report[key]['count']} {what}, e.g. {report[key]['first'][:3]}")
    print(f"   -> {out} {matched.shape} float32, ids {report['out_ids']}, report {report_path}")
    return report


if __name__ == "__main__":
    cli.run_script(main)
