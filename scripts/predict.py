"""Apply a trained audio or visual classifier, or the two-phase system, to video (or audio)
files: each file's top-5.

Reads  a checkpoint written by train.py (runs/<dataset>/<run>/best.pt or last.pt): the model
       weights, model name, classes, the front end its features were made with (the
       features.json record it carries) and the short-track policy; loaded with torch's
       weights_only loader
       files ffmpeg can read (videos or audio); a folder is searched recursively for files
       with --extensions (hidden and .partial files skipped)
Writes with --out FILE.json (atomically):
         {"checkpoint": path, "model": name, "classes": [...], "front_end": {...},
          "files":  [{"path", "seconds", "n_patches", "note", "top5": [[class, probability]
                      x 5, highest first]}, ...]   in the order the files were found,
          "failed": [{"path", "kind", "reason"}, ...]}
Prints each file's top-5 classes with probabilities, and each failure with its reason.

A visual checkpoint (MODEL tv_*, trained on step 08's frames) decodes each video's frames as
step 08 does, with the checkpoint's own frame settings (rate, size, crop, JPEG quality; its
"frames" record), and scores a video as train.py does: the mean of its frames' softmax. The
JSON then holds "frames" instead of "front_end", and each file "n_frames".

The two-phase system (Pham et al., DCASE 2021): given step 12's phase2_F<k>.pt (a Phase II
model of protocol (a), trained on the training split's embeddings), each of its recorded
Phase I backbones (runs/<dataset>/<run>/best.pt) scores the file as below, giving the file's
mean embedding and mean logits exactly as train.py's contract holds them (audio features
rounded to the dtype step 03 stored them in), and the Phase II model fuses them. The JSON
then holds "phase2" and "sources", and each file "n_parts" (patches or frames per source)
and "sources_top5". With --compare-split SPLIT, a file under VIDEO_ROOT whose id is in
SPLIT's contract is checked: the JSON's "compared" lists, per file and source, the largest
|difference| between the recomputed and the stored embedding, logits and scores, and between
the fused probabilities and step 12's <SPLIT>_F<k>_a_scores.npy row.

An audio checkpoint's own front end is used, whatever config.py says: a file's audio is decoded
by ffmpeg at that front end's sample rate and channel policy (media.decode_audio, as step 02),
cut into its audio images (audio.features, as step 03; a track shorter than one patch follows
the checkpoint's short-track policy, audio.pad_short_track), and scored as train.py scores a
track: the mean of its patches' softmax probabilities. A checkpoint without a front-end record,
or whose record does not fit its model's input, is refused. Exit status 0, or 3 when some
file failed.

Files are decoded in WORKERS threads (ffmpeg, audio images, JPEGs), at most 2 x WORKERS
ahead; the model scores them one by one in file order.

With --scores-out DIR, also (step 05's contract, for step 07 --apply --eval-split SPLIT):
  DIR/<SPLIT>_scores.npy    float32 [n_files_scored, n_classes]  (SPLIT = EVAL_SPLIT)
  DIR/<SPLIT>_logits.npy, <SPLIT>_embedding.npy  (one model: its mean logits and embedding)
  DIR/<SPLIT>_ids.txt       each file's id: its dataset id under VIDEO_ROOT, else its path as
                            given, less the extension
  DIR/record.json           records.py: the model, classes, front end or frames, checkpoint
With --fuse WEIGHTS.json NAME=CHECKPOINT ...: step 07's weights.json fuses the positional
checkpoint (the source not named) with the named ones, as step 07 --apply would: each file's
fused top-5, and each source's ("sources_top5").

  python scripts/predict.py runs/esc10/esc10_f5/best.pt clip.mp4 more_clips/ --out preds.json
  python scripts/predict.py runs/demo/cnn_mel/best.pt clips/ --workers 4 \
      --fuse npy_files/demo/fusion/weights.json video=runs/demo/demo_video/best.pt
  python scripts/predict.py npy_files/demo/two_phase/phase2_F4.pt clip.mp4 --out preds.json
"""
import itertools
import json
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

import config
from soundtrack import cli
from soundtrack import datafiles
from soundtrack import media
from soundtrack import records
from soundtrack.inference import FusedClassifier, TwoPhaseClassifier, load_classifier

