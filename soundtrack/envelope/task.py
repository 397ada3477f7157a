"""The envelope model as a task of the shared training loop (MODEL = envelope_lstm;
soundtrack.training.tasks gives the protocol).

One example is one clip: its frames' features in time order and step 09's envelope, padded
to the longest clip; the padding is masked out of the loss (a sum over real frames divided by
their number), never fitted.

Reads  npy_files/<dataset>/<ENVELOPE_FEATURES_RUN>/<split>_frame_pooled.npy, _patch_track.npy,
       _frame_times.npy, _ids.txt (a visual train.py run with --per-frame, --eval-splits
       covering TRAIN_SPLIT and EVAL_SPLIT: the frozen 2D body's pooled feature per frame)
       for ENVELOPE_BACKBONE = features; else step 08's frames files themselves;
       step 09's <envelope folder>/<id>.npy and envelopes.json, its <split>_..._envelopes.txt;
       file_lists/<dataset>/<split>_videos.txt, classes.txt
Writes (train.py's checkpoints and logs, and) npy_files/<dataset>/<run>/:
       <split>_envelope.npz   ids str [n], offsets int64 [n + 1], pred float32 [n_frames]
                              (sigmoid, clip i's frames at pred[offsets[i]:offsets[i + 1]]),
                              times float64 [n_frames]
       <split>_scores.npy, _logits.npy, _embedding.npy, _labels.npy, _ids.txt: the class
                              head's output contract (meaningful when CLASS_LOSS_WEIGHT > 0)
Loss: ENVELOPE_LOSS_WEIGHT x masked BCE(envelope) + CLASS_LOSS_WEIGHT x KL(class targets).
"best" on the minival: the lowest masked BCE (minus_bce), or track top-1 when only the class
loss counts.
"""
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

import network
from AudioDataLoader import minival_split
from soundtrack import cli
from soundtrack import datafiles
from soundtrack import frames
from soundtrack.envelope import evaluation, target
from soundtrack.errors import StageError
from soundtrack.training import runs
from soundtrack.training.objectives import kl_loss, soft_targets

BACKBONES = "features | r3d_18 | r2plus1d_18 | tv_* (a 2D visual model, fine-tuned)"


class Targets:
    """A batch's targets: envelope float [B, T], valid float [B, T] (1 = real frame), labels
    int64 [B]. ``to(device)`` as a tensor's, for the shared loop."""

    def __init__(self, envelope_, valid, labels):
        self.envelope, self.valid, self.labels = envelope_, valid, labels

    def to(self, device):
        return Targets(self.envelope.to(device), self.valid.to(device), self.labels.to(device))


class ClipSequences:
    """Clips as padded sequences: (x, envelope [T], valid [T], label, row); a map-style
    dataset. x: [T, D + 1] features + validity (backbone features) or [T, 4, S, S] RGB in
    [0, 1] + validity plane (frames). T = the longest clip of the split."""

    def __init__(self, ids, labels, targets, feats=None, frame_paths=None, rows=None):
        self.ids, self.all_labels = list(ids), np.asarray(labels, np.int64)
        self.targets, self.feats, self.frame_paths = targets, feats, frame_paths
        self.rows = np.arange(len(self.ids)) if rows is None else np.asarray(rows, np.int64)
        self.t_max = max((len(t) for t in targets), default=1)
        self.labels = self.all_labels[self.rows]

    def subset(self, rows):
        return ClipSequences(self.ids, self.all_labels, self.targets, self.feats,
                             self.frame_paths, rows)

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        row = int(self.rows[i])
        target = self.targets[row]
        n = len(target)
        env = np.zeros(self.t_max, np.float32)
        env[:n] = target
        valid = np.zeros(self.t_max, np.float32)
        valid[:n] = 1
        if self.feats is not None:
            x = np.zeros((self.t_max, self.feats[row].shape[1] + 1), np.float32)
            x[:n, :-1] = self.feats[row]
            x[:n, -1] = 1
            x = torch.from_numpy(x)
        else:
            v = frames.load_video(self.frame_paths[row], ("jpeg", "offsets"))
            imgs = [frames.decode(v["jpeg"][v["offsets"][k]:v["offsets"][k + 1]])
                    for k in range(n)]
            s = imgs[0].shape[-1]
            x = torch.zeros(self.t_max, 4, s, s)
            x[:n, :3] = torch.stack(imgs).float() / 255.0
            x[:n, 3] = 1
        return x, torch.from_numpy(env), torch.from_numpy(valid), int(self.all_labels[row]), row


