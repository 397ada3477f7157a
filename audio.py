"""Audio front ends: a waveform -> "audio images" ``[n_patches, 64 bands, 96 frames]``.

Three front ends share one geometry (16 kHz mono, frames of 25 ms every 10 ms, 64 bands,
log compression ``log(x + LOG_OFFSET)``, patches of 96 frames = 0.96 s, an incomplete last
patch dropped), so their frame counts agree for the same input and their patches line up:

* ``mel``  VGGish's log-mel spectrogram, equal to the reference ``waveform_to_examples``
           (tensorflow/models research/audioset/vggish) to within 1e-4 for 16 kHz input,
           transposed to ``[n, 64 mel bands, 96 frames]``;
* ``gam``  a "gammatonegram": 64 ERB-spaced 4th-order gammatone magnitude responses used as
           weights over the same STFT magnitudes;
* ``cqt``  a constant-Q filterbank: 64 bands, 8 per octave from 27.5 Hz, each a band-pass
           filter applied to the whole track in the frequency domain.

The chain is ``to_mono -> resample -> log_{mel,gammatone,cqt}_spectrogram [n_frames, 64]
-> (add_deltas [n_frames, 3, 64]) -> spectrogram_to_patches [n, (3,) 64, 96]``;
``features(waveform, rate, feature, deltas)`` runs it for a named front end (step 03).
Everything here is numpy/scipy.
"""
import functools
import math
import numbers

import numpy as np
import scipy.fft

import config

# ---------------------------------------------------------------- derived constants
SAMPLE_RATE_HZ = config.SAMPLE_RATE_HZ
WINDOW_SAMPLES = round(SAMPLE_RATE_HZ * config.STFT_WINDOW_SECONDS)    # 400
HOP_SAMPLES = round(SAMPLE_RATE_HZ * config.STFT_HOP_SECONDS)          # 160
assert math.isclose(WINDOW_SAMPLES, SAMPLE_RATE_HZ * config.STFT_WINDOW_SECONDS), \
    "STFT_WINDOW_SECONDS must be a whole number of samples"
assert math.isclose(HOP_SAMPLES, SAMPLE_RATE_HZ * config.STFT_HOP_SECONDS), \
    "STFT_HOP_SECONDS must be a whole number of samples"
FFT_LENGTH = config.FFT_LENGTH                                          # 512
assert FFT_LENGTH >= WINDOW_SAMPLES, "FFT_LENGTH must hold one window"
NUM_BANDS = config.NUM_MEL_BANDS                                        # 64, every front end
LOG_OFFSET = config.LOG_OFFSET
PATCH_FRAMES = config.PATCH_FRAMES                                      # 96
PATCH_HOP_FRAMES = config.PATCH_HOP_FRAMES                              # 96
# The fewest samples (at SAMPLE_RATE_HZ) that make exactly one patch: 400 + 95 * 160 = 15600.
ONE_PATCH_SAMPLES = WINDOW_SAMPLES + (PATCH_FRAMES - 1) * HOP_SAMPLES

# Gammatone and constant-Q front ends (not in config.py: they are fixed design choices).
GAMMATONE_ORDER = 4              # 4th order: the usual auditory-filter model
CQT_MIN_HZ = 27.5                # A0; 64 bands at 8 per octave reach 6.34 kHz (top edge 6.9 kHz)
CQT_BINS_PER_OCTAVE = 8
CQT_Q = 1.0 / (2.0 ** (1.0 / CQT_BINS_PER_OCTAVE) - 1.0)     # 11.05: centre / band spacing
assert CQT_MIN_HZ * 2.0 ** ((NUM_BANDS - 1) / CQT_BINS_PER_OCTAVE) * (1 + 1 / CQT_Q) \
    < SAMPLE_RATE_HZ / 2, "the top constant-Q band must end below Nyquist"
DELTA_HALF_WIDTH_FRAMES = 2      # deltas: linear regression over t-2 .. t+2
STFT_BLOCK_FRAMES = 128          # frames per FFT call: buffers stay in cache (~0.5 MB)
FILTERBANK_GROUP_BANDS = 8       # bands per matmul when applying a filterbank

