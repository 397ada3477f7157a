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

  python scripts/predict.py runs/esc10/esc10_f5/best.pt clip.mp4 more_clips/ --out preds.json
  python scripts/predict.py npy_files/demo/two_phase/phase2_F4.pt clip.mp4 --out preds.json
"""
import json
import sys
from pathlib import Path

import numpy as np
import torch

from soundtrack import audio
from soundtrack import cli
import config
from soundtrack import datafiles
from soundtrack import frames
from soundtrack import media
from soundtrack import metrics
import network

EXIT_SOME_FAILED = 3
TOP_K = 5
AUDIO_EXTENSIONS = [".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".wma"]


read_checkpoint = datafiles.read_checkpoint


def outputs_of(model, batches, device):
    """One track's (video's) outputs from its patches (frames), as train.py's contract has
    them: {"scores": mean softmax [n_classes], "logits": mean logits [n_classes],
    "embedding": mean embedding [d]}."""
    logits, embedding = [], []
    with torch.no_grad():
        for x in batches:
            out = model(x.to(device))
            logits.append(out["logits"].float().cpu().numpy())
            embedding.append(out["embedding"].float().cpu().numpy())
    logits, embedding = np.concatenate(logits), np.concatenate(embedding)
    track = np.zeros(len(logits), np.int64)
    return {"scores": metrics.track_scores(logits, track, 1)[0],
            "logits": metrics.track_mean(logits, track, 1)[0],
            "embedding": metrics.track_mean(embedding, track, 1)[0]}


def scores_of(model, batches, device):
    """Mean softmax over the rows of every input batch -> [n_classes] (train.py's rule)."""
    return outputs_of(model, batches, device)["scores"]


def top5(classes, probs):
    top = np.argsort(-probs, kind="stable")[:TOP_K]
    return [[classes[i], round(float(probs[i]), 6)] for i in top]


class Classifier:
    """A checkpoint's model and front end: waveform -> class probabilities."""

    def __init__(self, path, device="cpu", batch_size=128, ckpt=None):
        ckpt = read_checkpoint(path) if ckpt is None else ckpt
        missing = [k for k in ("model", "model_name", "classes", "front_end",
                               "short_track_policy") if k not in ckpt]
        if missing:
            raise ValueError(f"{path}: not a train.py checkpoint with a front-end record (no "
                             f"{', '.join(missing)}); retrain with this version")
        self.path, self.classes = Path(path), list(ckpt["classes"])
        self.model_name = ckpt["model_name"]
        self.front_end = audio.FrontEnd.from_dict(ckpt["front_end"], where=f"{path} front_end")
        self.policy = ckpt["short_track_policy"]
        # step 03 stored the training features in this dtype: round to it, as train.py saw them
        self.feature_dtype = ckpt.get("feature_dtype", "float32")
        if list(ckpt.get("patch_shape", [])) != list(self.front_end.patch_shape):
            raise ValueError(f"{path}: its model was trained on patches "
                             f"{ckpt.get('patch_shape')}, its front end makes "
                             f"{list(self.front_end.patch_shape)}")
        self.device, self.batch_size = torch.device(device), batch_size
        self.model = network.build_audio(self.model_name, len(self.classes),
                                         self.front_end.patch_shape)
        self.model.load_state_dict(ckpt["model"])
        self.model.to(self.device).eval()

    def patches(self, samples, sample_rate):
        """float waveform [n] or [n, channels] -> (audio images [n_patches, C, bands,
        frames] float32, note: "" or why the track was padded)."""
        samples, note = audio.pad_short_track(samples, sample_rate, self.front_end,
                                              self.policy)
        if samples is None:
            raise ValueError(f"dropped: {note}")
        x = audio.features(samples, sample_rate, self.front_end)
        x = x.astype(self.feature_dtype).astype(np.float32)
        return (x[:, None] if x.ndim == 3 else x), (f"padded: {note}" if note else "")

    def probabilities(self, patches):
        """audio images [n, C, 64, 96] -> [n_classes]: the mean of the patches' softmax."""
        return self.outputs(patches)["scores"]

    def outputs(self, patches):
        """audio images [n, C, bands, frames] -> ``outputs_of``'s dict."""
        return outputs_of(self.model, (torch.from_numpy(np.ascontiguousarray(
            patches[i:i + self.batch_size])) for i in range(0, len(patches), self.batch_size)),
            self.device)

    def file_outputs(self, path, ffmpeg, timeout_s):
        """-> (outputs_of's dict, {"seconds", "n_patches", "note"}) of one media file."""
        fe = self.front_end
        rate = fe.sample_rate_hz
        samples = media.decode_audio(path, rate, ffmpeg, timeout_s, fe.channels)
        samples = samples.astype(np.float32) / 32768.0
        patches, note = self.patches(samples, rate)
        return self.outputs(patches), {"seconds": round(len(samples) / rate, 3),
                                       "n_patches": int(len(patches)), "note": note}

    @property
    def record(self):
        return {"front_end": self.front_end.to_dict()}

    @property
    def input_name(self):
        return self.front_end.name

    def predict_file(self, path, ffmpeg, timeout_s):
        """-> dict for the JSON 'files' list; raises media.MediaError or ValueError."""
        out, info = self.file_outputs(path, ffmpeg, timeout_s)
        return {"path": str(path), **info, "top5": top5(self.classes, out["scores"])}


class VisualClassifier:
    """A visual checkpoint's model and frame settings: video -> class probabilities."""

    def __init__(self, path, device="cpu", batch_size=128, ckpt=None):
        ckpt = read_checkpoint(path) if ckpt is None else ckpt
        missing = [k for k in ("model", "model_name", "classes", "frames") if k not in ckpt]
        if missing:
            raise ValueError(f"{path}: not a visual train.py checkpoint (no "
                             f"{', '.join(missing)})")
        self.path, self.classes = Path(path), list(ckpt["classes"])
        self.model_name = ckpt["model_name"]
        self.frames = frames.FrameSettings.from_dict(ckpt["frames"], f"{path} frames")
        self.device, self.batch_size = torch.device(device), batch_size
        self.model = network.build(self.model_name, n_classes=len(self.classes), weights="none")
        self.model.load_state_dict(ckpt["model"])
        self.model.to(self.device).eval()

    @property
    def record(self):
        return {"frames": self.frames.to_dict()}

    @property
    def input_name(self):
        return f"frames {self.frames.folder}"

    def file_outputs(self, path, ffmpeg, timeout_s):
        """-> (outputs_of's dict, {"seconds", "n_frames", "note"}) of one video file."""
        f = self.frames
        jpeg, offsets, times = media.decode_jpeg_frames(path, f.size_pixels, f.rate,
                                                        f.jpeg_qscale, ffmpeg, timeout_s)
        images = [frames.decode(jpeg[a:b]) for a, b in zip(offsets[:-1], offsets[1:])]
        if not images:
            raise ValueError(f"{path}: no frames decoded")
        out = outputs_of(self.model, (torch.stack(images[i:i + self.batch_size])
                                      for i in range(0, len(images), self.batch_size)),
                         self.device)
        return out, {"seconds": round(float(times[-1]), 3) if len(times) else 0.0,
                     "n_frames": len(images), "note": ""}

    def predict_file(self, path, ffmpeg, timeout_s):
        out, info = self.file_outputs(path, ffmpeg, timeout_s)
        return {"path": str(path), **info, "top5": top5(self.classes, out["scores"])}


def backbone(path, device="cpu", ckpt=None):
    """The Classifier or VisualClassifier of a train.py checkpoint (by its "modality")."""
    ckpt = read_checkpoint(path) if ckpt is None else ckpt
    kind = VisualClassifier if ckpt.get("modality") == "visual" else Classifier
    return kind(path, device, ckpt=ckpt)


class TwoPhaseClassifier:
    """The two-phase system from files: each Phase I backbone (its own front end or frames)
    gives a file's embedding and logits as train.py's contract has them, then step 12's
    Phase II model (phase2_F<k>.pt, protocol (a)) fuses them."""

    def __init__(self, path, paths, device="cpu", saved=None):
        from soundtrack import learned_fusion
        self.path = Path(path)
        self.model, self.record = learned_fusion.load_model(path)
        self.predict_saved = learned_fusion.predict_saved
        self.classes = list(self.record["classes"])
        self.model_name = f"two-phase {self.record['phase2_layer']}"
        self.what = learned_fusion.PHASE2_LAYERS[self.record["phase2_layer"]][0]
        self.backbones, self.npy_dirs = {}, {}
        for name in self.record["names"]:
            src = self.record["sources"][name]
            if not src["checkpoint"]:
                raise ValueError(f"{path}: source {name} has no checkpoint recorded")
            ckpt_path = resolve_recorded(paths, src["checkpoint"])
            self.backbones[name] = backbone(ckpt_path, device)
            if self.backbones[name].classes != self.classes:
                raise ValueError(f"{ckpt_path}: its classes are not those of {path}")
            self.npy_dirs[name] = resolve_recorded(paths, src["npy_dir"])

    @property
    def record_out(self):
        return {"phase2": {k: self.record[k] for k in ("phase2_layer", "protocol", "layer",
                                                       "names", "kinds", "dataset")},
                "sources": self.record["sources"]}

    @property
    def input_name(self):
        return ", ".join(f"{k}: {b.input_name}" for k, b in self.backbones.items())

    def file_outputs(self, path, ffmpeg, timeout_s):
        """-> ({source: outputs_of's dict}, {"seconds", "n_parts": {source: n}, "note"})."""
        outs, parts, notes, seconds = {}, {}, [], 0.0
        for name, b in self.backbones.items():
            outs[name], info = b.file_outputs(path, ffmpeg, timeout_s)
            parts[name] = info.get("n_patches", info.get("n_frames"))
            seconds = max(seconds, info["seconds"])
            if info["note"]:
                notes.append(f"{name}: {info['note']}")
        return outs, {"seconds": seconds, "n_parts": parts, "note": "; ".join(notes)}

    def predict_file(self, path, ffmpeg, timeout_s):
        outs, info = self.file_outputs(path, ffmpeg, timeout_s)
        probs = self.predict_saved(self.model, self.record,
                                   {k: o[self.what][None] for k, o in outs.items()})[0]
        return {"path": str(path), **info, "top5": top5(self.classes, probs),
                "sources_top5": {k: top5(self.classes, o["scores"]) for k, o in outs.items()},
                "_outputs": outs, "_probs": probs}

    def compare(self, vid, result, split, step12_dir):
        """How far this file's recomputed backbone outputs (and fused probabilities) are
        from the contract rows Phase II read for id `vid`: max |difference| per source and
        array; None if some source's `split` does not hold the id."""
        diffs = {}
        for name, d in self.npy_dirs.items():
            ids = datafiles.read_ids(d / f"{split}_ids.txt")
            if vid not in ids:
                return None
            row = ids.index(vid)
            diffs[name] = {what: float(np.abs(np.load(d / f"{split}_{what}.npy",
                                                      mmap_mode="r")[row]
                                              - result["_outputs"][name][what]).max())
                           for what in ("embedding", "logits", "scores")}
        fused = None
        scores = step12_dir / f"{split}_{self.record['phase2_layer']}_a_scores.npy"
        ids_path = step12_dir / f"{split}_two_phase_ids.txt"
        if scores.exists() and ids_path.exists():
            ids = datafiles.read_ids(ids_path)
            if vid in ids:
                fused = float(np.abs(np.load(scores)[ids.index(vid)] - result["_probs"]).max())
        return {"id": vid, "split": split, "max_abs_diff": diffs,
                "phase2_probs_max_abs_diff": fused}


def resolve_recorded(paths, recorded):
    """A path as step 12 recorded it (relative to the output root, else the repository)."""
    p = Path(recorded)
    if p.is_absolute():
        return p
    for root in (cli.repo_path(paths.cfg.output_root or "."), cli.repo_path(".")):
        if (root / p).exists():
            return root / p
    raise ValueError(f"recorded path {recorded} is under neither the output root nor the "
                     f"repository")


def is_phase2_model(path):
    """True for step 12's phase2_F<k>.pt (a record + state file), False for train.py's."""
    return Path(path).is_file() and Path(path).name.startswith("phase2_F")


def load_classifier(path, device="cpu", paths=None):
    """The Classifier, VisualClassifier or (a step 12 phase2_F<k>.pt) TwoPhaseClassifier."""
    if is_phase2_model(path):
        return TwoPhaseClassifier(path, paths, device)
    return backbone(path, device)


def find_files(inputs, extensions):
    """Files named, then the media files under each folder named (recursive, sorted)."""
    out = []
    for item in inputs:
        p = Path(item)
        out += datafiles.scan_videos(p, extensions) if p.is_dir() else [p]
    return out


def main(argv=None):
    parser = cli.parser(__doc__, ["FFMPEG", "FFMPEG_TIMEOUT_SECONDS", "DEVICE"])
    parser.add_argument("checkpoint", type=Path, help="runs/<dataset>/<run>/best.pt, or step "
                        "12's npy_files/<dataset>/two_phase/phase2_F<k>.pt")
    parser.add_argument("inputs", nargs="+", help="video or audio files, or folders")
    parser.add_argument("--out", type=Path, default=None, metavar="FILE.json")
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
        clf = load_classifier(cfg.checkpoint, device, paths)
    except (OSError, ValueError) as e:
        parser.error(str(e))
    ffmpeg = media.ffmpeg_binary(cfg.ffmpeg)
    results, failed, checks = [], [], []
    files = find_files(cfg.inputs, cfg.extensions)
    for path in cli.progress(files, desc="predict", unit="file", disable=len(files) < 2):
        try:
            r = clf.predict_file(path, ffmpeg, cfg.ffmpeg_timeout_seconds)
        except media.MediaError as e:
            failed.append({"path": str(path), "kind": e.kind, "reason": e.reason})
        except (ValueError, OSError) as e:
            failed.append({"path": str(path), "kind": "failed", "reason": str(e)})
        else:
            if cfg.compare_split and isinstance(clf, TwoPhaseClassifier):
                check = compare_file(clf, r, path, paths, cfg.compare_split, cfg.checkpoint)
                if check is not None:
                    checks.append(check)
            r = {k: v for k, v in r.items() if not k.startswith("_")}
            results.append(r)
            parts = next(k for k in ("n_patches", "n_frames", "n_parts") if k in r)
            count = (", ".join(f"{k} {v}" for k, v in r[parts].items())
                     if isinstance(r[parts], dict) else r[parts])
            print(f"{path}  ({r['seconds']:.1f} s, {count} {parts[2:]}"
                  + (f"; {r['note']}" if r["note"] else "") + ")")
            for name, p in r["top5"]:
                print(f"  {p:7.3f}  {name}")
            continue
        print(f"{path}  FAILED ({failed[-1]['kind']}): {failed[-1]['reason']}")
    print(f"[predict] {len(results)} files scored, {len(failed)} failed "
          f"({clf.model_name} on {clf.input_name}, "
          f"{len(clf.classes)} classes, {cfg.checkpoint})")
    if cfg.out:
        datafiles.write_text(cfg.out, json.dumps({
            "checkpoint": str(cfg.checkpoint), "model": clf.model_name,
            **(clf.record_out if isinstance(clf, TwoPhaseClassifier) else clf.record),
            "classes": clf.classes, "files": results, "failed": failed,
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


def compare_file(clf, result, path, paths, split, model_path):
    """TwoPhaseClassifier.compare for a file under VIDEO_ROOT (None elsewhere)."""
    try:
        vid = datafiles.video_id(Path(path).resolve(), paths.video_root.resolve())
    except ValueError:
        return None
    return clf.compare(vid, result, split, Path(model_path).parent)


if __name__ == "__main__":
    sys.exit(main())