def masked_bce(logits, target, valid):
    """BCE of sigmoid(logits) against target over the real frames only: [B, T] each -> the
    mean over real frames (padding contributes nothing, not even to the count)."""
    per = F.binary_cross_entropy_with_logits(logits.float(), target, reduction="none")
    return (per * valid).sum() / valid.sum().clamp_min(1.0)


class EnvelopeTask:
    """The envelope regression (and, weighted, the clip's class): a tasks.Task of loop.fit.

      batch(batch, gen, beta) -> (x, Targets)
      loss(outputs, targets)  -> ENVELOPE_LOSS_WEIGHT x masked BCE + CLASS_LOSS_WEIGHT x KL
      minival(model, env)     -> {"minus_bce", "mean_r", "track_top1"} on the minival clips
      score_split(...)        -> <split>_envelope.npz and the class contract
    """
    unit = "clips"

    def __init__(self, cfg, n_classes, train_set, minival_rows):
        self.cfg, self.n_classes = cfg, n_classes
        self.train_set, self.minival_rows = train_set, minival_rows
        only_class = cfg.envelope_loss_weight == 0 and cfg.class_loss_weight > 0
        self.select = "track_top1" if only_class else "minus_bce"

    def batch(self, batch, gen, beta):
        x, env, valid, y, _ = batch
        return x, Targets(env, valid, y)

    def loss(self, outputs, target):
        total = 0.0
        if self.cfg.envelope_loss_weight:
            total = total + self.cfg.envelope_loss_weight * masked_bce(
                outputs["envelope"], target.envelope, target.valid)
        if self.cfg.class_loss_weight:
            soft = soft_targets(target.labels, self.n_classes,
                                            self.cfg.label_smoothing)
            total = total + self.cfg.class_loss_weight * kl_loss(
                outputs["logits"], soft)
        return total

    def minival(self, model, env):
        if not len(self.minival_rows):
            return {}
        out = predict(model, self.train_set.subset(self.minival_rows), env, self.cfg)
        labels = self.train_set.all_labels[self.minival_rows]
        bce = np.mean([evaluation.bce(p, t) for p, t in zip(out["pred"], out["target"])])
        r = [evaluation.pearson(p, t) for p, t in zip(out["pred"], out["target"])]
        return {"minus_bce": -float(bce), "mean_r": float(np.nanmean(r)),
                "track_top1": float(100 * np.mean(out["logits"].argmax(1) == labels))}

    def score_split(self, model, env, split, dataset, out_dir, shard=(1, 1)):
        if shard != (1, 1):
            raise ValueError("--shard scoring is not implemented for envelope_lstm")
        out = predict(model, dataset, env, self.cfg)
        if not env.main:
            return {}
        lengths = [len(p) for p in out["pred"]]
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        datafiles.save_npz(out_dir / f"{split}_envelope.npz", ids=np.array(dataset.ids),
                           offsets=offsets, pred=np.concatenate(out["pred"]).astype(np.float32),
                           times=np.concatenate(dataset.times) if dataset.times else
                           np.zeros(0))
        labels = dataset.all_labels
        scores = np.exp(out["logits"] - out["logits"].max(1, keepdims=True))
        scores /= scores.sum(1, keepdims=True)
        for what, a in (("scores", scores), ("logits", out["logits"]),
                        ("embedding", out["embedding"])):
            datafiles.save_npy(out_dir / f"{split}_{what}.npy", a.astype(np.float32))
        datafiles.save_npy(out_dir / f"{split}_labels.npy", labels.astype(np.int64))
        datafiles.write_lines(out_dir / f"{split}_ids.txt", dataset.ids)
        top = np.argsort(-scores, 1)
        return {"n": len(dataset.ids), "n_parts": len(dataset.ids),     # train.py prints these
                "n_frames": int(offsets[-1]),
                "track_top1": float(100 * np.mean(top[:, 0] == labels)),
                "track_top5": float(100 * np.mean((top[:, :5] == labels[:, None]).any(1))),
                "bce": float(np.mean([evaluation.bce(p, t) for p, t in
                                      zip(out["pred"], out["target"])]))}


