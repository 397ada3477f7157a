"""Step 00 for real data: the TAU Urban Audio-Visual Scenes 2021 development set -> our layout.

Reads  <tau_root>/evaluation_setup/fold1_train.csv     official training rows
       <tau_root>/evaluation_setup/fold1_evaluate.csv  official evaluation rows (labelled)
       <tau_root>/meta.csv                             optional: recording location per row
       <tau_root>/audio/<name>.wav, <tau_root>/video/<name>.mp4   (paths as the CSVs give them)
Writes <video_root>/<split>/<scene>/<name>.mkv   the video stream and the original wav's
                                                 samples, both stream-copied (nothing
                                                 re-encoded: 48 kHz 24-bit stereo stays so);
                                                 split = TRAIN_SPLIT for fold1_train,
                                                 EVAL_SPLIT for fold1_evaluate
       <video_root>/<split>/<scene>/<name>.status  only for a row that got no file (no_video,
                                                 failed) with its reason
       <video_root>/tau2021_manifest.json        source, settings, the CSVs' digests, counts
       file_lists/<dataset>/tau2021_<split>_{prepared,skipped,no_wav}.txt  ids, `id<TAB>reason`
       file_lists/<dataset>/tau2021_<split>_locations.txt           `id<TAB>location` (meta.csv)

The CSVs are tab-separated with a header naming filename_audio, filename_video and
scene_label (meta.csv adds identifier = the recording location); a comma-separated file is
accepted too. fold1_test.csv has no labels and is not prepared.

--audio-from wav (default): each video gets the sound of its row's wav (the dataset ships the
sound as separate high-quality wavs). A row without its wav keeps the video alone ("no wav"
listed in tau2021_<split>_no_wav.txt); step 02 then lists it as a video without sound, like
any Kinetics clip without a track. --audio-from video: the .mp4 is linked (or copied) unchanged
and step 02 takes whatever sound track it holds.

Checks before any file is written (exit 2 with the reason): an id in both splits; a scene
label that cannot be a folder name; CSV columns missing; a video root prepared from another
source or with other settings (its manifest). Per row (listed, never fatal): audio and video
file names that differ, a video file missing (no_video), an ffmpeg failure (failed: corrupt
or unreadable files; retried on a rerun). Rows whose recording location (meta.csv) occurs in
both splits are counted and printed: the official split is location-disjoint as far as we
know, so a count above 0 means the CSVs are not the official ones.

Parallel (--workers), --shard K/N, resumable: outputs are written under a temporary name and
renamed when complete; a rerun skips rows whose file exists. Exit status 0, or 3 when some row
was listed skipped.

Then run the runbook from step 01 with --dataset <the same name> (see the README's
"Two-phase training (Pham et al., DCASE 2021)" section).
"""
import csv
import functools
import hashlib
import json
import os
import shutil
from pathlib import Path

from soundtrack import cli
from soundtrack import datafiles
from soundtrack import jobs
from soundtrack import media

EXIT_SOME_SKIPPED = 3
MANIFEST_NAME = "tau2021_manifest.json"
FOLDS = {"train": "fold1_train.csv", "evaluate": "fold1_evaluate.csv"}
COLUMNS = ("filename_audio", "filename_video", "scene_label")
SUFFIX = {"wav": ".mkv", "video": ".mp4"}


class PrepareError(Exception):
    """A problem with the source tree as a whole: nothing is written."""


def read_table(path):
    """Rows of a TAU CSV as dicts (tab-separated, or comma-separated if the header has no tab)."""
    text = Path(path).read_text(encoding="utf-8-sig")
    header = text.splitlines()[0] if text.strip() else ""
    delimiter = "\t" if "\t" in header else ","
    rows = list(csv.DictReader(text.splitlines(), delimiter=delimiter))
    return rows, [c.strip() for c in (header.split(delimiter) if header else [])]


def fold_rows(tau_root, fold_file):
    path = Path(tau_root) / "evaluation_setup" / fold_file
    if not path.is_file():
        raise PrepareError(f"{path} not found: is --tau-root the unpacked development set "
                           "(folders audio/, video/, evaluation_setup/)?")
    rows, columns = read_table(path)
    missing = [c for c in COLUMNS if c not in columns]
    if missing:
        raise PrepareError(f"{path}: columns {missing} missing (found {columns})")
    return path, rows


