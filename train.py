"""Train a classifier with the shared training loop, then score the evaluated split(s).

Reads  datalists/<dataset>/<name>_<split>.npz (step 04; <name> = the resolved front end's
       folder, e.g. vggish_mel), the feature files and features.json (step 03),
       file_lists/<dataset>/classes.txt
Writes runs/<dataset>/<run>/last.pt, best.pt   checkpoints holding the model, optimizer,
                                               scheduler, RNG and epoch state, the config,
                                               the front end (features.json's), the classes,
                                               git commit and package versions
       runs/<dataset>/<run>/log.csv            one row per epoch
       runs/<dataset>/<run>/tensorboard/       loss, lr, minival metrics, scored splits
       npy_files/<dataset>/<run>/              the output contract, per scored split, rows in
                                               <split>_ids.txt order (datalist order):
         <split>_scores.npy     float32 [n, n_classes]  mean of the patches' softmax
         <split>_logits.npy     float32 [n, n_classes]  mean of the patches' logits
         <split>_embedding.npy  float32 [n, d]          mean of the patches' embeddings
         <split>_labels.npy     int64 [n]               (-1 = unlabelled)
         <split>_ids.txt        one id per line
         <split>_patch_logits.npy  float32 [n_patches, n_classes]  per patch, tracks' patches
         <split>_patch_track.npy   int64 [n_patches]  row in <split>_ids.txt of each patch
       train.py is the one writer of these files; step 05 reads and reports them.

Visual models (MODEL = tv_*, see network/) train on step 08's frames instead
(file_lists/<dataset>/<split>_<S>px_<F>fps_frames.txt, <frame_root>/<S>px_<F>fps/<id>.npz and
its frames.json, refused if its settings are not these): one example per frame, with the
frame's video label; random resized crop (CROP_MIN_AREA) and flip; PRETRAINED_WEIGHTS starts
the body. The contract is the same with frames for patches (a video's score is the mean of
its frames' softmax; <split>_patch_* hold the frames, in time order), and --per-frame adds
         <split>_frame_pooled.npy  float32 [n_frames, pooled_dim]  the body's feature per frame
         <split>_frame_times.npy   float64 [n_frames]  seconds (rows as <split>_patch_track)

The loop (``fit``) is shared by every objective: it takes a model, a training loader and a
*task* (``AudioClassification``, ``VisualClassification``) that supplies the batch
augmentation, the loss, the minival metric that picks the "best" checkpoint and the scorer.
Each patch (frame) inherits its track's (video's) label. "best" is chosen on a minival carved
from TRAIN_SPLIT (MINIVAL_FRACTION of its tracks, per class), never on the evaluated split; EVAL_CHECKPOINT picks best or last.
INIT_CHECKPOINT starts the model's body from a checkpoint (its head, sized for these classes,
starts afresh); FREEZE_BODY_EPOCHS trains the head alone at first; BODY_LR_SCALE sets the
body's learning rate relative to the head's.

One CPU or GPU:  python train.py --dataset demo --feature mel --model slim_cnn --epochs 12 --run r1
Several GPUs:    torchrun --nproc_per_node=4 -- train.py ... (DDP, one process per GPU; the
                 "--" stops torchrun from reading train.py's --run as its own --run-path)
Resume:          the same command with --resume (continues from runs/<dataset>/<run>/last.pt)
Frozen embeddings of a pretrained model, sharded over machines (or over time: each shard is
                 a file, a rerun skips finished shards; the contract is written once all are):
                 python train.py --model panns_cnn14 --init-checkpoint Cnn14_mAP=0.431.pth
                   --front-end panns --epochs 0 --eval-splits train val --shard K/N
"""
import csv
import math
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import DataLoader, DistributedSampler, Sampler
from torch.utils.tensorboard import SummaryWriter

import audio
import cli
import datafiles
import frames
import metrics
import network
from AudioDataLoader import Datalist, PatchDataset, minival_split

TRAIN_KEYS = ["FEATURE_ROOT", *cli.FRONT_END_KEYS, "PACKED",
              "RUN", "MODEL", "EPOCHS", "MIN_TRAIN_STEPS", "BATCH_SIZE", "OPTIMIZER",
              "LEARNING_RATE", "WEIGHT_DECAY", "L2_LAMBDA", "MOMENTUM", "SCHEDULE",
              "WARMUP_EPOCHS", "STEP_EPOCHS", "STEP_GAMMA", "MIXUP_ALPHA", "SPEC_AUGMENT",
              "SPEC_AUGMENT_MASKS", "TIME_MASK_FRAMES", "FREQ_MASK_BANDS", "TIME_SHIFT_FRAMES",
              "LABEL_SMOOTHING", "BALANCED_SAMPLING", "MINIVAL_FRACTION",
              "EVAL_CHECKPOINT", "INIT_CHECKPOINT", "VGGISH_PCA_PARAMS", "FREEZE_BODY_EPOCHS",
              "BODY_LR_SCALE", "AMP", "CHANNELS_LAST", "LOADER_WORKERS", "TORCH_THREADS", "SEED",
              "DEVICE", "FRAME_ROOT", "FRAMES_PER_SECOND", "FRAME_SIZE_PIXELS",
              "FRAME_JPEG_QSCALE", "PRETRAINED_WEIGHTS", "CROP_MIN_AREA", "HUE_JITTER",
              # the envelope model (envelope_task.py)
              "ENVELOPE_ROOT", "ENVELOPE_SIGMA_SECONDS", "ENVELOPE_SILENT_FLOOR",
              "ENVELOPE_FEATURES_RUN", "ENVELOPE_LOSS_WEIGHT", "CLASS_LOSS_WEIGHT",
              "ENVELOPE_BACKBONE", "ENVELOPE_POOL", "ENVELOPE_HIDDEN"]


