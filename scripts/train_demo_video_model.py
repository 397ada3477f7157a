"""Train the demo's video classifier and write its scores, as a user's video model would.

Reads  file_lists/<dataset>/classes.txt                 class names; label = line number
       file_lists/<dataset>/<split>_videos.txt          `id<TAB>label` (step 01)
       <video_root>/<id>.<ext>                           the videos (decoded with ffmpeg)
Writes data/<dataset>/frames/<S>px_<F>fps/<id>.npy       uint8 [n_frames, S, S, 3] RGB frame
                                                         cache (S = VIDEO_FRAME_SIZE_PIXELS,
                                                         F = VIDEO_FRAMES_PER_SECOND); reused
       data/<dataset>/frames/<S>px_<F>fps/<split>_failed.txt
                                                         `id<TAB>reason`: videos that did not
                                                         decode (left out, the run goes on)
       video_classification_results/<dataset>/<VIDEO_NAME>_<split>_scores.npy
                                                         float32 [n_videos, n_classes] softmax
                                                         probabilities of EVAL_SPLIT
       video_classification_results/<dataset>/<VIDEO_NAME>_<split>_ids.txt
                                                         row order: one id per line, the order
                                                         of <split>_videos.txt, without videos
                                                         that failed to decode (videos without
                                                         sound are kept)
       video_classification_results/<dataset>/<VIDEO_NAME>_<split>_info.json
                                                         settings, timings, top-1/top-5

The model (VIDEO_MODEL, see network/) learns from TRAIN_SPLIT for VIDEO_EPOCHS epochs with a
fixed seed (AdamW, one-cycle schedule, clips of --clip-frames frames cut at random, random
flips, transposes and colour permutations, label smoothing); there is no model selection on
the evaluated split. A video is scored as the mean softmax over --eval-windows evenly spaced
clips; a video shorter than a clip is looped. Training runs on --threads CPU threads, with
deterministic algorithms: a rerun gives the same scores.
"""
import json
import multiprocessing
import sys
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import cli  # noqa: E402
import datafiles  # noqa: E402
import media  # noqa: E402
import metrics  # noqa: E402
import network  # noqa: E402


# ---------------------------------------------------------------- frames

def decode_one(video_id, video_root, frames_dir, size, fps, ffmpeg, timeout_s, extensions):
    """Decode (or find cached) frames of one video. Returns (id, n_frames or None, reason)."""
    out = Path(frames_dir) / (video_id + ".npy")
    if out.exists():
        return video_id, None, ""
    found = datafiles.locate_videos(video_root, [video_id], extensions)
    if video_id not in found:
        return video_id, None, f"no video file for this id under {video_root}"
    try:
        frames = media.decode_frames(found[video_id], size, fps, ffmpeg=ffmpeg, timeout_s=timeout_s)
    except media.MediaError as e:
        return video_id, None, e.reason
    datafiles.save_npy(out, np.ascontiguousarray(frames))
    return video_id, len(frames), ""


def load_frames(cfg, paths, split, ids):
    """Frames of the ids that decode: ({id: uint8 [T, S, S, 3]}, {id: reason for failures})."""
    frames_dir = (paths.frames_root
                  / f"{cfg.video_frame_size_pixels}px_{cfg.video_frames_per_second}fps")
    work = partial(decode_one, video_root=paths.video_root, frames_dir=frames_dir,
                   size=cfg.video_frame_size_pixels, fps=cfg.video_frames_per_second,
                   ffmpeg=cfg.ffmpeg, timeout_s=cfg.ffmpeg_timeout_seconds,
                   extensions=cfg.video_extensions)
    todo = [i for i in ids if not (frames_dir / (i + ".npy")).exists()]
    failed = {}
    bar = cli.progress(total=len(todo), desc=f"frames {split}", unit="file", disable=not todo)
    if cfg.workers > 1 and len(todo) > 1:
        with multiprocessing.get_context("fork").Pool(cfg.workers) as pool:
            for vid, _, reason in pool.imap_unordered(work, todo, chunksize=4):
                if reason:
                    failed[vid] = reason
                bar.update()
    else:
        for vid in todo:
            _, _, reason = work(vid)
            if reason:
                failed[vid] = reason
            bar.update()
    bar.close()
    datafiles.write_lines(frames_dir / f"{split}_failed.txt",
                          [f"{i}\t{failed[i]}" for i in ids if i in failed])
    size = cfg.video_frame_size_pixels
    frames = {}
    for i in ids:
        if i in failed:
            continue
        a = np.load(frames_dir / (i + ".npy"))
        if a.dtype != np.uint8 or a.ndim != 4 or a.shape[1:] != (size, size, 3) or not len(a):
            raise ValueError(f"{frames_dir / (i + '.npy')}: expected uint8 [T, {size}, {size}, 3], "
                             f"got {a.dtype} {a.shape}; delete it to decode again")
        frames[i] = a
    return frames, failed