def plan(tau_root, split_names, audio_from):
    """Every row of both folds -> ({split: {id: work item}}, {split: {id: reason}} skipped
    before any work, {id: location}, {split: csv path}). Raises PrepareError for problems
    of the whole tree."""
    items, skipped, csv_paths, seen = {}, {}, {}, {}
    for fold, split in split_names.items():
        path, rows = fold_rows(tau_root, FOLDS[fold])
        csv_paths[split] = path
        items[split], skipped[split] = {}, {}
        for n, row in enumerate(rows, start=2):
            audio_rel, video_rel = row["filename_audio"].strip(), row["filename_video"].strip()
            scene = row["scene_label"].strip()
            if not scene or "/" in scene or scene.startswith(".") or "\t" in scene:
                raise PrepareError(f"{path} line {n}: scene label {scene!r} cannot be a "
                                   "folder name")
            name = Path(video_rel).stem
            vid = f"{split}/{scene}/{name}"
            try:
                datafiles.check_id(vid)
            except ValueError as e:
                skipped[split][repr(vid)] = f"{path.name} line {n}: {e}"
                continue
            key = f"{scene}/{name}"
            if key in seen:
                other = seen[key]
                if other[0] != split:
                    raise PrepareError(
                        f"{name!r} is in both {other[1]} and {path.name}: the training and "
                        "evaluation rows must be disjoint")
                skipped[split][vid] = f"{path.name} line {n}: listed twice (first on line " \
                                      f"{other[2]})"
                continue
            seen[key] = (split, path.name, n)
            if Path(audio_rel).stem != name:
                skipped[split][vid] = (f"{path.name} line {n}: audio {audio_rel!r} and video "
                                       f"{video_rel!r} have different names")
                continue
            video = Path(tau_root) / video_rel
            wav = Path(tau_root) / audio_rel
            items[split][vid] = (str(video), str(wav) if audio_from == "wav" else None)
    return items, skipped, csv_paths


def locations(tau_root):
    """{file name stem: recording location} from meta.csv, or {} when it is absent."""
    path = Path(tau_root) / "meta.csv"
    if not path.is_file():
        return {}
    rows, columns = read_table(path)
    if "identifier" not in columns:
        return {}
    return {Path(r["filename_video"].strip()).stem: r["identifier"].strip() for r in rows
            if r.get("filename_video")}


def _digest(path):
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()[:16]


def prepare(item, video_root, suffix, ffmpeg, timeout_s):
    """(id, (video path, wav path or None)) -> Outcome; writes <video_root>/<id><suffix>."""
    vid, (video, wav) = item
    out = Path(video_root) / (vid + suffix)
    if not os.path.isfile(video):
        jobs.write_status(video_root, vid, "no_video", f"{video} not found")
        return jobs.Outcome(vid, "no_video", f"{video} not found")
    reason = ""
    try:
        if suffix == ".mp4":
            def write(tmp):
                try:
                    os.link(video, tmp)
                except OSError:
                    shutil.copyfile(video, tmp)
        else:
            with_wav = wav is not None and os.path.isfile(wav)
            reason = "" if with_wav else f"no wav ({wav}): video only"

            def write(tmp):
                argv = [ffmpeg, "-nostdin", "-v", "error", "-y", "-i", video]
                if with_wav:
                    argv += ["-i", wav, "-map", "0:v:0", "-map", "1:a:0"]
                else:
                    argv += ["-map", "0:v:0"]
                media.run_ffmpeg(argv + ["-c", "copy", "-f", "matroska", str(tmp)], timeout_s)
        datafiles.atomic_write(out, write)
    except media.MediaError as e:
        jobs.write_status(video_root, vid, e.kind, e.reason)
        return jobs.Outcome(vid, e.kind, e.reason)
    jobs.clear_status(video_root, vid)
    return jobs.Outcome(vid, "done", reason)


def check_manifest(path, settings):
    """Refuse a video root prepared from another source or with other settings."""
    if not path.is_file():
        return
    old = json.loads(path.read_text(encoding="utf-8"))
    diff = {k: (old.get(k), v) for k, v in settings.items() if old.get(k) != v}
    if diff:
        raise PrepareError(f"{path} was written with other settings: " + "; ".join(
            f"{k}: {a!r} there, {b!r} now" for k, (a, b) in diff.items())
            + ". Use another --dataset or --video-root, or delete that folder.")


