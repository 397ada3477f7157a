"""Step 08's work on one video: its frames as JPEGs with their times, into one ``.npz``.

The worker of ``scripts/08_extract_frames.py`` (and of ``benchmarks/bench_visual.py``, which
times it): called in WORKERS processes through ``jobs``; a video that cannot give frames
leaves a status file (no_video | failed) and its reason, never a half-written file.
"""
from pathlib import Path

from soundtrack import frames
from soundtrack import jobs
from soundtrack import media

SUFFIX = ".npz"


def extract(item, frame_dir, settings, ffmpeg, timeout_s):
    """(id, video path or None) -> jobs.Outcome; writes <frame_dir>/<id>.npz or a status file."""
    vid, path = item
    try:
        if path is None:
            raise media.MediaError("failed", "video file not found under the video root")
        jpeg, offsets, times = media.decode_jpeg_frames(
            path, settings.size_pixels, settings.rate, settings.jpeg_qscale, ffmpeg, timeout_s)
    except media.MediaError as e:
        jobs.write_status(frame_dir, vid, e.kind, e.reason)
        return jobs.Outcome(vid, e.kind, e.reason)
    frames.save_video(Path(frame_dir) / (vid + SUFFIX), jpeg, offsets, times)
    jobs.clear_status(frame_dir, vid)
    return jobs.Outcome(vid, "done")


def prepare_folder(frame_dir, settings):
    """Write frames.json for a new folder; ValueError for one made with other settings."""
    record = Path(frame_dir) / frames.RECORD
    if record.exists():
        try:
            frames.check_settings(frames.read_record(frame_dir), settings, str(record),
                                  "these settings")
        except ValueError as e:
            raise ValueError(f"{e}; use another FRAME_ROOT or delete the folder") from None
    else:
        frames.write_record(frame_dir, settings)
