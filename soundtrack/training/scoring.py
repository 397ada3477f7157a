"""Scoring a split into the output contract (train.py's module docstring): every patch (frame)
scored once, tracks' scores as the mean of their patches' softmax, ``--shard K/N`` parts merged
when all are there."""
import math

import numpy as np
import torch
from torch.utils.data import DataLoader

from soundtrack import cli
from soundtrack import datafiles
from soundtrack import metrics
from soundtrack import records
from soundtrack.errors import StageError
from soundtrack.training.env import autocast


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


def score_shard(model, dataset, subset, env, cfg, split, out_dir, shard):
    """Score the tracks of shard (K, N) of a split (datafiles.shard_of: every N-th id of the
    sorted list) into ``shards/<split>_KofN.npz`` (patch logits, embeddings, datalist rows
    and ids), unless that file exists (a rerun resumes where a killed one stopped). When all
    N shards' files exist, write the split's contract from them (whichever shard finishes
    last does it; several at once write the same bytes). -> metrics, or {} if shards remain."""
    ids = dataset.datalist.ids           # subset(rows) -> the Dataset of those tracks' patches
    path = shard_file(out_dir, split, shard)
    if not path.exists():
        mine = set(datafiles.shard_of(ids, shard))
        rows = np.array([r for r, i in enumerate(ids) if i in mine], np.int64)
        out = predict(model, subset, rows, env, cfg,
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


def result_record(meta):
    """The record of a train.py result folder (records.py), before any split is added."""
    return records.new("train.py", meta["modality"], meta["classes"], model=meta["model_name"],
                       front_end=meta.get("front_end"), frames=meta.get("frames"))


def score(model, task, cfg, env, paths, load_split, writer, chosen, meta):
    """Score each of --eval-splits (default EVAL_SPLIT) into the output contract, and add
    each split written to the folder's record (records.py) with the checkpoint `chosen`
    (choose_checkpoint's) that scored it."""
    out_dir = paths.npy_dir()
    record = result_record(meta)
    checkpoint = {**chosen, "path": paths.relative(chosen["path"])}
    for split in cfg.eval_splits if cfg.eval_splits is not None else [cfg.eval_split]:
        try:
            result = task.score_split(model, env, split, load_split(split), out_dir, cfg.shard)
        except ValueError as e:
            raise StageError(str(e)) from None
        if env.main and not result:
            print(f"[train] {split}: shard {cfg.shard[0]}/{cfg.shard[1]} scored -> "
                  f"{shard_file(out_dir, split, cfg.shard)}; the contract is written when "
                  f"all {cfg.shard[1]} shards are")
        elif env.main:
            records.add_split(records.folder_record(out_dir), record, split, result["n"],
                              checkpoint=checkpoint)
            if writer is not None and not math.isnan(result["track_top1"]):
                writer.add_scalar(f"{split}/track_top1", result["track_top1"], chosen["epoch"])
                writer.add_scalar(f"{split}/track_top5", result["track_top5"], chosen["epoch"])
            print(f"[train] {split}: {result['n']} tracks, {result['n_parts']} {task.unit}; "
                  f"track top-1 {result['track_top1']:.1f} %, top-5 "
                  f"{result['track_top5']:.1f} % -> {out_dir}/{split}_*.npy")
