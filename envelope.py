"""Envelopes: the sound's envelope per video frame (step 09) and the automatic metrics of
predicted envelopes (step 10); small pure numpy functions.

The seed's target (``../shared/seeds/002``): the first channel of the sound track in [-1, 1],
its magnitude smoothed by a Gaussian (sigma 200 samples at 44.1 kHz), brought to the video's
frames and scaled to [0, 1] per clip. Here sigma is in seconds (200 / 44100 s = 4.54 ms), so it
means the same at any sample rate, and frame k takes the *maximum* of the smoothed magnitude
over its own interval, not the value at one instant: a 4.5 ms peak sampled at single instants
83 ms apart would be missed.

Frame intervals (``frame_edges``): frame k covers [t_k - d/2, t_k + d/2) with the t_k the
container's frame times; for a variable frame rate, d/2 on each side is half the gap to that
neighbour, so the intervals tile the track without gaps or overlaps and each sample counts
for exactly one frame. The first and last frame extend by half their one gap.

Silence: a clip whose envelope peaks below a floor (full scale 1) is kept unscaled and noted
``silent``: scaling noise to full range would teach noise.

Step 10's metrics.

Peaks (``pick_peaks``, the one picker for predicted and true envelopes alike): local maxima of
the per-frame envelope at least PEAK_HEIGHT high with a prominence (scipy.signal's: how far a
peak stands above the higher of the two lowest points that separate it from higher ground) of
at least PEAK_PROMINENCE, at least 2 frames apart; the envelope is padded at each end with
its own minimum, so that a peak on the first or last frame counts, while a flat or sloping
envelope has none.

Onsets (``match``): predicted and true peaks matched one to one within +-tolerance frames, the
largest such matching (mir_eval's onset evaluation does the same with a time window);
precision = matched / predicted, recall = matched / true, F1 their harmonic mean; a clip
with no true and no predicted peak has P = R = F1 = 1 (nothing to find, nothing claimed),
one side empty and the other not: F1 = 0. Totals over clips sum the counts first (micro).

Pearson r per clip: an undefined r (a constant envelope, either side) counts as 0, in the
means and in the rating.

The seed's three-way rating, automatic, thresholds fixed in advance (config-free on
purpose): good = onset F1 1.0 and r >= 0.5; bad = onset F1 0 or r < 0.2; not so good
otherwise. Score = (good - bad) / clips in [-1, 1].
"""
import json
import struct
import subprocess
from pathlib import Path

import numpy as np
from scipy.signal import fftconvolve, find_peaks

import cli
import media

SEED_SIGMA_SAMPLES, SEED_SAMPLE_RATE_HZ = 200, 44100


def first_channel_command(ffmpeg, path):
    """argv: the first audio stream's channel 0 at its own rate, as a PCM16 wav on stdout."""
    return [ffmpeg, *media.QUIET, "-i", "file:" + str(path), "-map", "0:a:0", "-vn", "-sn",
            "-dn", "-af", "pan=mono|c0=c0", "-c:a", "pcm_s16le", "-map_metadata", "-1",
            "-bitexact", "-f", "wav", "pipe:1"]


