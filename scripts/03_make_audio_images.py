"""Step 03: cut every sound track into "audio images" (VGGish log-mel patches).

Reads  file_lists/<dataset>/<split>_audio.txt and <audio_root>/<id>.wav
Writes <feature_root>/<feature>/<id>.npy   FEATURE_DTYPE [n_patches, 64 bands, 96 frames]
                                           ([n_patches, 3, 64, 96] with --deltas), atomically
       <feature_root>/<feature>/features.json   the front-end settings these files were made with
       <feature_root>/<feature>/<id>.status     only for unusual tracks: padded | silent
                                                (a note on a written file) or dropped | failed
       file_lists/<dataset>/<split>_<feature>_skipped.txt  `id<TAB>status<TAB>reason` (dropped, failed)
       file_lists/<dataset>/<split>_<feature>_notes.txt    `id<TAB>note` (padded, silent tracks)

<feature> is mel | gam | cqt, with a _deltas suffix when --deltas. Patches: 0.96 s each,
non-overlapping, an incomplete last patch dropped (see audio.py). A track shorter than one
patch follows SHORT_TRACK_POLICY: "pad" (zeros up to one patch; noted "padded") or "drop".
Digital silence is kept and noted "silent". Exit status 3 when some track failed.
"""
import functools
import json
import os
import sys
from pathlib import Path

# One BLAS thread per worker: the workers are the parallelism (threads on top oversubscribe
# the cores and ran 3-10x slower here). Must precede the first numpy import.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import audio  # noqa: E402
import cli  # noqa: E402
import datafiles  # noqa: E402
import jobs  # noqa: E402
import media  # noqa: E402

EXIT_SOME_FAILED = 3


def front_end_settings(cfg):
    """Everything that determines the feature files' content (recorded beside them)."""
    keys = ["feature", "deltas", "feature_dtype", "short_track_policy", "sample_rate_hz",
            "stft_window_seconds", "stft_hop_seconds", "fft_length", "num_mel_bands",
            "mel_min_hz", "mel_max_hz", "log_offset", "patch_frames", "patch_hop_frames"]
    return {k: cfg[k] for k in keys}


def make_patches(item, out_root, feature, deltas, dtype, policy):
    """(id, wav path) -> Outcome; writes <out_root>/<id>.npy (and a status file if unusual)."""
    vid, wav = item
    try:
        samples, rate = media.read_wav(wav)
    except (OSError, ValueError, EOFError) as e:
        jobs.write_status(out_root, vid, "failed", f"cannot read {wav}: {e}")
        return jobs.Outcome(vid, "failed", f"cannot read wav: {e}")
    one_patch = int(np.ceil(audio.ONE_PATCH_SAMPLES * rate / audio.SAMPLE_RATE_HZ))
    seconds = len(samples) / rate
    note, reason = "", ""
    if len(samples) < one_patch:
        if policy == "drop":
            reason = f"{seconds:.2f} s of audio, shorter than one patch (policy: drop)"
            jobs.write_status(out_root, vid, "dropped", reason)
            return jobs.Outcome(vid, "dropped", reason)
        note, reason = "padded", f"{seconds:.2f} s of audio, zero-padded to one patch"
        samples = np.pad(samples, [(0, one_patch - len(samples))] + [(0, 0)] * (samples.ndim - 1))
    if not np.any(samples):
        note, reason = "silent", f"digital silence ({seconds:.2f} s)" + (
            ", zero-padded" if note else "")
    patches = audio.features(samples, rate, feature=feature, deltas=deltas).astype(dtype)
    if note:  # the note first: an output without its note would be redone, never mislabelled
        jobs.write_status(out_root, vid, note, reason)
    else:
        jobs.clear_status(out_root, vid)
    datafiles.save_npy(Path(out_root) / (vid + ".npy"), patches)
    return jobs.Outcome(vid, "done", reason, note)


def check_settings(feature_dir, settings):
    """Write features.json, or refuse to mix files made with other front-end settings."""
    path = feature_dir / "features.json"
    if path.exists():
        old = json.loads(path.read_text(encoding="utf-8"))
        if old != settings:
            diff = {k: (old.get(k), v) for k, v in settings.items() if old.get(k) != v}
            sys.exit(f"error: {feature_dir} holds features made with other settings "
                     f"(was, now): {diff}. Use another FEATURE_ROOT or remove the folder.")
    else:
        datafiles.write_text(path, json.dumps(settings, indent=2) + "\n")


def main(argv=None):
    parser = cli.parser(__doc__, ["SPLITS", "AUDIO_ROOT", "FEATURE_ROOT", "FEATURE", "DELTAS",
                                  "FEATURE_DTYPE", "SHORT_TRACK_POLICY", "STRICT"], shard=True)
    cfg = cli.parse(parser, argv)
    paths = datafiles.Paths(cfg)
    check_settings(paths.feature_dir, front_end_settings(cfg))
    work = functools.partial(make_patches, out_root=str(paths.feature_dir), feature=cfg.feature,
                             deltas=cfg.deltas, dtype=np.dtype(cfg.feature_dtype),
                             policy=cfg.short_track_policy)
    bad = 0
    for split in cfg.splits:
        ids = datafiles.read_ids(paths.stage_list(split, "audio"))
        items = {i: str(paths.audio_root / (i + ".wav")) for i in ids}
        summary = jobs.run(f"03 {paths.feature_name}", split, cfg.shard, items, work,
                           cfg.workers, paths.feature_dir, ".npy")
        print(summary.text())
        state = jobs.split_state(ids, paths.feature_dir, ".npy")
        skipped = [f"{i}\t{s}\t{r}" for i, (s, r) in state.items() if s in ("dropped", "failed")]
        notes = [f"{i}\t{r}" for i, (s, r) in state.items() if s == "done" and r]
        datafiles.write_lines(paths.stage_list(split, f"{paths.feature_name}_skipped"), skipped)
        datafiles.write_lines(paths.stage_list(split, f"{paths.feature_name}_notes"), notes)
        done = sum(s == "done" for s, _ in state.values())
        pending = sum(s == "pending" for s, _ in state.values())
        print(f"  {split} on disk: {len(ids)} tracks = with patches {done} + skipped "
              f"{len(skipped)}" + (f" + pending {pending} (other shards)" if pending else "")
              + f"; {len(notes)} noted (padded/silent)")
        bad += summary.failed + (summary.counts["dropped"] if cfg.strict else 0)
    return EXIT_SOME_FAILED if bad else 0


if __name__ == "__main__":
    sys.exit(main())
