"""Step 09's targets: clicks land on the right frames, sigma means seconds at any rate, frame
times come from the container (a variable frame rate), silent clips stay unscaled, the first
channel is the one used; step 10's peak matching."""
import subprocess

import numpy as np
import pytest

from soundtrack.envelope import evaluation, target
from soundtrack import media
from conftest import load_script, make_video
from test_frames import VFR_TIMES, container_times

step01 = load_script("01_make_file_lists")
step08 = load_script("08_extract_frames")
step09 = load_script("09_make_envelopes")
SIGMA = 200 / 44100
FPS = 12
VFR_CLICKS = [0.3, 0.9]     # seconds: >= 50 ms from a frame-interval edge, frames apart


def click_train(times_s, rate, seconds, amplitude=0.8):
    """Silence with a 1 ms burst of alternating +-amplitude starting at each time. [n]"""
    x = np.zeros(int(seconds * rate), np.float32)
    m = max(2, int(0.001 * rate))
    for t in times_s:
        i = int(round(t * rate))
        x[i:i + m] = amplitude * (-1.0) ** np.arange(m)
    return x


# clicks at frame times, and between them: 0.4 of a frame after t_k (still frame k's
# interval), 0.6 after (frame k + 1's)
CLICKS = [(5 / FPS, 5), ((12 + 0.4) / FPS, 12), ((20 + 0.6) / FPS, 21), ((30 + 0.45) / FPS, 30)]


def test_clicks_between_frame_times_peak_on_their_frames():
    rate, seconds = 44100, 3.0
    times = np.arange(int(seconds * FPS)) / FPS
    x = click_train([t for t, _ in CLICKS], rate, seconds)
    env, silent = target.frame_envelope(x, rate, times, SIGMA, 0.05)
    assert not silent and env.dtype == np.float32 and env.shape == times.shape
    peaks = evaluation.pick_peaks(env, 0.3, 0.2)
    assert peaks.tolist() == [k for _, k in CLICKS]
    # the bug this guards against: the smoothed magnitude sampled at the frame instants
    # misses every click that is not on a frame time
    smooth = target.smoothed_magnitude(x, rate, SIGMA)
    at_instants = smooth[np.round(times * rate).astype(int)]
    assert at_instants[12] < 0.01 * smooth.max() and at_instants[21] < 0.01 * smooth.max()