# ---------------------------------------------------------------- environment

class Dist:
    """This process's place in a torchrun job (world 1 without torchrun)."""

    def __init__(self, device_setting):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        cuda = torch.cuda.is_available() if device_setting == "auto" else device_setting == "cuda"
        self.device = torch.device(f"cuda:{local}" if cuda else "cpu")
        if cuda:
            torch.cuda.set_device(self.device)
        if self.world > 1:
            dist.init_process_group("nccl" if cuda else "gloo")

    @property
    def main(self):
        return self.rank == 0

    def gather(self, obj):
        """List of every rank's `obj` (on every rank)."""
        if self.world == 1:
            return [obj]
        out = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def barrier(self):
        if self.world > 1:
            dist.barrier()

    def close(self):
        """Every rank leaves together: a rank that tears gloo down while a peer is still
        writing outputs can abort ("terminate called without an active exception")."""
        if self.world > 1:
            dist.barrier()
            dist.destroy_process_group()


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def autocast(env, cfg):
    return torch.autocast("cuda", dtype=torch.float16,
                          enabled=env.device.type == "cuda" and cfg.amp)


# ---------------------------------------------------------------- sampling and augmentation

class BalancedSampler(Sampler):
    """Each epoch draws len(labels) patches, every class equally likely; split across ranks."""

    def __init__(self, labels, seed, world=1, rank=0):
        self.labels, self.seed, self.world, self.rank = np.asarray(labels), seed, world, rank
        self.epoch = 0
        self.n = int(math.ceil(len(labels) / world))

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        classes = np.unique(self.labels)
        by_class = [np.flatnonzero(self.labels == c) for c in classes]
        picks = rng.integers(len(classes), size=self.n * self.world)
        idx = np.array([by_class[c][rng.integers(len(by_class[c]))] for c in picks])
        return iter(idx[self.rank::self.world].tolist())

    def __len__(self):
        return self.n


def spec_augment(x, time_frames, freq_bands, gen, n_masks=1):
    """Zero `n_masks` random time stretches (each <= time_frames) and `n_masks` random band
    ranges (each <= freq_bands) per patch; masks may overlap.

    x: [B, C, bands, frames]; gen: torch.Generator (CPU) for reproducible masks.
    """
    b, _, n_bands, n_frames = x.shape

    def mask(n, width):
        w = torch.randint(0, width + 1, (b, 1), generator=gen)
        start = (torch.rand((b, 1), generator=gen) * (n - w + 1)).long()
        pos = torch.arange(n)[None]
        return (pos >= start) & (pos < start + w)           # [B, n]

    bands = torch.zeros((b, n_bands), dtype=torch.bool)
    frames = torch.zeros((b, n_frames), dtype=torch.bool)
    for _ in range(n_masks):   # band then time, as with one mask: the same draws for n = 1
        bands |= mask(n_bands, freq_bands)
        frames |= mask(n_frames, time_frames)
    keep = ~(bands[:, :, None] | frames[:, None, :])
    return x * keep[:, None].to(x.device, x.dtype)


def time_shift(x, max_frames, gen):
    """Roll each patch in time by its own random whole number of frames in [-max, max].

    Circular: frames pushed off one end come back at the other. x: [B, C, bands, frames];
    gen: torch.Generator (CPU).
    """
    b, n = x.shape[0], x.shape[-1]
    shift = torch.randint(-max_frames, max_frames + 1, (b, 1), generator=gen)
    source = ((torch.arange(n)[None] - shift) % n).to(x.device)   # [B, frames]
    return torch.gather(x, -1, source[:, None, None, :].expand_as(x))


def soft_targets(labels, n_classes, smoothing):
    """One-hot targets [B, n_classes] with label smoothing (`smoothing` spread evenly)."""
    t = F.one_hot(labels, n_classes).float()
    return t * (1 - smoothing) + smoothing / n_classes


def mixup(x, target, alpha, gen, beta):
    """Mix each example with another of the batch: lam x + (1 - lam) x[perm], same for the
    targets; lam ~ Beta(alpha, alpha) from the numpy generator `beta`, perm from `gen`."""
    lam = float(beta.beta(alpha, alpha))
    perm = torch.randperm(len(x), generator=gen)
    return lam * x + (1 - lam) * x[perm], lam * target + (1 - lam) * target[perm]


def kl_loss(logits, target):
    """KL(target || softmax(logits)), mean over the batch: cross-entropy minus the targets'
    entropy, so the same gradients, and 0 at a perfect fit; the two-phase paper's loss for
    soft (mixup) targets."""
    return F.kl_div(F.log_softmax(logits.float(), dim=1), target, reduction="batchmean")