EXIT_SOME_FAILED = 3
AUDIO_EXTENSIONS = [".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".wma"]


def find_files(inputs, extensions):
    """Files named, then the media files under each folder named (recursive, sorted)."""
    out = []
    for item in inputs:
        p = Path(item)
        out += datafiles.scan_videos(p, extensions) if p.is_dir() else [p]
    return out


def scored(clf, files, ffmpeg, timeout_s, workers):
    """(path, result dict or the exception that failed it) for each file, in file order. The
    decoding (clf.prepare: ffmpeg, audio images, JPEGs) runs in `workers` threads, at most
    2 x workers files ahead; the model (clf.finish) in this thread, one file at a time."""
    def prepare(path):
        try:
            return clf.prepare(path, ffmpeg, timeout_s)
        except (media.MediaError, ValueError, OSError) as e:
            return e

    def finish(path, prepared):
        if isinstance(prepared, Exception):
            return prepared
        try:
            return clf.finish(path, prepared)
        except (ValueError, OSError) as e:
            return e

    if workers <= 1:
        for path in files:
            yield path, finish(path, prepare(path))
        return
    with ThreadPoolExecutor(workers) as pool:
        pending, todo = deque(), iter(files)
        for path in itertools.islice(todo, 2 * workers):
            pending.append((path, pool.submit(prepare, path)))
        while pending:
            path, future = pending.popleft()
            nxt = next(todo, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(prepare, nxt)))
            yield path, finish(path, future.result())


def file_id(path, paths):
    """A file's id in --scores-out: its dataset id under VIDEO_ROOT, else its path as given,
    without the extension (the same files give the same ids in every run)."""
    try:
        return datafiles.video_id(Path(path).resolve(), paths.video_root.resolve())
    except ValueError:
        return Path(path).with_suffix("").as_posix()


def write_scores(out_dir, split, clf, results, paths, cfg):
    """--scores-out: step 05's contract for the scored files (scores, and logits and
    embeddings where one model made them), their ids and the record, so that step 07
    --apply reads them as any score file."""
    ids = [file_id(r["path"], paths) for r in results]
    for i in ids:
        datafiles.check_id(i)
    if len(set(ids)) != len(ids):
        raise ValueError("--scores-out: two files give the same id (same path less extension)")
    outs = [r["_outputs"] for r in results]
    for what in ("scores", "logits", "embedding"):
        if outs and all(what in o for o in outs):
            datafiles.save_npy(out_dir / f"{split}_{what}.npy",
                               np.stack([o[what] for o in outs]).astype(np.float32))
    datafiles.write_lines(out_dir / f"{split}_ids.txt", ids)
    own = getattr(clf, "record", {}) if not isinstance(clf, TwoPhaseClassifier) else {}
    record = records.new("predict.py", getattr(clf, "modality", "fused"), clf.classes,
                         model=clf.model_name, front_end=own.get("front_end"),
                         frames=own.get("frames"))
    records.add_split(records.folder_record(out_dir), record, split, len(ids),
                      checkpoint={"path": paths.relative(cfg.checkpoint), "epoch": None,
                                  "which": Path(cfg.checkpoint).stem, "why": "given"})
    print(f"[predict] -> {out_dir}/{split}_scores.npy {(len(ids), len(clf.classes))} and "
          f"{split}_ids.txt (step 07 --apply --eval-split {split} reads them)")