@pytest.mark.parametrize("rate", [16000, 22050, 44100])
def test_sigma_is_in_seconds_at_every_rate(rate):
    x = np.zeros(rate, np.float32)
    x[rate // 2] = 1.0
    s = target.smoothed_magnitude(x, rate, SIGMA)
    t = (np.arange(rate) - rate // 2) / rate
    width = np.sqrt(np.sum(s * t ** 2) / np.sum(s))
    assert width == pytest.approx(SIGMA, rel=0.02)
    # the same click train gives the same frame envelope at every rate
    times = np.arange(36) / FPS
    ref = target.frame_envelope(click_train([t for t, _ in CLICKS], 44100, 3.0), 44100,
                                  times, SIGMA, 0.05)[0]
    got = target.frame_envelope(click_train([t for t, _ in CLICKS], rate, 3.0), rate,
                                  times, SIGMA, 0.05)[0]
    np.testing.assert_allclose(got, ref, atol=0.03)


def test_frame_edges_tile_a_variable_frame_rate():
    edges = target.frame_edges(VFR_TIMES)
    np.testing.assert_allclose(edges, [-0.05, 0.05, 0.2, 0.45, 0.8, 1.25, 1.75])
    with pytest.raises(ValueError, match="increase"):
        target.frame_edges([0.0, 0.2, 0.1])


def test_peaks_at_the_ends_count_but_a_flat_sloping_envelope_has_none():
    assert evaluation.pick_peaks(np.linspace(0.49, 0.47, 30), 0.3, 0.2).tolist() == []
    assert evaluation.pick_peaks([1.0, 0.2, 0.1, 0.1], 0.3, 0.2).tolist() == [0]
    assert evaluation.pick_peaks([0.1, 0.1, 0.2, 1.0], 0.3, 0.2).tolist() == [3]


def test_match_is_one_to_one_within_tolerance():
    assert evaluation.match([10, 11], [10], 1) == 1              # two predictions, one true peak
    assert evaluation.match([10, 12], [11, 13], 1) == 2          # needs the best assignment
    assert evaluation.match([10], [12], 1) == 0
    assert evaluation.prf(0, 0, 0) == (1.0, 1.0, 1.0) and evaluation.prf(0, 1, 0)[2] == 0.0
    assert evaluation.rating(1.0, 0.6) == "good" and evaluation.rating(1.0, 0.3) == "not_so_good"
    assert evaluation.rating(0.5, 0.1) == "bad" and evaluation.rating(0.0, 0.9) == "bad"


def _mux(ffmpeg, wav, out, channels=1):
    """A clip whose frames are shown at VFR_TIMES (test_frames' recipe) with `wav` as AAC."""
    expr = "+".join(f"eq(N\\,{k})*{t}" for k, t in enumerate(VFR_TIMES))
    subprocess.run([ffmpeg, *media.QUIET, "-f", "lavfi", "-i",
                    f"testsrc2=s=64x48:r=10:d={len(VFR_TIMES) / 10}", "-i", "file:" + str(wav),
                    "-vf", f"setpts=({expr})/TB", "-fps_mode", "vfr",
                    "-video_track_timescale", "1000", "-map", "0:v:0", "-map", "1:a:0",
                    "-c:v", "libx264", "-bf", "0", "-pix_fmt", "yuv420p", "-c:a", "aac",
                    "-b:a", "192k", "-ac", str(channels), "-y", "file:" + str(out)], check=True)


@pytest.fixture(scope="module")
def tree(tmp_path_factory, ffmpeg):
    """val/a: a VFR clip with clicks (first channel), a clip whose clicks are only in its
    second channel, a near-silent clip; train/a: one plain clip."""
    root = tmp_path_factory.mktemp("env_videos")
    work = tmp_path_factory.mktemp("env_work")
    rate = 44100
    clicks = click_train(VFR_CLICKS, rate, 1.6)
    media.write_wav(work / "clicks.wav", np.round(clicks * 32767).astype("<i2"), rate)
    (root / "val" / "a").mkdir(parents=True)
    _mux(ffmpeg, work / "clicks.wav", root / "val" / "a" / "vfr.mp4")
    stereo = np.stack([np.zeros_like(clicks), clicks], 1)
    media.write_wav(work / "second.wav", np.round(stereo * 32767).astype("<i2"), rate)
    _mux(ffmpeg, work / "second.wav", root / "val" / "a" / "second.mp4", 2)
    quiet = (0.003 * np.random.default_rng(0).standard_normal(len(clicks))).astype(np.float32)
    media.write_wav(work / "quiet.wav", np.round(quiet * 32767).astype("<i2"), rate)
    _mux(ffmpeg, work / "quiet.wav", root / "val" / "a" / "quiet.mp4")
    make_video(ffmpeg, root / "train" / "a" / "t0.mp4", 1.0, audio="sine", rate=22050)
    return root


def test_step09_on_a_vfr_clip_a_stereo_clip_and_a_silent_clip(tree, tmp_path, ffmpeg):
    common = ["--dataset", "t", "--video-root", str(tree), "--data-root", str(tmp_path / "d"),
              "--output-root", str(tmp_path), "--frames-per-second", "native",
              "--frame-size-pixels", "32", "--workers", "1"]
    step01.main(common[:8])
    assert step08.main(common) == 0
    assert step09.main(common) == 0
    folder = tmp_path / "d" / "t" / "envelopes" / "32px_nativefps_sigma4.54ms"
    vfr = np.load(folder / "val" / "a" / "vfr.npy")
    stored = container_times(ffmpeg, tree / "val" / "a" / "vfr.mp4")
    assert len(set(np.round(np.diff(stored), 3))) >= 3          # the clip is VFR indeed
    assert vfr.shape == stored.shape                  # one value per container frame
    # each click peaks on the frame whose time is nearest to it (what midpoint intervals
    # mean), which a constant rate (n frames over the duration) would not give
    nearest = [int(np.argmin(np.abs(stored - stored[0] - c))) for c in VFR_CLICKS]
    assert len(set(nearest)) == 2 and abs(nearest[1] - nearest[0]) > 1
    assert evaluation.pick_peaks(vfr, 0.3, 0.2).tolist() == nearest
    cfr = np.arange(len(stored)) * (stored[-1] - stored[0]) / (len(stored) - 1)
    assert [int(np.argmin(np.abs(cfr - c))) for c in VFR_CLICKS] != nearest
    assert vfr.max() == pytest.approx(1.0)
    # the first channel only: clicks in the second leave the clip silent
    second = np.load(folder / "val" / "a" / "second.npy")
    assert second.max() < 0.05
    quiet = np.load(folder / "val" / "a" / "quiet.npy")
    assert 0 < quiet.max() < 0.05                     # kept unscaled, not stretched to 1
    silent = (tmp_path / "file_lists" / "t" /
              "val_32px_nativefps_sigma4.54ms_silent.txt").read_text().splitlines()
    assert sorted(line.split("\t")[0] for line in silent) == ["val/a/quiet", "val/a/second"]
    listed = (tmp_path / "file_lists" / "t" /
              "val_32px_nativefps_sigma4.54ms_envelopes.txt").read_text().split()
    assert sorted(listed) == ["val/a/quiet", "val/a/second", "val/a/vfr"]
    x, rate = media.read_first_channel(tree / "val" / "a" / "vfr.mp4",
                                          media.ffmpeg_binary("imageio"))
    assert rate == 44100                              # the track's own rate, not 16 kHz


def test_auxiliary_comparison_pairs_clips_by_id_not_by_row(tmp_path):
    from soundtrack import datafiles
    step10 = load_script("10_evaluate_envelopes")
    ids = [f"val/a/c{k}" for k in range(10)]
    labels = np.zeros(10, np.int64)

    def run(name, correct, order):
        scores = np.tile([0.0, 1.0], (10, 1))
        scores[correct] = [1.0, 0.0]                 # class 0 = right
        d = tmp_path / name
        datafiles.save_npy(d / "val_scores.npy", scores[order])
        datafiles.save_npy(d / "val_labels.npy", labels[order])
        datafiles.write_lines(d / "val_ids.txt", [ids[k] for k in order])
    run("without", [0, 1, 2, 3, 4], np.arange(10))
    run("with", [0, 1, 2, 3, 4, 5, 6], np.random.default_rng(0).permutation(10))
    a = step10.auxiliary(tmp_path, "val", ["without"], ["with"], 500, 0)
    assert a["top1_without"] == 50 and a["top1_with"] == 70
    assert a["difference"] == pytest.approx(20)
    assert a["low"] >= 0 < a["difference"] < a["high"]   # no clip got worse: never below 0