def main(argv=None):
    """Parse, plan the TAU videos, convert them in workers, write the lists and manifest.

    Longer than ~60 lines on purpose: it reads top to bottom as the step does its work
    (the flags, then each phase once); the work itself is in the functions above."""
    parser = cli.parser(__doc__, ["FFMPEG", "FFMPEG_TIMEOUT_SECONDS", "WORKERS"], shard=True)
    parser.add_argument("--tau-root", required=True, metavar="DIR",
                        help="the unpacked TAU Urban Audio-Visual Scenes 2021 development set")
    parser.add_argument("--audio-from", choices=sorted(SUFFIX), default="wav",
                        help="wav: mux each row's wav into its video (default); video: keep "
                             "the mp4 unchanged")
    cfg = cli.parse(parser, argv)
    if cfg.dataset == "demo":
        parser.error("--dataset demo is the built-in demo's name: give the TAU data its own "
                     "(e.g. --dataset tau2021av)")
    if cfg.train_split == cfg.eval_split:
        parser.error("--train-split and --eval-split must differ")
    paths = datafiles.Paths(cfg)
    root = paths.video_root
    split_names = {"train": cfg.train_split, "evaluate": cfg.eval_split}
    suffix = SUFFIX[cfg.audio_from]
    try:
        items, skipped, csv_paths = plan(cfg.tau_root, split_names, cfg.audio_from)
        settings = {"source": str(Path(cfg.tau_root).resolve()), "audio_from": cfg.audio_from,
                    "container": suffix,
                    "splits": {s: csv_paths[s].name for s in csv_paths},
                    "csv_sha1": {s: _digest(p) for s, p in csv_paths.items()}}
        check_manifest(root / MANIFEST_NAME, settings)
    except PrepareError as e:
        cli.fail(cli.explain(e))
    ffmpeg = media.ffmpeg_binary(cfg.ffmpeg)
    where = locations(cfg.tau_root)
    by_split = {s: {where.get(i.rsplit("/", 1)[1]) for i in items[s]} - {None} for s in items}
    shared = by_split[cfg.train_split] & by_split[cfg.eval_split]
    work = functools.partial(prepare, video_root=str(root), suffix=suffix, ffmpeg=ffmpeg,
                             timeout_s=cfg.ffmpeg_timeout_seconds)
    print(f"[00 tau] {cfg.tau_root} -> {root} ({suffix}, sound from {cfg.audio_from})")
    bad, counts = 0, {}
    for split in (cfg.train_split, cfg.eval_split):
        ids = sorted(items[split])
        summary = jobs.run("00 tau", split, cfg.shard, items[split], work, cfg.workers,
                           root, suffix)
        print(summary.text())
        state = jobs.split_state(ids, root, suffix)
        prepared = [i for i in ids if state[i][0] == "done"]
        listed = sorted([(i, r) for i, (s, r) in state.items() if s in ("no_video", "failed")]
                        + list(skipped[split].items()))
        lists = paths.file_lists
        datafiles.write_lines(lists / f"tau2021_{split}_prepared.txt", prepared)
        datafiles.write_lines(lists / f"tau2021_{split}_skipped.txt",
                              [f"{i}\t{r}" for i, r in listed])
        if where:
            datafiles.write_lines(lists / f"tau2021_{split}_locations.txt",
                                  [f"{i}\t{where.get(i.rsplit('/', 1)[1], '')}" for i in ids])
        no_wav = [i for i in prepared if items[split][i][1] is not None
                  and not os.path.isfile(items[split][i][1])]
        if cfg.audio_from == "wav":
            datafiles.write_lines(lists / f"tau2021_{split}_no_wav.txt", no_wav)
        pending = sum(1 for s, _ in state.values() if s == "pending")
        print(f"  {split} on disk: {len(ids) + len(skipped[split])} rows = prepared "
              f"{len(prepared)} + skipped {len(listed)}"
              + (f" + pending {pending} (other shards)" if pending else "")
              + f"  -> {lists}/tau2021_{split}_*.txt"
              + (f"\n  {len(no_wav)} prepared without sound (no wav): step 02 lists them as "
                 "videos without sound" if no_wav else ""))
        counts[split] = {"rows": len(ids) + len(skipped[split]), "prepared": len(prepared),
                         "no_wav": len(no_wav),
                         "skipped": len(listed), "pending": pending,
                         "classes": len({i.split("/")[1] for i in ids})}
        bad += len(listed)
    if where:
        print(f"  recording locations in both splits: {len(shared)}"
              + (f" (e.g. {sorted(shared)[:3]}): not the official location-disjoint split"
                 if shared else ""))
    datafiles.write_text(root / MANIFEST_NAME, json.dumps(
        {**settings, "counts": counts, "shared_locations": len(shared) if where else None},
        indent=1) + "\n")
    return EXIT_SOME_SKIPPED if bad else 0


if __name__ == "__main__":
    cli.run_script(main)