def parse_wav(data):
    """A PCM16 wav's bytes (sizes may be unset, as ffmpeg writes to a pipe) -> (float32
    [n_samples] of channel 0 in [-1, 1), rate Hz). ValueError if it is not such a wav."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a RIFF/WAVE stream")
    pos, rate, channels = 12, None, None
    while pos + 8 <= len(data):
        tag, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        if tag == b"fmt ":
            fmt, channels, rate, _, _, bits = struct.unpack("<HHIIHH", data[pos + 8:pos + 24])
            if fmt != 1 or bits != 16:
                raise ValueError(f"wav format {fmt} with {bits} bits, expected PCM16")
        elif tag == b"data":
            if rate is None:
                raise ValueError("wav data before its fmt chunk")
            raw = data[pos + 8:] if size in (0, 0xFFFFFFFF) else data[pos + 8:pos + 8 + size]
            x = np.frombuffer(raw[:len(raw) // (2 * channels) * 2 * channels], "<i2")
            return x[::channels].astype(np.float32) / 32768.0, int(rate)
        pos += 8 + size + (size & 1)
    raise ValueError("wav without a data chunk")


def read_first_channel(path, ffmpeg, timeout_s=300):
    """The original track's first channel at its own sample rate -> (float32 [n], rate Hz).

    Raises media.MediaError('no_audio' | 'failed', reason)."""
    argv = first_channel_command(ffmpeg, path)
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise media.MediaError("failed", f"ffmpeg timed out after {timeout_s} s") from None
    err = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        if "matches no streams" in err:
            raise media.MediaError("no_audio", "no audio stream")
        raise media.MediaError("failed", media._reason(proc.stderr))
    try:
        x, rate = parse_wav(proc.stdout)
    except ValueError as e:
        raise media.MediaError("failed", f"ffmpeg's wav output: {e}") from None
    if not x.size:
        raise media.MediaError("failed", "the audio stream decodes to 0 samples")
    return x, rate


def smoothed_magnitude(x, rate, sigma_seconds):
    """|x| smoothed by a Gaussian of `sigma_seconds` (zeros beyond the ends).

    Args: x float [n] in [-1, 1]; rate Hz. Returns float64 [n]."""
    if sigma_seconds <= 0 or rate <= 0:
        raise ValueError(f"sigma_seconds and rate must be > 0, got {sigma_seconds}, {rate}")
    sigma = sigma_seconds * rate                               # samples
    half = int(4.0 * sigma + 0.5)                              # the kernel ends at 4 sigma
    k = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma) ** 2)
    # FFT convolution: the kernel is 1.6 k taps at 44.1 kHz, too long to slide directly
    return np.maximum(fftconvolve(np.abs(np.asarray(x, np.float64)), k / k.sum(), "same"), 0.0)


def frame_edges(times):
    """Frame times (seconds, increasing) [n] -> interval edges [n + 1]: frame k covers
    [edges[k], edges[k + 1]), edges at the midpoints between neighbours (module docstring)."""
    t = np.asarray(times, np.float64)
    if t.ndim != 1 or not t.size:
        raise ValueError("frame times must be a non-empty 1-d array")
    if np.any(np.diff(t) <= 0):
        raise ValueError("frame times must increase")
    if t.size == 1:
        return np.array([-np.inf, np.inf])
    mid = (t[1:] + t[:-1]) / 2
    return np.concatenate([[t[0] - (t[1] - t[0]) / 2], mid, [t[-1] + (t[-1] - t[-2]) / 2]])


def frame_maxima(values, rate, times):
    """The maximum of `values` (float [n_samples], sample i at i / rate s) over each frame's
    interval (frame_edges) -> float64 [n_frames]; a frame with no sample inside gets 0."""
    edges = np.ceil(frame_edges(times) * rate)
    edges = np.clip(np.nan_to_num(edges, posinf=len(values), neginf=0), 0, len(values))
    edges = edges.astype(np.int64)
    out = np.zeros(len(edges) - 1)
    for k in range(len(out)):
        if edges[k + 1] > edges[k]:
            out[k] = values[edges[k]:edges[k + 1]].max()
    return out


def scale_to_unit(envelope, silent_floor):
    """-> (envelope / its peak, False), or (envelope unchanged, True) when the peak is below
    `silent_floor` (a silent clip)."""
    peak = float(np.max(envelope)) if len(envelope) else 0.0
    if peak < silent_floor:
        return np.asarray(envelope, np.float64), True
    return np.asarray(envelope, np.float64) / peak, False


def frame_envelope(x, rate, times, sigma_seconds, silent_floor):
    """One clip's target: float32 [n_frames] and whether it is silent (see the module)."""
    env = frame_maxima(smoothed_magnitude(x, rate, sigma_seconds), rate, times)
    env, silent = scale_to_unit(env, silent_floor)
    return env.astype(np.float32), silent


# ---------------------------------------------------------------- on disk (step 09)

RECORD = "envelopes.json"


def envelope_dir(paths, cfg):
    """Step 09's folder for these settings: <envelope_root>/<frames folder>_sigma<ms>ms/."""
    root = cli.repo_path(cfg.envelope_root) if cfg.envelope_root else paths.data / "envelopes"
    return root / f"{paths.frame_settings.folder}_sigma{cfg.envelope_sigma_seconds * 1000:.3g}ms"


def envelope_list(paths, cfg, split, what):
    """file_lists/<dataset>/<split>_<envelope folder>_<what>.txt (what: envelopes, silent,
    no_audio, no_video, failed)."""
    return paths.stage_list(split, f"{envelope_dir(paths, cfg).name}_{what}")


def read_record(folder):
    path = Path(folder) / RECORD
    if not path.is_file():
        raise ValueError(f"{path} does not exist: run scripts/09_make_envelopes.py first")
    return json.loads(path.read_text(encoding="utf-8"))


def load_envelopes(folder, ids):
    """{id: float32 [n_frames]} of step 09's files; ValueError naming a missing or bad file."""
    out = {}
    for i in ids:
        path = Path(folder) / (i + ".npy")
        try:
            a = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise ValueError(f"{path}: cannot read step 09's envelope ({e})") from None
        if a.ndim != 1 or a.dtype != np.float32:
            raise ValueError(f"{path}: expected float32 [n_frames], got {a.dtype} {a.shape}")
        out[i] = a
    return out


# ---------------------------------------------------------------- step 10: metrics

GOOD_MIN_R, BAD_MAX_R = 0.5, 0.2
RATINGS = ("good", "not_so_good", "bad")
RATING_VALUE = {"good": 1, "not_so_good": 0, "bad": -1}


def pick_peaks(y, height, prominence):
    """Frame indices of the peaks of an envelope float [n] (module docstring) -> int64 [k]."""
    y = np.asarray(y, np.float64)
    if not y.size:
        return np.zeros(0, np.int64)
    low = [y.min()]
    idx, _ = find_peaks(np.concatenate([low, y, low]), height=height, prominence=prominence,
                        distance=2)
    return (idx - 1).astype(np.int64)


