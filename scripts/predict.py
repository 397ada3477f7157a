"""Apply a trained audio or visual classifier to video (or audio) files: each file's top-5.

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

An audio checkpoint's own front end is used, whatever config.py says: a file's audio is decoded
by ffmpeg at that front end's sample rate and channel policy (media.decode_audio, as step 02),
cut into its audio images (audio.features, as step 03; a track shorter than one patch follows
the checkpoint's short-track policy, audio.pad_short_track), and scored as train.py scores a
track: the mean of its patches' softmax probabilities. A checkpoint without a front-end record,
or whose record does not fit its model's input, is refused. Exit status 0, or 3 when some
file failed.

  python scripts/predict.py runs/esc10/esc10_f5/best.pt clip.mp4 more_clips/ --out preds.json
"""
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import audio  # noqa: E402
import cli  # noqa: E402
import config  # noqa: E402
import datafiles  # noqa: E402
import frames  # noqa: E402
import media  # noqa: E402
import metrics  # noqa: E402
import network  # noqa: E402

EXIT_SOME_FAILED = 3
TOP_K = 5
AUDIO_EXTENSIONS = [".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".wma"]


read_checkpoint = datafiles.read_checkpoint


def scores_of(model, batches, device):
    """Mean softmax over the rows of every input batch -> [n_classes] (train.py's rule)."""
    logits = []
    with torch.no_grad():
        for x in batches:
            logits.append(model(x.to(device))["logits"].float().cpu().numpy())
    logits = np.concatenate(logits)
    return metrics.track_scores(logits, np.zeros(len(logits), np.int64), 1)[0]


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
        return (x[:, None] if x.ndim == 3 else x), (f"padded: {note}" if note else "")

    def probabilities(self, patches):
        """audio images [n, C, 64, 96] -> [n_classes]: the mean of the patches' softmax."""
        return scores_of(self.model, (torch.from_numpy(np.ascontiguousarray(
            patches[i:i + self.batch_size])) for i in range(0, len(patches), self.batch_size)),
            self.device)

    @property
    def record(self):
        return {"front_end": self.front_end.to_dict()}

    @property
    def input_name(self):
        return self.front_end.name

    def predict_file(self, path, ffmpeg, timeout_s):
        """-> dict for the JSON 'files' list; raises media.MediaError or ValueError."""
        fe = self.front_end
        rate = fe.sample_rate_hz
        samples = media.decode_audio(path, rate, ffmpeg, timeout_s, fe.channels)
        samples = samples.astype(np.float32) / 32768.0
        patches, note = self.patches(samples, rate)
        return {"path": str(path), "seconds": round(len(samples) / rate, 3),
                "n_patches": int(len(patches)), "note": note,
                "top5": top5(self.classes, self.probabilities(patches))}


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

    def predict_file(self, path, ffmpeg, timeout_s):
        f = self.frames
        jpeg, offsets, times = media.decode_jpeg_frames(path, f.size_pixels, f.rate,
                                                        f.jpeg_qscale, ffmpeg, timeout_s)
        images = [frames.decode(jpeg[a:b]) for a, b in zip(offsets[:-1], offsets[1:])]
        probs = scores_of(self.model, (torch.stack(images[i:i + self.batch_size])
                                       for i in range(0, len(images), self.batch_size)),
                          self.device)
        return {"path": str(path), "seconds": round(float(times[-1]), 3) if len(times) else 0.0,
                "n_frames": len(images), "note": "", "top5": top5(self.classes, probs)}


def load_classifier(path, device="cpu"):
    """The Classifier or VisualClassifier of a checkpoint (by its "modality")."""
    ckpt = read_checkpoint(path)
    kind = VisualClassifier if ckpt.get("modality") == "visual" else Classifier
    return kind(path, device, ckpt=ckpt)


def find_files(inputs, extensions):
    """Files named, then the media files under each folder named (recursive, sorted)."""
    out = []
    for item in inputs:
        p = Path(item)
        out += datafiles.scan_videos(p, extensions) if p.is_dir() else [p]
    return out


def main(argv=None):
    parser = cli.parser(__doc__, ["FFMPEG", "FFMPEG_TIMEOUT_SECONDS", "DEVICE"])
    parser.add_argument("checkpoint", type=Path, help="runs/<dataset>/<run>/best.pt")
    parser.add_argument("inputs", nargs="+", help="video or audio files, or folders")
    parser.add_argument("--out", type=Path, default=None, metavar="FILE.json")
    parser.add_argument("--extensions", nargs="+", default=config.VIDEO_EXTENSIONS
                        + AUDIO_EXTENSIONS, help="what a folder is searched for "
                        "(default: VIDEO_EXTENSIONS and common audio)")
    cfg = cli.parse(parser, argv)
    device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available()
                                                      else "cpu")
    try:
        clf = load_classifier(cfg.checkpoint, device)
    except (OSError, ValueError) as e:
        parser.error(str(e))
    ffmpeg = media.ffmpeg_binary(cfg.ffmpeg)
    results, failed = [], []
    files = find_files(cfg.inputs, cfg.extensions)
    for path in cli.progress(files, desc="predict", unit="file", disable=len(files) < 2):
        try:
            r = clf.predict_file(path, ffmpeg, cfg.ffmpeg_timeout_seconds)
        except media.MediaError as e:
            failed.append({"path": str(path), "kind": e.kind, "reason": e.reason})
        except (ValueError, OSError) as e:
            failed.append({"path": str(path), "kind": "failed", "reason": str(e)})
        else:
            results.append(r)
            parts = "n_patches" if "n_patches" in r else "n_frames"
            print(f"{path}  ({r['seconds']:.1f} s, {r[parts]} {parts[2:]}"
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
            **clf.record,
            "classes": clf.classes, "files": results, "failed": failed}, indent=2) + "\n")
        print(f"[predict] -> {cfg.out}")
    return EXIT_SOME_FAILED if failed else 0


if __name__ == "__main__":
    sys.exit(main())
