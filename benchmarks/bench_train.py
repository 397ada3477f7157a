"""Training throughput: the real loader from disk against tensors already in memory.

Makes a synthetic feature set in a temporary folder (--tracks tracks of --patches float16
patches [64, 96] each, random labels of --num-classes classes, laid out as steps 01-03 write
them), indexes it with step 04 (with --packed), then times loop.train_one_epoch, the
training step of train.py (augmentation, forward, loss, backward, optimizer and scheduler
step, the weight average's update with EMA_DECAY), on the configured model (MODEL,
BATCH_SIZE, CHANNELS_LAST, LOADER_WORKERS ...) fed three ways, one epoch each,
interleaved and repeated --repeats times (median of each):

  memory   random float32 tensors [BATCH_SIZE, 1, 64, 96] made beforehand (the ceiling)
  files    loop.make_loader over AudioDataLoader.PatchDataset reading the per-track .npy files
           (memory-mapped, as train.py reads them)
  packed   the same over step 04's one packed array of the split

and prints steps/s and patches/s of each and the ratios files/memory and packed/memory
(goal: >= 0.9; each repeat's ratio, then the median), plus the loader alone (batches/s
with no training) and the ratio that its cost alone predicts. The feature files
were just written, so they are read from the page cache, as on a machine whose features
fit in memory. On CUDA (DEVICE auto or cuda) the same runs on the GPU with AMP (AMP key);
the memory batches are then pinned CPU tensors, so the host-to-device copy is in both.
Torch uses TORCH_THREADS threads (0: one per core) with OMP_WAIT_POLICY=PASSIVE (unless set), so threads sharing
busy cores yield instead of spinning. Writes nothing outside its temporary folder.

  python benchmarks/bench_train.py                                 # CPU, config.py's model
  python benchmarks/bench_train.py --channels-last --batch-size 32 --repeats 5
  python benchmarks/bench_train.py --device cuda --loader-workers 4 --tracks 4000

With --compare-models A B ... it times instead the training step of each named model on the
same in-memory batches (the "memory" feed; BATCH_SIZE, CHANNELS_LAST, augmentation as
configured), interleaved, and prints each one's patches/s and its ratio to the first model's,
each repeat's ratio and then the median: the speed of one default against another.
--compare-recipes A.yaml B.yaml does the same for recipes (each one's model, batch size,
augmentation, ...; TORCH_THREADS and DEVICE stay this command's) and also prints the epochs
each would run on a training set of --tracks x --patches patches (EPOCHS, raised by
MIN_TRAIN_STEPS) and so its seconds per training run.

  python benchmarks/bench_train.py --compare-models slim_cnn slim_cnn_fullres --repeats 5
  python benchmarks/bench_train.py --compare-models vgg_plain vgg_strided --compile
  python benchmarks/bench_train.py --compare-recipes recipes/esc10.yaml recipes/audio_scratch.yaml \
      --tracks 80 --patches 5     # ESC-10 low data: 80 clips of 5 patches
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Before torch starts its OpenMP threads: on a shared machine spinning workers stall each other.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch

from soundtrack import audio
from soundtrack import cli
from soundtrack import datafiles
import network
from AudioDataLoader import Datalist, PatchDataset
from soundtrack.training.env import Dist, seed_everything
from soundtrack.training import ema, loop, optim, tasks

REPO = Path(__file__).resolve().parents[1]
KEYS = ["MODEL", "BATCH_SIZE", "LEARNING_RATE", "CHANNELS_LAST", "LOADER_WORKERS",
        "TORCH_THREADS", "AMP", "EMA_DECAY",
        "SPEC_AUGMENT", "TIME_SHIFT_FRAMES", "MIXUP_ALPHA", "DEVICE", "SEED"]


def make_dataset(root, n_tracks, n_patches, n_classes, seed):
    """Per-track float16 features + lists as steps 01-03 write them; step 04 indexes them."""
    rng = np.random.default_rng(seed)
    lists = root / "file_lists" / "bench"
    feats = root / "data" / "bench" / "features" / audio.VGGISH.name
    rows = []
    for t in range(n_tracks):
        label = int(rng.integers(n_classes))
        vid = f"train/class{label:02d}/clip{t:05d}"
        x = rng.normal(0, 1, (n_patches, 64, 96)).astype(np.float16)
        datafiles.save_npy(feats / (vid + ".npy"), x)
        rows.append((vid, label))
    rows.sort()
    datafiles.write_lines(lists / "classes.txt", [f"class{c:02d}" for c in range(n_classes)])
    datafiles.write_lines(lists / "train_videos.txt", [f"{v}\t{c}" for v, c in rows])
    datafiles.write_lines(lists / "train_16000hz_mono_audio.txt", [v for v, _ in rows])
    datafiles.write_text(feats / datafiles.FEATURES_RECORD, json.dumps(
        datafiles.feature_record(audio.VGGISH, "float16", "pad")))
    subprocess.run([sys.executable, str(REPO / "scripts" / "04_make_datalists.py"),
                    "--dataset", "bench", "--data-root", str(root / "data"),
                    "--output-root", str(root), "--splits", "train", "--packed"],
                   check=True, stdout=subprocess.DEVNULL)
    datalists = root / "datalists" / "bench"
    name = audio.VGGISH.name
    return (Datalist(datalists / f"{name}_train.npz"), feats,
            datalists / f"{name}_train_patches.npy")


def loader_over(dataset, cfg, env):
    """The training loader exactly as train.py builds it (loop.make_loader)."""
    return loop.make_loader(dataset, cfg, env)[0]


def memory_batches(n_batches, cfg, n_classes, pin):
    gen = torch.Generator().manual_seed(cfg.seed)
    out = []
    for _ in range(n_batches):
        x = torch.randn((cfg.batch_size, 1, 64, 96), generator=gen)
        y = torch.randint(n_classes, (cfg.batch_size,), generator=gen)
        out.append((x.pin_memory() if pin else x, y, torch.zeros(cfg.batch_size, dtype=torch.long)))
    return out


def time_epoch(feed, parts, cfg, env, epoch):
    """Seconds of one train_one_epoch over `feed` (CUDA work finished before the clock stops)."""
    model, task, optimizer, scheduler, scaler, ema = parts
    if env.device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    model.train()
    loop.train_one_epoch(model, feed, task, optimizer, scheduler, scaler, env, cfg, epoch, ema)
    if env.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t


def time_loader(loader):
    t = time.perf_counter()
    n = sum(1 for _ in loader)
    return n / (time.perf_counter() - t)


def build_parts(name, cfg, env, n_batches, cuda):
    """A fresh model of `name` (seeded), its optimizer, task, schedule, scaler and weight
    average (EMA_DECAY; None when 0)."""
    seed_everything(cfg.seed)
    model = network.build_audio(name, cfg.num_classes, (64, 96)).to(env.device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = optim.make_optimizer(model, cfg)
    task = tasks.AudioClassification(cfg, cfg.num_classes, None, [])
    return (torch.compile(model) if cfg.compile else model, task, optimizer,
            optim.make_scheduler(optimizer, cfg, n_batches),
            torch.amp.GradScaler("cuda", enabled=cuda and cfg.amp), ema.make(model, cfg))


def compare(entries, cfg, env):
    """Training patches/s of each (label, settings) entry on in-memory batches, interleaved;
    ratios to the first entry, per repeat then the median. Each entry trains its own model
    with its own batch size and augmentation; the training set is --tracks x --patches
    patches, so each entry's epochs (EPOCHS, raised by MIN_TRAIN_STEPS) and its seconds per
    training run follow."""
    cuda = env.device.type == "cuda"
    n_patches = cfg.tracks * cfg.patches
    parts, feeds, steps = {}, {}, {}
    for label, c in entries:
        steps[label] = max(1, n_patches // c.batch_size)
        feeds[label] = memory_batches(steps[label], c, cfg.num_classes, cuda)
        timed = cli.Settings({**c, "epochs": 1 + cfg.repeats})  # the schedule spans them
        parts[label] = build_parts(c.model, timed, env, steps[label], cuda)
        time_epoch(feeds[label][:3], parts[label], c, env, 0)  # warm-up
    labels = [label for label, _ in entries]
    settings = dict(entries)
    seconds = {label: [] for label in labels}
    for r in range(cfg.repeats):  # interleaved, order rotated: a change in load hits all
        for label in labels[r % len(labels):] + labels[:r % len(labels)]:
            seconds[label].append(time_epoch(feeds[label], parts[label], settings[label],
                                             env, 1 + r))
    device = torch.cuda.get_device_name(env.device) if cuda else \
        f"CPU, {torch.get_num_threads()} threads of {os.cpu_count()} cores"
    print(f"[bench_train] training step compared on {device}"
          f"{' with AMP' if cuda and cfg.amp else ''}"
          f"{', torch.compile' if cfg.compile else ''}: a training set of {n_patches} patches "
          f"from memory, median of {cfg.repeats}; load average {os.getloadavg()[0]:.1f}")
    base = labels[0]
    # patches/s of each repeat; EPOCHS as train.py would settle them on this training set
    rates = {label: [steps[label] * settings[label].batch_size / t for t in seconds[label]]
             for label in labels}
    epochs, run_s = {}, {}
    for label in labels:
        c = cli.Settings(settings[label])
        loop.settle_epochs(c, steps[label])
        epochs[label], run_s[label] = c.epochs, c.epochs * statistics.median(seconds[label])
    for label in labels:
        c = settings[label]
        rate = steps[label] * c.batch_size / statistics.median(seconds[label])
        per_patch = [r / b for r, b in zip(rates[label], rates[base])]
        weights = sum(p.numel() for p in parts[label][0].parameters())
        print(f"  {label}: {c.model} ({weights / 1e6:.2f} M weights), batch {c.batch_size}: "
              f"{rate:.0f} patches/s, ratio to {base} {statistics.median(per_patch):.2f} "
              f"(repeats {' '.join(f'{x:.2f}' for x in per_patch)}); "
              f"{statistics.median(seconds[label]):.2f} s per epoch x {epochs[label]} epochs = "
              f"{run_s[label]:.0f} s per training run ({run_s[label] / run_s[base]:.2f} x "
              f"{base}'s)")
    return 0


def main(argv=None):
    """Build the datalist and loaders, time the training step, print the table.

    Longer than ~60 lines on purpose: the timed sections and their order are the benchmark's
    method, kept in one place."""
    parser = cli.parser(__doc__, KEYS)
    parser.add_argument("--tracks", type=int, default=400)
    parser.add_argument("--patches", type=int, default=5, help="patches per track")
    parser.add_argument("--num-classes", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compare-models", nargs="+", metavar="MODEL", default=None,
                        help="time these models' training step (memory feed) against the "
                             "first one's, instead of the loaders")
    parser.add_argument("--compile", action="store_true", default=False,
                        help="time each model as torch.compile makes it (inductor; it compiles "
                             "during the warm-up steps, which are not timed)")
    parser.add_argument("--compare-recipes", nargs="+", metavar="FILE.yaml", default=None,
                        help="the same for recipes: each one's keys over these settings "
                             "(TORCH_THREADS and DEVICE stay this command's)")
    cfg = cli.parse(parser, argv)
    torch.set_num_threads(cfg.torch_threads or os.cpu_count())
    env = Dist(cfg.device)
    if cfg.compare_models:
        unknown = [n for n in cfg.compare_models if n not in network.names()]
        if unknown:
            parser.error(f"--compare-models: unknown model(s) {unknown}; "
                         f"known: {', '.join(network.names())}")
        return compare([(n, cli.Settings({**cfg, "model": n})) for n in cfg.compare_models],
                       cfg, env)
    if cfg.compare_recipes:
        entries = []
        for path in cfg.compare_recipes:
            try:
                keys = cli.load_yaml(path)
            except (OSError, ValueError) as e:
                parser.error(f"--compare-recipes: {e}")
            own = {k.lower(): v for k, v in keys.items()
                   if k not in ("TORCH_THREADS", "DEVICE")}
            entries.append((Path(path).stem, cli.Settings({**cfg, **own})))
        return compare(entries, cfg, env)
    cuda = env.device.type == "cuda"
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        datalist, feature_dir, packed = make_dataset(Path(tmp), cfg.tracks, cfg.patches,
                                                     cfg.num_classes, cfg.seed)
        feeds = {"files": loader_over(PatchDataset(datalist, feature_dir), cfg, env),
                 "packed": loader_over(PatchDataset(datalist, None, packed=packed), cfg, env)}
        n_batches = len(feeds["files"])
        feeds = {"memory": memory_batches(n_batches, cfg, cfg.num_classes, cuda), **feeds}
        loader_rate = {k: statistics.median(time_loader(feeds[k]) for _ in range(cfg.repeats))
                       for k in ("files", "packed")}

        cfg.epochs = 1 + cfg.repeats * len(feeds)  # the schedule spans every timed epoch
        parts = build_parts(cfg.model, cfg, env, n_batches, cuda)
        time_epoch(feeds["memory"][:3], parts, cfg, env, 0)  # warm-up
        seconds = {k: [] for k in feeds}
        names, epoch = list(feeds), 1
        for r in range(cfg.repeats):  # interleaved, order rotated: a change in load hits all
            for name in names[r % len(names):] + names[:r % len(names)]:
                seconds[name].append(time_epoch(feeds[name], parts, cfg, env, epoch))
                epoch += 1

    device = torch.cuda.get_device_name(env.device) if cuda else \
        f"CPU, {torch.get_num_threads()} threads of {os.cpu_count()} cores"
    print(f"[bench_train] {cfg.model}, batch {cfg.batch_size}, channels_last "
          f"{cfg.channels_last}, loader workers {cfg.loader_workers}, "
          f"{'AMP ' if cuda and cfg.amp else ''}on {device}; {n_batches} steps per epoch, "
          f"median of {cfg.repeats}; load average {os.getloadavg()[0]:.1f}")
    rate = {k: n_batches / statistics.median(v) for k, v in seconds.items()}
    for name in feeds:
        print(f"  {name:7s} {rate[name]:7.2f} steps/s  {rate[name] * cfg.batch_size:8.0f} "
              f"patches/s" + (f"   (loader alone: {loader_rate[name]:.0f} batches/s)"
                              if name in loader_rate else ""))
    for name in ("files", "packed"):
        # each repeat's own ratio (its runs were minutes apart at most), then the median
        ratio = statistics.median(m / t for m, t in zip(seconds["memory"], seconds[name]))
        bound = 1 / (1 + rate["memory"] / loader_rate[name])
        print(f"  ratio {name}/memory: {ratio:.2f}   (if loading only added its own time: "
              f"{bound:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
