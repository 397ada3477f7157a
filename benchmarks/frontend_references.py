"""The two-phase front ends (the dcase2021 preset's gam and cqt) against independent references.

  cqt  against librosa.cqt with the preset's lowest frequency, bins per octave and hop,
       librosa's default filter_scale 1 and scale=False (each band's output divided by its
       filter length N_k: librosa's unscaled bands grow with N_k; ours give a sine of
       amplitude A as A x window / 2 in every band);
  gam  against the `gammatone` package (Slaney's ERB filterbank, Patterson-Holdsworth
       4th-order IIR filters) with the same centre frequencies: (a) the filters' magnitude
       responses (an impulse through them, FFT) against our weights over FFT bins, (b) the
       filtered signal's RMS over each of our frames against our gammatone spectrogram.

Signals: a log chirp 50 Hz-12 kHz and real ESC-10 clips (../shared/data/esc10, when there).
Each comparison runs twice, the second time with the reference's filterbank moved up by
one band: a check that cannot tell those apart proves nothing. Figures, on the cells within
40 dB of each spectrogram's peak (both spectrograms' peaks):
  corr    the median over bands of the correlation over frames of the two dB values
  |dB|    the median and 90th percentile of |ours - reference| in dB, each band's level
          convention removed (the median difference of that band subtracted)
  peak    the fraction of frames whose loudest band is the same band
and for the tones and filters: peak band per tone / filter, correlation and the largest dB
difference per filter within 40 dB of its peak.

  python benchmarks/frontend_references.py               # chirp + 5 ESC-10 clips
  python benchmarks/frontend_references.py --clips 20
"""
import argparse
import sys
from pathlib import Path

import numpy as np

import esc10 as esc

from soundtrack import audio

WITHIN_DB = 40.0


def front_end(feature):
    return audio.front_end("dcase2021", feature=feature)


def chirp(fe, seconds=6.0, f0=50.0, f1=12000.0, amplitude=0.5):
    """A logarithmic sweep f0 -> f1 over `seconds` at the front end's rate."""
    t = np.arange(int(seconds * fe.sample_rate_hz)) / fe.sample_rate_hz
    rate = np.log(f1 / f0) / seconds
    return amplitude * np.sin(2 * np.pi * f0 / rate * np.expm1(rate * t))


def magnitude(x, fe):
    """Our spectrogram in linear magnitude [frames, bands] (log undone)."""
    return np.exp(audio.log_spectrogram(x, fe.sample_rate_hz, fe).astype(np.float64)) \
        - fe.log_offset


def _db(m):
    return 20.0 * np.log10(np.maximum(m, 1e-9))


