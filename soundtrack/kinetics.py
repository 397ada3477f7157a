"""A Kinetics download as it comes: the official annotation CSVs and the videos (step 01).

The CSVs (Kinetics-400/600/700) have the header ``label,youtube_id,time_start,time_end,split``
(``is_cc`` may follow; a test CSV may have no ``label``). Their ``split`` column says train,
validate or test; ``validate`` is read as ``val``. A row's video is the file
``<youtube_id>_<time_start:06d>_<time_end:06d>.<ext>`` under ``<video_root>/<split>/``, either
flat there or inside a class folder (any folder name: the label comes from the CSV, with its
spaces kept). Its id is, as everywhere, its path relative to the video root without the
extension.
"""
import csv
from dataclasses import dataclass, field
from pathlib import Path

from soundtrack import datafiles

SPLIT_NAMES = {"validate": "val", "validation": "val"}
REQUIRED = ("youtube_id", "time_start", "time_end", "split")


@dataclass
class Row:
    """One annotation row: the video's file stem, its label (None: unlabelled) and split."""
    stem: str
    label: str
    split: str
    where: str                       # file:line, for messages


@dataclass
class SplitListing:
    """What step 01 found for one split."""
    rows: list = field(default_factory=list)        # [(id, label or None)], sorted by id
    missing: list = field(default_factory=list)     # [(stem, reason)]: rows without a file
    unlisted: list = field(default_factory=list)    # [(path, reason)]: files no row names
    n_rows: int = 0


def _seconds(text, where):
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{where}: time {text!r} is not a number") from None
    if value != int(value) or value < 0:
        raise ValueError(f"{where}: time {text!r} is not a whole number of seconds >= 0")
    return int(value)


def read_annotations(paths):
    """Rows of Kinetics annotation CSVs, in file order. ValueError naming the file and line
    for a missing column, a bad time, or an empty file."""
    rows = []
    for path in paths:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            columns = [c.strip() for c in (reader.fieldnames or [])]
            absent = [c for c in REQUIRED if c not in columns]
            if absent:
                raise ValueError(f"{path}: not a Kinetics annotation CSV: no column "
                                 f"{', '.join(absent)} (header: {','.join(columns)}; expected "
                                 f"label,youtube_id,time_start,time_end,split[,is_cc])")
            n = 0
            for line, raw in enumerate(reader, 2):
                r = {k.strip(): (v or "").strip() for k, v in raw.items() if k}
                where = f"{path}:{line}"
                if not r["youtube_id"]:
                    raise ValueError(f"{where}: empty youtube_id")
                stem = (f"{r['youtube_id']}_{_seconds(r['time_start'], where):06d}_"
                        f"{_seconds(r['time_end'], where):06d}")
                split = SPLIT_NAMES.get(r["split"], r["split"])
                rows.append(Row(stem, r.get("label") or None, split, where))
                n += 1
        if not n:
            raise ValueError(f"{path}: no rows under its header")
    return rows


def classes_of(rows, train_split):
    """The class names, sorted: those of train_split's rows, else of every labelled row."""
    labels = {r.label for r in rows if r.split == train_split and r.label}
    return sorted(labels or {r.label for r in rows if r.label})


def list_split(video_root, split, rows, extensions):
    """Match one split's annotation rows to its files under <video_root>/<split>/ (flat, or
    in class folders). -> SplitListing; the counts reconcile: n_rows = len(rows) +
    len(missing), and every file under the split is in rows or in unlisted."""
    out = SplitListing(n_rows=len(rows))
    folder = Path(video_root) / split
    by_stem = {}
    for path in datafiles.scan_videos(folder, extensions) if folder.is_dir() else []:
        by_stem.setdefault(path.stem, []).append(path)
    used, seen = set(), {}
    for r in rows:
        if r.stem in seen:
            out.missing.append((r.stem, f"a second row for the same video ({seen[r.stem]})"))
            continue
        seen[r.stem] = r.where
        files = by_stem.get(r.stem)
        if not files:
            out.missing.append((r.stem, f"no file {r.stem}.* under {folder} (not downloaded, "
                                        f"or removed from YouTube)"))
            continue
        path = files[0]
        used.add(path)
        for other in files[1:]:
            out.unlisted.append((str(other.relative_to(video_root)),
                                 f"the same video as {path.relative_to(video_root)}"))
            used.add(other)
        try:
            vid = datafiles.video_id(path, video_root)
        except ValueError as e:
            out.missing.append((r.stem, str(e)))
            continue
        out.rows.append((vid, r.label))
    for files in by_stem.values():
        for path in files:
            if path not in used:
                out.unlisted.append((str(path.relative_to(video_root)),
                                     "no annotation row names it"))
    out.rows.sort()
    return out
