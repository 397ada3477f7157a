"""Video frames on disk (step 08) and as training examples (train.py's visual task).

One file per video, ``<frame_dir>/<id>.npz`` (an uncompressed npz written byte for byte the
same by every run, so a rerun after kill -9 is identical):
  ``jpeg``     uint8 [n_bytes]          the frames' JPEG images back to back (an MJPEG stream)
  ``offsets``  int64 [n_frames + 1]     frame k is jpeg[offsets[k]:offsets[k + 1]]
  ``times``    float64 [n_frames]       presentation time of frame k, seconds from the file's
                                        start (the clock of step 02's wavs)
Frames are RGB, ``FRAME_SIZE_PIXELS`` square: the short side scaled to that size, then the
centre cropped (the long side loses its ends). ``frames.json`` beside them records the
settings (``FrameSettings``); every reader refuses frames made with other settings.
"""
import io
import json
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

import config
from soundtrack import atomic
from soundtrack.errors import missing_message

RECORD = "frames.json"
CROP = "short side scaled to the size (ffmpeg area filter), then centre crop to a square"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)     # a fixed member date: the same bytes on every run


@dataclass(frozen=True)
class FrameSettings:
    """What decides step 08's frames: rate, size, crop and JPEG quality.

    frames_per_second: "native" (every source frame, its own time) or a positive number as
      text ("2", "2.5"): frames at start + k / fps.
    size_pixels: frames are size x size (see CROP).
    jpeg_qscale: ffmpeg's mjpeg -q:v, 2 (best) .. 31.
    """
    frames_per_second: str
    size_pixels: int
    jpeg_qscale: int
    crop: str = CROP

    def __post_init__(self):
        if self.frames_per_second != "native":
            try:
                ok = float(self.frames_per_second) > 0
            except ValueError:
                ok = False
            if not ok:
                raise ValueError(f"FRAMES_PER_SECOND must be 'native' or a positive number, "
                                 f"got {self.frames_per_second!r}")
        if not 8 <= self.size_pixels <= 4096:
            raise ValueError(f"FRAME_SIZE_PIXELS must be 8..4096, got {self.size_pixels}")
        if not 2 <= self.jpeg_qscale <= 31:
            raise ValueError(f"FRAME_JPEG_QSCALE must be 2..31, got {self.jpeg_qscale}")

    @property
    def rate(self):
        """Frames per second as a number, or None for the native rate."""
        return None if self.frames_per_second == "native" else float(self.frames_per_second)

    @property
    def folder(self):
        """The folder of these frames: <size>px_<fps>fps (e.g. 224px_2fps, 64px_nativefps),
        with _q<qscale> when the quality is not the default."""
        q = "" if self.jpeg_qscale == config.FRAME_JPEG_QSCALE else f"_q{self.jpeg_qscale}"
        return f"{self.size_pixels}px_{self.frames_per_second}fps{q}"

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d, where="frame settings"):
        try:
            return cls(**d)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}: not a frames record ({e})") from None


def settings_from(cfg):
    """The FrameSettings of resolved settings (FRAMES_PER_SECOND, FRAME_SIZE_PIXELS,
    FRAME_JPEG_QSCALE)."""
    return FrameSettings(str(cfg.frames_per_second), int(cfg.frame_size_pixels),
                         int(cfg.frame_jpeg_qscale))


def write_record(frame_dir, settings):
    atomic.write_text(Path(frame_dir) / RECORD,
                         json.dumps(settings.to_dict(), indent=1) + "\n")


def read_record(frame_dir):
    """frames.json -> FrameSettings; ValueError naming the file if missing or malformed."""
    path = Path(frame_dir) / RECORD
    if not path.is_file():
        raise ValueError(missing_message(path).replace(" first", " (with the same frame "
                                                       "settings) first"))
    try:
        return FrameSettings.from_dict(json.loads(path.read_text(encoding="utf-8")), str(path))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not a frames record ({e})") from None


