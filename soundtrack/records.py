"""The record beside every result: what made it, read back and checked by the steps that use it.

A result folder of train.py (``npy_files/<dataset>/<run>/``), of step 11 (``<run>_probe/``),
of step 07 (``fusion/``) and of step 12 (``two_phase/``) holds ``record.json``; a file that
step 06 writes (``<name>_<split>_matched.npy``) has ``<name>_<split>_matched_record.json``
beside it. A record says:

  made_by      the script that wrote the result
  modality     audio | visual | envelope | video (step 06: a video model's scores) | ...
  model        the model's registry name (null where no model made it)
  classes      the class names, in column order
  front_end    the audio front end's record (features.json's), or null
  frames       step 08's frame settings, or null
  splits       {split: {"rows": n, "checkpoint": {"path" (relative to the output root),
               "epoch", "which": "best" | "last", "why"}}}: what each split was scored with
  sources      (steps 06, 07, 12) the records of the results it read, by name
  git_commit, git_dirty

A reader refuses a result whose record disagrees with what it is combined with (classes,
split, rows, front end), with a message naming both files. A result without a record is
refused where the step can only have read train.py's folders (05, 11, 12), and accepted with
a printed note where a user may hand over a file of their own (06's video scores, 07).
"""
import json
from pathlib import Path

from soundtrack import atomic
from soundtrack import audio
from soundtrack import datafiles
from soundtrack import frames as frames_module
from soundtrack.errors import missing_message

RECORD = "record.json"
VERSION = 1


def folder_record(folder):
    """Where a result folder's record lives."""
    return Path(folder) / RECORD


def file_record(path):
    """Where the record of a result file that has its own lives (step 06's matched scores)."""
    path = Path(path)
    return path.with_name(path.stem + "_record.json")


def find(scores_path):
    """The record of a score file: its own (``<stem>_record.json``), else its folder's, else
    None."""
    for candidate in (file_record(scores_path), folder_record(Path(scores_path).parent)):
        if candidate.is_file():
            return candidate
    return None


def read(path):
    """A record as a dict; ValueError naming the file if it is not one."""
    path = Path(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: cannot read the result's record ({e})") from None
    if not isinstance(record, dict) or record.get("record") != VERSION:
        raise ValueError(f"{path}: not a result record of this version (record: {VERSION})")
    return record


def read_folder(folder):
    """A result folder's record; a ValueError that says which step writes it if missing."""
    path = folder_record(folder)
    if not path.is_file():
        raise ValueError(f"{missing_message(path)} (a run scored before results had records: "
                         f"train.py --eval-only rescores it)")
    return read(path)


def new(made_by, modality, classes, model=None, front_end=None, frames=None):
    """A record with nothing scored yet."""
    return {"record": VERSION, "made_by": made_by, "modality": modality, "model": model,
            "classes": list(classes), "front_end": front_end, "frames": frames, "splits": {},
            **{k: v for k, v in datafiles.provenance().items() if k != "versions"}}


def same_maker(a, b):
    """Two records of one folder describe the same model on the same inputs."""
    keys = ("made_by", "modality", "model", "classes", "front_end", "frames")
    return all(a.get(k) == b.get(k) for k in keys)


def add_split(path, record, split, rows, **entry):
    """Write `record` to `path` with `split` added (rows, and e.g. checkpoint=...). The splits
    an existing record at `path` lists are kept when it describes the same model on the same
    inputs (a later --eval-only adds a split), dropped otherwise (the folder was remade).
    -> the record written."""
    path = Path(path)
    old = None
    if path.is_file():
        try:
            old = read(path)
        except ValueError:
            old = None
    splits = dict(old["splits"]) if old is not None and same_maker(old, record) else {}
    splits[split] = {"rows": int(rows), **entry}
    return write(path, {**record, "splits": splits})


def write(path, record):
    atomic.write_text(path, json.dumps(record, indent=2) + "\n", shared=True)  # shards too
    return record


def check(record, where, classes=None, classes_where="classes.txt", split=None, rows=None,
          front_end=None, frames=None, settings_where=None):
    """Raise ValueError, naming `where` (the record's file) and the other file, if the record
    disagrees: other class names, a split it does not hold or holds with another row count,
    another front end or other frame settings (dicts as records hold them; compared by
    datafiles.check_front_end and frames.check_settings)."""
    if classes is not None and list(record["classes"]) != list(classes):
        theirs, ours = list(record["classes"]), list(classes)
        diff = next((i for i, (a, b) in enumerate(zip(theirs, ours)) if a != b),
                    min(len(theirs), len(ours)))
        raise ValueError(
            f"{where} records {len(theirs)} classes, {classes_where} has {len(ours)}; they "
            f"differ first at column {diff} ({theirs[diff] if diff < len(theirs) else None!r} "
            f"vs {ours[diff] if diff < len(ours) else None!r}): these scores were made for "
            f"another class list")
    if split is not None:
        if split not in record["splits"]:
            raise ValueError(f"{where} holds no {split!r} split (it holds "
                             f"{sorted(record['splits'])}): score that split first")
        if rows is not None and record["splits"][split]["rows"] != rows:
            raise ValueError(f"{where}: split {split!r} was written with "
                             f"{record['splits'][split]['rows']} rows, the files beside it "
                             f"hold {rows}: the folder was changed after it was written")
    if front_end is not None and record.get("front_end") is not None:
        datafiles.check_front_end(audio.FrontEnd.from_dict(record["front_end"], where=str(where)),
                                  audio.FrontEnd.from_dict(front_end, where=settings_where),
                                  str(where), settings_where)
    if frames is not None and record.get("frames") is not None:
        frames_module.check_settings(
            frames_module.FrameSettings.from_dict(record["frames"], str(where)),
            frames_module.FrameSettings.from_dict(frames, settings_where), str(where),
            settings_where)


def checkpoint_of(record, split, where):
    """The checkpoint entry {"path", "epoch", "which", "why"} that scored `split`."""
    entry = record["splits"].get(split, {})
    if "checkpoint" not in entry:
        raise ValueError(f"{where}: no checkpoint recorded for split {split!r}")
    return entry["checkpoint"]
