"""Benchmark of the visual branch: step 08 against a bare ffmpeg loop, and training speed.

(a) Step 08 (its per-video work through jobs.run, in-process, --workers processes) against a
    bare ffmpeg loop writing the same frames: the same binary and argv
    (media.jpeg_frames_command: the same filters, showinfo and MJPEG encoder), one process per
    video into a plain file, with the same number of worker processes. Each is the median of
    --repeats runs into a fresh folder, alternated; the ratio is files/s of step 08 over the
    loop's. The videos are real-ish clips (../shared/data/videos/kinetics_layout, 10 s of
    298x224 Kinetics-like content) copied --videos times over, at FRAMES_PER_SECOND and
    FRAME_SIZE_PIXELS (the paper's 2 fps, 224 px by default).
(b) Bytes per frame and core-seconds per clip of (a), extrapolated to Kinetics-600.
(c) Training images/s of each visual model (forward, backward, AdamW step, batch
    --batch-size of random images) at its nominal input size (299 for InceptionV3, 224 for
    the others) and at --small-pixels (the demo's 48), on this CPU; on CUDA also with AMP.
Writes nothing outside its temporary folder.

  python benchmarks/bench_visual.py --videos 24 --repeats 3 --workers 2
"""
import multiprocessing
import shutil
import statistics
import subprocess
import tempfile
import time
from functools import partial
from pathlib import Path

import torch

from soundtrack import cli
from soundtrack import datafiles
from soundtrack import frame_extraction
from soundtrack import frames
from soundtrack import jobs
from soundtrack import media
import network

SHARED_CLIPS = cli.repo_path("..") / "shared" / "data" / "videos" / "kinetics_layout"
KINETICS_CLIPS = 420_000            # Kinetics-600 train + val with a video stream, ~10 s each