def check_settings(found, expected, where_found, where_expected):
    """Raise ValueError naming each differing key with both values and both sources."""
    a, b = found.to_dict(), expected.to_dict()
    diff = [f"{k} = {a.get(k)!r} in {where_found} but {b.get(k)!r} in {where_expected}"
            for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    if diff:
        raise ValueError("frame settings differ: " + "; ".join(diff))


# ---------------------------------------------------------------- one video's file

def save_video(path, jpeg, offsets, times):
    """Write one video's frames atomically (see the module docstring); deterministic bytes."""
    arrays = {"jpeg": np.ascontiguousarray(jpeg, np.uint8),
              "offsets": np.asarray(offsets, np.int64), "times": np.asarray(times, np.float64)}

    def write(tmp):
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as z:
            for name, a in arrays.items():
                buf = io.BytesIO()
                np.lib.format.write_array(buf, a, allow_pickle=False)
                z.writestr(zipfile.ZipInfo(name + ".npy", _ZIP_TIME), buf.getvalue())
    atomic.atomic_write(path, write)


def load_video(path, what=("jpeg", "offsets", "times")):
    """One video's arrays {name: array}; ValueError naming the file if it is not one."""
    try:
        with np.load(path, allow_pickle=False) as z:
            out = {k: z[k] for k in what}
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path}: not a frames file of step 08 ({e}); delete it and rerun "
                         "step 08") from None
    if "offsets" in out and "times" in out and len(out["offsets"]) != len(out["times"]) + 1:
        raise ValueError(f"{path}: {len(out['offsets']) - 1} frames but {len(out['times'])} "
                         "times")
    return out


def decode(jpeg):
    """One JPEG image (uint8 array) -> uint8 tensor [3, H, W] RGB (Pillow's libjpeg)."""
    with Image.open(io.BytesIO(np.asarray(jpeg, np.uint8).tobytes())) as im:
        rgb = np.asarray(im.convert("RGB"))                            # [H, W, 3]
    import torch  # here, not at the top: step 08 never needs torch
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))


# ---------------------------------------------------------------- frames as examples

class FrameDataset:
    """Every frame of some videos: (uint8 image [3, S, S], label, video row); a map-style
    dataset for torch's DataLoader.

    Args:
      paths: the frames file of every video (list, rows of the split).
      labels: int64 [n_videos].
      rows: the videos (row numbers) to take; their frames, in row then time order.
      augment: None (the stored frame as is), or a callable on a uint8 image [3, S, S]
        (random resized crop and flip when training).
    Builds its index by reading each file's offsets and times (not the images).
    """

    def __init__(self, paths, labels, rows, augment=None):
        self.paths, self.all_labels = list(paths), np.asarray(labels)
        self.rows, self.augment = np.asarray(rows, np.int64), augment
        counts, times = [], []
        for r in self.rows:
            t = load_video(self.paths[r], ("times",))["times"]
            counts.append(len(t))
            times.append(t)
        counts = np.asarray(counts, np.int64)
        self.frame_row = np.repeat(self.rows, counts)                      # [n_frames]
        self.frame_k = (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
                        if len(counts) else np.zeros(0, np.int64))
        self.times = np.concatenate(times) if times else np.zeros(0)       # [n_frames] s
        self.labels = self.all_labels[self.frame_row]                      # per frame
        self._cached = (None, None)

    def __len__(self):
        return len(self.frame_row)

    def _video(self, row):
        # frames of one video are read together when scoring: keep the last file's arrays
        if self._cached[0] != row:
            self._cached = (row, load_video(self.paths[row], ("jpeg", "offsets")))
        return self._cached[1]

    def __getitem__(self, i):
        row, k = int(self.frame_row[i]), int(self.frame_k[i])
        v = self._video(row)
        image = decode(v["jpeg"][v["offsets"][k]:v["offsets"][k + 1]])
        if self.augment is not None:
            image = self.augment(image)
        return image, int(self.all_labels[row]), row


def train_augment(size, min_area, hue=0.0):
    """Random resized crop (area min_area..1, aspect 3/4..4/3) back to size x size, a random
    horizontal flip and, if hue > 0, a random hue shift up to +-hue: uint8 [3, S, S] -> uint8
    [3, size, size] (torchvision v2, drawing from torch's global generator, which train.py
    seeds per epoch)."""
    from torchvision.transforms import v2
    if not 0 < min_area <= 1 or not 0 <= hue <= 0.5:
        raise ValueError(f"CROP_MIN_AREA must be in (0, 1], got {min_area}; HUE_JITTER in "
                         f"[0, 0.5], got {hue}")
    steps = [v2.RandomResizedCrop(size, scale=(min_area, 1.0), antialias=True),
             v2.RandomHorizontalFlip()]
    return v2.Compose(steps + ([v2.ColorJitter(hue=hue)] if hue > 0 else []))
