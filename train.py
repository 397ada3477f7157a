"""Train an audio classifier on log-mel patches, then score the evaluated split(s).

Reads  datalists/<dataset>/<feature>_<split>.npz (step 04), the feature files (step 03),
       file_lists/<dataset>/classes.txt
Writes runs/<dataset>/<run>/last.pt, best.pt   checkpoints holding the model, optimizer,
                                               scheduler, RNG and epoch state, the config,
                                               the classes, git commit and package versions
       runs/<dataset>/<run>/log.csv            one row per epoch
       runs/<dataset>/<run>/tensorboard/       loss, lr, minival patch/track top-1/top-5
       npy_files/<dataset>/<run>/<split>_patch_logits.npy  float32 [n_patches, n_classes]
       npy_files/<dataset>/<run>/<split>_patch_track.npy   int64 [n_patches]: row of the
                                                           patch's track in ..._track_ids.txt
       npy_files/<dataset>/<run>/<split>_track_ids.txt     track ids (datalist order)
       npy_files/<dataset>/<run>/<split>_embeddings.npy    float32 [n_tracks, d], mean of the
                                                           patch embeddings (+ _ids.txt)
       npy_files/<dataset>/<run>/<split>_audio_scores.npy  float32 [n_tracks, n_classes], mean
                                                           of patch probabilities (+ _ids.txt)

Each patch inherits its track's label. The "best" checkpoint is chosen by track top-1 on a
minival carved from TRAIN_SPLIT (MINIVAL_FRACTION of its tracks, per class), never on the
evaluated split; EVAL_CHECKPOINT picks best or last for scoring.

One CPU or GPU:  python train.py --dataset demo --feature mel --model slim_cnn --epochs 12 --run r1
Several GPUs:    torchrun --nproc_per_node=4 -- train.py ... (DDP, one process per GPU; the
                 "--" stops torchrun from reading train.py's --run as its own --run-path)
Resume:          the same command with --resume (continues from runs/<dataset>/<run>/last.pt)
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

import cli
import datafiles
import metrics
import network
from AudioDataLoader import Datalist, PatchDataset, minival_split

TRAIN_KEYS = ["SPLITS", "TRAIN_SPLIT", "EVAL_SPLIT", "FEATURE_ROOT", "FEATURE", "DELTAS", "PACKED",
              "RUN", "MODEL", "EPOCHS", "BATCH_SIZE", "OPTIMIZER", "LEARNING_RATE",
              "WEIGHT_DECAY", "MOMENTUM", "SCHEDULE", "WARMUP_EPOCHS", "STEP_EPOCHS",
              "STEP_GAMMA", "MIXUP_ALPHA", "SPEC_AUGMENT", "TIME_MASK_FRAMES", "FREQ_MASK_BANDS",
              "TIME_SHIFT_FRAMES",
              "LABEL_SMOOTHING", "BALANCED_SAMPLING", "MINIVAL_FRACTION", "EVAL_CHECKPOINT",
              "AMP", "CHANNELS_LAST", "LOADER_WORKERS", "SEED", "DEVICE"]


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
        if self.world > 1:
            dist.destroy_process_group()


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


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


def spec_augment(x, time_frames, freq_bands, gen):
    """Zero one random time band (<= time_frames) and one mel band (<= freq_bands) per patch.

    x: [B, C, 64 bands, 96 frames]; gen: torch.Generator (CPU) for reproducible masks.
    """
    b, _, n_bands, n_frames = x.shape

    def mask(n, width):
        w = torch.randint(0, width + 1, (b, 1), generator=gen)
        start = (torch.rand((b, 1), generator=gen) * (n - w + 1)).long()
        pos = torch.arange(n)[None]
        return (pos >= start) & (pos < start + w)           # [B, n]

    keep = ~(mask(n_bands, freq_bands)[:, :, None] | mask(n_frames, time_frames)[:, None, :])
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
    t = F.one_hot(labels, n_classes).float()
    return t * (1 - smoothing) + smoothing / n_classes


# ---------------------------------------------------------------- schedule

def make_scheduler(optimizer, cfg, steps_per_epoch):
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
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.learning_rate, momentum=cfg.momentum, nesterov=True)
    return torch.optim.AdamW(groups, lr=cfg.learning_rate)


# ---------------------------------------------------------------- evaluation

@torch.no_grad()
def predict(model, dataset, tracks, env, cfg, desc):
    """Patch logits and embeddings of `tracks` (datalist rows), each track scored once.

    Under DDP each rank takes tracks[rank::world] (no sampler padding, so no duplicates);
    the results are gathered on every rank and returned in datalist row order.
    Returns: (patch_logits [P, C], patch_embeddings [P, D], patch_track [P]) as numpy.
    """
    mine = np.asarray(tracks)[env.rank::env.world]
    sub = PatchDataset(dataset.datalist, dataset.feature_dir, mine, dataset.packed_path)
    loader = DataLoader(sub, batch_size=cfg.batch_size * 2, shuffle=False,
                        num_workers=cfg.loader_workers)
    model.eval()
    logits, embs, rows = [], [], []
    for x, _, t in cli.progress(loader, desc=desc, leave=False, disable=not env.main):
        x = x.to(env.device, non_blocking=True)
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(env, cfg):
            out = model(x)
        logits.append(out["logits"].float().cpu().numpy())
        embs.append(out["embedding"].float().cpu().numpy())
        rows.append(t.numpy())
    part = (np.concatenate(logits) if logits else np.zeros((0, 0), np.float32),
            np.concatenate(embs) if embs else np.zeros((0, 0), np.float32),
            np.concatenate(rows) if rows else np.zeros(0, np.int64))
    parts = [p for p in env.gather(part) if len(p[2])]
    logit, emb, track = (np.concatenate([p[i] for p in parts]) for i in range(3))
    order = np.argsort(track, kind="stable")  # patches of a track stay in time order
    return logit[order], emb[order], track[order]


def track_metrics(patch_logits, patch_track, tracks, labels):
    """Patch and track top-1/top-5 (percent) for datalist rows `tracks`."""
    remap = np.searchsorted(tracks, patch_track)
    scores = metrics.track_scores(patch_logits, remap, len(tracks))
    return {"patch_top1": metrics.topk_accuracy(patch_logits, labels[patch_track], 1),
            "track_top1": metrics.topk_accuracy(scores, labels[tracks], 1),
            "track_top5": metrics.topk_accuracy(scores, labels[tracks], 5)}


def autocast(env, cfg):
    return torch.autocast("cuda", dtype=torch.float16,
                          enabled=env.device.type == "cuda" and cfg.amp)


def save_split_outputs(out_dir, split, datalist, patch_logits, patch_embs, patch_track):
    """Write a split's per-patch logits, per-track embeddings and track scores (with ids)."""
    n = len(datalist)
    ids = datalist.ids
    datafiles.save_npy(out_dir / f"{split}_patch_logits.npy", patch_logits.astype(np.float32))
    datafiles.save_npy(out_dir / f"{split}_patch_track.npy", patch_track.astype(np.int64))
    datafiles.write_lines(out_dir / f"{split}_track_ids.txt", ids)
    datafiles.save_npy(out_dir / f"{split}_embeddings.npy",
                       metrics.track_mean(patch_embs, patch_track, n))
    datafiles.write_lines(datafiles.ids_path_for(out_dir / f"{split}_embeddings.npy"), ids)
    scores = metrics.track_scores(patch_logits, patch_track, n)
    datafiles.save_npy(out_dir / f"{split}_audio_scores.npy", scores)
    datafiles.write_lines(datafiles.ids_path_for(out_dir / f"{split}_audio_scores.npy"), ids)
    return scores