# ---------------------------------------------------------------- the tasks

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
            return score_shard(model, dataset, env, self.cfg, split, out_dir, shard)
        out = predict(model, patch_subset(dataset), np.arange(len(dataset.datalist)), env,
                      self.cfg, f"score {split}")
        if not env.main:
            return {}
        return save_contract(out_dir, split, dataset.datalist.ids, dataset.datalist.labels, out)


def patch_subset(dataset):
    """rows -> the PatchDataset of those tracks of `dataset` (for predict)."""
    return lambda rows: PatchDataset(dataset.datalist, dataset.feature_dir, rows,
                                     dataset.packed_path)


# ---------------------------------------------------------------- the visual task

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


# ---------------------------------------------------------------- prediction and outputs

@torch.no_grad()
def predict(model, subset, tracks, env, cfg, desc, keep=("logits", "embedding")):
    """The model's outputs `keep` for every patch (frame) of `tracks`, each scored once.

    subset(rows) -> a Dataset of (input, label, row) over those tracks' patches in order.
    Under DDP each rank takes tracks[rank::world] (no sampler padding, so no duplicates);
    the results are gathered on every rank and returned in track row order.
    Returns: {"logits" [P, C], "embedding" [P, D], ..., "track" [P]} as numpy.
    """
    mine = np.asarray(tracks)[env.rank::env.world]
    loader = DataLoader(subset(mine), batch_size=cfg.batch_size * 2, shuffle=False,
                        num_workers=cfg.loader_workers)
    model.eval()
    got, rows = {k: [] for k in keep}, []
    for x, _, t in cli.progress(loader, desc=desc, leave=False, disable=not env.main,
                                unit="batch"):
        x = x.to(env.device, non_blocking=True)
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(env, cfg):
            out = model(x)
        for k in keep:
            got[k].append(out[k].float().cpu().numpy())
        rows.append(t.numpy())
    part = {k: np.concatenate(v) if v else np.zeros((0, 0), np.float32) for k, v in got.items()}
    part["track"] = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    parts = [p for p in env.gather(part) if len(p["track"])]
    merged = {k: np.concatenate([p[k] for p in parts]) for k in (*keep, "track")}
    order = np.argsort(merged["track"], kind="stable")  # patches of a track stay in time order
    return {k: v[order] for k, v in merged.items()}


def track_metrics(out, tracks, labels):
    """Patch and track top-1/top-5 (percent) of predict()'s output for datalist rows
    `tracks` (labels: of every datalist row)."""
    remap = np.searchsorted(tracks, out["track"])
    scores = metrics.track_scores(out["logits"], remap, len(tracks))
    return {"patch_top1": metrics.topk_accuracy(out["logits"], labels[out["track"]], 1),
            "track_top1": metrics.topk_accuracy(scores, labels[tracks], 1),
            "track_top5": metrics.topk_accuracy(scores, labels[tracks], 5)}


def save_contract(out_dir, split, ids, labels, out):
    """Write a split's output contract from predict()'s patch outputs over ALL its rows
    (out["track"] indexes `ids`). -> {"n", "track_top1", "track_top5", "patch_top1"}."""
    n, track = len(ids), out["track"]
    files = {"scores": metrics.track_scores(out["logits"], track, n),
             "logits": metrics.track_mean(out["logits"], track, n),
             "embedding": metrics.track_mean(out["embedding"], track, n)}
    for what, array in files.items():
        datafiles.save_npy(out_dir / f"{split}_{what}.npy", array)
    datafiles.save_npy(out_dir / f"{split}_labels.npy", np.asarray(labels, np.int64))
    datafiles.save_npy(out_dir / f"{split}_patch_logits.npy", out["logits"].astype(np.float32))
    datafiles.save_npy(out_dir / f"{split}_patch_track.npy", track.astype(np.int64))
    datafiles.write_lines(out_dir / f"{split}_ids.txt", ids)
    return {"n": n, "n_parts": len(track),
            **track_metrics(out, np.arange(n), np.asarray(labels))}


def shard_file(out_dir, split, shard):
    """Where shard (K, N) of a split's patch outputs waits for the others."""
    return out_dir / "shards" / f"{split}_{shard[0]}of{shard[1]}.npz"


def score_shard(model, dataset, env, cfg, split, out_dir, shard):
    """Score the tracks of shard (K, N) of a split (datafiles.shard_of: every N-th id of the
    sorted list) into ``shards/<split>_KofN.npz`` (patch logits, embeddings, datalist rows
    and ids), unless that file exists (a rerun resumes where a killed one stopped). When all
    N shards' files exist, write the split's contract from them (whichever shard finishes
    last does it; several at once write the same bytes). -> metrics, or {} if shards remain."""
    ids = dataset.datalist.ids
    path = shard_file(out_dir, split, shard)
    if not path.exists():
        mine = set(datafiles.shard_of(ids, shard))
        rows = np.array([r for r, i in enumerate(ids) if i in mine], np.int64)
        out = predict(model, patch_subset(dataset), rows, env, cfg,
                      f"score {split} shard {shard[0]}/{shard[1]}")
        if env.main:
            datafiles.save_npz(path, logits=out["logits"], embedding=out["embedding"],
                               track=out["track"], ids=np.array([ids[r] for r in rows]))
    elif env.main:
        print(f"[train] {path} exists: shard {shard[0]}/{shard[1]} of {split} already scored")
    env.barrier()
    parts = [shard_file(out_dir, split, (k, shard[1])) for k in range(1, shard[1] + 1)]
    if not env.main or not all(p.exists() for p in parts):
        return {}
    merged = {"logits": [], "embedding": [], "track": []}
    for p in parts:
        with np.load(p, allow_pickle=False) as z:
            rows = np.unique(z["track"])
            if [ids[r] for r in rows] != [str(i) for i in z["ids"]]:
                raise ValueError(f"{p} was scored from another datalist than "
                                 f"{dataset.datalist.path} (its ids differ): delete "
                                 f"{p.parent} and score again")
            for k in merged:
                merged[k].append(z[k])
    out = {k: np.concatenate(v) for k, v in merged.items()}
    order = np.argsort(out["track"], kind="stable")    # patches of a track stay in time order
    out = {k: v[order] for k, v in out.items()}
    if len(np.unique(out["track"])) != len(np.unique(
            np.flatnonzero(dataset.datalist.n_patches))):
        raise ValueError(f"{out_dir}/shards: the {shard[1]} shards of {split} do not cover "
                         f"its {len(ids)} tracks")
    return save_contract(out_dir, split, ids, dataset.datalist.labels, out)


