"""Audio front ends: a waveform -> "audio images" ``[n_patches, (channels,) bands, frames]``.

Every parameter that decides what the images hold is one frozen ``FrontEnd``, built from a
named preset (``PRESETS``) plus any keys set away from it (``front_end``); the functions
below take their parameters explicitly and bind nothing from ``config.py``. The one preset
today, ``vggish`` (the default), is VGGish's input: 16 kHz mono, 25 ms periodic-Hann frames
every 10 ms, 512-point FFT magnitudes, 64 HTK mel bands from 125 to 7500 Hz,
``log(mel + 0.01)``, patches of 96 frames (0.96 s) every 96 frames, an incomplete last patch
dropped. The ``panns`` preset is PANNs' CNN14 input (32 kHz, 1024-sample window, hop 320,
centred frames, power, 64 Slaney mel bands 50-14000 Hz, dB; 10 s patches). The ``dcase2021``
preset is the two-phase DCASE 2021 system's (Pham et al.): 32 kHz stereo, 80 ms / 14 ms,
128 bands, 10 s patches, meant with DELTAS (6 channels). A preset fixes
the sample rate, the channel policy and the patch length as well as the analysis, so step 02
(which writes the wavs) and step 03 (which analyses them) agree.

Three filterbanks share a front end's frame geometry, so their frame counts agree:

* ``mel``  VGGish's log-mel spectrogram, equal to the reference ``waveform_to_examples``
           (tensorflow/models research/audioset/vggish) to within 1e-4 under the vggish
           preset, transposed to ``[n, bands, frames]``;
* ``gam``  a "gammatonegram": ERB-spaced 4th-order gammatone magnitude responses used as
           weights over the same STFT magnitudes;
* ``cqt``  a constant-Q filterbank (bins per octave from a lowest centre), each band a
           band-pass filter applied to the whole track in the frequency domain.

The chain is ``select_channels -> resample -> log_spectrogram [n_frames, bands] ->
(add_deltas [n_frames, 3, bands]) -> spectrogram_to_patches``; ``features(waveform, rate,
fe)`` runs it, per channel when the policy keeps stereo. Everything here is numpy/scipy.
"""
import dataclasses
import functools
import hashlib
import json
import math
import numbers

import numpy as np
import scipy.fft

# ---------------------------------------------------------------- fixed design choices
GAMMATONE_ORDER = 4              # 4th order: the usual auditory-filter model
DELTA_HALF_WIDTH_FRAMES = 2      # deltas: linear regression over t-2 .. t+2
STFT_BLOCK_FRAMES = 128          # frames per FFT call: buffers stay in cache (~0.5 MB)
FILTERBANK_GROUP_BANDS = 8       # bands per matmul when applying a filterbank

# Resampling other rates to the front end's: a Kaiser-windowed sinc low-pass, 32 zero
# crossings each side, beta 10 (~100 dB stopband), cutoff 0.94 x the lower Nyquist.
# Log-mel of 44.1 kHz input is then within 2e-4 of the reference's (resampy kaiser_best) in
# the bands below 6.4 kHz, within 0.3 above; 8 kHz input leaves no images above 4 kHz
# (scipy's default filter leaves some at -50 dB, which log(mel + 0.01) makes visible).
RESAMPLE_ZERO_CROSSINGS = 32
RESAMPLE_KAISER_BETA = 10.0
RESAMPLE_ROLLOFF = 0.94

FEATURES = ("mel", "gam", "cqt")
CHANNEL_POLICIES = ("mono", "first", "stereo")   # mix down | first channel | keep two
SPECTRA = ("magnitude", "power")                 # |STFT| (VGGish) | |STFT|^2 (PANNs)
# htk: VGGish's filterbank (HTK mel 1127 ln(1 + f / 700), triangles linear in mel, DC bin 0);
# slaney: librosa's default (Slaney's Auditory Toolbox mel: linear below 1 kHz, logarithmic
# above; triangles linear in Hz), as PANNs use.
MEL_SCALES = ("htk", "slaney")
MEL_NORMS = ("none", "slaney")                   # slaney: each triangle scaled to area 1 (Hz)
LOG_SCALES = ("ln", "db")
CENTRE_PADDINGS = ("none", "reflect")


