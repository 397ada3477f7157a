"""Apply a trained audio classifier to any video or audio files: each file's top-5 classes.

Reads  a checkpoint written by train.py (runs/<dataset>/<run>/best.pt or last.pt): the model
       weights, model name, in_channels, classes and the config it was trained with (its
       FEATURE and DELTAS pick the front end here); loaded with torch's weights_only loader
       files ffmpeg can read (videos or audio); a folder is searched recursively for files
       with --extensions (hidden and .partial files skipped)
Writes with --out FILE.json (atomically):
         {"checkpoint": path, "model": name, "classes": [...], "feature": "mel",
          "files":  [{"path", "seconds", "n_patches", "note", "top5": [[class, probability]
                      x 5, highest first]}, ...]   in the order the files were found,
          "failed": [{"path", "kind", "reason"}, ...]}
Prints each file's top-5 classes with probabilities, and each failure with its reason.

A file's audio is decoded by ffmpeg to SAMPLE_RATE_HZ mono (media.decode_audio), cut into
the checkpoint's audio images (audio.features; a track shorter than one 0.96 s patch is
zero-padded to one, noted "padded"), and scored as train.py scores a track: the mean of its
patches' softmax probabilities. Exit status 0, or 3 when some file failed.

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
import media  # noqa: E402
import metrics  # noqa: E402
import network  # noqa: E402

EXIT_SOME_FAILED = 3
TOP_K = 5
AUDIO_EXTENSIONS = [".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".wma"]
# Front-end settings that audio.py takes from config.py: a checkpoint trained on features made
# with other values would be fed patches unlike its training data.
FRONT_END_KEYS = ["sample_rate_hz", "stft_window_seconds", "stft_hop_seconds", "fft_length",
                  "num_mel_bands", "mel_min_hz", "mel_max_hz", "log_offset", "patch_frames",
                  "patch_hop_frames"]


class Classifier:
    """A checkpoint's model and front end: waveform -> class probabilities."""

    def __init__(self, path, device="cpu", batch_size=128):
        try:
            # torch.__version__ (a str subclass) is among the provenance train.py stores
            with torch.serialization.safe_globals([torch.torch_version.TorchVersion]):
                ckpt = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unreadable checkpoint is reported alike
            raise ValueError(f"{path}: cannot read as a train.py checkpoint ({e})") from None
        missing = [k for k in ("model", "model_name", "classes", "in_channels", "config")
                   if k not in ckpt]
        if missing:
            raise ValueError(f"{path}: not a train.py checkpoint (no {', '.join(missing)})")
        cfg = ckpt["config"]
        differ = {k: (cfg[k], getattr(config, k.upper())) for k in FRONT_END_KEYS
                  if k in cfg and cfg[k] != getattr(config, k.upper())}
        if differ:
            raise ValueError(f"{path} was trained on features made with other front-end "
                             f"settings than config.py's (checkpoint, here): {differ}")
        self.path, self.classes = Path(path), list(ckpt["classes"])
        self.model_name = ckpt["model_name"]
        self.feature, self.deltas = cfg["feature"], cfg["deltas"]
        self.in_channels = int(ckpt["in_channels"])
        if self.in_channels != (3 if self.deltas else 1):
            raise ValueError(f"{path}: in_channels {self.in_channels} does not fit "
                             f"deltas={self.deltas}")
        self.device, self.batch_size = torch.device(device), batch_size
        self.model = network.build(self.model_name, n_classes=len(self.classes),
                                   in_channels=self.in_channels)
        self.model.load_state_dict(ckpt["model"])
        self.model.to(self.device).eval()

    def patches(self, samples, sample_rate):
        """float waveform [n] -> (audio images float32 [n_patches, C, 64, 96], note)."""
        note = ""
        one_patch = int(np.ceil(audio.ONE_PATCH_SAMPLES * sample_rate / audio.SAMPLE_RATE_HZ))
        if len(samples) < one_patch:
            note = f"padded: {len(samples) / sample_rate:.2f} s of audio, zero-padded to one patch"
            samples = np.pad(samples, (0, one_patch - len(samples)))
        x = audio.features(samples, sample_rate, feature=self.feature, deltas=self.deltas)
        return (x[:, None] if x.ndim == 3 else x), note

    @torch.no_grad()
    def probabilities(self, patches):
        """audio images [n, C, 64, 96] -> [n_classes]: the mean of the patches' softmax."""
        logits = []
        for start in range(0, len(patches), self.batch_size):
            x = torch.from_numpy(np.ascontiguousarray(patches[start:start + self.batch_size]))
            logits.append(self.model(x.to(self.device))["logits"].float().cpu().numpy())
        logits = np.concatenate(logits)
        return metrics.track_scores(logits, np.zeros(len(logits), np.int64), 1)[0]


def find_files(inputs, extensions):
    """Files named, then the media files under each folder named (recursive, sorted)."""
    out = []
    for item in inputs:
        p = Path(item)
        out += datafiles.scan_videos(p, extensions) if p.is_dir() else [p]
    return out


def predict_file(clf, path, ffmpeg, timeout_s):
    """-> dict for the JSON 'files' list; raises media.MediaError or ValueError."""
    rate = audio.SAMPLE_RATE_HZ
    samples = media.decode_audio(path, rate, ffmpeg, timeout_s).astype(np.float32) / 32768.0
    patches, note = clf.patches(samples, rate)
    probs = clf.probabilities(patches)
    top = np.argsort(-probs, kind="stable")[:TOP_K]
    return {"path": str(path), "seconds": round(len(samples) / rate, 3),
            "n_patches": int(len(patches)), "note": note,
            "top5": [[clf.classes[i], round(float(probs[i]), 6)] for i in top]}


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
        clf = Classifier(cfg.checkpoint, device)
    except (OSError, ValueError) as e:
        parser.error(str(e))
    ffmpeg = media.ffmpeg_binary(cfg.ffmpeg)
    results, failed = [], []
    for path in find_files(cfg.inputs, cfg.extensions):
        try:
            r = predict_file(clf, path, ffmpeg, cfg.ffmpeg_timeout_seconds)
        except media.MediaError as e:
            failed.append({"path": str(path), "kind": e.kind, "reason": e.reason})
        except (ValueError, OSError) as e:
            failed.append({"path": str(path), "kind": "failed", "reason": str(e)})
        else:
            results.append(r)
            print(f"{path}  ({r['seconds']:.1f} s, {r['n_patches']} patches"
                  + (f"; {r['note']}" if r["note"] else "") + ")")
            for name, p in r["top5"]:
                print(f"  {p:7.3f}  {name}")
            continue
        print(f"{path}  FAILED ({failed[-1]['kind']}): {failed[-1]['reason']}")
    print(f"[predict] {len(results)} files scored, {len(failed)} failed "
          f"({clf.model_name} on {clf.feature}{'_deltas' if clf.deltas else ''}, "
          f"{len(clf.classes)} classes, {cfg.checkpoint})")
    if cfg.out:
        datafiles.write_text(cfg.out, json.dumps({
            "checkpoint": str(cfg.checkpoint), "model": clf.model_name,
            "feature": clf.feature + ("_deltas" if clf.deltas else ""),
            "classes": clf.classes, "files": results, "failed": failed}, indent=2) + "\n")
        print(f"[predict] -> {cfg.out}")
    return EXIT_SOME_FAILED if failed else 0


if __name__ == "__main__":
    sys.exit(main())