# ---------------------------------------------------------------- clips

def cut_clip(frames, start, length):
    """length frames from start, looping a video that is too short. [length, S, S, 3]"""
    idx = (start + np.arange(length)) % len(frames)
    return frames[idx]


def to_tensor(clips):
    """uint8 [B, T, S, S, 3] numpy -> uint8 tensor [B, T, 3, S, S]."""
    return torch.from_numpy(np.ascontiguousarray(np.stack(clips).transpose(0, 1, 4, 2, 3)))


def window_starts(n_frames, length, n_windows):
    """Evenly spaced clip starts covering the video (one start 0 if it is short)."""
    if n_frames <= length:
        return [0]
    return sorted(set(np.linspace(0, n_frames - length, n_windows).round().astype(int).tolist()))


def augment(clip, rng):
    """A random symmetry of the square (flips, transpose) and a random colour permutation,
    inverted half the time. uint8 [T, S, S, 3] -> same.

    These keep the demo's classes (pattern, scale and motion; colours are random there).
    For other data, think before reusing: e.g. colour may matter.
    """
    if rng.uniform() < 0.5:
        clip = clip[:, :, ::-1]
    if rng.uniform() < 0.5:
        clip = clip[:, ::-1]
    if rng.uniform() < 0.5:
        clip = clip.transpose(0, 2, 1, 3)
    clip = clip[..., rng.permutation(3)]
    if rng.uniform() < 0.5:
        clip = 255 - clip
    return clip


def train(model, videos, labels, cfg, rng):
    """Fixed-length training on random crops and flips. videos: list of uint8 [T, S, S, 3]."""
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.video_learning_rate,
                            weight_decay=cfg.video_weight_decay)
    steps_per_epoch = (len(videos) + cfg.video_batch_size - 1) // cfg.video_batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.video_learning_rate,
                                                total_steps=cfg.video_epochs * steps_per_epoch,
                                                pct_start=0.15)
    y = torch.as_tensor(labels)
    for epoch in range(cfg.video_epochs):
        model.train()
        order = rng.permutation(len(videos))
        total, correct, seen = 0.0, 0, 0
        for b in range(0, len(order), cfg.video_batch_size):
            batch = order[b:b + cfg.video_batch_size]
            clips = []
            for i in batch:
                v = videos[i]
                start = int(rng.integers(0, max(1, len(v) - cfg.clip_frames + 1)))
                clips.append(augment(cut_clip(v, start, cfg.clip_frames), rng))
            logits = model(to_tensor(clips))["logits"]
            loss = F.cross_entropy(logits, y[batch], label_smoothing=cfg.video_label_smoothing)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(batch)
            correct += (logits.argmax(1) == y[batch]).sum().item()
            seen += len(batch)
        print(f"  epoch {epoch + 1:3d}/{cfg.video_epochs}: loss {total / seen:.3f}, "
              f"train top-1 {correct / seen:.3f}", file=sys.stderr)


@torch.no_grad()
def score(model, videos, cfg):
    """Mean softmax over evenly spaced clips of each video. float32 [n_videos, n_classes]"""
    model.eval()
    out = []
    for v in videos:
        clips = [cut_clip(v, s, cfg.clip_frames)
                 for s in window_starts(len(v), cfg.clip_frames, cfg.eval_windows)]
        out.append(F.softmax(model(to_tensor(clips))["logits"], dim=1).mean(0))
    return torch.stack(out).numpy().astype(np.float32)


# ---------------------------------------------------------------- main