# ---------------------------------------------------------------- the parameter set
@dataclasses.dataclass(frozen=True)
class FrontEnd:
    """Every parameter that decides a track's audio images, resolved and checked.

    Build one with ``front_end(preset, feature, deltas, **overrides)``; construction checks
    the values (ValueError naming them). ``overrides`` names the fields set away from the
    preset; ``name`` (the feature folder) encodes the preset, filterbank, deltas and, when
    anything was overridden, a short digest of the values.
    """
    preset: str
    sample_rate_hz: int            # the wavs of step 02 and the analysis
    channels: str                  # CHANNEL_POLICIES
    window_seconds: float          # STFT window (periodic Hann)
    hop_seconds: float             # STFT hop = one frame
    fft_length: int                # >= the window in samples
    num_bands: int
    band_min_hz: float             # mel: lower edge of band 1; gam: centre of band 1
    band_max_hz: float             # mel: upper edge of the last band; gam: its centre
    log_offset: float              # log(x + log_offset)
    patch_frames: int              # frames per patch
    patch_hop_frames: int          # frames between patch starts
    cqt_min_hz: float              # cqt: centre of the lowest band
    cqt_bins_per_octave: int
    feature: str = "mel"           # FEATURES
    deltas: bool = False           # delta and delta-delta channels
    overrides: tuple = ()          # sorted field names set away from the preset
    # Added for the panns preset; the defaults are VGGish's analysis, so records written
    # before these fields existed read back unchanged (from_dict).
    spectrum: str = "magnitude"    # SPECTRA: |STFT| or |STFT|^2 under the filterbank
    mel_scale: str = "htk"         # MEL_SCALES (mel only)
    mel_norm: str = "none"         # MEL_NORMS (mel only)
    log_scale: str = "ln"          # LOG_SCALES: ln(x + log_offset) | 10 log10(max(x, log_floor))
    log_floor: float = 1e-10       # db: the power floor (librosa's amin)
    centre_padding: str = "none"   # CENTRE_PADDINGS: frames start at sample 0 | centred on
                                   # hop t, the track reflect-padded by fft_length // 2
    # cqt: the bands' length as librosa's filter_scale (band k is as wide as a Hann window
    # of filter_scale x Q / f_k seconds). The presets take librosa's default, 1; records
    # written before this field existed read back as 2 (bands half as wide), which the
    # presets then refuse as another front end.
    cqt_filter_scale: float = 2.0

    def __post_init__(self):
        def bad(msg):
            raise ValueError(f"front end {self.preset!r}: {msg}")
        if self.feature not in FEATURES:
            bad(f"feature {self.feature!r} is not one of {FEATURES}")
        if self.channels not in CHANNEL_POLICIES:
            bad(f"channels {self.channels!r} is not one of {CHANNEL_POLICIES}")
        for key in ("sample_rate_hz", "fft_length", "num_bands", "patch_frames",
                    "patch_hop_frames", "cqt_bins_per_octave"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                bad(f"{key} must be a whole number > 0, got {value!r}")
        for key in ("window_seconds", "hop_seconds"):
            samples = getattr(self, key) * self.sample_rate_hz
            if not samples > 0 or not math.isclose(samples, round(samples), abs_tol=1e-6):
                bad(f"{key} {getattr(self, key)} is not a whole number of samples at "
                    f"{self.sample_rate_hz} Hz ({samples:g})")
        if self.fft_length < self.window_samples:
            bad(f"fft_length {self.fft_length} is shorter than the window "
                f"({self.window_samples} samples)")
        nyquist = self.sample_rate_hz / 2
        if not 0.0 <= self.band_min_hz < self.band_max_hz <= nyquist:
            bad(f"need 0 <= band_min_hz < band_max_hz <= Nyquist, got {self.band_min_hz}, "
                f"{self.band_max_hz}, Nyquist {nyquist}")
        if not self.log_offset > 0:
            bad(f"log_offset must be > 0, got {self.log_offset}")
        if not self.log_floor > 0:
            bad(f"log_floor must be > 0, got {self.log_floor}")
        for key, allowed in (("spectrum", SPECTRA), ("mel_scale", MEL_SCALES),
                             ("mel_norm", MEL_NORMS), ("log_scale", LOG_SCALES),
                             ("centre_padding", CENTRE_PADDINGS)):
            if getattr(self, key) not in allowed:
                bad(f"{key} {getattr(self, key)!r} is not one of {allowed}")
        if self.feature == "cqt" and (self.centre_padding != "none" or self.spectrum != "magnitude"):
            bad("the cqt filterbank takes centre_padding 'none' and spectrum 'magnitude' (it "
                "is not computed from STFT frames)")
        if not self.cqt_filter_scale > 0:
            bad(f"cqt_filter_scale {self.cqt_filter_scale!r} must be > 0")
        if self.feature == "cqt":
            top = cqt_centres_hz(self.num_bands, self.cqt_min_hz, self.cqt_bins_per_octave)[-1]
            if not self.cqt_min_hz > 0 or top + cqt_half_widths_hz(self)[-1] >= nyquist:
                bad(f"the top constant-Q band (centre {top:.0f} Hz, {self.num_bands} bands "
                    f"at {self.cqt_bins_per_octave}/octave from {self.cqt_min_hz} Hz) must "
                    f"end below Nyquist ({nyquist:g} Hz)")

    # ---- derived values
    @property
    def window_samples(self):
        return round(self.window_seconds * self.sample_rate_hz)

    @property
    def hop_samples(self):
        return round(self.hop_seconds * self.sample_rate_hz)

    def n_frames(self, n_samples):
        """STFT frames of a track of n_samples at this front end's rate: whole windows from
        sample 0 (vggish), or 1 + n_samples // hop with centre padding (panns: 10 s -> 1001)."""
        if self.centre_padding != "none":
            return 1 + n_samples // self.hop_samples if n_samples > 0 else 0
        return num_frames(n_samples, self.window_samples, self.hop_samples)

    @property
    def one_patch_samples(self):
        """The fewest samples that make exactly one patch (vggish: 400 + 95 x 160 = 15600;
        panns, centred frames: 1000 x 320 = 320000, 10 s)."""
        if self.centre_padding != "none":
            return max(1, (self.patch_frames - 1) * self.hop_samples)
        return self.window_samples + (self.patch_frames - 1) * self.hop_samples

    @property
    def n_audio_channels(self):
        return 2 if self.channels == "stereo" else 1

    @property
    def patch_shape(self):
        """Shape of one patch on disk: (bands, frames), or (channels, bands, frames) when
        there is more than one image channel (deltas and/or stereo)."""
        c = self.n_audio_channels * (3 if self.deltas else 1)
        return ((c,) if c > 1 else ()) + (self.num_bands, self.patch_frames)

    @property
    def in_channels(self):
        """Image channels a model sees: 1, 3 (deltas), 2 (stereo) or 6 (both)."""
        return self.patch_shape[0] if len(self.patch_shape) == 3 else 1

    @property
    def audio_folder(self):
        """Step 02's folder for this front end's wavs, e.g. '16000hz_mono'."""
        return f"{self.sample_rate_hz}hz_{self.channels}"

    @property
    def name(self):
        """Step 03's folder, e.g. 'vggish_mel', 'vggish_mel_deltas', 'vggish_mel_a1b2c3d4'."""
        base = f"{self.preset}_{self.feature}" + ("_deltas" if self.deltas else "")
        if not self.overrides:
            return base
        values = json.dumps({k: getattr(self, k) for k in self.overrides}, sort_keys=True)
        return f"{base}_{hashlib.sha1(values.encode()).hexdigest()[:8]}"

    def to_dict(self):
        """Every field (JSON-ready), plus the derived sample counts and folder names."""
        d = dataclasses.asdict(self)
        d["overrides"] = list(self.overrides)
        d.update(name=self.name, audio_folder=self.audio_folder,
                 window_samples=self.window_samples, hop_samples=self.hop_samples,
                 patch_shape=list(self.patch_shape))
        return d

    @classmethod
    def from_dict(cls, d, where="front end"):
        """The inverse of to_dict; derived entries are recomputed and must agree."""
        fields = dataclasses.fields(cls)
        names = [f.name for f in fields]
        # fields with a default (feature, deltas, overrides, and those added later) may be
        # absent from older records: the default is what computed those arrays
        missing = [f.name for f in fields if f.name not in d
                   and f.default is dataclasses.MISSING]
        if missing:
            raise ValueError(f"{where}: no {', '.join(missing)} (not a front-end record)")
        values = {k: (tuple(d[k]) if k == "overrides" else d[k]) for k in names if k in d}
        if "cqt_filter_scale" not in d and d.get("feature", "mel") != "cqt":
            # no cqt computed these arrays: any scale is true of them; take the preset's
            preset = PRESETS.get(d.get("preset"), {})
            values["cqt_filter_scale"] = preset.get("cqt_filter_scale", 2.0)
        fe = cls(**values)
        derived = fe.to_dict()
        for k in ("name", "audio_folder", "window_samples", "hop_samples", "patch_shape"):
            if k in d and d[k] != derived[k]:
                raise ValueError(f"{where}: {k} is {d[k]!r} but its fields give "
                                 f"{derived[k]!r}")
        return fe


_VGGISH = dict(sample_rate_hz=16000, channels="mono", window_seconds=0.025, hop_seconds=0.010,
               fft_length=512, num_bands=64, band_min_hz=125.0, band_max_hz=7500.0,
               log_offset=0.01, patch_frames=96, patch_hop_frames=96,
               cqt_min_hz=27.5, cqt_bins_per_octave=8, cqt_filter_scale=1.0)
# 64 cqt bands at 8 per octave from 27.5 Hz (A0) reach 6.34 kHz (top edge 7.5 kHz).

# PANNs (Kong et al. 2020; torchlibrosa's Spectrogram + LogmelFilterBank as CNN14 builds
# them): 32 kHz mono, 1024-sample periodic Hann window every 320 samples (10 ms), frames
# centred (reflect padding), power spectrum, 64 Slaney mel bands 50-14000 Hz with Slaney area
# norm, 10 log10(max(x, 1e-10)). A patch is 10 s, the clips PANNs were trained on: 1001
# frames (a 10 s track gives exactly CNN14's input), the next one 1000 frames (10 s) later.
_PANNS = dict(_VGGISH, sample_rate_hz=32000, window_seconds=0.032, hop_seconds=0.010,
              fft_length=1024, num_bands=64, band_min_hz=50.0, band_max_hz=14000.0,
              patch_frames=1001, patch_hop_frames=1000, spectrum="power", mel_scale="slaney",
              mel_norm="slaney", log_scale="db", log_floor=1e-10, centre_padding="reflect")

# The two-phase DCASE 2021 system (Pham et al., seeds/003): 32 kHz, two channels kept (a mono
# track is duplicated by step 02 and noted "mono" by step 03), 128 bands, 80 ms window
# (2560 samples), 14 ms hop (448), a 4096-point FFT (the power of two >= the window); MEL,
# GAM and CQT, each with DELTAS (2 channels x static/delta/delta-delta = 6: the recipes set
# DELTAS true). A patch is the paper's 10 s segment: 709 frames, the most whole windows in
# 10 s (2560 + 708 x 448 = 319744 samples, 9.992 s); a shorter track is zero-padded to one
# patch (SHORT_TRACK_POLICY) and noted. The paper gives no band edges: mel and gammatone span
# 50-14000 Hz (PANNs' range), magnitude and log(x + 0.01) as VGGish (the cqt takes magnitudes).
# CQT: 128 bins at 15 per octave from 40 Hz: centres 40 Hz .. 14.15 kHz, the top band's upper
# edge 15.5 kHz < 16 kHz Nyquist (16 per octave from 32.7 Hz would stop at 8 kHz).
_DCASE2021 = dict(_VGGISH, sample_rate_hz=32000, channels="stereo", window_seconds=0.080,
                  hop_seconds=0.014, fft_length=4096, num_bands=128, band_min_hz=50.0,
                  band_max_hz=14000.0, patch_frames=709, patch_hop_frames=709,
                  cqt_min_hz=40.0, cqt_bins_per_octave=15)

PRESETS = {"vggish": _VGGISH, "panns": _PANNS, "dcase2021": _DCASE2021}
"""Preset name -> FrontEnd fields but preset, feature, deltas and overrides (a field left out
takes the FrontEnd default). Another preset is one more entry (tests add their own)."""

# config.py key -> FrontEnd field, with the type a set value must have. None in config.py
# means "the preset's value"; a set key overrides it and is recorded.
OVERRIDE_KEYS = {
    "SAMPLE_RATE_HZ": ("sample_rate_hz", int),
    "AUDIO_CHANNELS": ("channels", str),
    "STFT_WINDOW_SECONDS": ("window_seconds", float),
    "STFT_HOP_SECONDS": ("hop_seconds", float),
    "FFT_LENGTH": ("fft_length", int),
    "NUM_BANDS": ("num_bands", int),
    "BAND_MIN_HZ": ("band_min_hz", float),
    "BAND_MAX_HZ": ("band_max_hz", float),
    "LOG_OFFSET": ("log_offset", float),
    "PATCH_FRAMES": ("patch_frames", int),
    "PATCH_HOP_FRAMES": ("patch_hop_frames", int),
    "CQT_MIN_HZ": ("cqt_min_hz", float),
    "CQT_BINS_PER_OCTAVE": ("cqt_bins_per_octave", int),
    "CQT_FILTER_SCALE": ("cqt_filter_scale", float),
    "SPECTRUM": ("spectrum", str),
    "MEL_SCALE": ("mel_scale", str),
    "MEL_NORM": ("mel_norm", str),
    "LOG_SCALE": ("log_scale", str),
    "LOG_FLOOR": ("log_floor", float),
    "CENTRE_PADDING": ("centre_padding", str),
}


def front_end(preset="vggish", feature="mel", deltas=False, **overrides):
    """A checked FrontEnd: the preset's values, with `overrides` (FrontEnd field names) set.

    An override equal to the preset's value is not recorded as one (same arrays, same name).
    Raises ValueError for an unknown preset or field, or values that do not make a front end.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown front-end preset {preset!r}; choose one of: "
                         f"{', '.join(sorted(PRESETS))}")
    defaults = {f.name: f.default for f in dataclasses.fields(FrontEnd)
                if f.default is not dataclasses.MISSING
                and f.name not in ("feature", "deltas", "overrides")}
    values = {**defaults, **PRESETS[preset]}
    unknown = sorted(set(overrides) - set(values))
    if unknown:
        raise ValueError(f"unknown front-end field(s) {unknown}; fields: {sorted(values)}")
    changed = {k: v for k, v in overrides.items() if v is not None and v != values[k]}
    values.update(changed)
    if isinstance(values["sample_rate_hz"], float) and values["sample_rate_hz"].is_integer():
        values["sample_rate_hz"] = int(values["sample_rate_hz"])
    return FrontEnd(preset=preset, feature=feature, deltas=bool(deltas),
                    overrides=tuple(sorted(changed)), **values)


def front_end_from_settings(cfg):
    """The FrontEnd of resolved settings (cli.Settings: front_end, feature, deltas and the
    OVERRIDE_KEYS, None = the preset's value)."""
    return front_end(cfg["front_end"], cfg["feature"], cfg["deltas"],
                     **{field: cfg[key.lower()] for key, (field, _) in OVERRIDE_KEYS.items()})


def describe_difference(a, b, where_a, where_b):
    """'' when two FrontEnds are the same, else one line naming each differing field with
    both values and both sources."""
    da, db = a.to_dict(), b.to_dict()
    diff = [f"{k}: {da[k]!r} in {where_a} but {db[k]!r} in {where_b}"
            for k in da if k not in ("name", "overrides", "patch_shape") and da[k] != db[k]]
    return "; ".join(diff)


# ---------------------------------------------------------------- input
def _as_samples(waveform):
    """Check a waveform: float [n_samples] or [n_samples, n_channels], finite."""
    x = np.asarray(waveform)
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"waveform must hold floats in [-1, 1], got dtype {x.dtype}")
    # More channels than samples: most likely [n_channels, n_samples], which would silently
    # give no frames.
    if x.ndim not in (1, 2) or (x.ndim == 2 and (x.shape[1] == 0 or 0 < x.shape[0] < x.shape[1])):
        raise ValueError(f"waveform must be [n_samples] or [n_samples, n_channels], "
                         f"got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("waveform holds NaN or infinite samples")
    return x


def select_channels(waveform, policy):
    """Apply a channel policy.

    Args:
      waveform: float [n_samples] or [n_samples, n_channels], samples in [-1, 1].
      policy: "mono" (average the channels), "first" (channel 0), "stereo" (two channels:
        a mono input is duplicated; more than two is an error: downmix with ffmpeg first).

    Returns:
      float [n_samples] for mono / first, [n_samples, 2] for stereo.
    """
    x = _as_samples(waveform)
    if policy == "mono":
        return to_mono(x)
    if policy == "first":
        return x if x.ndim == 1 else x[:, 0]
    if policy == "stereo":
        if x.ndim == 1 or x.shape[1] == 1:
            x = x.reshape(-1, 1)
            return np.concatenate([x, x], axis=1)
        if x.shape[1] != 2:
            raise ValueError(f"channel policy 'stereo' takes 1 or 2 channels, got "
                             f"{x.shape[1]} (step 02 downmixes with ffmpeg -ac 2)")
        return x
    raise ValueError(f"unknown channel policy {policy!r}; choose one of {CHANNEL_POLICIES}")


def to_mono(waveform):
    """Average the channels of a multi-channel waveform.

    Args:
      waveform: float array [n_samples] or [n_samples, n_channels], samples in [-1, 1].

    Returns:
      float array [n_samples] (the input itself when already mono).

    Raises:
      ValueError: other shapes, integer samples, non-finite samples.
    """
    x = _as_samples(waveform)
    return x.mean(axis=1) if x.ndim == 2 else x


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


def resample(waveform, sample_rate, target_rate):
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


def _prepare(waveform, sample_rate, fe):
    """One channel [n_samples] (float) -> float [n_samples'] at the front end's rate."""
    return resample(to_mono(waveform), sample_rate, fe.sample_rate_hz)


# ---------------------------------------------------------------- STFT
def num_frames(n_samples, window_length, hop_length):
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


def stft_magnitude(waveform, window_length, hop_length, fft_length, bins=None):
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
def mel_matrix(num_bands, fft_length, sample_rate, min_hz, max_hz, scale="htk", norm="none"):
    """A mel filterbank: spectrogram rows @ matrix -> mel bands.

    scale "htk" is VGGish's: triangles with peak 1, linear in HTK mel over the FFT bin
    frequencies, band edges evenly spaced in mel from min_hz to max_hz, the DC bin weight 0
    (as in HTK). scale "slaney" is librosa's default (PANNs'): band edges evenly spaced on
    Slaney's mel scale, triangles linear in Hz between them. norm "slaney" scales each
    triangle by 2 / (its upper edge - its lower edge) in Hz (area normalisation); "none"
    leaves peaks at 1. Cached; the array is read-only.

    Args:
      num_bands: mel bands.
      fft_length: FFT size; the spectrogram has fft_length // 2 + 1 bins from 0 to Nyquist.
      sample_rate: Hz.
      min_hz, max_hz: lower edge of the first band, upper edge of the last, Hz.
      scale: "htk" | "slaney" (MEL_SCALES).
      norm: "none" | "slaney" (MEL_NORMS).

    Returns:
      float32 array [fft_length // 2 + 1, num_bands].
    """
    _check_band_edges(min_hz, max_hz, sample_rate)
    if scale not in MEL_SCALES or norm not in MEL_NORMS:
        raise ValueError(f"mel scale {scale!r} / norm {norm!r}: choose from {MEL_SCALES} / "
                         f"{MEL_NORMS}")
    if scale == "slaney":
        weights = _slaney_triangles(num_bands, fft_length, sample_rate, min_hz, max_hz)
    else:
        weights = _htk_triangles(num_bands, fft_length, sample_rate, min_hz, max_hz)
    if norm == "slaney":
        edges = _mel_edges_hz(num_bands, min_hz, max_hz, scale)
        weights = weights * (2.0 / (edges[2:] - edges[:-2]))
    return _frozen(weights)


# Slaney's mel scale (Auditory Toolbox; librosa's htk=False): linear, 3 bands per 200 Hz,
# below 1 kHz; logarithmic above, 27 bands per factor 6.4.
_SLANEY_HZ_PER_MEL = 200.0 / 3
_SLANEY_LOG_HZ = 1000.0
_SLANEY_LOG_STEP = math.log(6.4) / 27.0


def _hz_to_slaney_mel(hz):
    hz = np.asarray(hz, np.float64)
    linear = hz / _SLANEY_HZ_PER_MEL
    above = (_SLANEY_LOG_HZ / _SLANEY_HZ_PER_MEL
             + np.log(np.maximum(hz, _SLANEY_LOG_HZ) / _SLANEY_LOG_HZ) / _SLANEY_LOG_STEP)
    return np.where(hz >= _SLANEY_LOG_HZ, above, linear)


def _slaney_mel_to_hz(mel):
    mel = np.asarray(mel, np.float64)
    log_mel = _SLANEY_LOG_HZ / _SLANEY_HZ_PER_MEL
    above = _SLANEY_LOG_HZ * np.exp(_SLANEY_LOG_STEP * (np.maximum(mel, log_mel) - log_mel))
    return np.where(mel >= log_mel, above, mel * _SLANEY_HZ_PER_MEL)


def _mel_edges_hz(num_bands, min_hz, max_hz, scale):
    """The num_bands + 2 band edges, evenly spaced on the mel scale `scale`, Hz."""
    if scale == "slaney":
        return _slaney_mel_to_hz(np.linspace(_hz_to_slaney_mel(min_hz),
                                             _hz_to_slaney_mel(max_hz), num_bands + 2))
    return mel_to_hz(np.linspace(hz_to_mel(min_hz), hz_to_mel(max_hz), num_bands + 2))


def _slaney_triangles(num_bands, fft_length, sample_rate, min_hz, max_hz):
    """Peak-1 triangles linear in Hz between Slaney-mel-spaced edges [bins, bands] (float64)."""
    bin_hz = np.arange(fft_length // 2 + 1)[:, None] * (sample_rate / fft_length)
    edges = _mel_edges_hz(num_bands, min_hz, max_hz, "slaney")
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bin_hz - lower) / (centre - lower)
    falling = (upper - bin_hz) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling))