# Resampling other rates to SAMPLE_RATE_HZ: a Kaiser-windowed sinc low-pass, 32 zero
# crossings each side, beta 10 (~100 dB stopband), cutoff 0.94 x the lower Nyquist.
# Log-mel of 44.1 kHz input is then within 2e-4 of the reference's (resampy kaiser_best) in
# the bands below 6.4 kHz, within 0.3 above; 8 kHz input leaves no images above 4 kHz
# (scipy's default filter leaves some at -50 dB, which log(mel + 0.01) makes visible).
RESAMPLE_ZERO_CROSSINGS = 32
RESAMPLE_KAISER_BETA = 10.0
RESAMPLE_ROLLOFF = 0.94

FEATURES = ("mel", "gam", "cqt")


# ---------------------------------------------------------------- input
def to_mono(waveform):
    """Average the channels of a multi-channel waveform.

    Args:
      waveform: float array [n_samples] or [n_samples, n_channels], samples in [-1, 1].

    Returns:
      float array [n_samples] (the input itself when already mono).

    Raises:
      ValueError: other shapes, integer samples, non-finite samples.
    """
    x = np.asarray(waveform)
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"waveform must hold floats in [-1, 1], got dtype {x.dtype}")
    # More channels than samples: most likely [n_channels, n_samples], which would silently
    # give no frames.
    if x.ndim not in (1, 2) or (x.ndim == 2 and (x.shape[1] == 0 or 0 < x.shape[0] < x.shape[1])):
        raise ValueError(f"waveform must be [n_samples] or [n_samples, n_channels], "
                         f"got shape {x.shape}")
    if x.ndim == 2:
        x = x.mean(axis=1)
    if not np.isfinite(x).all():
        raise ValueError("waveform holds NaN or infinite samples")
    return x


def _check_rate(sample_rate):
    if (isinstance(sample_rate, bool) or not isinstance(sample_rate, numbers.Real)
            or not sample_rate > 0 or not float(sample_rate).is_integer()):
        raise ValueError(f"sample_rate must be a positive whole number of Hz, "
                         f"got {sample_rate!r}")
    return int(sample_rate)


@functools.lru_cache(maxsize=8)
def _resample_filter(up, down):
    """Low-pass FIR taps at up x the input rate, for resample_poly(x, up, down)."""
    import scipy.signal   # imported on use: ~0.5 s (it loads scipy.stats); 16 kHz input skips it
    rate = max(up, down)
    taps = scipy.signal.firwin(2 * RESAMPLE_ZERO_CROSSINGS * rate + 1, RESAMPLE_ROLLOFF / rate,
                               window=("kaiser", RESAMPLE_KAISER_BETA))
    taps.flags.writeable = False
    return taps


def resample(waveform, sample_rate, target_rate=SAMPLE_RATE_HZ):
    """Resample a mono waveform by polyphase filtering (scipy.signal.resample_poly).

    The filter is set by the RESAMPLE_* constants. The VGGish reference uses resampy
    instead, so features of resampled audio match it closely but not to 1e-4 (most in the
    bands near the lower of the two Nyquist frequencies).

    Args:
      waveform: float array [n_samples].
      sample_rate: its rate in Hz, a positive whole number.
      target_rate: the rate wanted, Hz.

    Returns:
      float array [ceil(n_samples * target_rate / sample_rate)] (the input if the rates agree).
    """
    sample_rate, target_rate = _check_rate(sample_rate), _check_rate(target_rate)
    if sample_rate == target_rate:
        return waveform
    g = math.gcd(sample_rate, target_rate)
    up, down = target_rate // g, sample_rate // g
    import scipy.signal
    return scipy.signal.resample_poly(waveform, up, down, window=_resample_filter(up, down))


def _prepare(waveform, sample_rate):
    """Any accepted input -> float mono [n_samples] at SAMPLE_RATE_HZ."""
    return resample(to_mono(waveform), sample_rate)