# ---------------------------------------------------------------- CQT: librosa
def cqt_reference(x, fe, shift_bands=0):
    """librosa.cqt's magnitudes / N_k, frames aligned with ours [frames, bands].

    librosa centres frame j on sample j x hop; ours centres frame t on t x hop + window / 2,
    so librosa gets the track from sample window // 2 on."""
    import librosa
    fmin = fe.cqt_min_hz * 2.0 ** (shift_bands / fe.cqt_bins_per_octave)
    c = np.abs(librosa.cqt(x[fe.window_samples // 2:], sr=fe.sample_rate_hz,
                           hop_length=fe.hop_samples, fmin=fmin, n_bins=fe.num_bands,
                           bins_per_octave=fe.cqt_bins_per_octave,
                           filter_scale=fe.cqt_filter_scale, scale=False))
    freqs = fmin * 2.0 ** (np.arange(fe.num_bands) / fe.cqt_bins_per_octave)
    lengths = librosa.filters.wavelet_lengths(freqs=freqs, sr=fe.sample_rate_hz,
                                              filter_scale=fe.cqt_filter_scale)[0]
    return (c / lengths[:, None]).T


def cqt_tones(fe, shift_bands=0, step=1, seconds=2.0):
    """A sine at every `step`-th band centre: (bands, our peak band, the reference's peak
    band, our level / the reference's in dB at the tone's band), from the middle frame."""
    t = np.arange(int(seconds * fe.sample_rate_hz)) / fe.sample_rate_hz
    bands = np.arange(0, fe.num_bands, step)
    ours, ref, level = [], [], []
    for k, hz in zip(bands, audio.band_centres_hz(fe)[bands]):
        x = 0.5 * np.sin(2 * np.pi * hz * t)
        a, b = magnitude(x, fe), cqt_reference(x, fe, shift_bands)
        mid = min(len(a), len(b)) // 2
        ours.append(int(a[mid].argmax()))
        ref.append(int(b[mid].argmax()))
        level.append(float(_db(a[mid, k]) - _db(b[mid, k])))
    return bands, np.array(ours), np.array(ref), np.array(level)


# ---------------------------------------------------------------- gammatone: the package
def _shifted_erb_centres(centres, shift_bands):
    """The centres moved by `shift_bands` steps along the ERB-rate scale they are even on."""
    erb = audio.hz_to_erb_rate(centres)
    return audio.erb_rate_to_hz(erb + shift_bands * (erb[1] - erb[0]))


def gammatone_filters(fe, shift_bands=0):
    """The package's filters' magnitude responses at our FFT bins, each scaled to peak 1
    [bins, bands] (an impulse through them, FFT 8 x longer, every 8th bin)."""
    from gammatone.filters import erb_filterbank, make_erb_filters
    centres = _shifted_erb_centres(audio.band_centres_hz(fe), shift_bands)
    impulse = np.zeros(8 * fe.fft_length)
    impulse[0] = 1.0
    y = erb_filterbank(impulse, make_erb_filters(fe.sample_rate_hz, centres))
    h = np.abs(np.fft.rfft(y, axis=1))[:, ::8].T
    return h / h.max(axis=0)


def gammatone_filter_agreement(fe, shift_bands=0):
    """Per band: correlation of our weights with the reference's responses (linear, DC
    excluded) and the largest |dB| difference within 40 dB of either peak."""
    ours = np.asarray(audio.filterbank_matrix(fe), np.float64)[1:]
    ref = gammatone_filters(fe, shift_bands)[1:]
    a, b = _db(ours), _db(ref)
    corr = np.array([np.corrcoef(ours[:, k], ref[:, k])[0, 1] for k in range(ours.shape[1])])
    near = (a > -WITHIN_DB) | (b > -WITHIN_DB)
    worst = np.array([np.abs(a[near[:, k], k] - b[near[:, k], k]).max()
                      for k in range(ours.shape[1])])
    return corr, worst


def gammatone_reference(x, fe, shift_bands=0):
    """The package's filterbank output's RMS over each of our frames [frames, bands]
    (what its gtgram computes, on our frame grid)."""
    from gammatone.filters import erb_filterbank, make_erb_filters
    centres = _shifted_erb_centres(audio.band_centres_hz(fe), shift_bands)
    power = erb_filterbank(np.asarray(x, np.float64),
                           make_erb_filters(fe.sample_rate_hz, centres)) ** 2
    n = audio.num_frames(len(x), fe.window_samples, fe.hop_samples)
    csum = np.concatenate([np.zeros((power.shape[0], 1)), np.cumsum(power, axis=1)], axis=1)
    starts = fe.hop_samples * np.arange(n)
    return np.sqrt((csum[:, starts + fe.window_samples] - csum[:, starts])
                   / fe.window_samples).T


# ---------------------------------------------------------------- agreement of two spectrograms
def agreement(ours, ref):
    """corr, |dB| median and p90, peak: the figures of the module docstring."""
    n = min(len(ours), len(ref))
    a, b = _db(ours[:n]), _db(ref[:n])
    near = (a > a.max() - WITHIN_DB) & (b > b.max() - WITHIN_DB)
    corrs, diffs = [], []
    for k in range(a.shape[1]):
        m = near[:, k]
        if m.sum() < 10:
            continue
        d = a[m, k] - b[m, k]
        diffs.append(np.abs(d - np.median(d)))
        if a[m, k].std() > 0 and b[m, k].std() > 0:
            corrs.append(np.corrcoef(a[m, k], b[m, k])[0, 1])
    diffs = np.concatenate(diffs) if diffs else np.array([np.nan])
    loud = a.max(axis=1) > a.max() - WITHIN_DB
    return {"corr": float(np.median(corrs)) if corrs else float("nan"),
            "db_median": float(np.median(diffs)), "db_p90": float(np.percentile(diffs, 90)),
            "peak": float((a.argmax(axis=1) == b.argmax(axis=1))[loud].mean())}


def compare(x, feature, shift_bands=0):
    """Our spectrogram of x against the reference's for 'cqt' or 'gam' -> agreement()."""
    fe = front_end(feature)
    ref = (cqt_reference if feature == "cqt" else gammatone_reference)(x, fe, shift_bands)
    return agreement(magnitude(x, fe), ref)


def esc10_clips(root, count):
    """Up to `count` ESC-10 clips spread over its classes, at 32 kHz: [(name, waveform)]."""
    import soundfile
    files = sorted((Path(root) / "audio").glob("*.flac"))
    picked = files[::max(1, len(files) // count)][:count] if files else []
    clips = []
    for f in picked:
        y, rate = soundfile.read(f, dtype="float64", always_2d=True)
        clips.append((f.name, audio.resample(y[:, 0], rate, 32000)))
    return clips


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, allow_abbrev=False,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clips", type=int, default=5, help="ESC-10 clips to compare (spread "
                   "over the classes; 0: the chirp only)")
    p.add_argument("--esc10-root", type=Path, default=esc.DEFAULT_ESC10_ROOT)
    args = p.parse_args(argv)

    cqt, gam = front_end("cqt"), front_end("gam")
    bands, ours, ref, level = cqt_tones(cqt)
    _, _, ref1, _ = cqt_tones(cqt, shift_bands=1)
    print(f"cqt tones at the {len(bands)} band centres: same peak band {np.sum(ours == ref)}"
          f" (shifted reference: {np.sum(ours == ref1)}); level ours - librosa "
          f"{level.min():.2f} .. {level.max():.2f} dB (one constant: the conventions)")
    centres = audio.band_centres_hz(gam)
    mid = (centres > 150) & (centres < 10000)
    for shift in (0, 1):
        corr, worst = gammatone_filter_agreement(gam, shift)
        print(f"gammatone filters{' (shifted reference)' if shift else ''}: correlation min "
              f"{corr[mid].min():.6f} for centres 150 Hz-10 kHz ({mid.sum()} bands), "
              f"{corr.min():.6f} all; largest |dB| within {WITHIN_DB:g} dB "
              f"{worst[mid].max():.2f} (150 Hz-10 kHz), {worst.max():.2f} all (at "
              f"{centres[worst.argmax()]:.0f} Hz)")
    signals = [("log chirp 50 Hz-12 kHz, 6 s", chirp(cqt))]
    if args.clips:
        if (args.esc10_root / "audio").is_dir():
            signals += esc10_clips(args.esc10_root, args.clips)
        else:
            print(f"(no ESC-10 at {args.esc10_root}: the chirp only)")
    print("\n| signal | front end | corr | abs dB median / p90 | peak band same | "
          "shifted reference: corr, abs dB median, peak |\n|---|---|---|---|---|---|")
    for name, x in signals:
        for feature in ("cqt", "gam"):
            r, s = compare(x, feature), compare(x, feature, shift_bands=1)
            print(f"| {name} | {feature} | {r['corr']:.3f} | {r['db_median']:.2f} / "
                  f"{r['db_p90']:.2f} | {r['peak']:.3f} | {s['corr']:.3f}, "
                  f"{s['db_median']:.2f}, {s['peak']:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