# ---------------------------------------------------------------- checkpoints

def save_checkpoint(path, state):
    datafiles.atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path, device="cpu"):
    return torch.load(path, map_location=device, weights_only=False)


# ---------------------------------------------------------------- training

# Fault injection for the kill-and-resume test: sleep this long after each step. 0 normally.
_PAUSE_EACH_STEP_S = float(os.environ.get("SOUNDTRACK_PAUSE_EACH_STEP_S", "0"))


def train_one_epoch(model, loader, optimizer, scheduler, scaler, env, cfg, epoch, n_classes):
    """One pass over the loader. Every random draw of the epoch (dropout, masks, mixup) comes
    from generators seeded by (SEED, epoch, rank), so a resumed run repeats it exactly."""
    model.train()
    torch.manual_seed(cfg.seed * 100_003 + epoch * 101 + env.rank)
    gen = torch.Generator().manual_seed(cfg.seed * 100_019 + epoch * 103 + env.rank)
    beta = np.random.default_rng([cfg.seed, epoch, env.rank])
    total, count = 0.0, 0
    bar = cli.progress(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False,
                       disable=not env.main)
    for x, y, _ in bar:
        if cfg.time_shift_frames > 0:
            x = time_shift(x, cfg.time_shift_frames, gen)
        if cfg.spec_augment:
            x = spec_augment(x, cfg.time_mask_frames, cfg.freq_mask_bands, gen)
        target = soft_targets(y, n_classes, cfg.label_smoothing)
        if cfg.mixup_alpha > 0:
            lam = float(beta.beta(cfg.mixup_alpha, cfg.mixup_alpha))
            perm = torch.randperm(len(x), generator=gen)
            x = lam * x + (1 - lam) * x[perm]
            target = lam * target + (1 - lam) * target[perm]
        x = x.to(env.device, non_blocking=True)
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        target = target.to(env.device)
        with autocast(env, cfg):
            logits = model(x)["logits"]
        log_p = F.log_softmax(logits.float(), dim=1)
        # KL(target || p) = cross-entropy minus the targets' entropy: same gradients, and 0
        # at a perfect fit, which is the two-phase paper's loss for soft (mixup) targets
        loss = F.kl_div(log_p, target, reduction="batchmean")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        total += loss.item() * len(x)
        count += len(x)
        bar.set_postfix(loss=f"{total / count:.3f}")
        if _PAUSE_EACH_STEP_S:
            time.sleep(_PAUSE_EACH_STEP_S)
    stats = torch.tensor([total, count], dtype=torch.float64, device=env.device)
    if env.world > 1:
        dist.all_reduce(stats)
    return float(stats[0] / stats[1])