# ---------------------------------------------------------------- STFT
def num_frames(n_samples, window_length=WINDOW_SAMPLES, hop_length=HOP_SAMPLES):
    """How many whole frames ``frame`` cuts from n_samples (0 when shorter than a window)."""
    if n_samples < window_length:
        return 0
    return 1 + (n_samples - window_length) // hop_length


def frame(x, window_length, hop_length):
    """Cut an array into overlapping frames without copying (a read-only strided view).

    Args:
      x: array [n_samples, ...].
      window_length: samples per frame, > 0.
      hop_length: samples between frame starts, > 0.

    Returns:
      array [n_frames, window_length, ...], n_frames = num_frames(n_samples, ...); only whole
      frames, no padding.
    """
    if window_length <= 0 or hop_length <= 0:
        raise ValueError(f"window_length {window_length} and hop_length {hop_length} "
                         f"must be > 0")
    x = np.asarray(x)
    shape = (num_frames(len(x), window_length, hop_length), window_length) + x.shape[1:]
    strides = (x.strides[0] * hop_length,) + x.strides
    return np.lib.stride_tricks.as_strided(x, shape, strides, writeable=False)


@functools.lru_cache(maxsize=None)
def _cached_hann(n):
    w = 0.5 - 0.5 * np.cos(2 * np.pi / n * np.arange(n))
    w.flags.writeable = False
    return w


@functools.lru_cache(maxsize=8)
def _tiled_window(rows, window_length, fft_length):
    """[rows, fft_length]: the periodic Hann window in every row, zeros past it (read-only)."""
    tiled = np.zeros((rows, fft_length))
    tiled[:, :window_length] = _cached_hann(window_length)
    tiled.flags.writeable = False
    return tiled


def periodic_hann(n):
    """The periodic Hann window (one full cosine period over n + 1 points, last dropped).

    Args:
      n: window length, > 0.

    Returns:
      float64 array [n]: 0.5 - 0.5 cos(2 pi k / n).
    """
    if n <= 0:
        raise ValueError(f"window length {n} must be > 0")
    return _cached_hann(int(n)).copy()