@torch.no_grad()
def predict(model, dataset, env, cfg):
    """-> {"pred": [float32 [n_frames_i]] (sigmoid), "target": [...], "logits" [n, C],
    "embedding" [n, 512]} for the dataset's clips in row order (one process)."""
    loader = DataLoader(dataset, batch_size=cfg.batch_size, shuffle=False,
                        num_workers=cfg.loader_workers)
    model.eval()
    preds, targets, logits, emb = [], [], [], []
    for x, env_t, valid, _, _ in cli.progress(loader, desc="envelopes", leave=False,
                                             disable=not env.main, unit="batch"):
        out = model(x.to(env.device))
        p = torch.sigmoid(out["envelope"].float()).cpu().numpy()
        for k in range(len(p)):
            n = int(valid[k].sum())
            preds.append(p[k, :n])
            targets.append(env_t[k, :n].numpy())
        logits.append(out["logits"].float().cpu().numpy())
        emb.append(out["embedding"].float().cpu().numpy())
    return {"pred": preds, "target": targets,
            "logits": np.concatenate(logits) if logits else np.zeros((0, 0), np.float32),
            "embedding": np.concatenate(emb) if emb else np.zeros((0, 0), np.float32)}


# ---------------------------------------------------------------- building a run

def read_frame_features(npy_dir, split):
    """A --per-frame visual run's features of one split -> (ids, [float32 [T_i, D]],
    [float64 [T_i]] times). ValueError naming the file when they disagree."""
    ids = datafiles.read_ids(npy_dir / f"{split}_ids.txt")
    paths = {w: npy_dir / f"{split}_{w}.npy" for w in ("frame_pooled", "patch_track",
                                                       "frame_times")}
    for p in paths.values():
        if not p.exists():
            raise ValueError(f"{p} does not exist: train the visual run with --per-frame "
                             f"--eval-splits including {split} (ENVELOPE_FEATURES_RUN)")
    pooled = np.load(paths["frame_pooled"])
    track = np.load(paths["patch_track"])
    times = np.load(paths["frame_times"])
    if not len(pooled) == len(track) == len(times):
        raise ValueError(f"{npy_dir}: {split}_frame_pooled, _patch_track and _frame_times "
                         f"have {len(pooled)}, {len(track)}, {len(times)} rows")
    if np.any(np.diff(track) < 0) or (len(track) and track.max() >= len(ids)):
        raise ValueError(f"{paths['patch_track']}: rows not in clip order of {split}_ids.txt")
    bounds = np.searchsorted(track, np.arange(len(ids) + 1))
    return (ids, [pooled[bounds[i]:bounds[i + 1]] for i in range(len(ids))],
            [times[bounds[i]:bounds[i + 1]] for i in range(len(ids))])


