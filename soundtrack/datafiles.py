"""Where every stage's files live, and how they are read and written.

Ids are the only join key between stages: a video's id is its path relative to the video
root without the extension (``val/abseiling/0wR5jVB-WPk_000417_000427``). Every array on
disk has its row order beside it (an ids ``.txt``, one id per line, or an ``ids`` array).
Writes are atomic: a temporary ``<name>.partial`` in the same folder, then a rename, so a
killed run never leaves a half-written file under a final name.
"""
import json
import os
import platform
import subprocess
from pathlib import Path

import numpy as np

from soundtrack import audio
from soundtrack import cli
from soundtrack import frames
from soundtrack.errors import missing_message
# the atomic writes: every stage writes through these (datafiles.save_npy, ...)
from soundtrack.atomic import (PARTIAL_SUFFIX, atomic_write, kill_run_if_asked,  # noqa: F401
                               partial_path, save_npy, save_npz, write_lines, write_text)

class Paths:
    """The on-disk layout of one dataset, derived from settings (see config.py)."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.dataset = cfg.dataset
        data = cli.repo_path(cfg.data_root) / cfg.dataset
        self.data = data
        self.video_root = cli.repo_path(cfg.video_root) if cfg.video_root else data / "videos"
        self.audio_root = cli.repo_path(cfg.audio_root) if cfg.audio_root else data / "audio"
        self.feature_root = (cli.repo_path(cfg.feature_root) if cfg.feature_root
                             else data / "features")
        self.frame_root = cli.repo_path(cfg.frame_root) if cfg.frame_root else data / "frames"
        out = cli.repo_path(cfg.output_root or ".")
        self.file_lists = out / "file_lists" / cfg.dataset
        self.datalists = out / "datalists" / cfg.dataset
        self.npy = out / "npy_files" / cfg.dataset
        self.runs = out / "runs" / cfg.dataset
        self.video_results = out / "video_classification_results" / cfg.dataset

    @property
    def front_end(self):
        """The audio.FrontEnd the settings resolve to (preset + overrides)."""
        return audio.front_end_from_settings(self.cfg)

    @property
    def audio_dir(self):
        """Step 02's wavs for this front end's rate and channel policy:
        <audio_root>/<rate>hz_<channels>/ (e.g. 16000hz_mono)."""
        return self.audio_root / self.front_end.audio_folder

    @property
    def audio_lists(self):
        """Prefix of step 02's lists: <split>_<audio_folder>_{audio,no_audio,failed}.txt."""
        return self.front_end.audio_folder

    @property
    def feature_name(self):
        """Folder name of the resolved front end, e.g. vggish_mel, vggish_mel_deltas."""
        return self.front_end.name

    @property
    def feature_dir(self):
        return self.feature_root / self.feature_name

    @property
    def frame_settings(self):
        """The frames.FrameSettings the settings resolve to."""
        return frames.settings_from(self.cfg)

    @property
    def frame_dir(self):
        """Step 08's frames for these settings: <frame_root>/<size>px_<fps>fps/."""
        return self.frame_root / self.frame_settings.folder

    def frame_list(self, split, what="frames"):
        """Step 08's lists: what = frames (ids with frames), no_video, failed; e.g.
        file_lists/demo/val_224px_2fps_frames.txt."""
        return self.stage_list(split, f"{self.frame_settings.folder}_{what}")

    @property
    def classes(self):
        return self.file_lists / "classes.txt"

    def video_list(self, split):
        return self.file_lists / f"{split}_videos.txt"

    def stage_list(self, split, what):
        """file_lists/<dataset>/<split>_<what>.txt, e.g. what = unlisted, vggish_mel_skipped."""
        return self.file_lists / f"{split}_{what}.txt"

    def audio_list(self, split, what="audio"):
        """Step 02's lists for this front end's wavs: what = audio (ids with a wav),
        no_audio, failed; e.g. file_lists/demo/val_16000hz_mono_audio.txt."""
        return self.stage_list(split, f"{self.audio_lists}_{what}")

    def datalist(self, split, feature_name=None):
        return self.datalists / f"{feature_name or self.feature_name}_{split}.npz"

    def packed(self, split, feature_name=None):
        return self.datalists / f"{feature_name or self.feature_name}_{split}_patches.npy"

    def run_dir(self, run=None):
        """Checkpoints, TensorBoard events and the CSV log of a training run."""
        return self.runs / (run or self.cfg.run)

    def npy_dir(self, run=None):
        """Scores, logits and embeddings of a training run."""
        return self.npy / (run or self.cfg.run)

    @property
    def fusion_dir(self):
        return self.npy / "fusion"

    def relative(self, path):
        """A path as reports record it: relative to the output root when inside it, else to
        the repository, else as given (a user's own file elsewhere). Two clones in different
        folders then write the same report."""
        path = Path(path)
        absolute = path if path.is_absolute() else Path.cwd() / path
        for root in (cli.repo_path(self.cfg.output_root or "."), cli.repo_path(".")):
            try:
                return absolute.resolve().relative_to(root.resolve()).as_posix()
            except ValueError:
                continue
        return str(path)