def match(pred, true, tolerance):
    """The size of the largest one-to-one matching of predicted to true peak frames with
    |p - t| <= tolerance (augmenting paths; small sets) -> int."""
    pred, true = list(map(int, pred)), list(map(int, true))
    owner = {}                                     # true index -> predicted index

    def augment(p, seen):
        for t, tv in enumerate(true):
            if abs(pred[p] - tv) <= tolerance and t not in seen:
                seen.add(t)
                if t not in owner or augment(owner[t], seen):
                    owner[t] = p
                    return True
        return False
    return sum(augment(p, set()) for p in range(len(pred)))


def prf(tp, n_pred, n_true):
    """(precision, recall, F1) from counts, with the empty-clip conventions above."""
    if n_pred == 0 and n_true == 0:
        return 1.0, 1.0, 1.0
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_true if n_true else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def pearson(a, b):
    """Pearson r; nan when either sequence is constant or shorter than 2."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 2 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.mean((a - a.mean()) * (b - b.mean())) / (a.std() * b.std()))


def bce(pred, target, eps=1e-4):
    p = np.clip(np.asarray(pred, np.float64), eps, 1 - eps)
    t = np.asarray(target, np.float64)
    return float(-np.mean(t * np.log(p) + (1 - t) * np.log(1 - p)))


def rating(f1, r):
    r = 0.0 if not np.isfinite(r) else r
    if f1 == 1.0 and r >= GOOD_MIN_R:
        return "good"
    if f1 == 0.0 or r < BAD_MAX_R:
        return "bad"
    return "not_so_good"


def clip_metrics(pred, true, height, prominence, tolerance):
    """One clip: {r, mse, bce, n_pred, n_true, tp, precision, recall, f1, count_ok, rating,
    pred_peaks, true_peaks}."""
    pred, true = np.asarray(pred, np.float64), np.asarray(true, np.float64)
    if pred.shape != true.shape:
        raise ValueError(f"predicted envelope has {pred.shape}, the true one {true.shape}")
    pp, tp_ = pick_peaks(pred, height, prominence), pick_peaks(true, height, prominence)
    tp = match(pp, tp_, tolerance)
    p, r_, f1 = prf(tp, len(pp), len(tp_))
    r = pearson(pred, true)
    r = 0.0 if not np.isfinite(r) else r          # a constant envelope correlates with nothing
    return dict(r=r, mse=float(np.mean((pred - true) ** 2)), bce=bce(pred, true),
                n_pred=len(pp), n_true=len(tp_), tp=tp, precision=p, recall=r_, f1=f1,
                count_ok=len(pp) == len(tp_), rating=rating(f1, r),
                pred_peaks=pp.tolist(), true_peaks=tp_.tolist())


def summary(rows):
    """Totals over clips' clip_metrics rows: micro onset P/R/F1, mean r (nan-skipping), MSE,
    BCE, onset-count accuracy, rating counts and score."""
    tp = sum(r["tp"] for r in rows)
    n_pred, n_true = sum(r["n_pred"] for r in rows), sum(r["n_true"] for r in rows)
    p, rc, f1 = prf(tp, n_pred, n_true)
    counts = {k: sum(r["rating"] == k for r in rows) for k in RATINGS}
    return dict(clips=len(rows), onset_precision=p, onset_recall=rc, onset_f1=f1,
                mean_r=float(np.nanmean([r["r"] for r in rows])) if rows else float("nan"),
                mse=float(np.mean([r["mse"] for r in rows])),
                bce=float(np.mean([r["bce"] for r in rows])),
                onset_count_accuracy=float(np.mean([r["count_ok"] for r in rows])),
                ratings=counts,
                score=(counts["good"] - counts["bad"]) / len(rows) if rows else float("nan"))


def micro_f1(tp, n_pred, n_true):
    return prf(int(tp), int(n_pred), int(n_true))[2]


def paired_bootstrap(a_rows, b_rows, stat, samples, seed):
    """95 % interval of stat(a) - stat(b) over clips resampled with replacement, the same
    clips for both (paired). stat(rows) -> float. -> (difference, low, high)."""
    rng = np.random.default_rng(seed)
    n = len(a_rows)
    diffs = np.empty(samples)
    for s in range(samples):
        idx = rng.integers(0, n, n)
        diffs[s] = stat([a_rows[i] for i in idx]) - stat([b_rows[i] for i in idx])
    low, high = np.percentile(diffs, [2.5, 97.5])
    return stat(a_rows) - stat(b_rows), float(low), float(high)


def stat_f1(rows):
    return micro_f1(sum(r["tp"] for r in rows), sum(r["n_pred"] for r in rows),
                    sum(r["n_true"] for r in rows))


def stat_r(rows):
    return float(np.nanmean([r["r"] for r in rows]))


def event_frame(time_s, times):
    """The frame whose interval (frame_edges) holds an event at time_s."""
    edges = frame_edges(times)
    return int(np.clip(np.searchsorted(edges, time_s, side="right") - 1, 0, len(times) - 1))


def near(peaks, frame, tolerance):
    return bool(len(peaks)) and bool(np.min(np.abs(np.asarray(peaks) - frame)) <= tolerance)
