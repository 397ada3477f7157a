"""The envelope target: the sound's envelope per video frame (step 09); small pure numpy
functions, and step 09's files on disk.

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
"""
import json
from pathlib import Path

import numpy as np
from scipy.signal import fftconvolve

from soundtrack import cli
from soundtrack.errors import missing_message

SEED_SIGMA_SAMPLES, SEED_SAMPLE_RATE_HZ = 200, 44100


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
        raise ValueError(missing_message(path))
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
