"""Step 09: every video's sound envelope at its frames' times (the envelope model's target).

Reads  file_lists/<dataset>/<split>_videos.txt, the videos, and step 08's frames lists and
       <frame_root>/<S>px_<F>fps/<id>.npz (only their ``times``: the container's frame times,
       so a variable frame rate is kept) with frames.json
Writes <envelope_root>/<S>px_<F>fps_sigma<ms>ms/<id>.npy   float32 [n_frames]: frame k's
                                              value (rows = the frames file's frames, in
                                              time order), atomically
       <envelope_root>/<...>/envelopes.json   the settings that made them (sigma in seconds,
                                              the silent floor, the frame settings, the source);
                                              a rerun with other settings is refused
       <envelope_root>/<...>/<id>.status      "silent<TAB>peak ..." beside a silent clip's
                                              file; no_audio | no_video | failed without one
       file_lists/<dataset>/<split>_<folder>_envelopes.txt   ids with an envelope (silent ones
                                              too), in the frames list's order
       file_lists/<dataset>/<split>_<folder>_silent.txt      `id<TAB>peak`: kept unscaled
       file_lists/<dataset>/<split>_<folder>_no_audio.txt, _no_video.txt, _failed.txt
                                              `id<TAB>reason`

The envelope (soundtrack/envelope/target.py): the ORIGINAL track's first channel at its own sample rate (not
step 02's 16 kHz mono wav) in [-1, 1], its magnitude smoothed by a Gaussian of
ENVELOPE_SIGMA_SECONDS (the seed's 200 samples at 44.1 kHz), frame k's value the maximum over
frame k's interval around its time t_k, then scaled to [0, 1] per clip unless its peak is
below ENVELOPE_SILENT_FLOOR (full scale 1): such a clip is kept unscaled and listed silent.

As steps 02, 03 and 08: WORKERS processes, --shard K/N, atomic writes, a rerun skips finished
videos and retries failures; exit status 0, or 3 when some video failed (listed).
"""
import functools
import json
from pathlib import Path


from soundtrack import cli
from soundtrack import datafiles
from soundtrack.envelope import target
from soundtrack import frames
from soundtrack import jobs
from soundtrack import media

EXIT_SOME_FAILED = 3
SUFFIX = ".npy"
KEYS = ["WORKERS", "SPLITS", "FRAME_ROOT", "FRAMES_PER_SECOND", "FRAME_SIZE_PIXELS",
        "FRAME_JPEG_QSCALE",
        "ENVELOPE_ROOT", "ENVELOPE_SIGMA_SECONDS", "ENVELOPE_SILENT_FLOOR", "FFMPEG",
        "FFMPEG_TIMEOUT_SECONDS", "VIDEO_EXTENSIONS"]


def make_one(item, out_dir, frame_dir, sigma_s, floor, ffmpeg, timeout_s):
    """(id, video path or None) -> Outcome; writes <out_dir>/<id>.npy (and a silent note)."""
    vid, path = item
    try:
        frames_file = Path(frame_dir) / (vid + ".npz")
        if not frames_file.exists():
            raise media.MediaError("no_video", "no frames from step 08")
        if path is None:
            raise media.MediaError("failed", "video file not found under the video root")
        try:
            times = frames.load_video(frames_file, ("times",))["times"]
        except ValueError as e:
            raise media.MediaError("failed", str(e)) from None
        x, rate = media.read_first_channel(path, ffmpeg, timeout_s)
        env, silent = target.frame_envelope(x, rate, times, sigma_s, floor)
    except media.MediaError as e:
        jobs.write_status(out_dir, vid, e.kind, e.reason)
        return jobs.Outcome(vid, e.kind, e.reason)
    datafiles.save_npy(Path(out_dir) / (vid + SUFFIX), env)
    if silent:
        reason = f"peak {env.max():.4f} < floor {floor}: kept unscaled"
        jobs.write_status(out_dir, vid, "silent", reason)
        return jobs.Outcome(vid, "done", reason, "silent")
    jobs.clear_status(out_dir, vid)
    return jobs.Outcome(vid, "done")


def record(cfg, frame_settings):
    return {"sigma_seconds": cfg.envelope_sigma_seconds,
            "silent_floor": cfg.envelope_silent_floor, "frames": frame_settings.to_dict(),
            "source": "the original track's first channel at its own rate, PCM16 via ffmpeg",
            "frame_value": "max of the smoothed |x| over [t_k - d/2, t_k + d/2) "
                           "(midpoints between the container's frame times)",
            "scaling": "per clip to peak 1, unless the peak is below silent_floor"}


def prepare_folder(out_dir, rec):
    path = Path(out_dir) / target.RECORD
    if path.exists():
        old = json.loads(path.read_text(encoding="utf-8"))
        if old != rec:
            cli.fail(f"{path} was made with other settings ({old} vs {rec}); use "
                     "another ENVELOPE_ROOT or delete the folder")
    else:
        datafiles.write_text(path, json.dumps(rec, indent=1) + "\n")


def main(argv=None):
    parser = cli.parser(__doc__, KEYS, shard=True)
    cfg = cli.parse(parser, argv)
    paths = datafiles.Paths(cfg)
    try:
        settings = paths.frame_settings
        out_dir = target.envelope_dir(paths, cfg)
        if cfg.envelope_sigma_seconds <= 0:
            raise ValueError(f"ENVELOPE_SIGMA_SECONDS must be > 0, got "
                             f"{cfg.envelope_sigma_seconds}")
    except ValueError as e:
        parser.error(str(e))
    ffmpeg = media.ffmpeg_binary(cfg.ffmpeg)
    prepare_folder(out_dir, record(cfg, settings))
    work = functools.partial(make_one, out_dir=str(out_dir), frame_dir=str(paths.frame_dir),
                             sigma_s=cfg.envelope_sigma_seconds,
                             floor=cfg.envelope_silent_floor, ffmpeg=ffmpeg,
                             timeout_s=cfg.ffmpeg_timeout_seconds)
    print(f"[09] envelopes: |first channel| smoothed by sigma "
          f"{cfg.envelope_sigma_seconds * 1000:.3f} ms, max per frame of {paths.frame_dir}, "
          f"silent below {cfg.envelope_silent_floor} -> {out_dir}")
    bad = 0
    for split in cfg.splits:
        ids, items = datafiles.split_videos(paths, split, cfg.video_extensions)
        lists = {w: target.envelope_list(paths, cfg, split, w)
                 for w in ("envelopes", "no_audio", "no_video", "failed")}
        summary = jobs.run_split(
            "09 envelopes", split, ids, items, work, cfg, out_dir, SUFFIX,
            {"done": (lists["envelopes"], "with an envelope"),
             "no_audio": (lists["no_audio"], "no audio"),
             "no_video": (lists["no_video"], "no frames"),
             "failed": (lists["failed"], "failed")},
            f"{lists['failed'].parent}/{split}_{out_dir.name}_*.txt")
        state = jobs.split_state(ids, out_dir, SUFFIX)
        silent = [f"{i}\t{r.partition(': ')[2]}" for i, (s, r) in state.items()
                  if s == "done" and r.startswith("silent")]
        datafiles.write_lines(target.envelope_list(paths, cfg, split, "silent"), silent)
        print(f"  {split}: {len(silent)} silent clips kept unscaled")
        bad += summary.failed
    return EXIT_SOME_FAILED if bad else 0


if __name__ == "__main__":
    cli.run_script(main)
