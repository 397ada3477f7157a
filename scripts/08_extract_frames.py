"""Step 08: every video's frames, as JPEG images with their presentation times.

Reads  file_lists/<dataset>/<split>_videos.txt and the videos under <video_root>
Writes <frame_root>/<S>px_<F>fps/<id>.npz     one file per video, atomically (soundtrack/frames.py):
                                              jpeg uint8 [n_bytes] (the frames' JPEGs back
                                              to back), offsets int64 [n_frames + 1], times
                                              float64 [n_frames] (seconds from the file's
                                              start, the clock of step 02's wavs)
       <frame_root>/<S>px_<F>fps/frames.json  the settings that made them (FRAMES_PER_SECOND,
                                              FRAME_SIZE_PIXELS, the crop, FRAME_JPEG_QSCALE);
                                              a rerun or train.py with other settings is refused
       <frame_root>/<S>px_<F>fps/<id>.status  only for videos without frames (no_video | failed)
       file_lists/<dataset>/<split>_<S>px_<F>fps_frames.txt     ids with frames
       file_lists/<dataset>/<split>_<S>px_<F>fps_no_video.txt   `id<TAB>reason`
       file_lists/<dataset>/<split>_<S>px_<F>fps_failed.txt     `id<TAB>reason`: corrupt,
                                              empty, unreadable, no frame, timed out...

Frames (ffmpeg, argv only): the first video stream, at FRAMES_PER_SECOND ("2": the frame
shown at each instant start + k / 2 s; "native": every source frame with its own time, so a
variable frame rate is kept), the short side scaled to FRAME_SIZE_PIXELS (area filter), then
the centre S x S square cropped; JPEG (mjpeg -q:v FRAME_JPEG_QSCALE, full-range 4:2:0).
Each setting has its own folder (S px and F fps in its name) and lists.

As steps 02-03: WORKERS processes, --shard K/N, atomic writes, a rerun skips finished videos
and "no video" ones and retries failures; the summary reconciles listed = done + existing +
no video + failed. Exit status: 0, or 3 when some video failed (listed; with --strict, also
when any has no video stream).
"""
import functools

from soundtrack import cli
from soundtrack import datafiles
from soundtrack import jobs
from soundtrack import media
from soundtrack.frame_extraction import SUFFIX, extract, prepare_folder

EXIT_SOME_FAILED = 3
def main(argv=None):
    parser = cli.parser(__doc__, ["WORKERS", "SPLITS", "FRAME_ROOT", "FRAMES_PER_SECOND", "FRAME_SIZE_PIXELS",
                                  "FRAME_JPEG_QSCALE", "FFMPEG", "FFMPEG_TIMEOUT_SECONDS",
                                  "VIDEO_EXTENSIONS", "STRICT"], shard=True)
    cfg = cli.parse(parser, argv)
    paths = datafiles.Paths(cfg)
    try:
        settings = paths.frame_settings
    except ValueError as e:
        parser.error(str(e))
    ffmpeg = media.ffmpeg_binary(cfg.ffmpeg)  # fail now, not once per video
    frame_dir = paths.frame_dir
    try:
        prepare_folder(frame_dir, settings)
    except ValueError as e:
        cli.fail(cli.explain(e))
    work = functools.partial(extract, frame_dir=str(frame_dir), settings=settings,
                             ffmpeg=ffmpeg, timeout_s=cfg.ffmpeg_timeout_seconds)
    print(f"[08] frames at {settings.frames_per_second} fps, {settings.size_pixels} px "
          f"squares ({settings.crop}), JPEG q {settings.jpeg_qscale} -> {frame_dir}")
    bad = 0
    for split in cfg.splits:
        ids, items = datafiles.split_videos(paths, split, cfg.video_extensions)
        summary = jobs.run_split(
            "08 frames", split, ids, items, work, cfg, frame_dir, SUFFIX,
            {"done": (paths.frame_list(split, "frames"), "with frames"),
             "no_video": (paths.frame_list(split, "no_video"), "no video"),
             "failed": (paths.frame_list(split, "failed"), "failed")},
            f"{paths.frame_list(split).parent}/{split}_{settings.folder}_*.txt")
        bad += summary.failed + (summary.counts["no_video"] if cfg.strict else 0)
    return EXIT_SOME_FAILED if bad else 0


if __name__ == "__main__":
    cli.run_script(main)
