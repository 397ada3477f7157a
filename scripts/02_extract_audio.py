"""Step 02: extract every video's sound track with ffmpeg.

Reads  file_lists/<dataset>/<split>_videos.txt and the videos under <video_root>
Writes <audio_root>/<rate>hz_<channels>/<id>.wav   PCM16 at the front end's sample rate and
                                                   channel policy (FRONT_END preset, or
                                                   SAMPLE_RATE_HZ / AUDIO_CHANNELS), atomically;
                                                   vggish: 16000hz_mono/
       <audio_root>/<rate>hz_<channels>/<id>.status  only for videos without a wav
                                                   (no_audio | failed)
       file_lists/<dataset>/<split>_<rate>hz_<channels>_audio.txt     ids with a sound track
       file_lists/<dataset>/<split>_<rate>hz_<channels>_no_audio.txt  `id<TAB>reason`
       file_lists/<dataset>/<split>_<rate>hz_<channels>_failed.txt    `id<TAB>reason`:
                                                   corrupt, empty, unreadable, timed out...

Each rate and channel policy has its own folder and lists, so wavs made for one front end are
never analysed by another (step 03 reads the folder of its own front end). Channel policies:
mono = ffmpeg's standard downmix, first = channel 0 alone, stereo = two channels (a mono
track duplicated, 5.1 mixed down).

The lists describe the whole split as found on disk (all shards so far); the printed summary
describes this run: listed = done + existing + no audio + failed. A rerun skips finished
wavs and "no audio" videos and retries failures. Exit status: 0, or 3 when some video failed
(listed in <split>_failed.txt; with --strict, also when any video has no audio).
"""
import functools
import os
from pathlib import Path

from soundtrack import cli
from soundtrack import datafiles
from soundtrack import jobs
from soundtrack import media

EXIT_SOME_FAILED = 3


def extract(item, audio_root, sample_rate, channels, ffmpeg, timeout_s):
    """(id, video path or None) -> Outcome; writes <audio_root>/<id>.wav or a status file."""
    vid, path = item
    try:
        if path is None:
            raise media.MediaError("failed", "video file not found under the video root")
        samples = media.decode_audio(path, sample_rate, ffmpeg, timeout_s, channels)
    except media.MediaError as e:
        jobs.write_status(audio_root, vid, e.kind, e.reason)
        return jobs.Outcome(vid, e.kind, e.reason)
    return _write(audio_root, vid, samples, sample_rate)


def _write(audio_root, vid, samples, sample_rate):
    datafiles.atomic_write(Path(audio_root) / (vid + ".wav"),
                           lambda tmp: media.write_wav(tmp, samples, sample_rate))
    jobs.clear_status(audio_root, vid)
    return jobs.Outcome(vid, "done")


def extract_batch(items, audio_root, sample_rate, channels, ffmpeg, timeout_s):
    """Several (id, path) items through one ffmpeg process; any that fail are redone one by
    one by `extract`, which finds out which and why. -> list of Outcomes."""
    ready = [(vid, p) for vid, p in items if p is not None and os.path.isfile(p)
             and os.path.getsize(p) > 0]
    done = []
    if len(ready) > 1:
        try:
            decoded = media.decode_audio_batch([p for _, p in ready], sample_rate, ffmpeg,
                                               timeout_s, channels)
        except media.MediaError:
            decoded = []
        for (vid, _), samples in zip(ready, decoded):
            done.append(_write(audio_root, vid, samples, sample_rate))
    finished = {o.id for o in done}
    return done + [extract(item, audio_root, sample_rate, channels, ffmpeg, timeout_s)
                   for item in items if item[0] not in finished]


def main(argv=None):
    parser = cli.parser(__doc__, ["WORKERS", "SPLITS", "AUDIO_ROOT", *cli.FRONT_END_KEYS, "FFMPEG",
                                  "FFMPEG_TIMEOUT_SECONDS", "FFMPEG_BATCH_FILES",
                                  "VIDEO_EXTENSIONS", "STRICT"],
                        shard=True)
    cfg = cli.parse(parser, argv)
    paths = datafiles.Paths(cfg)
    fe = paths.front_end
    ffmpeg = media.ffmpeg_binary(cfg.ffmpeg)  # fail now, not once per video
    batch = cfg.ffmpeg_batch_files
    work = functools.partial(extract_batch if batch > 1 else extract,
                             audio_root=str(paths.audio_dir),
                             sample_rate=fe.sample_rate_hz, channels=fe.channels,
                             ffmpeg=ffmpeg, timeout_s=cfg.ffmpeg_timeout_seconds)
    print(f"[02] {fe.sample_rate_hz} Hz {fe.channels} wavs (front end {fe.name}) -> "
          f"{paths.audio_dir}")
    bad = 0
    for split in cfg.splits:
        ids, items = datafiles.split_videos(paths, split, cfg.video_extensions)
        summary = jobs.run_split(
            "02 audio", split, ids, items, work, cfg, paths.audio_dir, ".wav",
            {"done": (paths.audio_list(split, "audio"), "with sound"),
             "no_audio": (paths.audio_list(split, "no_audio"), "without sound"),
             "failed": (paths.audio_list(split, "failed"), "failed")},
            f"{paths.audio_list(split).parent}/{split}_{paths.audio_lists}_*.txt", batch=batch)
        bad += summary.failed + (summary.counts["no_audio"] if cfg.strict else 0)
    return EXIT_SOME_FAILED if bad else 0


if __name__ == "__main__":
    cli.run_script(main)