def bare_one(item, argv_of):
    src, out = item
    subprocess.run(argv_of(src, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=True)


def bare_loop(items, workers, argv_of):
    work = partial(bare_one, argv_of=argv_of)
    if workers > 1:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            list(pool.imap_unordered(work, items))
    else:
        for item in items:
            work(item)


def time_a(videos, settings, ffmpeg, workers, repeats, tmp):
    """Median seconds of step 08 and of the bare loop, and step 08's output folder."""
    argv_of = partial(_argv, ffmpeg=ffmpeg, settings=settings)
    t08, tbare, last = [], [], None
    for r in range(repeats):
        out = tmp / f"step08_{r}"
        work = partial(frame_extraction.extract, frame_dir=str(out), settings=settings, ffmpeg=ffmpeg,
                       timeout_s=300)
        items = {f"v/{i:04d}": str(p) for i, p in enumerate(videos)}
        t0 = time.perf_counter()
        summary = jobs.run("08 frames", "bench", (1, 1), items, work, workers, out, ".npz")
        t08.append(time.perf_counter() - t0)
        assert summary.counts["done"] == len(videos), summary.text()
        bare = tmp / f"bare_{r}"
        bare.mkdir()
        t0 = time.perf_counter()
        bare_loop([(p, bare / f"{i:04d}.mjpeg") for i, p in enumerate(videos)], workers,
                  argv_of)
        tbare.append(time.perf_counter() - t0)
        if last is not None:
            shutil.rmtree(last)
        shutil.rmtree(bare)
        last = out
    return t08, tbare, last


def _argv(src, out, ffmpeg, settings):
    return media.jpeg_frames_command(ffmpeg, src, settings.size_pixels, settings.rate,
                                     settings.jpeg_qscale, out=str(out))


def images_per_second(name, pixels, batch, device, amp, seconds=3.0):
    """Training images/s of a visual model (random images, batch `batch`): steps after two
    warm-up steps, for at least `seconds`."""
    torch.manual_seed(0)
    model = network.build(name, n_classes=600).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    x = torch.randint(0, 256, (batch, 3, pixels, pixels), dtype=torch.uint8, device=device)
    y = torch.randint(0, 600, (batch,), device=device)

    def step():
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            loss = torch.nn.functional.cross_entropy(model(x)["logits"].float(), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    step(), step()
    sync()
    t0, steps = time.perf_counter(), 0
    while steps < 2 or time.perf_counter() - t0 < seconds:
        step()
        steps += 1
        sync()
    return steps * batch / (time.perf_counter() - t0)


def main(argv=None):
    p = cli.parser(__doc__, ["FFMPEG", "FRAMES_PER_SECOND", "FRAME_SIZE_PIXELS",
                             "FRAME_JPEG_QSCALE", "DEVICE"])
    p.add_argument("--videos", type=int, default=24, help="number of test videos")
    p.add_argument("--repeats", type=int, default=3, help="runs per timing (median)")
    p.add_argument("--batch-size-images", type=int, default=8,
                   help="(c): images per training step on the CPU (x8 on CUDA)")
    p.add_argument("--small-pixels", type=int, default=48, help="(c): the demo's frame size")
    p.add_argument("--models", nargs="+", default=None, help="(c): default every tv_ model")
    p.add_argument("--skip-frames", action="store_true", default=False, help="only (c)")
    cfg = cli.parse(p, argv)
    settings = frames.settings_from(cfg)
    ffmpeg = media.ffmpeg_binary(cfg.ffmpeg)
    if not cfg.skip_frames:
        clips = datafiles.scan_videos(SHARED_CLIPS, [".mp4"])
        if not clips:
            p.error(f"no clips under {SHARED_CLIPS}")
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            videos = []
            for i in range(cfg.videos):      # distinct files, so no cache serves a repeat
                videos.append(tmp / "in" / f"{i:04d}.mp4")
                videos[-1].parent.mkdir(exist_ok=True)
                shutil.copy(clips[i % len(clips)], videos[-1])
            t08, tbare, out = time_a(videos, settings, ffmpeg, cfg.workers, cfg.repeats, tmp)
            files = sorted(out.rglob("*.npz"))
            n_frames = sum(len(frames.load_video(f, ("times",))["times"]) for f in files)
            n_bytes = sum(f.stat().st_size for f in files)
        m08, mbare = statistics.median(t08), statistics.median(tbare)
        print(f"(a) {cfg.videos} clips at {settings.frames_per_second} fps, "
              f"{settings.size_pixels} px, {cfg.workers} workers, median of {cfg.repeats}: "
              f"step 08 {cfg.videos / m08:.1f} files/s, bare ffmpeg loop "
              f"{cfg.videos / mbare:.1f} files/s: ratio {mbare / m08:.2f} "
              f"(runs {', '.join(f'{b / a:.2f}' for a, b in zip(t08, tbare))})")
        per_frame = n_bytes / n_frames
        per_clip_core_s = m08 * cfg.workers / cfg.videos
        print(f"(b) {n_bytes / n_frames / 1e3:.1f} KB per frame ({n_frames / cfg.videos:.1f} "
              f"frames per 10 s clip); Kinetics-600 ({KINETICS_CLIPS} clips): "
              f"{per_frame * n_frames / cfg.videos * KINETICS_CLIPS / 1e9:.0f} GB, "
              f"{per_clip_core_s * KINETICS_CLIPS / 3600:.0f} core-hours "
              f"({per_clip_core_s * 1e3:.0f} core-ms per clip)")
    names = cfg.models or [n for n in network.names() if network.modality(n) == "visual"]
    device = torch.device("cuda" if cfg.device != "cpu" and torch.cuda.is_available() else "cpu")
    for name in names:
        cls = network.model_class(name)
        row = []
        for pixels in (cls.NOMINAL_PIXELS, max(cfg.small_pixels, cls.MIN_INPUT_PIXELS)):
            if device.type == "cuda":
                b = cfg.batch_size_images * 8
                row.append(f"{pixels} px: {images_per_second(name, pixels, b, device, False):.0f}"
                           f" / AMP {images_per_second(name, pixels, b, device, True):.0f}")
            else:
                ips = images_per_second(name, pixels, cfg.batch_size_images, device, False)
                row.append(f"{pixels} px: {ips:.1f}")
        print(f"(c) {name} training images/s on {device}: " + "; ".join(row))


if __name__ == "__main__":
    main()
