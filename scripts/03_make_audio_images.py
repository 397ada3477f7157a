"""Step 03: cut every sound track into "audio images" (log-spectrogram patches).

Reads  file_lists/<dataset>/<split>_<rate>hz_<channels>_audio.txt and the wavs of step 02 in
       <audio_root>/<rate>hz_<channels>/<id>.wav (the folder of this front end's rate and
       channel policy)
Writes <feature_root>/<name>/<id>.npy       FEATURE_DTYPE [n_patches, *patch_shape], atomically:
                                            [n, bands, frames], or [n, C, bands, frames] with
                                            C = 3 (--deltas), 2 (stereo) or 6 (both)
       <feature_root>/<name>/features.json  the resolved front end that computed these files
                                            (audio.FrontEnd.to_dict), FEATURE_DTYPE and
                                            SHORT_TRACK_POLICY; read back by step 04,
                                            train.py and predict.py
       <feature_root>/<name>/<id>.status    only for unusual tracks: padded | silent | mono
                                            (a note on a written file) or dropped | failed
       file_lists/<dataset>/<split>_<name>_skipped.txt  `id<TAB>status<TAB>reason` (dropped, failed)
       file_lists/<dataset>/<split>_<name>_notes.txt    `id<TAB>note` (padded, silent, mono)

<name> is the resolved front end's folder: <preset>_<feature>[_deltas], plus a digest of the
values when any front-end key is set away from the preset (vggish_mel, vggish_mel_deltas,
vggish_mel_1a2b3c4d). A folder holds files of one front end only: other settings are refused,
naming the key. A wav whose rate or channel count is not the front end's is listed as failed,
never resampled quietly. A track shorter than one patch follows SHORT_TRACK_POLICY: "pad"
(zeros up to one patch; noted "padded") or "drop". Digital silence is kept and noted
"silent"; under the stereo policy a track whose two channels are identical is noted "mono".
Exit status 3 when some track failed.
"""
import functools
import json
import os
from pathlib import Path

# One BLAS thread per worker: the workers are the parallelism (threads on top oversubscribe
# the cores and ran 3-10x slower here). Must precede the first numpy import.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np

from soundtrack import audio
from soundtrack import cli
from soundtrack import datafiles
from soundtrack import jobs
from soundtrack import media

EXIT_SOME_FAILED = 3


def make_patches(item, out_root, fe, dtype, policy):
    """(id, wav path) -> Outcome; writes <out_root>/<id>.npy (and a status file if unusual)."""
    vid, wav = item
    try:
        samples, rate = media.read_wav(wav)
    except (OSError, ValueError, EOFError) as e:
        jobs.write_status(out_root, vid, "failed", f"cannot read {wav}: {e}")
        return jobs.Outcome(vid, "failed", f"cannot read wav: {e}")
    channels = 1 if samples.ndim == 1 else samples.shape[1]
    if rate != fe.sample_rate_hz or channels != fe.n_audio_channels:
        reason = (f"wav is {rate} Hz with {channels} channel(s); front end {fe.name} takes "
                  f"{fe.sample_rate_hz} Hz {fe.channels}: rerun step 02 with these settings")
        jobs.write_status(out_root, vid, "failed", reason)
        return jobs.Outcome(vid, "failed", reason)
    seconds = len(samples) / rate
    samples, reason = audio.pad_short_track(samples, rate, fe, policy)
    if samples is None:
        jobs.write_status(out_root, vid, "dropped", reason)
        return jobs.Outcome(vid, "dropped", reason)
    kind = "padded" if reason else ""
    if not np.any(samples):
        kind, reason = "silent", f"digital silence ({seconds:.2f} s)" + (
            ", zero-padded" if kind else "")
    elif channels == 2 and np.array_equal(samples[:, 0], samples[:, 1]):
        kind, reason = "mono", "both channels identical (a mono track duplicated)" + (
            f"; {reason}" if reason else "")
    patches = audio.features(samples, rate, fe).astype(dtype)
    if kind:  # the note first: an output without its note would be redone, never mislabelled
        jobs.write_status(out_root, vid, kind, reason)
    else:
        jobs.clear_status(out_root, vid)
    datafiles.save_npy(Path(out_root) / (vid + ".npy"), patches)
    return jobs.Outcome(vid, "done", reason, kind)


def check_record(feature_dir, record):
    """Write features.json, or refuse to mix files made with another front end or storage."""
    path = feature_dir / datafiles.FEATURES_RECORD
    if not path.exists():
        datafiles.write_text(path, json.dumps(record, indent=2) + "\n")
        return
    try:
        old, old_fe = datafiles.read_feature_record(feature_dir)
        datafiles.check_front_end(old_fe, audio.FrontEnd.from_dict(record["front_end"]),
                                  str(path), "these settings")
    except ValueError as e:
        cli.fail(f"{feature_dir} holds features of another front end: {e}. Use another "
                 "FEATURE_ROOT or remove the folder.")
    for key in ("feature_dtype", "short_track_policy"):
        if old.get(key) != record[key]:
            cli.fail(f"{feature_dir} holds features made with {key} = "
                     f"{old.get(key)!r} ({path}), these settings say {record[key]!r}. Use "
                     "another FEATURE_ROOT or remove the folder.")


def main(argv=None):
    parser = cli.parser(__doc__, ["WORKERS", "SPLITS", "AUDIO_ROOT", "FEATURE_ROOT", *cli.FRONT_END_KEYS,
                                  "FEATURE_DTYPE", "SHORT_TRACK_POLICY", "STRICT"], shard=True)
    cfg = cli.parse(parser, argv)
    paths = datafiles.Paths(cfg)
    fe = paths.front_end
    check_record(paths.feature_dir, datafiles.feature_record(fe, cfg.feature_dtype,
                                                             cfg.short_track_policy))
    print(f"[03] front end {fe.name}: patches {list(fe.patch_shape)} from "
          f"{paths.audio_dir} -> {paths.feature_dir}")
    work = functools.partial(make_patches, out_root=str(paths.feature_dir), fe=fe,
                             dtype=np.dtype(cfg.feature_dtype), policy=cfg.short_track_policy)
    bad = 0
    for split in cfg.splits:
        ids = datafiles.read_ids(paths.audio_list(split))
        items = {i: str(paths.audio_dir / (i + ".wav")) for i in ids}
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
              + f"; {len(notes)} noted (padded/silent/mono)")
        bad += summary.failed + (summary.counts["dropped"] if cfg.strict else 0)
    return EXIT_SOME_FAILED if bad else 0


if __name__ == "__main__":
    cli.run_script(main)