def main(argv=None):
    parser = cli.parser(__doc__, ["TRAIN_SPLIT", "EVAL_SPLIT", "VIDEO_EXTENSIONS", "FFMPEG",
                                  "FFMPEG_TIMEOUT_SECONDS", "VIDEO_MODEL",
                                  "VIDEO_FRAME_SIZE_PIXELS", "VIDEO_FRAMES_PER_SECOND",
                                  "VIDEO_EPOCHS", "VIDEO_BATCH_SIZE", "VIDEO_LEARNING_RATE",
                                  "VIDEO_WEIGHT_DECAY", "VIDEO_LABEL_SMOOTHING", "VIDEO_NAME",
                                  "SEED"])
    parser.add_argument("--clip-frames", type=int, default=8,
                        help="frames per training clip (default 8: 2 s at 4 fps)")
    parser.add_argument("--eval-windows", type=int, default=3,
                        help="clips averaged per scored video (default 3)")
    parser.add_argument("--width", type=int, default=16,
                        help="passed to the model as width= (default 16)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads for training (default 1: with frames this small, "
                        "more threads add overhead, and on a busy machine much more)")
    cfg = cli.parse(parser, argv)
    paths = datafiles.Paths(cfg)
    for p in [paths.classes, paths.video_list(cfg.train_split), paths.video_list(cfg.eval_split)]:
        if not p.exists():
            parser.error(f"{p} does not exist: run scripts/01_make_file_lists.py first")
    start = time.perf_counter()
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    torch.use_deterministic_algorithms(True)
    rng = np.random.default_rng(cfg.seed)
    classes = datafiles.read_classes(paths.classes)

    data = {}
    for split in [cfg.train_split, cfg.eval_split]:
        ids, labels = datafiles.read_video_list(paths.video_list(split))
        frames, failed = load_frames(cfg, paths, split, ids)
        keep = [k for k, i in enumerate(ids) if i in frames]
        data[split] = ([ids[k] for k in keep], labels[keep], [frames[ids[k]] for k in keep])
        print(f"[video] {split}: {len(keep)} of {len(ids)} videos decoded"
              + (f"; {len(failed)} left out:" if failed else ""))
        for i, reason in failed.items():
            print(f"  failed {i}: {reason}")
    decode_s = time.perf_counter() - start

    train_ids, train_labels, train_videos = data[cfg.train_split]
    labelled = train_labels >= 0
    if not labelled.any():
        sys.exit(f"error: no labelled videos in {cfg.train_split}")
    model = network.build(cfg.video_model, n_classes=len(classes), width=cfg.width)
    train(model, [v for v, ok in zip(train_videos, labelled) if ok], train_labels[labelled],
          cfg, rng)
    train_s = time.perf_counter() - start - decode_s

    split = cfg.eval_split
    ids, labels, videos = data[split]
    scores = score(model, videos, cfg)
    out_scores = paths.video_results / f"{cfg.video_name}_{split}_scores.npy"
    datafiles.save_npy(out_scores, scores)
    datafiles.write_lines(datafiles.ids_path_for(out_scores), ids)
    has_label = labels >= 0
    # fractions; metrics skips unlabelled rows and caps k at the number of classes
    top1 = metrics.topk_accuracy(scores, labels, 1) / 100 if has_label.any() else None
    top5 = metrics.topk_accuracy(scores, labels, 5) / 100 if has_label.any() else None
    total_s = time.perf_counter() - start
    info = dict(settings={k: v for k, v in cfg.items() if k in (
        "dataset", "train_split", "eval_split", "video_model", "video_frame_size_pixels",
        "video_frames_per_second", "video_epochs", "video_name", "seed", "clip_frames",
        "eval_windows", "video_batch_size", "video_learning_rate", "video_weight_decay",
        "video_label_smoothing", "width")},
        n_classes=len(classes), n_train=int(labelled.sum()), n_scored=len(ids),
        top1=top1, top5=top5, seconds=dict(decode=round(decode_s, 1), train=round(train_s, 1),
                                           total=round(total_s, 1)))
    datafiles.write_text(out_scores.with_name(f"{cfg.video_name}_{split}_info.json"),
                         json.dumps(info, indent=1) + "\n")
    print(f"[video] {cfg.video_model} trained on {int(labelled.sum())} {cfg.train_split} videos "
          f"for {cfg.video_epochs} epochs; {split}: top-1 "
          + (f"{top1:.3f}, top-5 {top5:.3f}" if top1 is not None else "n/a (no labels)")
          + f" on {int(has_label.sum())} videos")
    print(f"[video] {total_s:.1f} s (frames {decode_s:.1f} s, training {train_s:.1f} s) -> "
          f"{out_scores} + {datafiles.ids_path_for(out_scores).name}")


if __name__ == "__main__":
    main()
