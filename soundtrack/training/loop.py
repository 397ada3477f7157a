"""The shared training loop: the loader and its sampler, one epoch, and ``fit`` (resume, epochs,
checkpoints, logs). It knows nothing of audio, frames or envelopes: a *task* (``tasks.Task``)
supplies the batch, the loss, the minival metric and the scorer."""
import contextlib
import csv
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler, Sampler
from torch.utils.tensorboard import SummaryWriter

from soundtrack import atomic
from soundtrack import cli
from soundtrack.errors import StageError
from soundtrack.training import ema as weight_average
from soundtrack.training.checkpoints import (check_resumable, checkpoint_state, load_checkpoint,
                                            save_checkpoint)
from soundtrack.training.env import autocast
from soundtrack.training.objectives import l2_penalty
from soundtrack.training.optim import freeze_body, make_optimizer, make_scheduler, wrap_ddp


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


# Fault injection for the kill-and-resume test: SOUNDTRACK_KILL_AT_STEP=N kills the run
# (SIGKILL to its process group) right after its N-th optimizer step. Unset normally.
_KILL_AT_STEP = int(os.environ.get("SOUNDTRACK_KILL_AT_STEP", "0"))


def train_one_epoch(model, loader, task, optimizer, scheduler, scaler, env, cfg, epoch,
                    ema=None):
    """One pass over the loader (`ema`: a WeightAverage of the model under any wrapper,
    updated after every step). Every
    random draw of the epoch (dropout, masks, mixup) comes from generators seeded by (SEED,
    epoch, rank), so a resumed run repeats it exactly. Returns the mean loss over all ranks."""
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
        if ema is not None:
            ema.update()
        total += loss.item() * len(x)
        count += len(x)
        bar.set_postfix(loss=f"{total / count:.3f}", refresh=False)
        bar.update()
        atomic.kill_run_if_asked(epoch * len(loader) + step, _KILL_AT_STEP)
    bar.close()
    stats = torch.tensor([total, count], dtype=torch.float64, device=env.device)
    if env.world > 1:
        dist.all_reduce(stats)
    return float(stats[0] / stats[1])


class Optimisation:
    """The optimiser, its schedule, the AMP grad scaler and the weight average (EMA_DECAY) of
    a run, saved and restored as one."""

    def __init__(self, model, cfg, env, steps_per_epoch):
        self.optimizer = make_optimizer(model, cfg)
        self.scheduler = make_scheduler(self.optimizer, cfg, steps_per_epoch)
        self.scaler = torch.amp.GradScaler("cuda",
                                           enabled=env.device.type == "cuda" and cfg.amp)
        self.ema = weight_average.make(model, cfg)

    def load(self, ckpt, where):
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        weight_average.resume_from(self.ema, ckpt.get("ema"), where)

    def state(self, meta, model, epoch, best):
        """What last.pt / best.pt hold."""
        return checkpoint_state(meta, model, self.optimizer, self.scheduler, self.scaler,
                                epoch, best, self.ema)

    def evaluated(self):
        """A block in which the model holds the weights that score (the average, if any)."""
        return self.ema.applied() if self.ema is not None else contextlib.nullcontext()


def resume(model, opt, cfg, env, run_dir, meta):
    """With --resume / --eval-only: model and optimisation from run_dir/last.pt (refused if
    made with another model, front end or classes). Without them, a run_dir that holds a run
    is refused unless --overwrite (or --epochs 0 over an --epochs 0 run: the sharded frozen
    embeddings). -> (epochs done, best so far)."""
    last_path = run_dir / "last.pt"
    if cfg.resume or cfg.eval_only:
        if not last_path.exists():
            raise StageError(f"--resume/--eval-only but no checkpoint at {last_path}")
        ckpt = load_checkpoint(last_path, env.device)
        check_resumable(ckpt, meta, last_path)
        model.load_state_dict(ckpt["model"])
        if cfg.resume:       # --eval-only trains nothing: choose_checkpoint picks the weights
            opt.load(ckpt, last_path)
        if env.main:
            print(f"[train] resumed from {last_path} after epoch {ckpt['epoch']}")
        return ckpt["epoch"], ckpt["best"]
    if last_path.exists() and not cfg.overwrite:
        done = load_checkpoint(last_path).get("epoch")
        if not (cfg.epochs == 0 and done == 0):   # --epochs 0 over --epochs 0: nothing lost
            raise StageError(f"{run_dir} holds an earlier run (last.pt after epoch {done}): "
                             f"pass --resume to continue it, --overwrite to start afresh over "
                             f"it, or another --run")
    if env.main and last_path.exists():
        print(f"[train] --overwrite: starting afresh over {run_dir}'s earlier run")
    return 0, {"value": -math.inf, "epoch": -1}