# ---------------------------------------------------------------- optimisation

def make_scheduler(optimizer, cfg, steps_per_epoch):
    """Warm-up, then cosine or step decay; a factor on every parameter group's own lr."""
    warmup = max(1, int(round(cfg.warmup_epochs * steps_per_epoch))) if cfg.warmup_epochs else 0
    total = cfg.epochs * steps_per_epoch

    def factor(step):
        if step < warmup:
            return (step + 1) / warmup
        if cfg.schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))
        return cfg.step_gamma ** (step // (cfg.step_epochs * steps_per_epoch))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def make_optimizer(model, cfg):
    """AdamW, Adam or SGD over four groups: body / head x weights (decayed) / biases and norms
    (not decayed); the body's learning rate is BODY_LR_SCALE x the head's. WEIGHT_DECAY is the
    optimizer's (AdamW's decoupled decay; Adam's and SGD's gradient term); the paper's L2 term
    in the loss is L2_LAMBDA (``l2_penalty``)."""
    groups = []
    for part, scale in (("body", cfg.body_lr_scale), ("head", 1.0)):
        params = network.body_and_head(model)[part]
        for decay in (True, False):
            chosen = [p for p in params if (p.ndim > 1) == decay]
            if chosen:
                groups.append({"params": chosen, "lr": cfg.learning_rate * scale,
                               "weight_decay": cfg.weight_decay if decay else 0.0,
                               "name": f"{part}_{'decay' if decay else 'no_decay'}"})
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.learning_rate, momentum=cfg.momentum, nesterov=True)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.learning_rate)
    return torch.optim.AdamW(groups, lr=cfg.learning_rate)


def l2_penalty(model, l2_lambda):
    """The L2 term of the two-phase paper's loss (eq. 4): l2_lambda / 2 x the sum of the
    squares of the trainable weights, the parameters WEIGHT_DECAY decays (ndim > 1: kernels
    and matrices; biases and norms' scales are left alone, as Keras regularises kernels, and a
    batch norm's scale of 1 would otherwise dominate the term; a frozen body's weights are
    not trained, so not counted). -> a float32 scalar tensor, 0 when l2_lambda is 0."""
    params = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    if not l2_lambda or not params:
        return torch.zeros((), device=params[0].device if params else "cpu")
    return 0.5 * l2_lambda * sum(p.float().pow(2).sum() for p in params)


def freeze_body(model, frozen):
    """Body parameters stop (or resume) receiving gradients; a frozen body's batch norms
    also keep their running statistics (eval mode). Call after model.train()."""
    body = set(map(id, network.body_and_head(model)["body"]))
    for p in model.parameters():
        if id(p) in body:
            p.requires_grad_(not frozen)
    if frozen:
        head = network.head_prefixes(model)
        for name, m in model.named_modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and not name.startswith(head):
                m.eval()


def wrap_ddp(model, env):
    """The model as DDP sees it (only parameters that require gradients take part)."""
    if env.world == 1:
        return model
    return torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[env.device.index] if env.device.type == "cuda" else None)


# Fault injection for the kill-and-resume test: SOUNDTRACK_KILL_AT_STEP=N kills the run
# (SIGKILL to its process group) right after its N-th optimizer step. Unset normally.
_KILL_AT_STEP = int(os.environ.get("SOUNDTRACK_KILL_AT_STEP", "0"))


def train_one_epoch(model, loader, task, optimizer, scheduler, scaler, env, cfg, epoch):
    """One pass over the loader. Every random draw of the epoch (dropout, masks, mixup) comes
    from generators seeded by (SEED, epoch, rank), so a resumed run repeats it exactly.
    Returns the mean loss over all ranks."""
    torch.manual_seed(cfg.seed * 100_003 + epoch * 101 + env.rank)
    gen = torch.Generator().manual_seed(cfg.seed * 100_019 + epoch * 103 + env.rank)
    beta = np.random.default_rng([cfg.seed, epoch, env.rank])
    total, count = 0.0, 0
    bar = cli.progress(total=len(loader), desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False,
                       disable=not env.main, unit="step")
    for step, batch in enumerate(loader, 1):
        x, target = task.batch(batch, gen, beta)
        x = x.to(env.device, non_blocking=True)
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        target = target.to(env.device)
        with autocast(env, cfg):
            outputs = model(x)
        loss = task.loss(outputs, target)
        if cfg.l2_lambda > 0:
            loss = loss + l2_penalty(model, cfg.l2_lambda)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        total += loss.item() * len(x)
        count += len(x)
        bar.set_postfix(loss=f"{total / count:.3f}", refresh=False)
        bar.update()
        datafiles.kill_run_if_asked(epoch * len(loader) + step, _KILL_AT_STEP)
    bar.close()
    stats = torch.tensor([total, count], dtype=torch.float64, device=env.device)
    if env.world > 1:
        dist.all_reduce(stats)
    return float(stats[0] / stats[1])