# ---------------------------------------------------------------- ids and lists

def check_id(video_id):
    """Raise ValueError if an id cannot be stored in our one-per-line / TSV lists."""
    if not video_id or any(c in video_id for c in "\t\n\r"):
        raise ValueError(f"id {video_id!r} is empty or holds a tab or line break")
    return video_id


def video_id(path, root):
    """The id of a video file: its path relative to `root`, without extension, '/'-separated."""
    rel = Path(path).relative_to(root).with_suffix("")
    return check_id(rel.as_posix())


def shard_of(ids, shard):
    """The ids of shard (K, N): those whose position in the sorted list is K-1 modulo N.

    Deterministic for a given list, independent of the order ids are passed in.
    """
    k, n = shard
    return [i for pos, i in enumerate(sorted(ids)) if pos % n == k - 1]


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def read_ids(path):
    """One id per line -> list of str; duplicate ids are an error naming the file and lines."""
    ids = read_lines(path)
    seen = {}
    for row, i in enumerate(ids, 1):
        if i in seen:
            raise ValueError(f"{path}: id {i!r} appears on lines {seen[i]} and {row}")
        seen[i] = row
    return ids


def read_classes(path):
    return read_ids(path)


def read_video_list(path):
    """`<split>_videos.txt` (id<TAB>label) -> (ids, labels int64 array; -1 = unlabelled)."""
    ids, labels = [], []
    for row, line in enumerate(read_lines(path), 1):
        parts = line.split("\t")
        if len(parts) != 2:
            raise ValueError(f"{path}:{row}: expected 'id<TAB>label', got {line!r}")
        ids.append(parts[0])
        labels.append(int(parts[1]))
    return ids, np.asarray(labels, dtype=np.int64)


def labels_for(video_list_path, ids):
    """The labels of `ids`, looked up by id in a ``<split>_videos.txt`` -> int64 [len(ids)].

    Raises ValueError naming the list, how many ids it lacks and the first five."""
    video_ids, video_labels = read_video_list(video_list_path)
    label_of = dict(zip(video_ids, video_labels.tolist()))
    missing = [i for i in ids if i not in label_of]
    if missing:
        raise ValueError(f"{video_list_path}: no label for {len(missing)} of {len(ids)} ids, "
                         f"e.g. {missing[:5]}")
    return np.asarray([label_of[i] for i in ids], dtype=np.int64)


def read_reasons(path):
    """`id<TAB>reason` lines -> dict; a missing file is an empty dict."""
    if not Path(path).exists():
        return {}
    out = {}
    for line in read_lines(path):
        i, _, reason = line.partition("\t")
        out[i] = reason
    return out


# ---------------------------------------------------------------- score files

CONTRACT_ARRAYS = ("scores", "logits", "embedding")   # per-example arrays of a trained model


def ids_path_for(npy_path):
    """The ids file that gives the row order of a per-example array.

    ``x_scores.npy``, ``x_logits.npy``, ``x_embedding.npy`` -> ``x_ids.txt`` (the output
    contract: one ids file per split); any other ``y.npy`` -> ``y_ids.txt``.
    """
    npy_path = Path(npy_path)
    stem = npy_path.stem
    for what in CONTRACT_ARRAYS:
        if stem.endswith(f"_{what}"):
            stem = stem[: -len(what) - 1]
            break
    return npy_path.with_name(f"{stem}_ids.txt")