def set_frozen(model, env, cfg, epoch, ddp_model, frozen):
    """model.train(), with the body frozen during the first FREEZE_BODY_EPOCHS (DDP wraps the
    parameters that need gradients, so it is rewrapped when that changes). -> (ddp_model,
    frozen)."""
    model.train()
    if frozen != (epoch < cfg.freeze_body_epochs):
        frozen = epoch < cfg.freeze_body_epochs
        freeze_body(model, frozen)
        ddp_model = wrap_ddp(model, env)
    elif frozen:
        freeze_body(model, frozen)         # model.train() woke the body's batch norms
    return ddp_model, frozen


class RunLog:
    """log.csv and TensorBoard of the main rank (a resumed run keeps its first epochs' rows)."""

    def __init__(self, run_dir, env, start_epoch):
        self.path, self.writer, self.rows = run_dir / "log.csv", None, []
        if env.main:
            run_dir.mkdir(parents=True, exist_ok=True)
            self.writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=start_epoch + 1)
            self.rows = _read_csv(self.path)[:start_epoch]

    def add(self, row, epoch):
        self.rows.append(row)
        _write_csv(self.path, self.rows)
        for k, v in row.items():
            if k != "epoch":
                self.writer.add_scalar(k.replace("minival_", "minival/").replace(
                    "train_", "train/"), v, epoch + 1)
        self.writer.flush()


def epoch_line(row, cfg, unit, frozen):
    """The log's line for one epoch."""
    return (f"[train] epoch {row['epoch']}/{cfg.epochs} loss {row['train_loss']:.4f} "
            + " ".join(f"{k.replace('minival_', 'minival ')} {v:.1f}"
                       for k, v in row.items() if k.startswith("minival"))
            + (" (body frozen)" if frozen else "")
            + f" ({row['seconds']:.1f} s, {row['examples_per_second']:.3g} {unit}/s)")


def fit(model, task, loader, sampler, cfg, env, run_dir, meta):
    """Train for cfg.epochs (resuming from last.pt with --resume), keeping last.pt and best.pt
    (best by the task's minival metric), log.csv and TensorBoard. -> the SummaryWriter
    (main rank; None elsewhere), still open for the scoring phase."""
    opt = Optimisation(model, cfg, env, len(loader))
    start_epoch, best = resume(model, opt, cfg, env, run_dir, meta)
    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"
    log = RunLog(run_dir, env, start_epoch)
    ddp_model, frozen = None, None
    for epoch in range(start_epoch, 0 if cfg.eval_only else cfg.epochs):
        sampler.set_epoch(epoch)
        ddp_model, frozen = set_frozen(model, env, cfg, epoch, ddp_model, frozen)
        t0 = time.perf_counter()
        loss = train_one_epoch(ddp_model, loader, task, opt.optimizer, opt.scheduler, opt.scaler,
                               env, cfg, epoch, opt.ema)
        seconds = time.perf_counter() - t0
        with opt.evaluated():
            minival = task.minival(model, env)
        row = {"epoch": epoch + 1, "train_loss": loss, "lr": opt.scheduler.get_last_lr()[-1],
               "seconds": seconds, "examples_per_second": len(loader.dataset) / seconds,
               **{f"minival_{k}": v for k, v in minival.items()}}
        # without a minival there is nothing to choose by: "best" is the latest epoch
        value = row.get(f"minival_{task.select}", epoch)
        improved = value > best["value"]
        if improved:
            best = {"value": value, "epoch": epoch + 1}
        if env.main:
            state = opt.state(meta, model, epoch + 1, best)
            save_checkpoint(last_path, state)
            if improved:
                save_checkpoint(best_path, state)
            log.add(row, epoch)
            print(epoch_line(row, cfg, task.unit, frozen))
        env.barrier()
    if cfg.epochs == 0 and not (cfg.resume or cfg.eval_only) and env.main:
        # --epochs 0: the model as initialised (INIT_CHECKPOINT's body) is what scores, e.g.
        # frozen pretrained embeddings; last.pt (and best.pt, so that no earlier run's is
        # left to score) records it like any other run
        state = opt.state(meta, model, 0, best)
        save_checkpoint(last_path, state)
        save_checkpoint(best_path, state)
        print(f"[train] --epochs 0: no training; scoring the initial model ({last_path})")
    env.barrier()
    for p in model.parameters():
        p.requires_grad_(True)
    return log.writer


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
    atomic.atomic_write(path, write)