def _htk_triangles(num_bands, fft_length, sample_rate, min_hz, max_hz):
    """VGGish's peak-1 triangles linear in HTK mel, DC weight 0 [bins, bands] (float64)."""
    bin_mel = hz_to_mel(_fft_bin_hz(fft_length, sample_rate))[:, None]
    edges = np.linspace(hz_to_mel(min_hz), hz_to_mel(max_hz), num_bands + 2)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bin_mel - lower) / (centre - lower)
    falling = (upper - bin_mel) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights[0] = 0.0
    return weights


def mel_to_hz(mel):
    """Inverse of hz_to_mel."""
    return 700.0 * np.expm1(np.asarray(mel, np.float64) / 1127.0)


def mel_centres_hz(num_bands, min_hz, max_hz, scale="htk"):
    """Centre frequencies of ``mel_matrix``'s bands (where each triangle peaks), Hz [num_bands]."""
    return _mel_edges_hz(num_bands, min_hz, max_hz, scale)[1:-1]


def hz_to_erb_rate(hz):
    """Glasberg & Moore (1990) ERB-rate scale: 21.4 log10(1 + 0.00437 hz)."""
    return 21.4 * np.log10(1.0 + 0.00437 * np.asarray(hz, np.float64))


def erb_rate_to_hz(erb_rate):
    """Inverse of hz_to_erb_rate."""
    return (10.0 ** (np.asarray(erb_rate, np.float64) / 21.4) - 1.0) / 0.00437