def stft_magnitude(waveform, window_length=WINDOW_SAMPLES, hop_length=HOP_SAMPLES,
                   fft_length=FFT_LENGTH, bins=None):
    """|STFT| of a mono waveform: periodic-Hann frames, zero-padded real FFT.

    The FFT runs in float64, as the reference's does: a float32 FFT's rounding error is
    about 1e-7 x sqrt(fft_length) x the frame's norm in every bin, which after the log moves
    the quiet bands of loud frames by up to 4e-4 on real recordings (15 of the 400 ESC-10
    clips exceed 1e-4) and 1e-3 on a loud pure tone. Frames go through the FFT
    STFT_BLOCK_FRAMES at a time, so its buffers stay in cache; the magnitude is taken in
    complex64 (7 digits of each part: plenty for a magnitude, and faster), and only for the
    bins asked for.

    Args:
      waveform: float array [n_samples].
      window_length: samples per frame.
      hop_length: samples between frames.
      fft_length: FFT size, >= window_length.
      bins: (first, stop) FFT bins to return, default all (0, fft_length // 2 + 1).

    Returns:
      float32 array [n_frames, stop - first], n_frames = num_frames(n_samples, ...).
    """
    if fft_length < window_length:
        raise ValueError(f"fft_length {fft_length} < window_length {window_length}")
    if np.ndim(waveform) != 1:
        raise ValueError(f"waveform must be mono [n_samples], got shape {np.shape(waveform)}")
    first, stop = bins if bins is not None else (0, fft_length // 2 + 1)
    if not 0 <= first < stop <= fft_length // 2 + 1:
        raise ValueError(f"bins {bins} must lie within 0 .. {fft_length // 2 + 1}")
    frames = frame(waveform, window_length, hop_length)
    out = np.empty((len(frames), stop - first), np.float32)
    rows = min(len(frames), STFT_BLOCK_FRAMES)
    padded = np.zeros((rows, fft_length))            # columns past the window stay 0
    # The window tiled over a whole block, zeros past it: one flat multiply per block runs
    # 2x faster than a [rows, window] x [window] broadcast.
    windows = _tiled_window(STFT_BLOCK_FRAMES, window_length, fft_length).reshape(-1)
    spectrum = np.empty((rows, fft_length // 2 + 1), np.complex128)
    single = np.empty((rows, stop - first), np.complex64)
    for start in range(0, len(frames), STFT_BLOCK_FRAMES):
        block = frames[start:start + STFT_BLOCK_FRAMES]
        n = len(block)
        padded[:n, :window_length] = block
        flat = padded[:n].reshape(-1)
        np.multiply(flat, windows[:len(flat)], out=flat)
        np.fft.rfft(padded[:n], axis=1, out=spectrum[:n])
        np.copyto(single[:n], spectrum[:n, first:stop], casting="same_kind")
        np.abs(single[:n], out=out[start:start + n])
    return out


# ---------------------------------------------------------------- filterbanks
def hz_to_mel(hz):
    """HTK mel scale: 1127 ln(1 + hz / 700). Scalar or array in, same shape out."""
    return 1127.0 * np.log1p(np.asarray(hz, np.float64) / 700.0)


def _check_band_edges(min_hz, max_hz, sample_rate):
    if not 0.0 <= min_hz < max_hz <= sample_rate / 2:
        raise ValueError(f"need 0 <= min_hz < max_hz <= Nyquist, got min_hz {min_hz}, "
                         f"max_hz {max_hz}, Nyquist {sample_rate / 2}")


def _fft_bin_hz(fft_length, sample_rate):
    return np.linspace(0.0, sample_rate / 2, fft_length // 2 + 1)


def _frozen(weights):
    weights = weights.astype(np.float32)
    weights.flags.writeable = False       # a cached array: nobody may change it
    return weights


@functools.lru_cache(maxsize=16)
def mel_matrix(num_bands=NUM_BANDS, fft_length=FFT_LENGTH, sample_rate=SAMPLE_RATE_HZ,
               min_hz=config.MEL_MIN_HZ, max_hz=config.MEL_MAX_HZ):
    """VGGish's mel filterbank: spectrogram rows @ matrix -> mel bands.

    Triangles with peak 1, linear in HTK mel over the FFT bin frequencies, band edges evenly
    spaced in mel from min_hz to max_hz; the DC bin gets weight 0 (as in HTK). This is the
    reference's filterbank, not librosa's (which is linear in Hz within a band and
    area-normalised). Cached; the array is read-only.

    Args:
      num_bands: mel bands.
      fft_length: FFT size; the spectrogram has fft_length // 2 + 1 bins from 0 to Nyquist.
      sample_rate: Hz.
      min_hz, max_hz: lower edge of the first band, upper edge of the last, Hz.

    Returns:
      float32 array [fft_length // 2 + 1, num_bands].
    """
    _check_band_edges(min_hz, max_hz, sample_rate)
    bin_mel = hz_to_mel(_fft_bin_hz(fft_length, sample_rate))[:, None]
    edges = np.linspace(hz_to_mel(min_hz), hz_to_mel(max_hz), num_bands + 2)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bin_mel - lower) / (centre - lower)
    falling = (upper - bin_mel) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights[0] = 0.0
    return _frozen(weights)


def mel_to_hz(mel):
    """Inverse of hz_to_mel."""
    return 700.0 * np.expm1(np.asarray(mel, np.float64) / 1127.0)


def mel_centres_hz(num_bands=NUM_BANDS, min_hz=config.MEL_MIN_HZ, max_hz=config.MEL_MAX_HZ):
    """Centre frequencies of ``mel_matrix``'s bands (where each triangle peaks), Hz [num_bands]."""
    return mel_to_hz(np.linspace(hz_to_mel(min_hz), hz_to_mel(max_hz), num_bands + 2)[1:-1])


def hz_to_erb_rate(hz):
    """Glasberg & Moore (1990) ERB-rate scale: 21.4 log10(1 + 0.00437 hz)."""
    return 21.4 * np.log10(1.0 + 0.00437 * np.asarray(hz, np.float64))


def erb_rate_to_hz(erb_rate):
    """Inverse of hz_to_erb_rate."""
    return (10.0 ** (np.asarray(erb_rate, np.float64) / 21.4) - 1.0) / 0.00437


def gammatone_centres_hz(num_bands=NUM_BANDS, min_hz=config.MEL_MIN_HZ,
                         max_hz=config.MEL_MAX_HZ):
    """Centre frequencies evenly spaced on the ERB-rate scale, min_hz to max_hz, Hz [num_bands]."""
    return erb_rate_to_hz(np.linspace(hz_to_erb_rate(min_hz), hz_to_erb_rate(max_hz),
                                      num_bands))


@functools.lru_cache(maxsize=16)
def gammatone_matrix(num_bands=NUM_BANDS, fft_length=FFT_LENGTH, sample_rate=SAMPLE_RATE_HZ,
                     min_hz=config.MEL_MIN_HZ, max_hz=config.MEL_MAX_HZ,
                     order=GAMMATONE_ORDER):
    """Gammatone magnitude responses as weights over FFT bins (a "gammatonegram").

    Centres are evenly spaced on the ERB-rate scale from min_hz to max_hz (the mel range).
    Band c weights bin f by the magnitude response of an order-n gammatone filter,
    ``(1 + ((f - fc) / b)^2)^(-n / 2)`` with ``b = 1.019 ERB(fc)``,
    ``ERB(fc) = 24.7 (4.37 fc / 1000 + 1)`` Hz; peak 1 like the mel triangles, DC bin 0.
    Applied to 25 ms STFT frames this approximates a gammatone filterbank's envelope (the
    true filters' impulse responses are longer than a frame below ~200 Hz). Cached,
    read-only.

    Args:
      num_bands: gammatone channels.
      fft_length: FFT size (fft_length // 2 + 1 bins from 0 to Nyquist).
      sample_rate: Hz.
      min_hz, max_hz: centre frequencies of the first and last channel, Hz.
      order: gammatone order, > 0.

    Returns:
      float32 array [fft_length // 2 + 1, num_bands].
    """
    _check_band_edges(min_hz, max_hz, sample_rate)
    if order <= 0:
        raise ValueError(f"gammatone order {order} must be > 0")
    centres = gammatone_centres_hz(num_bands, min_hz, max_hz)
    bandwidths = 1.019 * 24.7 * (4.37 * centres / 1000.0 + 1.0)
    offsets = (_fft_bin_hz(fft_length, sample_rate)[:, None] - centres) / bandwidths
    weights = (1.0 + offsets ** 2) ** (-order / 2.0)
    weights[0] = 0.0
    return _frozen(weights)


def cqt_centres_hz(num_bands=NUM_BANDS, min_hz=CQT_MIN_HZ,
                   bins_per_octave=CQT_BINS_PER_OCTAVE):
    """Centre frequencies of the constant-Q bands: min_hz * 2^(k / bins_per_octave).

    Returns:
      float64 array [num_bands], Hz.
    """
    if min_hz <= 0 or bins_per_octave <= 0:
        raise ValueError(f"min_hz {min_hz} and bins_per_octave {bins_per_octave} "
                         f"must be > 0")
    return min_hz * 2.0 ** (np.arange(num_bands) / bins_per_octave)


# ---------------------------------------------------------------- spectrograms [n_frames, 64]
def _log(x):
    return np.log(x + np.float32(LOG_OFFSET), dtype=np.float32)


@functools.lru_cache(maxsize=16)
def _filterbank_plan(matrix):
    """How to apply the filterbank ``matrix()`` fast: the FFT bins it uses (first, stop) and,
    per FILTERBANK_GROUP_BANDS bands, (first band, stop band, first bin, stop bin, weights)
    with the bins relative to `first`. Mel bands each weight a few neighbouring bins, so the
    groups' small products do ~1/7 of a dense matmul's work (3x faster here)."""
    weights = matrix()
    used = np.flatnonzero(weights.any(axis=1))        # mel: bins 5..239; skip the rest
    first, stop = int(used[0]), int(used[-1]) + 1
    groups = []
    for b0 in range(0, weights.shape[1], FILTERBANK_GROUP_BANDS):
        cols = weights[:, b0:b0 + FILTERBANK_GROUP_BANDS]
        rows = np.flatnonzero(cols.any(axis=1))
        r0, r1 = (int(rows[0]), int(rows[-1]) + 1) if rows.size else (first, first)
        groups.append((b0, b0 + cols.shape[1], r0 - first, r1 - first,
                       _frozen(np.ascontiguousarray(cols[r0:r1]))))
    return first, stop, tuple(groups)


def _log_filterbank_spectrogram(waveform, sample_rate, matrix):
    """log(|STFT| @ matrix() + LOG_OFFSET) -> float32 [n_frames, n_bands]."""
    first, stop, groups = _filterbank_plan(matrix)
    magnitude = stft_magnitude(_prepare(waveform, sample_rate), bins=(first, stop))
    out = np.empty((len(magnitude), groups[-1][1]), np.float32)
    for b0, b1, r0, r1, weights in groups:
        if r1 > r0:
            np.matmul(magnitude[:, r0:r1], weights, out=out[:, b0:b1])
        else:                                          # bands that weight no bin at all
            out[:, b0:b1] = 0.0
    np.add(out, np.float32(LOG_OFFSET), out=out)
    return np.log(out, out=out)


def log_mel_spectrogram(waveform, sample_rate):
    """VGGish's log-mel spectrogram.

    Args:
      waveform: float [n_samples] or [n_samples, n_channels], in [-1, 1]; channels averaged.
      sample_rate: Hz; other rates than SAMPLE_RATE_HZ are resampled (see ``resample``).

    Returns:
      float32 [n_frames, NUM_BANDS]: log(mel_matrix applied to |STFT| + LOG_OFFSET),
      n_frames = num_frames(n_samples at 16 kHz).
    """
    return _log_filterbank_spectrogram(waveform, sample_rate, mel_matrix)


def log_gammatone_spectrogram(waveform, sample_rate):
    """Log gammatonegram: the STFT magnitudes of ``log_mel_spectrogram`` weighted by
    ``gammatone_matrix`` instead of the mel triangles.

    Args, Returns: as ``log_mel_spectrogram`` (float32 [n_frames, NUM_BANDS]).
    """
    return _log_filterbank_spectrogram(waveform, sample_rate, gammatone_matrix)


def _hann_band(bin_hz, centre, half_width):
    """A Hann-shaped band-pass response: 1 at centre, 0 beyond centre +- half_width."""
    return np.cos(np.pi / 2 * (bin_hz - centre) / half_width) ** 2


def log_cqt_spectrogram(waveform, sample_rate):
    """Log constant-Q spectrogram, frame-aligned with the STFT front ends.

    A filterbank applied to the FFT of the whole (zero-padded) track, not a frame-by-frame
    transform, because the low bands need responses far longer than a 25 ms frame:
    * band k is centred at f_k = CQT_MIN_HZ * 2^(k / 8) with response cos^2 over
      f_k +- f_k / Q, Q = CQT_Q = 11.05: 1 at f_k, 1/2 at +- f_k / 2Q, so the width at half
      height is f_k / Q, the spacing of the bands;
    * its (analytic) output is taken back to the time domain by an inverse FFT of only
      m_k * 100 Hz, m_k just enough to hold the band (bin j goes to j mod the FFT length:
      a shift in frequency, which leaves the magnitude alone);
    * the value at frame t is the RMS of that output over the 10 ms hop centred on the STFT
      frame's centre (sample 160 t + 200), scaled so that a sine of amplitude A at f_k gives
      100 A, like its peak bin in ``stft_magnitude``.
    The lowest band's response lasts ~0.4 s each way; the track is zero-padded by 0.8 s on
    both sides, so frames near its ends see that silence. Memory is linear in the track's
    length (a float32 FFT of all of it).

    Args, Returns: as ``log_mel_spectrogram`` (float32 [n_frames, NUM_BANDS]).
    """
    x = _prepare(waveform, sample_rate).astype(np.float32)
    n_out = num_frames(len(x))
    if n_out == 0:
        return np.empty((0, NUM_BANDS), np.float32)
    centres = cqt_centres_hz()
    half_widths = centres / CQT_Q
    frame_rate = SAMPLE_RATE_HZ / HOP_SAMPLES                        # 100 Hz
    # Pad by twice the lowest band's response time (1 / its half width), and so that frame
    # t's centre (160 t + 200) lands on hop number pad_hops + t.
    pad_hops = math.ceil((2.0 / half_widths[0] * SAMPLE_RATE_HZ + WINDOW_SAMPLES / 2)
                         / HOP_SAMPLES)
    pad_left = pad_hops * HOP_SAMPLES - WINDOW_SAMPLES // 2
    n_hops = scipy.fft.next_fast_len(math.ceil((pad_left + len(x)) / HOP_SAMPLES) + pad_hops,
                                     real=True)
    n_fft = n_hops * HOP_SAMPLES
    padded = np.zeros(n_fft, np.float32)
    padded[pad_left:pad_left + len(x)] = x
    spectrum = scipy.fft.rfft(padded)                                # bins every 100/n_hops Hz
    bin_hz = np.arange(len(spectrum)) * (SAMPLE_RATE_HZ / n_fft)
    scale = _cached_hann(WINDOW_SAMPLES).sum() / n_fft               # sine A -> 100 A
    out = np.empty((n_out, NUM_BANDS), np.float32)
    for k, (centre, half) in enumerate(zip(centres, half_widths)):
        lo = math.ceil((centre - half) * n_fft / SAMPLE_RATE_HZ)
        hi = math.floor((centre + half) * n_fft / SAMPLE_RATE_HZ) + 1
        # m output samples per hop: the band (2 * half wide) must fit in m * 100 Hz.
        m = scipy.fft.next_fast_len(math.floor(2 * half / frame_rate) + 1)
        length = m * n_hops
        band = np.zeros(length, np.complex64)
        # bin j goes to j mod length: a frequency shift, which leaves the magnitude alone.
        band[np.arange(lo, hi) % length] = spectrum[lo:hi] * _hann_band(bin_hz[lo:hi],
                                                                        centre, half)
        power = np.abs(scipy.fft.ifft(band, overwrite_x=True) * (length * scale)) ** 2
        first = pad_hops * m - m // 2                                # hop centred on frame 0
        hops = power[first:first + n_out * m].reshape(n_out, m)
        out[:, k] = np.sqrt(hops.mean(axis=1))
    return _log(out)


def _check_feature(feature):
    if feature not in FEATURES:
        raise ValueError(f"unknown feature {feature!r}; valid: {', '.join(FEATURES)}")
    return feature


def band_centres_hz(feature):
    """Centre frequency of each of a front end's NUM_BANDS bands, Hz [NUM_BANDS], rising."""
    centres = {"mel": mel_centres_hz, "gam": gammatone_centres_hz, "cqt": cqt_centres_hz}
    return centres[_check_feature(feature)]()


SPECTROGRAMS = {
    "mel": log_mel_spectrogram,
    "gam": log_gammatone_spectrogram,
    "cqt": log_cqt_spectrogram,
}
assert tuple(SPECTROGRAMS) == FEATURES


# ---------------------------------------------------------------- deltas and patches
def delta(spec, half_width=DELTA_HALF_WIDTH_FRAMES):
    """Time derivative by linear regression over +-half_width frames, edges replicated.

    d[t] = sum_{k=1..N} k (s[t+k] - s[t-k]) / (2 sum_{k=1..N} k^2), with s[t] = s[0] for
    t < 0 and s[t] = s[-1] past the end (HTK's formula).

    Args:
      spec: float array [n_frames, ...].
      half_width: N, frames on each side, > 0.

    Returns:
      float32 array [n_frames, ...].
    """
    if half_width <= 0:
        raise ValueError(f"delta half_width {half_width} must be > 0")
    spec = np.asarray(spec, np.float32)
    n = len(spec)
    if n == 0:
        return spec.copy()
    padded = np.concatenate([np.repeat(spec[:1], half_width, axis=0), spec,
                             np.repeat(spec[-1:], half_width, axis=0)])
    out = np.zeros_like(spec)
    for k in range(1, half_width + 1):
        out += k * (padded[half_width + k:half_width + k + n]
                    - padded[half_width - k:half_width - k + n])
    return out / np.float32(2 * sum(k * k for k in range(1, half_width + 1)))


def add_deltas(spec, half_width=DELTA_HALF_WIDTH_FRAMES):
    """Stack a spectrogram with its deltas and delta-deltas (computed over the whole track).

    Args:
      spec: float array [n_frames, n_bands].
      half_width: regression half-width of ``delta``, frames.

    Returns:
      float32 array [n_frames, 3, n_bands]: channel 0 the input, 1 delta, 2 delta-delta.
    """
    spec = np.asarray(spec, np.float32)
    if spec.ndim != 2:
        raise ValueError(f"spec must be [n_frames, n_bands], got shape {spec.shape}")
    d = delta(spec, half_width)
    return np.stack([spec, d, delta(d, half_width)], axis=1)


def spectrogram_to_patches(spec, patch_frames=PATCH_FRAMES, hop_frames=PATCH_HOP_FRAMES):
    """Cut a spectrogram into patches ("audio images"), an incomplete last patch dropped.

    Args:
      spec: array [n_frames, n_bands] or [n_frames, n_channels, n_bands].
      patch_frames: frames per patch.
      hop_frames: frames between patch starts.

    Returns:
      float32 array [n_patches, n_bands, patch_frames] (or [n_patches, n_channels, n_bands,
      patch_frames]), n_patches = num_frames(n_frames, patch_frames, hop_frames).
    """
    spec = np.asarray(spec, np.float32)
    if spec.ndim not in (2, 3):
        raise ValueError(f"spec must be [n_frames, (n_channels,) n_bands], got shape "
                         f"{spec.shape}")
    patches = frame(spec, patch_frames, hop_frames)      # [n, patch_frames, (ch,) bands]
    return np.ascontiguousarray(np.moveaxis(patches, 1, -1))


# ---------------------------------------------------------------- the step-03 entry points
def log_mel_patches(waveform, sample_rate):
    """VGGish's ``waveform_to_examples``, transposed: log-mel patches [n, 64 bands, 96 frames].

    Args:
      waveform: float [n_samples] or [n_samples, n_channels], in [-1, 1].
      sample_rate: Hz (resampled to 16 kHz if different).

    Returns:
      float32 array [n_patches, NUM_BANDS, PATCH_FRAMES]; n_patches = 0 for fewer than
      ONE_PATCH_SAMPLES samples at 16 kHz.
    """
    return spectrogram_to_patches(log_mel_spectrogram(waveform, sample_rate))


def features(waveform, sample_rate, feature=config.FEATURE, deltas=config.DELTAS):
    """A track's audio images for one front end.

    Args:
      waveform: float [n_samples] or [n_samples, n_channels], in [-1, 1].
      sample_rate: Hz.
      feature: "mel", "gam" or "cqt".
      deltas: add delta and delta-delta channels (computed over the whole track).

    Returns:
      float32 array [n_patches, 64, 96], or [n_patches, 3, 64, 96] with deltas.
    """
    spec = SPECTROGRAMS[_check_feature(feature)](waveform, sample_rate)
    return spectrogram_to_patches(add_deltas(spec) if deltas else spec)