def load_split(cfg, paths, split, need_features):
    """One split's clips with an envelope (and features): a ClipSequences with .times."""
    env_dir = target.envelope_dir(paths, cfg)
    record = target.read_record(env_dir)
    if record.get("frames") != paths.frame_settings.to_dict():
        raise ValueError(f"{env_dir / target.RECORD} was made from frames "
                         f"{record.get('frames')}, these settings are "
                         f"{paths.frame_settings.to_dict()}")
    with_env = datafiles.read_ids(target.envelope_list(paths, cfg, split, "envelopes"))
    if need_features:
        ids, feats, times = read_frame_features(paths.npy_dir(cfg.envelope_features_run), split)
        keep = set(with_env)
        rows = [r for r, i in enumerate(ids) if i in keep]
        ids, feats, times = [ids[r] for r in rows], [feats[r] for r in rows], \
            [times[r] for r in rows]
    else:
        ids, feats = with_env, None
        times = [frames.load_video(paths.frame_dir / (i + ".npz"), ("times",))["times"]
                 for i in ids]
    targets = target.load_envelopes(env_dir, ids)
    for i, t in zip(ids, times):
        if len(targets[i]) != len(t):
            raise ValueError(f"{env_dir / (i + '.npy')}: {len(targets[i])} frames, but the "
                             f"features of {i} have {len(t)}: step 09 and the features come "
                             "from different frames")
    labels = datafiles.labels_for(paths.video_list(split), ids)
    ds = ClipSequences(ids, labels, [targets[i] for i in ids], feats,
                       [paths.frame_dir / (i + ".npz") for i in ids])
    ds.times = times
    return ds


def build_envelope(cfg, env, paths):
    """The run of MODEL = envelope_lstm: step 09's envelopes with step 08's frames (or a
    visual run's per-frame features). -> training.runs.Run"""
    if cfg.channels_last:
        cfg.channels_last = False       # sequences are not images: recorded as done
    features = cfg.envelope_backbone == "features"
    classes = datafiles.read_classes(paths.classes)
    try:
        train_all = load_split(cfg, paths, cfg.train_split, features)
    except (OSError, ValueError) as e:
        raise StageError(str(e)) from None
    fit_rows, minival_rows = minival_split(train_all.all_labels, cfg.minival_fraction, cfg.seed)
    train_set = train_all.subset(fit_rows)
    dim = train_all.feats[0].shape[1] if features and train_all.feats else 0
    weights = (str(cli.repo_path(cfg.pretrained_weights))
               if cfg.pretrained_weights not in ("imagenet", "none") else cfg.pretrained_weights)

    def make_model():
        model = network.build(cfg.model, n_classes=len(classes), input_dim=dim,
                              backbone=cfg.envelope_backbone, pool=cfg.envelope_pool,
                              weights=weights, frame_pixels=paths.frame_settings.size_pixels,
                              hidden=cfg.envelope_hidden)
        if features and train_all.feats:
            frames_ = np.concatenate([train_all.feats[r] for r in fit_rows])
            model.feature_mean.copy_(torch.from_numpy(frames_.mean(0)))
            model.feature_std.copy_(torch.from_numpy(frames_.std(0) + 1e-3))
        return model

    def load(split):
        try:
            return load_split(cfg, paths, split, features)
        except (OSError, ValueError) as e:
            raise StageError(str(e)) from None

    return runs.assemble(
        cfg, env, classes, train_set, make_model=make_model,
        make_task=lambda: EnvelopeTask(cfg, len(classes), train_all, minival_rows),
        load_split=load, modality="envelope",
        record=dict(frames=paths.frame_settings.to_dict(),
                    envelope_record=target.read_record(target.envelope_dir(paths, cfg)),
                    input_dim=dim, backbone=cfg.envelope_backbone),
        describe=lambda: (
            f"[train] envelope_lstm ({cfg.envelope_backbone}"
            f"{f' of run {cfg.envelope_features_run}, {dim}-d' if features else ''}) on "
            f"{env.device}: {len(train_set)} clips (minival {len(minival_rows)}), loss "
            f"{cfg.envelope_loss_weight} x BCE + {cfg.class_loss_weight} x class, "
            f"{cfg.epochs} epochs -> {paths.run_dir()}"))