def gammatone_centres_hz(num_bands, min_hz, max_hz):
    """Centre frequencies evenly spaced on the ERB-rate scale, min_hz to max_hz, Hz [num_bands]."""
    return erb_rate_to_hz(np.linspace(hz_to_erb_rate(min_hz), hz_to_erb_rate(max_hz),
                                      num_bands))


@functools.lru_cache(maxsize=16)
def gammatone_matrix(num_bands, fft_length, sample_rate, min_hz, max_hz,
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


def cqt_q(bins_per_octave):
    """Q of the constant-Q bands: centre / band spacing (8 per octave: 11.05)."""
    return 1.0 / (2.0 ** (1.0 / bins_per_octave) - 1.0)


def cqt_half_widths_hz(fe):
    """Each constant-Q band's half width, Hz [num_bands]: its response is cos^2 over
    f_k +- 2 f_k / (Q filter_scale), the main lobe of the Hann window of filter_scale x Q /
    f_k seconds that librosa.cqt uses for the band (filter_scale 1: half height at
    +- f_k / Q, one band spacing)."""
    centres = cqt_centres_hz(fe.num_bands, fe.cqt_min_hz, fe.cqt_bins_per_octave)
    return 2.0 * centres / (cqt_q(fe.cqt_bins_per_octave) * fe.cqt_filter_scale)


def cqt_centres_hz(num_bands, min_hz, bins_per_octave):
    """Centre frequencies of the constant-Q bands: min_hz * 2^(k / bins_per_octave).

    Returns:
      float64 array [num_bands], Hz.
    """
    if min_hz <= 0 or bins_per_octave <= 0:
        raise ValueError(f"min_hz {min_hz} and bins_per_octave {bins_per_octave} "
                         f"must be > 0")
    return min_hz * 2.0 ** (np.arange(num_bands) / bins_per_octave)


# ---------------------------------------------------------------- spectrograms [n_frames, bands]
def filterbank_matrix(fe):
    """The front end's weights over FFT bins, float32 [fft_length // 2 + 1, num_bands]
    (mel or gam; cqt has no such matrix)."""
    args = (fe.num_bands, fe.fft_length, fe.sample_rate_hz, fe.band_min_hz, fe.band_max_hz)
    if fe.feature == "mel":
        return mel_matrix(*args, fe.mel_scale, fe.mel_norm)
    if fe.feature == "gam":
        return gammatone_matrix(*args)
    raise ValueError(f"feature {fe.feature!r} has no filterbank matrix over FFT bins")


@functools.lru_cache(maxsize=16)
def _filterbank_plan(fe):
    """How to apply ``filterbank_matrix(fe)`` fast: the FFT bins it uses (first, stop) and,
    per FILTERBANK_GROUP_BANDS bands, (first band, stop band, first bin, stop bin, weights)
    with the bins relative to `first`. Mel bands each weight a few neighbouring bins, so the
    groups' small products do ~1/7 of a dense matmul's work."""
    weights = filterbank_matrix(fe)
    used = np.flatnonzero(weights.any(axis=1))        # vggish mel: bins 5..239; skip the rest
    first, stop = int(used[0]), int(used[-1]) + 1
    groups = []
    for b0 in range(0, weights.shape[1], FILTERBANK_GROUP_BANDS):
        cols = weights[:, b0:b0 + FILTERBANK_GROUP_BANDS]
        rows = np.flatnonzero(cols.any(axis=1))
        r0, r1 = (int(rows[0]), int(rows[-1]) + 1) if rows.size else (first, first)
        groups.append((b0, b0 + cols.shape[1], r0 - first, r1 - first,
                       _frozen(np.ascontiguousarray(cols[r0:r1]))))
    return first, stop, tuple(groups)


def centre_pad(waveform, window_length, hop_length, fft_length, mode="reflect"):
    """Pad a track so that ``frame`` cuts frames centred on samples 0, hop, 2 hop, ...

    As librosa's ``stft(center=True)`` (and torchlibrosa's, which PANNs use): the track is
    padded by fft_length // 2 on each side (``mode``: numpy's reflect, which also serves
    tracks shorter than the padding), each FFT frame holds the window centred in its
    fft_length samples.

    Args:
      waveform: float [n_samples].
      window_length, hop_length, fft_length: samples.

    Returns:
      float array from which ``frame(x, window_length, hop_length)`` gives exactly
      1 + n_samples // hop_length frames (0 for an empty track).
    """
    x = np.asarray(waveform)
    if len(x) == 0:
        return x
    n = 1 + len(x) // hop_length
    padded = np.pad(x, fft_length // 2, mode=mode)
    offset = (fft_length - window_length) // 2        # the window's start within its frame
    return padded[offset:offset + (n - 1) * hop_length + window_length]


def _log_filterbank_spectrogram(waveform, sample_rate, fe):
    """log(|STFT|^p @ filterbank_matrix(fe)) -> float32 [n_frames, num_bands]: p = 1
    (magnitude) or 2 (power); ln(x + log_offset) or 10 log10(max(x, log_floor))."""
    first, stop, groups = _filterbank_plan(fe)
    x = _prepare(waveform, sample_rate, fe)
    if fe.centre_padding != "none":
        x = centre_pad(x, fe.window_samples, fe.hop_samples, fe.fft_length, fe.centre_padding)
    spectrum = stft_magnitude(x, fe.window_samples, fe.hop_samples, fe.fft_length,
                              bins=(first, stop))
    if fe.spectrum == "power":
        np.square(spectrum, out=spectrum)
    out = np.empty((len(spectrum), groups[-1][1]), np.float32)
    for b0, b1, r0, r1, weights in groups:
        if r1 > r0:
            np.matmul(spectrum[:, r0:r1], weights, out=out[:, b0:b1])
        else:                                          # bands that weight no bin at all
            out[:, b0:b1] = 0.0
    if fe.log_scale == "db":
        np.maximum(out, np.float32(fe.log_floor), out=out)
        np.log10(out, out=out)
        return np.multiply(out, np.float32(10.0), out=out)
    np.add(out, np.float32(fe.log_offset), out=out)
    return np.log(out, out=out)


def _hann_band(bin_hz, centre, half_width):
    """A Hann-shaped band-pass response: 1 at centre, 0 beyond centre +- half_width."""
    return np.cos(np.pi / 2 * (bin_hz - centre) / half_width) ** 2


def _log_cqt_spectrogram(waveform, sample_rate, fe):
    """Log constant-Q spectrogram, frame-aligned with the STFT front ends.

    A filterbank applied to the FFT of the whole (zero-padded) track, not a frame-by-frame
    transform, because the low bands need responses far longer than one STFT window:
    * band k is centred at f_k = cqt_min_hz * 2^(k / bins_per_octave) with response cos^2
      over f_k +- h_k (``cqt_half_widths_hz``: h_k = 2 f_k / Q at cqt_filter_scale 1,
      Q = cqt_q(bins_per_octave), 11.05 at 8 per octave): 1 at f_k, 1/2 at +- h_k / 2,
      the main lobe of librosa.cqt's band of the same filter_scale (tests/
      test_frontend_references.py holds the agreement);
    * its (analytic) output is taken back to the time domain by an inverse FFT of only
      m_k x the frame rate, m_k just enough to hold the band (bin j goes to j mod the FFT
      length: a shift in frequency, which leaves the magnitude alone);
    * the value at frame t is the RMS of that output over the hop centred on the STFT
      frame's centre (sample hop t + window / 2), scaled so that a sine of amplitude A at
      f_k gives A x window / 2, like its peak bin in ``stft_magnitude``.
    The lowest band's response lasts ~1 / h_0 each way (0.2 s at 27.5 Hz); the track is
    zero-padded by twice that on both sides, so frames near its ends see that silence.
    Memory is linear in the track's length (a float32 FFT of all of it).
    """
    rate, hop, window = fe.sample_rate_hz, fe.hop_samples, fe.window_samples
    x = _prepare(waveform, sample_rate, fe).astype(np.float32)
    n_out = num_frames(len(x), window, hop)
    if n_out == 0:
        return np.empty((0, fe.num_bands), np.float32)
    centres = cqt_centres_hz(fe.num_bands, fe.cqt_min_hz, fe.cqt_bins_per_octave)
    half_widths = cqt_half_widths_hz(fe)
    frame_rate = rate / hop                                          # vggish: 100 Hz
    # Pad by twice the lowest band's response time (1 / its half width), and so that frame
    # t's centre (hop t + window / 2) lands on hop number pad_hops + t.
    pad_hops = math.ceil((2.0 / half_widths[0] * rate + window / 2) / hop)
    pad_left = pad_hops * hop - window // 2
    n_hops = scipy.fft.next_fast_len(math.ceil((pad_left + len(x)) / hop) + pad_hops,
                                     real=True)
    n_fft = n_hops * hop
    padded = np.zeros(n_fft, np.float32)
    padded[pad_left:pad_left + len(x)] = x
    spectrum = scipy.fft.rfft(padded)                         # bins every frame_rate/n_hops Hz
    bin_hz = np.arange(len(spectrum)) * (rate / n_fft)
    scale = _cached_hann(window).sum() / n_fft                       # sine A -> A window / 2
    out = np.empty((n_out, fe.num_bands), np.float32)
    for k, (centre, half) in enumerate(zip(centres, half_widths)):
        lo = math.ceil((centre - half) * n_fft / rate)
        hi = math.floor((centre + half) * n_fft / rate) + 1
        # m output samples per hop: the band (2 * half wide) must fit in m * frame_rate.
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
    return np.log(out + np.float32(fe.log_offset), dtype=np.float32)


def log_spectrogram(waveform, sample_rate, fe):
    """One channel's log spectrogram under front end `fe` (its filterbank, bands, frames).

    Args:
      waveform: float [n_samples] (or [n_samples, n_channels], averaged), in [-1, 1].
      sample_rate: Hz; another rate than fe.sample_rate_hz is resampled (see ``resample``).
      fe: FrontEnd.

    Returns:
      float32 [n_frames, fe.num_bands], n_frames = fe.n_frames(n_samples at fe's rate):
      log(filterbank(|STFT|) + fe.log_offset) for mel and gam (equal to VGGish's log-mel
      under the vggish preset), 10 log10(max(filterbank(|STFT|^2), fe.log_floor)) under the
      panns preset (equal to PANNs' torchlibrosa log-mel), the constant-Q bands for cqt
      (frame-aligned with the STFT).
    """
    if fe.feature == "cqt":
        return _log_cqt_spectrogram(waveform, sample_rate, fe)
    return _log_filterbank_spectrogram(waveform, sample_rate, fe)


def band_centres_hz(fe):
    """Centre frequency of each of a front end's bands, Hz [fe.num_bands], rising."""
    if fe.feature == "mel":
        return mel_centres_hz(fe.num_bands, fe.band_min_hz, fe.band_max_hz, fe.mel_scale)
    if fe.feature == "gam":
        return gammatone_centres_hz(fe.num_bands, fe.band_min_hz, fe.band_max_hz)
    return cqt_centres_hz(fe.num_bands, fe.cqt_min_hz, fe.cqt_bins_per_octave)


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


def spectrogram_to_patches(spec, patch_frames, hop_frames):
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
def features(waveform, sample_rate, fe):
    """A track's audio images under front end `fe`.

    Args:
      waveform: float [n_samples] or [n_samples, n_channels], in [-1, 1]; channels follow
        fe.channels (mono: averaged; first: channel 0; stereo: each analysed alone).
      sample_rate: Hz (resampled to fe.sample_rate_hz if different).
      fe: FrontEnd.

    Returns:
      float32 [n_patches, *fe.patch_shape]: [n, bands, frames], or [n, C, bands, frames]
      with C = 3 (deltas: static, delta, delta-delta), 2 (stereo: left, right) or 6 (both:
      left static/delta/delta-delta, then right). Deltas are computed over the whole track.
      n_patches = 0 for fewer than fe.one_patch_samples samples at fe's rate.
    """
    x = select_channels(waveform, fe.channels)
    channels = [x] if x.ndim == 1 else [x[:, c] for c in range(x.shape[1])]
    specs = []
    for wave in channels:
        spec = log_spectrogram(wave, sample_rate, fe)               # [frames, bands]
        specs.append(add_deltas(spec) if fe.deltas else spec[:, None])
    spec = np.concatenate(specs, axis=1)                            # [frames, C, bands]
    if spec.shape[1] == 1:
        spec = spec[:, 0]
    return spectrogram_to_patches(spec, fe.patch_frames, fe.patch_hop_frames)


def log_mel_patches(waveform, sample_rate):
    """VGGish's ``waveform_to_examples``, transposed: ``features`` under the vggish preset.

    Returns:
      float32 [n_patches, 64 bands, 96 frames]; n_patches = 0 for fewer than 15600 samples
      at 16 kHz.
    """
    return features(waveform, sample_rate, VGGISH)


def pad_short_track(samples, sample_rate, fe, policy):
    """The short-track policy, its one implementation (step 03, predict).

    A track too short for one patch is zero-padded to exactly one ("pad") or given up
    ("drop"); longer tracks pass unchanged.

    Args:
      samples: float [n_samples] or [n_samples, n_channels] at `sample_rate`.
      fe: FrontEnd (its one_patch_samples, at its own rate).
      policy: "pad" or "drop".

    Returns:
      (samples, reason): the samples unchanged and "" for a long enough track; padded
      samples and a one-line reason for a padded one; None and the reason when dropped.
    """
    if policy not in ("pad", "drop"):
        raise ValueError(f"short-track policy must be 'pad' or 'drop', got {policy!r}")
    one_patch = int(math.ceil(fe.one_patch_samples * sample_rate / fe.sample_rate_hz))
    if len(samples) >= one_patch:
        return samples, ""
    seconds = len(samples) / sample_rate
    if policy == "drop":
        return None, f"{seconds:.2f} s of audio, shorter than one patch (policy: drop)"
    padded = np.pad(samples, [(0, one_patch - len(samples))] + [(0, 0)] * (np.ndim(samples) - 1))
    return padded, f"{seconds:.2f} s of audio, zero-padded to one patch"


VGGISH = front_end("vggish")
"""VGGish's log-mel front end: the default preset, and what ``log_mel_patches`` computes."""