# ---------------------------------------------------------------- checkpoints

def save_checkpoint(path, state):
    datafiles.atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path, device="cpu"):
    return torch.load(path, map_location=device, weights_only=False)


def init_from_checkpoint(model, path, model_name, front_end, pca_params=""):
    """Start the model's body from INIT_CHECKPOINT: a train.py checkpoint (its model name and
    front end must be this run's), a bare state dict, or a published file (PANNs'
    ``{"model": state_dict, ...}`` with its front-end matrices checked against this run's;
    VGGish's release state dict, plus VGGISH_PCA_PARAMS for a postprocessing model). Read
    with torch.load(weights_only=True) (``network.pretrained.safe_load``). Every body key
    must be present with its shape, and the file may hold no key the model lacks; the head
    starts afresh. Raises ValueError naming the keys, both values, the file, and the file
    expected. -> one line for the log."""
    from network import pretrained
    ckpt = pretrained.safe_load(path, "INIT_CHECKPOINT")
    if isinstance(ckpt, dict) and "model_name" in ckpt:        # a train.py checkpoint
        if ckpt["model_name"] != model_name:
            raise ValueError(f"INIT_CHECKPOINT {path} holds a {ckpt['model_name']!r} model, "
                             f"this run trains {model_name!r}")
        if "front_end" in ckpt:
            datafiles.check_front_end(audio.FrontEnd.from_dict(ckpt["front_end"]), front_end,
                                      f"INIT_CHECKPOINT {path}", "this run's features")
        state = ckpt["model"]
    else:
        state = pretrained.init_state(model, ckpt, path, front_end, pca_params)
    try:
        loaded = network.load_body(model, state, where=f"INIT_CHECKPOINT {path}")
    except ValueError as e:
        raise ValueError(pretrained.explain_misfit(model, ckpt, e)) from None
    return f"body from {path} ({loaded} tensors); head {network.head_prefixes(model)} afresh"


# ---------------------------------------------------------------- the shared loop

def fit(model, task, loader, sampler, cfg, env, run_dir, meta):
    """Train for cfg.epochs (resuming from last.pt with --resume), keeping last.pt and best.pt
    (best by the task's minival metric), log.csv and TensorBoard. -> the SummaryWriter
    (main rank; None elsewhere), still open for the scoring phase."""
    optimizer = make_optimizer(model, cfg)
    scheduler = make_scheduler(optimizer, cfg, len(loader))
    scaler = torch.amp.GradScaler("cuda", enabled=env.device.type == "cuda" and cfg.amp)
    start_epoch, best = 0, {"value": -math.inf, "epoch": -1}
    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"
    if cfg.resume or cfg.eval_only:
        if not last_path.exists():
            sys.exit(f"error: --resume/--eval-only but no checkpoint at {last_path}")
        ckpt = load_checkpoint(last_path, env.device)
        check_resumable(ckpt, meta, last_path)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        start_epoch, best = ckpt["epoch"], ckpt["best"]
        if env.main:
            print(f"[train] resumed from {last_path} after epoch {start_epoch}")
    elif env.main and last_path.exists():
        print(f"[train] note: starting afresh; {run_dir} holds an earlier run "
              "(use --resume to continue it)")
    writer = None
    if env.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=start_epoch + 1)
    csv_rows = _read_csv(run_dir / "log.csv")[:start_epoch] if env.main else []
    ddp_model, frozen = None, None
    for epoch in range(start_epoch, 0 if cfg.eval_only else cfg.epochs):
        sampler.set_epoch(epoch)
        model.train()
        if frozen != (epoch < cfg.freeze_body_epochs):
            frozen = epoch < cfg.freeze_body_epochs
            freeze_body(model, frozen)
            ddp_model = wrap_ddp(model, env)   # DDP takes the parameters that need gradients
        elif frozen:
            freeze_body(model, frozen)         # model.train() woke the body's batch norms
        t0 = time.perf_counter()
        loss = train_one_epoch(ddp_model, loader, task, optimizer, scheduler, scaler, env, cfg,
                               epoch)
        seconds = time.perf_counter() - t0
        row = {"epoch": epoch + 1, "train_loss": loss, "lr": scheduler.get_last_lr()[-1],
               "seconds": seconds, "examples_per_second": len(loader.dataset) / seconds,
               **{f"minival_{k}": v for k, v in task.minival(model, env).items()}}
        # without a minival there is nothing to choose by: "best" is the latest epoch
        value = row.get(f"minival_{task.select}", epoch)
        improved = value > best["value"]
        if improved:
            best = {"value": value, "epoch": epoch + 1}
        if env.main:
            state = checkpoint_state(meta, model, optimizer, scheduler, scaler, epoch + 1, best)
            save_checkpoint(last_path, state)
            if improved:
                save_checkpoint(best_path, state)
            csv_rows.append(row)
            _write_csv(run_dir / "log.csv", csv_rows)
            for k, v in row.items():
                if k != "epoch":
                    writer.add_scalar(k.replace("minival_", "minival/").replace(
                        "train_", "train/"), v, epoch + 1)
            writer.flush()
            print(f"[train] epoch {epoch + 1}/{cfg.epochs} loss {loss:.4f} "
                  + " ".join(f"{k.replace('minival_', 'minival ')} {v:.1f}"
                             for k, v in row.items() if k.startswith("minival"))
                  + (" (body frozen)" if frozen else "")
                  + f" ({seconds:.1f} s, {row['examples_per_second']:.3g} {task.unit}/s)")
        env.barrier()
    if cfg.epochs == 0 and not (cfg.resume or cfg.eval_only) and env.main:
        # --epochs 0: the model as initialised (INIT_CHECKPOINT's body) is what scores, e.g.
        # frozen pretrained embeddings; last.pt (and best.pt, so that no earlier run's is
        # left to score) records it like any other run
        state = checkpoint_state(meta, model, optimizer, scheduler, scaler, 0, best)
        save_checkpoint(last_path, state)
        save_checkpoint(best_path, state)
        print(f"[train] --epochs 0: no training; scoring the initial model ({last_path})")
    env.barrier()
    for p in model.parameters():
        p.requires_grad_(True)
    return writer


