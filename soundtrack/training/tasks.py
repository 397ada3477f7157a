"""The tasks of the shared loop: what ``loop.fit`` and ``scoring.score`` ask of a modality.

The protocol (``Task``): ``batch`` turns a loader's batch into (inputs, targets) with the
task's augmentation; ``loss`` scores the model's named outputs against the targets;
``minival`` gives the metrics on the minival rows carved from the training split, of which
``select`` names the one that picks "best"; ``score_split`` writes one split's output
contract; ``unit`` names an example in the log. Audio patches and video frames are
classification tasks here; the envelope task lives with its modality in
``soundtrack.envelope.task``.
"""
from pathlib import Path
from typing import Protocol

import numpy as np

from AudioDataLoader import PatchDataset
from soundtrack import datafiles
from soundtrack import frames
from soundtrack.training.objectives import kl_loss, mixup, soft_targets, spec_augment, time_shift
from soundtrack.training.scoring import predict, save_contract, score_shard, track_metrics


class Task(Protocol):
    """What the loop needs of a task (see the module docstring)."""
    unit: str       # what one example is, for the log: "patches", "frames", "clips"
    select: str     # the minival metric that picks "best" (higher is better)

    def batch(self, batch, gen, beta):
        """A loader's batch -> (inputs, targets), augmented; gen: torch.Generator (CPU),
        beta: numpy Generator (mixup's lambda)."""

    def loss(self, outputs, target):
        """The model's named outputs and the targets -> a scalar tensor."""

    def minival(self, model, env):
        """-> {metric: value} on the minival rows ({} without a minival)."""

    def score_split(self, model, env, split, dataset, out_dir, shard=(1, 1)):
        """Write the split's output contract (main rank) -> metrics ({} elsewhere)."""


class ClassificationTask:
    """What the audio and visual tasks share: soft targets (label smoothing, mixup), the
    KL-divergence loss, and the minival metric over whole tracks (videos). Subclasses set
    cfg, n_classes, minival_rows, minival_labels (of every row) and minival_subset (rows ->
    a Dataset of their patches, for predict)."""
    select = "track_top1"       # higher is better

    def targets(self, x, y, gen, beta):
        """(inputs, labels) -> (inputs, soft targets), mixed up when MIXUP_ALPHA > 0."""
        target = soft_targets(y, self.n_classes, self.cfg.label_smoothing)
        if self.cfg.mixup_alpha > 0:
            x, target = mixup(x, target, self.cfg.mixup_alpha, gen, beta)
        return x, target

    def loss(self, outputs, target):
        return kl_loss(outputs["logits"], target)

    def minival(self, model, env):
        if not len(self.minival_rows):
            return {}
        out = predict(model, self.minival_subset, self.minival_rows, env, self.cfg, "minival")
        return track_metrics(out, self.minival_rows, self.minival_labels)


class AudioClassification(ClassificationTask):
    """Audio classification on patches: a task of the shared loop.

    Supplies what ``fit`` and ``score_split`` need:
      batch(batch, gen, beta)  -> (inputs, soft targets), augmented on the CPU: time shift,
                                  SpecAugment, label smoothing, mixup (as configured)
      loss(outputs, targets)   -> scalar (KL divergence to the soft targets)
      minival(model, env)      -> {"track_top1", "track_top5", "patch_top1"} on the minival
                                  tracks; ``select`` names the one that picks "best"
      score_split(...)         -> the output contract of one split (see the module docstring)
    """
    unit = "patches"

    def __init__(self, cfg, n_classes, full_train, minival_rows):
        self.cfg, self.n_classes = cfg, n_classes
        self.full_train, self.minival_rows = full_train, minival_rows
        if full_train is not None:
            self.minival_subset = patch_subset(full_train)
            self.minival_labels = full_train.datalist.labels

    def batch(self, batch, gen, beta):
        x, y, _ = batch
        cfg = self.cfg
        if cfg.time_shift_frames > 0:
            x = time_shift(x, cfg.time_shift_frames, gen)
        if cfg.spec_augment:
            x = spec_augment(x, cfg.time_mask_frames, cfg.freq_mask_bands, gen,
                             cfg.spec_augment_masks)
        return self.targets(x, y, gen, beta)

    def score_split(self, model, env, split, dataset, out_dir, shard=(1, 1)):
        """Score every track of `dataset` (or shard K of N: ``score_shard``); on the main
        rank write the contract. -> metrics ({} while other shards are missing)."""
        if shard != (1, 1):
            return score_shard(model, dataset, patch_subset(dataset), env, self.cfg, split,
                               out_dir, shard)
        out = predict(model, patch_subset(dataset), np.arange(len(dataset.datalist)), env,
                      self.cfg, f"score {split}")
        if not env.main:
            return {}
        return save_contract(out_dir, split, dataset.datalist.ids, dataset.datalist.labels, out)


def patch_subset(dataset):
    """rows -> the PatchDataset of those tracks of `dataset` (for predict)."""
    return lambda rows: PatchDataset(dataset.datalist, dataset.feature_dir, rows,
                                     dataset.packed_path)


class FrameSplit:
    """One split's videos with frames (step 08): ids, labels, frame files."""

    def __init__(self, ids, labels, frame_dir):
        self.ids, self.labels = list(ids), np.asarray(labels, np.int64)
        self.paths = [Path(frame_dir) / (i + ".npz") for i in self.ids]

    def __len__(self):
        return len(self.ids)

    def subset(self, rows, augment=None):
        return frames.FrameDataset(self.paths, self.labels, rows, augment)


class VisualClassification(ClassificationTask):
    """Image classification on video frames: a task of the shared loop.

      batch(batch, gen, beta)  -> (images float [B, 3, S, S] in [0, 1], soft targets): label
                                  smoothing and mixup on the images (the random resized crop
                                  and flip happen in the dataset, per frame)
      loss(outputs, targets)   -> KL divergence to the soft targets (the two-phase paper's)
      minival(model, env)      -> {"track_top1", "track_top5", "patch_top1"}: videos scored
                                  as the mean of their frames' softmax
      score_split(...)         -> the output contract of one split; with per_frame also each
                                  frame's pooled feature and time
    """
    unit = "frames"

    def __init__(self, cfg, n_classes, train_split, minival_rows, per_frame=False):
        self.cfg, self.n_classes = cfg, n_classes
        self.minival_rows, self.per_frame = minival_rows, per_frame
        self.minival_subset, self.minival_labels = train_split.subset, train_split.labels

    def batch(self, batch, gen, beta):
        x, y, _ = batch
        return self.targets(x.float() / 255.0, y, gen, beta)

    def score_split(self, model, env, split, dataset, out_dir, shard=(1, 1)):
        if shard != (1, 1):
            raise ValueError("--shard scoring is implemented for audio models only; score "
                             "visual models in one process (or under torchrun)")
        rows = np.arange(len(dataset))
        keep = ("logits", "embedding") + (("pooled",) if self.per_frame else ())
        out = predict(model, dataset.subset, rows, env, self.cfg, f"score {split}", keep)
        if not env.main:
            return {}
        result = save_contract(out_dir, split, dataset.ids, dataset.labels, out)
        if self.per_frame:
            datafiles.save_npy(out_dir / f"{split}_frame_pooled.npy",
                               out["pooled"].astype(np.float32))
            datafiles.save_npy(out_dir / f"{split}_frame_times.npy", dataset.subset(rows).times)
        return result