def main(argv=None):
    """Parse, load the classifier, score each file (in order), write the JSON.

    Longer than ~60 lines on purpose: the flags and the one loop over files read best
    together; the classifiers are in soundtrack/inference.py."""
    parser = cli.parser(__doc__, ["FFMPEG", "FFMPEG_TIMEOUT_SECONDS", "DEVICE", "WORKERS"])
    parser.add_argument("checkpoint", type=Path, help="runs/<dataset>/<run>/best.pt, or step "
                        "12's npy_files/<dataset>/two_phase/phase2_F<k>.pt")
    parser.add_argument("inputs", nargs="+", help="video or audio files, or folders")
    parser.add_argument("--out", type=Path, default=None, metavar="FILE.json")
    parser.add_argument("--scores-out", type=Path, default=None, metavar="DIR",
                        help="also write the scores of every file scored as step 05's "
                             "contract (<split>_scores.npy, _ids.txt, record.json; split = "
                             "EVAL_SPLIT), for step 07 --apply")
    parser.add_argument("--fuse", nargs="+", default=None, metavar="WEIGHTS.json NAME=CKPT",
                        help="fuse with step 07's weights.json: the checkpoint above is one "
                             "of its sources, NAME=CHECKPOINT gives each other one (e.g. "
                             "--fuse npy_files/demo/fusion/weights.json "
                             "video=runs/demo/demo_video/best.pt)")
    parser.add_argument("--extensions", nargs="+", default=config.VIDEO_EXTENSIONS
                        + AUDIO_EXTENSIONS, help="what a folder is searched for "
                        "(default: VIDEO_EXTENSIONS and common audio)")
    parser.add_argument("--compare-split", default=None, metavar="SPLIT",
                        help="two-phase model: for files under VIDEO_ROOT whose id is in "
                        "SPLIT's contract, report how far the recomputed embeddings, logits "
                        "and fused probabilities are from what Phase II read")
    cfg = cli.parse(parser, argv)
    paths = datafiles.Paths(cfg)
    device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available()
                                                      else "cpu")
    try:
        clf = (fused_classifier(cfg.fuse, cfg.checkpoint, device) if cfg.fuse else
               load_classifier(cfg.checkpoint, device, paths))
    except (OSError, ValueError) as e:
        cli.fail(cli.explain(e))
    ffmpeg = media.ffmpeg_binary(cfg.ffmpeg)
    results, failed, checks = [], [], []
    files = find_files(cfg.inputs, cfg.extensions)
    t0 = time.perf_counter()
    for path, r in cli.progress(scored(clf, files, ffmpeg, cfg.ffmpeg_timeout_seconds,
                                       cfg.workers),
                                total=len(files), desc="predict", unit="file",
                                disable=len(files) < 2):
        if isinstance(r, Exception):
            failed.append({"path": str(path), "kind": getattr(r, "kind", "failed"),
                           "reason": getattr(r, "reason", str(r))})
            print(f"{path}  FAILED ({failed[-1]['kind']}): {failed[-1]['reason']}")
            continue
        if cfg.compare_split and isinstance(clf, TwoPhaseClassifier):
            check = compare_file(clf, r, path, paths, cfg.compare_split, cfg.checkpoint)
            if check is not None:
                checks.append(check)
        results.append(r)
        parts = next(k for k in ("n_patches", "n_frames", "n_parts") if k in r)
        count = (", ".join(f"{k} {v}" for k, v in r[parts].items())
                 if isinstance(r[parts], dict) else r[parts])
        print(f"{path}  ({r['seconds']:.1f} s, {count} {parts[2:]}"
              + (f"; {r['note']}" if r["note"] else "") + ")")
        for name, p in r["top5"]:
            print(f"  {p:7.3f}  {name}")
    seconds = time.perf_counter() - t0
    print(f"[predict] {len(results)} files scored, {len(failed)} failed "
          f"({clf.model_name} on {clf.input_name}, "
          f"{len(clf.classes)} classes, {cfg.checkpoint}); {seconds:.3f} s, "
          f"{len(files) / max(seconds, 1e-9):.2f} files/s with {cfg.workers} workers")
    if cfg.scores_out and results:
        write_scores(cfg.scores_out, cfg.eval_split, clf, results, paths, cfg)
    if cfg.out:
        datafiles.write_text(cfg.out, json.dumps({
            "checkpoint": str(cfg.checkpoint), "model": clf.model_name,
            **(clf.record_out if isinstance(clf, TwoPhaseClassifier) else clf.record),
            "classes": clf.classes,
            "files": [{k: v for k, v in r.items() if not k.startswith("_")} for r in results],
            "failed": failed,
            **({"compared": checks} if cfg.compare_split else {})}, indent=2) + "\n")
        print(f"[predict] -> {cfg.out}")
    if cfg.compare_split:
        worst = max((max(v for d in c["max_abs_diff"].values() for v in d.values())
                     for c in checks), default=float("nan"))
        fused = [c["phase2_probs_max_abs_diff"] for c in checks
                 if c["phase2_probs_max_abs_diff"] is not None]
        print(f"[predict] compared {len(checks)} files with the {cfg.compare_split} contract "
              f"rows Phase II read: max |difference| of embeddings / logits / scores "
              f"{worst:.3g}; of the fused probabilities {max(fused, default=float('nan')):.3g}")
    return EXIT_SOME_FAILED if failed else 0


def fused_classifier(fuse, checkpoint, device):
    """--fuse WEIGHTS.json NAME=CKPT ...: the positional checkpoint is the one source not
    named."""
    weights, *named = fuse
    given = {}
    for item in named:
        name, sep, path = item.partition("=")
        if not sep or not path:
            raise ValueError(f"--fuse: expected NAME=CHECKPOINT after {weights}, got {item!r}")
        given[name] = path
    with open(weights, encoding="utf-8") as f:
        sources = json.load(f).get("sources", [])
    rest = [k for k in sources if k not in given]
    if len(rest) != 1:
        raise ValueError(f"--fuse: {weights} fuses {sources}; name every source but the one "
                         f"the positional checkpoint {checkpoint} is (NAME=CHECKPOINT)")
    return FusedClassifier(weights, {**given, rest[0]: str(checkpoint)}, device)


def compare_file(clf, result, path, paths, split, model_path):
    """TwoPhaseClassifier.compare for a file under VIDEO_ROOT (None elsewhere)."""
    try:
        vid = datafiles.video_id(Path(path).resolve(), paths.video_root.resolve())
    except ValueError:
        return None
    return clf.compare(vid, result, split, Path(model_path).parent)


if __name__ == "__main__":
    cli.run_script(main)