def main(argv=None):
    parser = cli.parser(__doc__, TRAIN_KEYS)
    parser.add_argument("--resume", action="store_true", default=False,
                        help="continue from runs/<dataset>/<run>/last.pt")
    parser.add_argument("--eval-splits", nargs="*", default=None, metavar="SPLIT",
                        help="splits to score after training (default: EVAL_SPLIT)")
    parser.add_argument("--eval-only", action="store_true", default=False,
                        help="skip training; score --eval-splits with the chosen checkpoint")
    cfg = cli.parse(parser, argv)
    env = Dist(cfg.device)
    paths = datafiles.Paths(cfg)
    run_dir, out_dir = paths.run_dir(), paths.npy_dir()
    classes = datafiles.read_classes(paths.classes)
    n_classes = len(classes)
    train_list = Datalist(paths.datalist(cfg.train_split))
    if train_list.labels.size and train_list.labels.max() >= n_classes:
        sys.exit(f"error: {train_list.path} has labels >= {n_classes} (classes.txt)")
    packed = paths.packed(cfg.train_split) if cfg.packed else None
    full_train = PatchDataset(train_list, paths.feature_dir, packed=packed)
    fit_rows, minival_rows = minival_split(train_list.labels, cfg.minival_fraction, cfg.seed)
    train_set = PatchDataset(train_list, paths.feature_dir, fit_rows, packed)

    seed_everything(cfg.seed)
    model = network.build(cfg.model, n_classes=n_classes, in_channels=train_list.in_channels)
    model.to(env.device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    ddp_model = (torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[env.device.index] if env.device.type == "cuda" else None)
        if env.world > 1 else model)

    sampler = (BalancedSampler(train_set.labels, cfg.seed, env.world, env.rank)
               if cfg.balanced_sampling else
               DistributedSampler(train_set, num_replicas=env.world, rank=env.rank,
                                  shuffle=True, seed=cfg.seed, drop_last=False))
    per_rank_batch = max(1, cfg.batch_size // env.world)
    loader = DataLoader(train_set, batch_size=per_rank_batch, sampler=sampler,
                        num_workers=cfg.loader_workers, drop_last=len(train_set) > per_rank_batch,
                        pin_memory=env.device.type == "cuda",
                        persistent_workers=cfg.loader_workers > 0)
    optimizer = make_optimizer(model, cfg)
    scheduler = make_scheduler(optimizer, cfg, len(loader))
    scaler = torch.amp.GradScaler("cuda", enabled=env.device.type == "cuda" and cfg.amp)

    start_epoch, best = 0, {"track_top1": -1.0, "epoch": -1}
    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"
    if (cfg.resume or cfg.eval_only) and last_path.exists():
        ckpt = load_checkpoint(last_path, env.device)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        start_epoch, best = ckpt["epoch"], ckpt["best"]
        if env.main:
            print(f"[train] resumed from {last_path} after epoch {start_epoch}")
    elif cfg.resume or cfg.eval_only:
        sys.exit(f"error: --resume/--eval-only but no checkpoint at {last_path}")
    elif env.main and last_path.exists():
        print(f"[train] note: starting afresh; {run_dir} holds an earlier run "
              "(use --resume to continue it)")

    meta = {"config": dict(cfg), "classes": classes, "model_name": cfg.model,
            "n_classes": n_classes, "in_channels": train_list.in_channels,
            "feature": paths.feature_name, **datafiles.provenance()}
    writer = None
    if env.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=start_epoch + 1)
        print(f"[train] {cfg.model} on {env.device} x{env.world}: {len(train_set)} patches "
              f"from {len(fit_rows)} tracks (minival {len(minival_rows)} tracks), "
              f"{n_classes} classes, {cfg.epochs} epochs -> {run_dir}")
    csv_rows = _read_csv(run_dir / "log.csv")[:start_epoch] if env.main else []

    for epoch in range(start_epoch, 0 if cfg.eval_only else cfg.epochs):
        sampler.set_epoch(epoch)
        t0 = time.perf_counter()
        loss = train_one_epoch(ddp_model, loader, optimizer, scheduler, scaler, env, cfg,
                               epoch, n_classes)
        seconds = time.perf_counter() - t0
        row = {"epoch": epoch + 1, "train_loss": loss, "lr": scheduler.get_last_lr()[0],
               "seconds": seconds, "patches_per_second": len(train_set) / seconds}
        if len(minival_rows):
            pl, _, pt = predict(model, full_train, minival_rows, env, cfg, "minival")
            row.update({f"minival_{k}": v for k, v in
                        track_metrics(pl, pt, minival_rows, train_list.labels).items()})
        # without a minival there is nothing to choose by: "best" is the latest epoch
        improved = (not len(minival_rows)
                    or row["minival_track_top1"] > best["track_top1"])
        if improved:
            best = {"track_top1": row.get("minival_track_top1", 0.0), "epoch": epoch + 1}
        if env.main:
            state = {**meta, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                     "epoch": epoch + 1, "best": best}
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
                  + f" ({seconds:.1f} s, {row['patches_per_second']:.0f} patches/s)")
        env.barrier()

    # ---- score the evaluated split(s) with the chosen checkpoint
    chosen = best_path if cfg.eval_checkpoint == "best" and best_path.exists() else last_path
    ckpt = load_checkpoint(chosen, env.device)
    model.load_state_dict(ckpt["model"])
    if env.main:
        why = ("best on minival, never on the scored split" if chosen == best_path
               else "the last epoch")
        print(f"[train] scoring with {chosen.name} (epoch {ckpt['epoch']}; EVAL_CHECKPOINT="
              f"{cfg.eval_checkpoint}: {why})")
    for split in cfg.eval_splits if cfg.eval_splits is not None else [cfg.eval_split]:
        dl = Datalist(paths.datalist(split))
        ds = PatchDataset(dl, paths.feature_dir, packed=paths.packed(split) if cfg.packed else None)
        pl, pe, pt = predict(model, ds, np.arange(len(dl)), env, cfg, f"score {split}")
        if env.main:
            scores = save_split_outputs(out_dir, split, dl, pl, pe, pt)
            top1 = metrics.topk_accuracy(scores, dl.labels, 1)
            top5 = metrics.topk_accuracy(scores, dl.labels, 5)
            if writer is not None and not math.isnan(top1):
                writer.add_scalar(f"{split}/track_top1", top1, ckpt["epoch"])
                writer.add_scalar(f"{split}/track_top5", top5, ckpt["epoch"])
            print(f"[train] {split}: {len(dl)} tracks, {len(pl)} patches; track top-1 "
                  f"{top1:.1f} %, top-5 {top5:.1f} % -> {out_dir}")
    if writer is not None:
        writer.close()
    env.close()


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