def load_scores(path, ids_path=None, n_classes=None):
    """A score matrix `[n, n_classes]` and its ids, checked.

    Errors name the file and the row: wrong rank, class count, non-finite values, and a
    row count that differs from the ids file.
    """
    try:
        scores = np.load(path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - any unreadable file is reported the same way
        raise ValueError(f"{path}: cannot read as .npy ({e})") from None
    if scores.ndim != 2:
        raise ValueError(f"{path}: expected [n_videos, n_classes], got shape {scores.shape}")
    if n_classes is not None and scores.shape[1] != n_classes:
        raise ValueError(f"{path}: {scores.shape[1]} classes, expected {n_classes}")
    bad = np.argwhere(~np.isfinite(scores))
    if len(bad):
        r, c = bad[0]
        raise ValueError(f"{path}: non-finite value {scores[r, c]} at row {r} column {c} "
                         f"({len(bad)} in all)")
    ids = None
    if ids_path is not None:
        ids = read_ids(ids_path)
        if len(ids) != len(scores):
            raise ValueError(f"{path}: {len(scores)} rows but {ids_path} has {len(ids)} ids")
    return scores.astype(np.float32, copy=False), ids


def read_checkpoint(path):
    """A train.py checkpoint as a dict, read with torch's weights_only loader (torch is
    imported here, not by this module). Raises FileNotFoundError for a missing file,
    ValueError naming the file for one that is not a checkpoint."""
    import torch
    if not Path(path).is_file():
        raise FileNotFoundError(2, "no such checkpoint", str(path))
    try:
        # torch.__version__ (a str subclass) is among the provenance train.py stores
        with torch.serialization.safe_globals([torch.torch_version.TorchVersion]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable checkpoint is reported alike
        raise ValueError(f"{path}: cannot read as a train.py checkpoint ({e})") from None


def scored_weights(ckpt):
    """The state dict a train.py checkpoint scores with: its average of the weights when it
    was trained with EMA_DECAY, else its live weights."""
    average = ckpt.get("ema")
    return average["state"] if average else ckpt["model"]


# ---------------------------------------------------------------- front-end records

FEATURES_RECORD = "features.json"


def feature_record(fe, feature_dtype, short_track_policy):
    """What features.json holds: the resolved front end and the two storage choices that
    also decide the files' content."""
    return {"front_end": fe.to_dict(), "feature_dtype": feature_dtype,
            "short_track_policy": short_track_policy}


def read_feature_record(feature_dir):
    """features.json of a feature folder -> (record dict, its audio.FrontEnd).

    Raises ValueError naming the file when it is missing or not a front-end record."""
    path = Path(feature_dir) / FEATURES_RECORD
    if not path.is_file():
        raise ValueError(missing_message(path).replace(" first", " (with the same front-end "
                                                       "settings) first"))
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        return record, audio.FrontEnd.from_dict(record["front_end"], where=str(path))
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a features record ({e})") from None


def check_front_end(found, expected, where_found, where_expected):
    """Raise ValueError naming every differing key (both values, both sources) unless the
    two audio.FrontEnds are the same."""
    diff = audio.describe_difference(found, expected, where_found, where_expected)
    if diff:
        raise ValueError(f"front ends differ: {diff}")


# ---------------------------------------------------------------- videos on disk

def scan_videos(folder, extensions):
    """Video files under `folder` (recursive, sorted), skipping hidden and partial files."""
    exts = {e.lower() for e in extensions}
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and Path(name).suffix.lower() in exts:
                found.append(Path(dirpath) / name)
    return found


def locate_videos(video_root, ids, extensions):
    """{id: path} for the ids' video files, listing each folder once; missing ids omitted."""
    exts = {e.lower() for e in extensions}
    by_folder = {}
    for i in ids:
        by_folder.setdefault(os.path.dirname(i), []).append(i)
    out = {}
    for folder, members in by_folder.items():
        try:
            names = os.listdir(Path(video_root) / folder)
        except FileNotFoundError:
            continue
        stems = {}
        for name in names:
            stem, ext = os.path.splitext(name)
            if ext.lower() in exts and not name.startswith("."):
                stems.setdefault(stem, name)
        for i in members:
            name = stems.get(os.path.basename(i))
            if name is not None:
                out[i] = Path(video_root) / folder / name
    return out


def split_videos(paths, split, extensions):
    """A split's ids (step 01's list, in its order) and {id: its video file (str), or None
    when the file is gone}: the work items of steps 02 and 08."""
    ids, _ = read_video_list(paths.video_list(split))
    found = locate_videos(paths.video_root, ids, extensions)
    return ids, {i: (str(found[i]) if i in found else None) for i in ids}


# ---------------------------------------------------------------- provenance

def provenance():
    """Git commit of the repository (None outside git), whether the work tree differs from it,
    and package versions: stored in checkpoints and reports beside what they describe."""
    root = cli.REPO_ROOT
    commit, dirty = None, None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, check=True, timeout=10).stdout.strip() or None
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                cwd=root, capture_output=True, text=True, check=True,
                                timeout=10).stdout
        dirty = bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    versions = {"python": platform.python_version(), "numpy": np.__version__}
    for mod in ("torch", "scipy", "matplotlib"):
        try:
            versions[mod] = str(__import__(mod).__version__)  # plain str: weights_only loads
        except ImportError:
            versions[mod] = None
    return {"git_commit": commit, "git_dirty": dirty, "versions": versions}