def checkpoint_state(meta, model, optimizer, scheduler, scaler, epoch, best):
    """What last.pt / best.pt hold: the run's record plus every state to resume from."""
    return {**meta, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
            "epoch": epoch, "best": best}


def check_resumable(ckpt, meta, path):
    """A run resumes only with the model, front end and classes it was started with."""
    for key in ("model_name", "classes", "n_classes", "in_channels", "frames"):
        if ckpt.get(key) != meta.get(key):
            sys.exit(f"error: {path} has {key} = {ckpt.get(key)!r}, this run "
                     f"{meta.get(key)!r}: use another --run, or the settings it was made with")
    if "front_end" not in meta:
        return
    try:
        datafiles.check_front_end(audio.FrontEnd.from_dict(ckpt["front_end"]),
                                  audio.FrontEnd.from_dict(meta["front_end"]), str(path),
                                  "this run's features")
    except (KeyError, ValueError) as e:
        sys.exit(f"error: cannot resume from {path}: {e}")


def choose_checkpoint(model, run_dir, cfg, env):
    """Load the checkpoint that scores (EVAL_CHECKPOINT) into the model. -> its epoch."""
    best_path, last_path = run_dir / "best.pt", run_dir / "last.pt"
    chosen = best_path if cfg.eval_checkpoint == "best" and best_path.exists() else last_path
    ckpt = load_checkpoint(chosen, env.device)
    model.load_state_dict(ckpt["model"])
    if env.main:
        why = ("best on minival, never on the scored split" if chosen == best_path
               else "the last epoch")
        print(f"[train] scoring with {chosen.name} (epoch {ckpt['epoch']}; EVAL_CHECKPOINT="
              f"{cfg.eval_checkpoint}: {why})")
    return ckpt["epoch"]


# ---------------------------------------------------------------- main: build / fit / score

def settle_epochs(cfg, steps_per_epoch):
    """MIN_TRAIN_STEPS: raise cfg.epochs so that the run takes at least that many optimizer
    steps; the run's record (its config) then holds the raised value. Epoch 0 (scoring only)
    stays 0. -> a note for the log ("" when nothing changed)."""
    steps = max(1, steps_per_epoch)
    if cfg.min_train_steps <= 0 or cfg.epochs == 0 or cfg.epochs * steps >= cfg.min_train_steps:
        return ""
    asked, cfg.epochs = cfg.epochs, math.ceil(cfg.min_train_steps / steps)
    return (f"MIN_TRAIN_STEPS {cfg.min_train_steps}: {cfg.epochs} epochs of {steps} steps "
            f"instead of EPOCHS {asked}")


