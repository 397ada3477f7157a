"""Patch-level datasets over the audio images of a split (written by steps 03-04).

Each patch (``[C, bands, frames]``; vggish: 0.96 s, ``[1, 64, 96]``) is one sample and
inherits its track's label. Patches are
read from memory-mapped arrays: either the per-track ``<feature>/<id>.npy`` files (opened
lazily, a bounded number kept open per worker) or, if step 04 ran with ``--packed``, the one
``<feature>_<split>_patches.npy`` of the split. Never one file per patch.

Shuffling is the sampler's job (``torch.utils.data.RandomSampler`` with a seeded generator,
or ``DistributedSampler`` under DDP); this module adds nothing random, so a run is
reproducible from its seeds.
"""
import json
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from soundtrack import audio


class Datalist:
    """The index of one split: ids, labels, patch counts and offsets, and the front end
    that made its features (see step 04)."""

    def __init__(self, path):
        self.path = Path(path)
        with np.load(self.path, allow_pickle=False) as d:
            if "front_end" not in d:
                raise ValueError(f"{self.path} records no front end (made by an older step "
                                 "04): rerun step 04")
            self.ids = d["ids"].tolist()
            self.labels = d["labels"].astype(np.int64)
            self.n_patches = d["n_patches"].astype(np.int64)
            self.offsets = d["offsets"].astype(np.int64)
            self.patch_shape = tuple(int(x) for x in d["patch_shape"])
            self.front_end = audio.FrontEnd.from_dict(json.loads(str(d["front_end"])),
                                                      where=str(self.path))
        if not (len(self.ids) == len(self.labels) == len(self.n_patches) == len(self.offsets) - 1):
            raise ValueError(f"{self.path}: ids, labels, n_patches and offsets disagree in length")

    def __len__(self):
        return len(self.ids)

    @property
    def in_channels(self):
        return self.patch_shape[0] if len(self.patch_shape) == 3 else 1


class PatchDataset(Dataset):
    """Patches of a subset of tracks: item -> (patch float32 [C, bands, frames], label, row).

    Args:
      datalist: Datalist of the split.
      feature_dir: folder of the per-track ``<id>.npy`` files.
      tracks: rows of the datalist to use (default all), e.g. the training part or minival.
      packed: path of the packed ``_patches.npy`` of the split, or None.
      max_open: per-track files kept memory-mapped at once (per worker process).
    """

    def __init__(self, datalist, feature_dir, tracks=None, packed=None, max_open=256):
        self.datalist = datalist
        self.feature_dir = Path(feature_dir) if feature_dir is not None else None
        self.tracks = np.arange(len(datalist)) if tracks is None else np.asarray(tracks)
        counts = datalist.n_patches[self.tracks]
        # patch i of this dataset = patch `within[i]` of datalist track `track_of[i]`
        self.track_of = np.repeat(self.tracks, counts)
        self.within = np.concatenate([np.arange(c) for c in counts]) if len(counts) else \
            np.zeros(0, dtype=np.int64)
        self.packed_path = packed
        self._packed = None
        self._open = OrderedDict()
        self.max_open = max_open

    def __len__(self):
        return len(self.track_of)

    @property
    def labels(self):
        """Label of every patch [n_patches] (for balanced sampling)."""
        return self.datalist.labels[self.track_of]

    def _track(self, t):
        if self.packed_path is not None:
            if self._packed is None:  # opened in the worker that reads it
                self._packed = np.load(self.packed_path, mmap_mode="r")
            a, b = self.datalist.offsets[t], self.datalist.offsets[t + 1]
            return self._packed[a:b]
        arr = self._open.get(t)
        if arr is None:
            path = self.feature_dir / (self.datalist.ids[t] + ".npy")
            arr = np.load(path, mmap_mode="r")
            if arr.shape[0] != self.datalist.n_patches[t]:
                raise ValueError(f"{path}: {arr.shape[0]} patches, the datalist "
                                 f"{self.datalist.path} says {self.datalist.n_patches[t]}; "
                                 "rerun step 04")
            self._open[t] = arr
            if len(self._open) > self.max_open:
                self._open.popitem(last=False)
        else:
            self._open.move_to_end(t)
        return arr

    def __getitem__(self, i):
        t = int(self.track_of[i])
        patch = np.asarray(self._track(t)[int(self.within[i])], dtype=np.float32)
        if patch.ndim == 2:
            patch = patch[None]  # [1, bands, frames]
        return torch.from_numpy(patch), int(self.datalist.labels[t]), t

    def __getstate__(self):  # memory maps are reopened in each worker process
        state = self.__dict__.copy()
        state["_packed"], state["_open"] = None, OrderedDict()
        return state


def minival_split(labels, fraction, seed):
    """Deterministic per-class split of track rows into (fit, minival) for checkpoint choice.

    Each class with at least 2 tracks gives round(fraction * n) (at least 1) tracks to minival.
    """
    rng = np.random.default_rng(seed)
    fit, held = [], []
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        rows = rows[rng.permutation(len(rows))]
        k = 0 if fraction <= 0 or len(rows) < 2 else max(1, int(round(fraction * len(rows))))
        held.extend(rows[:k])
        fit.extend(rows[k:])
    return np.sort(np.asarray(fit, dtype=np.int64)), np.sort(np.asarray(held, dtype=np.int64))