def make_loader(train_set, cfg, env):
    """The training loader: each rank's share of a seeded shuffle (DistributedSampler, or
    BalancedSampler with BALANCED_SAMPLING), BATCH_SIZE / world per rank, the last partial
    batch dropped. -> (loader, sampler); call sampler.set_epoch(epoch) before each epoch."""
    sampler = (BalancedSampler(train_set.labels, cfg.seed, env.world, env.rank)
               if cfg.balanced_sampling else
               DistributedSampler(train_set, num_replicas=env.world, rank=env.rank,
                                  shuffle=True, seed=cfg.seed, drop_last=False))
    per_rank_batch = max(1, cfg.batch_size // env.world)
    loader = DataLoader(train_set, batch_size=per_rank_batch, sampler=sampler,
                        num_workers=cfg.loader_workers, drop_last=len(train_set) > per_rank_batch,
                        pin_memory=env.device.type == "cuda",
                        persistent_workers=cfg.loader_workers > 0)
    return loader, sampler


def build(cfg, env, paths):
    """The run's parts for the model's modality (network.modality): a dict of model, task,
    loader, sampler, meta and load_split (split -> the dataset its task scores)."""
    try:
        kind = network.modality(cfg.model)
    except ValueError as e:
        sys.exit(f"error: {e}")
    if kind == "envelope":               # sequences of frames: the envelope model's own module
        import envelope_task
        return envelope_task.build_envelope(cfg, env, paths)
    return (build_visual if kind == "visual" else build_audio)(cfg, env, paths)


def build_audio(cfg, env, paths):
    """Datalists, datasets, model, loader and task of an audio run, checked against the
    features' own record. -> dict."""
    classes = datafiles.read_classes(paths.classes)
    try:
        train_list = Datalist(paths.datalist(cfg.train_split))
        record, fe = datafiles.read_feature_record(paths.feature_dir)
        record_path = str(paths.feature_dir / datafiles.FEATURES_RECORD)
        datafiles.check_front_end(train_list.front_end, fe, str(train_list.path), record_path)
        datafiles.check_front_end(fe, paths.front_end, record_path, "these settings")
    except (OSError, ValueError) as e:
        sys.exit(f"error: {e}")
    if train_list.labels.size and train_list.labels.max() >= len(classes):
        sys.exit(f"error: {train_list.path} has labels >= {len(classes)} (classes.txt)")
    packed = paths.packed(cfg.train_split) if cfg.packed else None
    full_train = PatchDataset(train_list, paths.feature_dir, packed=packed)
    fit_rows, minival_rows = minival_split(train_list.labels, cfg.minival_fraction, cfg.seed)
    train_set = PatchDataset(train_list, paths.feature_dir, fit_rows, packed)

    seed_everything(cfg.seed)
    try:
        model = network.build_audio(cfg.model, len(classes), fe.patch_shape)
    except ValueError as e:
        sys.exit(f"error: {e}")
    init_note = start_model(model, cfg, env, fe)
    loader, sampler = make_loader(train_set, cfg, env)
    epochs_note = settle_epochs(cfg, len(loader))
    meta = run_meta(cfg, classes, model, "audio", in_channels=fe.in_channels,
                    patch_shape=list(fe.patch_shape), front_end=fe.to_dict(),
                    feature=paths.feature_name, feature_dtype=record["feature_dtype"],
                    short_track_policy=record["short_track_policy"])
    if env.main:
        print(f"[train] {cfg.model} on {env.device} x{env.world}: {len(train_set)} patches "
              f"{list(fe.patch_shape)} ({fe.name}) from {len(fit_rows)} tracks (minival "
              f"{len(minival_rows)} tracks), {len(classes)} classes, {cfg.epochs} epochs -> "
              f"{paths.run_dir()}" + "".join(f"\n[train] {n}" for n in (epochs_note, init_note)
                                             if n))
    task = AudioClassification(cfg, len(classes), full_train, minival_rows)

    def load_split(split):
        try:
            dl = Datalist(paths.datalist(split))
            datafiles.check_front_end(dl.front_end, fe, str(dl.path), "the trained model's")
        except (OSError, ValueError) as e:
            sys.exit(f"error: {e}")
        return PatchDataset(dl, paths.feature_dir,
                            packed=paths.packed(split) if cfg.packed else None)
    return dict(model=model, task=task, loader=loader, sampler=sampler, meta=meta,
                load_split=load_split)


def frame_split(paths, split, settings):
    """Step 08's videos with frames of one split, checked against frames.json. -> FrameSplit"""
    try:
        found = frames.read_record(paths.frame_dir)
        frames.check_settings(found, settings, str(paths.frame_dir / frames.RECORD),
                              "these settings")
        ids = datafiles.read_ids(paths.frame_list(split))
        labels = datafiles.labels_for(paths.video_list(split), ids)
    except (OSError, ValueError) as e:
        sys.exit(f"error: {e}")
    return FrameSplit(ids, labels, paths.frame_dir)


def build_visual(cfg, env, paths):
    """Frames (step 08), model, loader and task of a visual run. -> dict."""
    try:
        settings = paths.frame_settings
        augment = frames.train_augment(settings.size_pixels, cfg.crop_min_area, cfg.hue_jitter)
    except ValueError as e:   # FRAMES_PER_SECOND, FRAME_SIZE_PIXELS, CROP_MIN_AREA, HUE_JITTER
        sys.exit(f"error: {e}")
    classes = datafiles.read_classes(paths.classes)
    size = settings.size_pixels
    train_split = frame_split(paths, cfg.train_split, settings)
    if train_split.labels.size and train_split.labels.max() >= len(classes):
        sys.exit(f"error: {paths.frame_list(cfg.train_split)} has labels >= {len(classes)}")
    fit_rows, minival_rows = minival_split(train_split.labels, cfg.minival_fraction, cfg.seed)
    train_set = train_split.subset(fit_rows, augment)

    seed_everything(cfg.seed)
    smallest = network.model_class(cfg.model).MIN_INPUT_PIXELS
    if size < smallest:
        sys.exit(f"error: {cfg.model} needs frames of at least {smallest} px; "
                 f"FRAME_SIZE_PIXELS is {size}")
    try:
        model = network.build(cfg.model, n_classes=len(classes), weights=(
            str(cli.repo_path(cfg.pretrained_weights))
            if cfg.pretrained_weights not in ("imagenet", "none") else cfg.pretrained_weights))
    except ValueError as e:
        sys.exit(f"error: {e}")
    init_note = start_model(model, cfg, env, None)
    loader, sampler = make_loader(train_set, cfg, env)
    epochs_note = settle_epochs(cfg, len(loader))
    meta = run_meta(cfg, classes, model, "visual", in_channels=3, frames=settings.to_dict(),
                    pretrained_weights=cfg.pretrained_weights)
    if env.main:
        print(f"[train] {cfg.model} ({cfg.pretrained_weights} weights) on {env.device} "
              f"x{env.world}: {len(train_set)} frames {size} px from {len(fit_rows)} videos "
              f"(minival {len(minival_rows)} videos), {len(classes)} classes, {cfg.epochs} "
              f"epochs -> {paths.run_dir()}" + "".join(f"\n[train] {n}" for n in
                                                      (epochs_note, init_note) if n))
    task = VisualClassification(cfg, len(classes), train_split, minival_rows, cfg.per_frame)
    return dict(model=model, task=task, loader=loader, sampler=sampler, meta=meta,
                load_split=lambda split: frame_split(paths, split, settings))


def run_meta(cfg, classes, model, modality, **specific):
    """What every checkpoint carries besides the weights: the settings, classes, model,
    modality and head, provenance, and the modality's own record (`specific`)."""
    return {"config": dict(cfg), "classes": classes, "model_name": cfg.model,
            "modality": modality, "n_classes": len(classes), **specific,
            "head": list(network.head_prefixes(model)), **datafiles.provenance()}


def start_model(model, cfg, env, fe):
    """INIT_CHECKPOINT (if set), then the device and memory format. -> a note for the log."""
    init_note = ""
    if cfg.init_checkpoint:
        try:
            init_note = init_from_checkpoint(
                model, cli.repo_path(cfg.init_checkpoint), cfg.model, fe,
                cli.repo_path(cfg.vggish_pca_params) if cfg.vggish_pca_params else "")
        except ValueError as e:
            sys.exit(f"error: {e}")
    model.to(env.device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    return init_note


def score(model, task, cfg, env, paths, load_split, writer, epoch):
    """Score each of --eval-splits (default EVAL_SPLIT) into the output contract."""
    out_dir = paths.npy_dir()
    for split in cfg.eval_splits if cfg.eval_splits is not None else [cfg.eval_split]:
        try:
            result = task.score_split(model, env, split, load_split(split), out_dir, cfg.shard)
        except ValueError as e:
            sys.exit(f"error: {e}")
        if env.main and not result:
            print(f"[train] {split}: shard {cfg.shard[0]}/{cfg.shard[1]} scored -> "
                  f"{shard_file(out_dir, split, cfg.shard)}; the contract is written when "
                  f"all {cfg.shard[1]} shards are")
        elif env.main:
            if writer is not None and not math.isnan(result["track_top1"]):
                writer.add_scalar(f"{split}/track_top1", result["track_top1"], epoch)
                writer.add_scalar(f"{split}/track_top5", result["track_top5"], epoch)
            print(f"[train] {split}: {result['n']} tracks, {result['n_parts']} {task.unit}; "
                  f"track top-1 {result['track_top1']:.1f} %, top-5 "
                  f"{result['track_top5']:.1f} % -> {out_dir}/{split}_*.npy")


def main(argv=None):
    parser = cli.parser(__doc__, TRAIN_KEYS, shard=True)
    parser.add_argument("--resume", action="store_true", default=False,
                        help="continue from runs/<dataset>/<run>/last.pt")
    parser.add_argument("--eval-splits", nargs="*", default=None, metavar="SPLIT",
                        help="splits to score after training (default: EVAL_SPLIT)")
    parser.add_argument("--eval-only", action="store_true", default=False,
                        help="skip training; score --eval-splits with the chosen checkpoint")
    parser.add_argument("--per-frame", action="store_true", default=False,
                        help="visual models: also write each frame's pooled feature and time")
    cfg = cli.parse(parser, argv)
    if cfg.shard != (1, 1) and not (cfg.eval_only or cfg.epochs == 0):
        parser.error("--shard K/N splits the scoring only: use it with --eval-only (score a "
                     "trained run) or --epochs 0 (frozen embeddings)")
    threads = torch.get_num_threads()
    if cfg.torch_threads > 0:
        torch.set_num_threads(cfg.torch_threads)
    try:
        env = Dist(cfg.device)
        paths = datafiles.Paths(cfg)
        run_dir = paths.run_dir()
        parts = build(cfg, env, paths)
        writer = fit(parts["model"], parts["task"], parts["loader"], parts["sampler"], cfg,
                     env, run_dir, parts["meta"])
        epoch = choose_checkpoint(parts["model"], run_dir, cfg, env)
        score(parts["model"], parts["task"], cfg, env, paths, parts["load_split"], writer,
              epoch)
        if writer is not None:
            writer.close()
        env.close()
    finally:
        torch.set_num_threads(threads)     # an in-process caller (a test) keeps its own


def _read_csv(path):
    if not Path(path).exists():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _write_csv(path, rows):
    fields = list(dict.fromkeys(k for r in rows for k in r))

    def write(tmp):
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            w.writerows(rows)
    datafiles.atomic_write(path, write)


if __name__ == "__main__":
    main()
