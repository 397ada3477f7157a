"""soundtrack/audio.py: the mel front end against the VGGish reference, and the properties of all three."""
import math
import re

import numpy as np
import pytest

from soundtrack import audio
from conftest import SHARED_DATA

ESC10_AUDIO = SHARED_DATA / "esc10" / "audio"      # real 5 s clips, 16 kHz mono FLAC
V = audio.VGGISH
RATE = V.sample_rate_hz
TWO_PATCHES = V.one_patch_samples + V.patch_frames * V.hop_samples   # 30960
MEL_ARGS = (64, 512, 16000, 125.0, 7500.0)       # num_bands, fft_length, rate, min_hz, max_hz


def fe(feature="mel", deltas=False, **overrides):
    return audio.front_end("vggish", feature, deltas, **overrides)


def spectrogram(feature, x, rate=RATE):
    return audio.log_spectrogram(x, rate, fe(feature))


def noise(n, seed=0, amplitude=1.0, channels=None):
    shape = (n,) if channels is None else (n, channels)
    return np.random.default_rng(seed).uniform(-amplitude, amplitude, shape).astype(np.float32)


def tone(freq, seconds=2.0, rate=RATE, amplitude=0.5):
    t = np.arange(round(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def sweep(n, low=50.0, high=7900.0):
    """A linear chirp from low to high Hz over n samples at 16 kHz."""
    t = np.arange(n) / RATE
    return np.sin(2 * np.pi * (low * t + (high - low) / (2 * t[-1]) * t ** 2))


# ---------------------------------------------------------------- the VGGish reference
@pytest.fixture(scope="module")
def reference():
    """torchvggish's copy of VGGish's waveform_to_examples -> [n, 64 bands, 96 frames].

    Importing torchvggish only defines the weight URLs; nothing is downloaded.
    """
    vggish_input = pytest.importorskip("torchvggish.vggish_input")

    def examples(x, rate=RATE):
        out = vggish_input.waveform_to_examples(x, rate, return_tensor=False)
        return np.transpose(out, (0, 2, 1))
    return examples


@pytest.mark.parametrize("name, x", [
    ("noise, 3 s + 123", noise(3 * RATE + 123)),
    ("sweep 50 Hz - 7.9 kHz, 2 patches", sweep(TWO_PATCHES)),
    # a loud tone: quiet bins far from it are where a float32 FFT would lose the 1e-4 bound
    ("tone + quiet noise", tone(3000.3, 2.0, amplitude=1.0) + noise(2 * RATE, 1, 1e-4)),
    ("quiet noise, float64", noise(RATE * 2, 2, 1e-3).astype(np.float64)),
    ("one patch exactly", noise(V.one_patch_samples, 3)),
    ("one sample short of a patch", noise(V.one_patch_samples - 1, 4)),
    ("stereo", noise(RATE * 2, 5, channels=2)),
])
def test_log_mel_patches_match_vggish_reference(reference, name, x):
    ours, ref = audio.log_mel_patches(x, RATE), reference(x)
    assert ours.shape == ref.shape, name
    assert ours.dtype == np.float32 and ours.flags.c_contiguous
    if ref.size:
        assert np.abs(ours - ref).max() <= 1e-4, name


@pytest.mark.skipif(not ESC10_AUDIO.is_dir(), reason="../shared/data/esc10 absent")
def test_real_clips_match_vggish_reference(reference):
    soundfile = pytest.importorskip("soundfile")
    for path in sorted(ESC10_AUDIO.glob("*.flac")):                 # all 400 clips, ~5 s
        x, rate = soundfile.read(path, dtype="float32")
        assert rate == RATE
        ours, ref = audio.log_mel_patches(x, rate), reference(x)
        assert ours.shape == ref.shape == (5, 64, 96), path.name
        assert np.abs(ours - ref).max() <= 1e-4, path.name


def test_building_blocks_match_reference():
    mel_features = pytest.importorskip("torchvggish.mel_features")
    np.testing.assert_allclose(audio.periodic_hann(400), mel_features.periodic_hann(400),
                               atol=1e-15)
    ref = mel_features.spectrogram_to_mel_matrix(64, 257, 16000, 125.0, 7500.0)
    np.testing.assert_allclose(audio.mel_matrix(*MEL_ARGS), ref, atol=1e-7)
    x = noise(4000)
    np.testing.assert_array_equal(audio.frame(x, 400, 160), mel_features.frame(x, 400, 160))
    np.testing.assert_allclose(audio.stft_magnitude(x, 400, 160, 512),
                               mel_features.stft_magnitude(x.astype(np.float64), 512, 160, 400),
                               rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("rate, bands", [(8000, 44), (44100, 60)])
def test_other_rates_close_to_reference(reference, rate, bands):
    """resample_poly vs the reference's resampy: close below the resamplers' roll-off.

    The bands below 3.35 kHz (8 kHz input) or 6.4 kHz (44.1 kHz input) agree to 1e-3
    (measured: 5e-5, 2e-4); nearer the lower Nyquist frequency the two filters' roll-offs
    differ (by up to 3.5 and 0.3).
    """
    x = noise(3 * rate, 6).astype(np.float64)
    ours, ref = audio.log_mel_patches(x, rate), reference(x, rate)
    assert ours.shape == ref.shape == (3, 64, 96)
    assert audio.band_centres_hz(V)[bands] < 0.84 * min(rate, RATE) / 2  # bands compared
    assert np.abs(ours[:, :bands] - ref[:, :bands]).max() < 1e-3


# ---------------------------------------------------------------- geometry
def test_one_patch_samples():
    assert V.window_samples == 400 and V.hop_samples == 160 and V.fft_length == 512
    assert V.one_patch_samples == 15600 and V.patch_shape == (64, 96)


@pytest.mark.parametrize("feature", audio.FEATURES)
@pytest.mark.parametrize("n, patches", [(0, 0), (1, 0), (399, 0), (400, 0), (15599, 0),
                                        (15600, 1), (TWO_PATCHES - 1, 1), (TWO_PATCHES, 2)])
def test_patch_counts(feature, n, patches):
    out = audio.features(noise(n), RATE, fe(feature))
    assert out.shape == (patches, 64, 96) and out.dtype == np.float32


@pytest.mark.parametrize("rate", [8000, 11025, 22050, 44100, 48000])
def test_padding_to_one_patch_at_any_rate(rate):
    """pad_short_track pads to ceil(one_patch_samples * rate / 16000): exactly one patch."""
    padded, reason = audio.pad_short_track(noise(1000), rate, V, "pad")
    assert len(padded) == math.ceil(V.one_patch_samples * rate / RATE) and "padded" in reason
    assert audio.log_mel_patches(padded, rate).shape == (1, 64, 96)
    assert audio.pad_short_track(noise(1000), rate, V, "drop")[0] is None
    long = noise(2 * rate)
    assert audio.pad_short_track(long, rate, V, "drop") == (long, "")


@pytest.mark.parametrize("rate", [8000, 44100])
def test_resampled_patch_count(rate):
    x = noise(5 * rate + 17)              # 80_000+ samples at 16 kHz: 499 frames, 5 patches
    assert audio.resample(x, rate, RATE).shape == (math.ceil(len(x) * RATE / rate),)
    assert audio.log_mel_patches(x, rate).shape == (5, 64, 96)


@pytest.mark.parametrize("n", [400, 15600, 16000 * 2 + 77, 3 * RATE])
def test_frame_counts_agree(n):
    x = noise(n, 7)
    counts = {f: len(spectrogram(f, x)) for f in audio.FEATURES}
    assert set(counts.values()) == {audio.num_frames(n, 400, 160)}, counts


# ---------------------------------------------------------------- behaviour
def test_mono_policy_is_channel_mean():
    x = noise(RATE * 2, 8, channels=2)
    for feature in audio.FEATURES:
        np.testing.assert_array_equal(audio.features(x, RATE, fe(feature)),
                                      audio.features(x.mean(axis=1), RATE, fe(feature)))
    same = np.stack([x[:, 0], x[:, 0]], axis=1)
    np.testing.assert_array_equal(audio.log_mel_patches(same, RATE),
                                  audio.log_mel_patches(x[:, 0], RATE))


@pytest.mark.parametrize("feature", audio.FEATURES)
def test_silence_is_log_offset(feature):
    out = audio.features(np.zeros(2 * RATE, np.float32), RATE, fe(feature))
    assert out.shape == (2, 64, 96)
    np.testing.assert_allclose(out, np.log(V.log_offset), rtol=1e-6)


@pytest.mark.parametrize("feature", audio.FEATURES)
def test_tone_peaks_in_its_band(feature):
    centres = audio.band_centres_hz(fe(feature))
    assert np.all(np.diff(centres) > 0)
    peaks = []
    for freq in (250.0, 1000.0, 3000.0):
        spec = spectrogram(feature, tone(freq))
        peak = int(spec[len(spec) // 2].argmax())          # middle frame: no edge effects
        nearest = int(np.abs(np.log(centres / freq)).argmin())
        assert abs(peak - nearest) <= 1, (feature, freq, centres[peak])
        peaks.append(peak)
    assert peaks[0] < peaks[1] < peaks[2]


def test_cqt_scale_matches_stft_peak():
    """A sine of amplitude A at a band's centre reads 100 A, as its peak STFT bin."""
    centre = audio.band_centres_hz(fe("cqt"))[40]
    spec = spectrogram("cqt", tone(centre, 3.0, amplitude=0.5))
    np.testing.assert_allclose(np.exp(spec[100:200, 40]) - V.log_offset, 50.0, rtol=1e-3)


def test_features_mel_is_log_mel_patches():
    x = noise(3 * RATE, 9)
    np.testing.assert_array_equal(audio.features(x, RATE, fe("mel", deltas=False)),
                                  audio.log_mel_patches(x, RATE))


# ---------------------------------------------------------------- deltas
def test_delta_regression():
    ramp = np.arange(10, dtype=np.float32)[:, None] * np.float32([1.0, -2.0])  # [10, 2]
    d = audio.delta(ramp)
    np.testing.assert_allclose(d[2:-2], [[1.0, -2.0]] * 6, rtol=1e-6)   # slope inside
    # edges replicated: d[0] = (1 * (s1 - s0) + 2 * (s2 - s0)) / 10 = 0.5 slope
    np.testing.assert_allclose(d[0], [0.5, -1.0], rtol=1e-6)
    np.testing.assert_allclose(audio.delta(np.ones((5, 3))), 0.0)
    assert audio.delta(np.zeros((0, 64))).shape == (0, 64)


@pytest.mark.parametrize("feature", audio.FEATURES)
def test_deltas_shape_and_whole_track(feature):
    x = noise(TWO_PATCHES + 1000, 10)
    out = audio.features(x, RATE, fe(feature, deltas=True))
    assert out.shape == (2, 3, 64, 96) and out.dtype == np.float32
    np.testing.assert_array_equal(out[:, 0], audio.features(x, RATE, fe(feature)))
    # computed over the whole track, not per patch: patch 2's first delta sees patch 1
    spec = spectrogram(feature, x)
    np.testing.assert_allclose(out[1, 1, :, 0], audio.delta(spec)[96], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out[1, 2, :, 0], audio.delta(audio.delta(spec))[96],
                               rtol=1e-6, atol=1e-6)
    assert not np.allclose(out[1, 1, :, 0], audio.delta(spec[96:192])[0])


def test_patches_axis_order():
    spec = np.arange(200 * 64, dtype=np.float32).reshape(200, 64)   # [frames, bands]
    patches = audio.spectrogram_to_patches(spec, 96, 96)
    assert patches.shape == (2, 64, 96)
    np.testing.assert_array_equal(patches[1, 5], spec[96:192, 5])
    stacked = audio.spectrogram_to_patches(audio.add_deltas(spec), 96, 96)
    assert stacked.shape == (2, 3, 64, 96)
    np.testing.assert_array_equal(stacked[1, 0], patches[1])


# ---------------------------------------------------------------- bad arguments
@pytest.mark.parametrize("call, message", [
    (lambda: fe("mfcc"), "('mel', 'gam', 'cqt')"),
    (lambda: audio.front_end("pann"), "unknown front-end preset 'pann'"),
    (lambda: fe(nfft=512), "unknown front-end field(s) ['nfft']"),
    (lambda: fe(channels="left"), "channels 'left'"),
    (lambda: fe(fft_length=256), "fft_length 256 is shorter than the window (400 samples)"),
    (lambda: fe(sample_rate_hz=22050), "window_seconds 0.025 is not a whole number"),
    (lambda: fe(band_max_hz=9000.0), "band_max_hz <= Nyquist, got 125.0, 9000.0"),
    (lambda: fe(num_bands=0), "num_bands must be a whole number > 0, got 0"),
    (lambda: fe("cqt", num_bands=128), "the top constant-Q band"),
    (lambda: audio.features(noise(RATE), 0, V), "sample_rate"),
    (lambda: audio.features(noise(RATE), -16000, V), "sample_rate"),
    (lambda: audio.features(noise(RATE), 44100.5, V), "44100.5"),
    (lambda: audio.features(noise(RATE), "16000", V), "sample_rate"),
    (lambda: audio.features(np.zeros((2, 3, 4), np.float32), RATE, V), "(2, 3, 4)"),
    (lambda: audio.features(np.zeros((2, RATE), np.float32), RATE, V), "(2, 16000)"),
    (lambda: audio.features(np.zeros(RATE, np.int16), RATE, V), "int16"),
    (lambda: audio.features(np.full(RATE, np.nan, np.float32), RATE, V), "NaN"),
    (lambda: audio.features(noise(RATE, channels=3), RATE, fe(channels="stereo")),
     "takes 1 or 2 channels, got 3"),
    (lambda: audio.pad_short_track(noise(10), RATE, V, "loop"), "'pad' or 'drop'"),
    (lambda: audio.frame(noise(100), 400, 0), "hop_length 0"),
    (lambda: audio.periodic_hann(0), "0"),
    (lambda: audio.stft_magnitude(noise(1000), 400, 160, 256), "fft_length 256"),
    (lambda: audio.stft_magnitude(noise(1000, channels=2), 400, 160, 512), "(1000, 2)"),
    (lambda: audio.stft_magnitude(noise(1000), 400, 160, 512, bins=(5, 300)), "bins (5, 300)"),
    (lambda: audio.stft_magnitude(noise(1000), 400, 160, 512, bins=(9, 9)), "bins (9, 9)"),
    (lambda: audio.mel_matrix(64, 512, 16000, 125.0, 9000.0), "max_hz 9000"),
    (lambda: audio.mel_matrix(64, 512, 16000, 500.0, 400.0), "min_hz 500"),
    (lambda: audio.gammatone_matrix(*MEL_ARGS, order=0), "order 0"),
    (lambda: audio.spectrogram_to_patches(np.zeros(100), 96, 96), "(100,)"),
    (lambda: audio.add_deltas(np.zeros((10, 2, 3))), "(10, 2, 3)"),
])
def test_bad_arguments(call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call()


def test_cached_filterbanks_are_read_only():
    for weights in (audio.mel_matrix(*MEL_ARGS), audio.gammatone_matrix(*MEL_ARGS)):
        assert weights.shape == (257, 64) and weights.dtype == np.float32
        assert not weights.flags.writeable
        assert np.all(weights[0] == 0)            # the DC bin


def test_stft_magnitude_bins_and_blocks():
    # 300 frames: two full blocks of STFT_BLOCK_FRAMES and a partial one
    x = noise(400 + 299 * 160, 7)
    full = audio.stft_magnitude(x, 400, 160, 512)
    assert full.shape == (300, 257)
    np.testing.assert_array_equal(audio.stft_magnitude(x, 400, 160, 512, bins=(5, 240)),
                                  full[:, 5:240])
    # against a plain one-shot float64 STFT
    plain = np.abs(np.fft.rfft(audio.frame(x.astype(np.float64), 400, 160)
                               * audio.periodic_hann(400), 512, axis=1))
    np.testing.assert_allclose(full, plain, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("feature", ["mel", "gam"])
def test_grouped_filterbank_equals_dense_matmul(feature):
    # _log_filterbank_spectrogram applies the filterbank in groups of bands over only the
    # bins each group weights; the result must be the dense product's
    x = sweep(TWO_PATCHES) * 0.3 + noise(TWO_PATCHES, 8, 1e-3)
    matrix = audio.filterbank_matrix(fe(feature))
    dense = np.log(audio.stft_magnitude(x, 400, 160, 512).astype(np.float64)
                   @ matrix.astype(np.float64) + V.log_offset)
    np.testing.assert_allclose(spectrogram(feature, x), dense, rtol=0, atol=2e-5)
    first, stop, groups = audio._filterbank_plan(fe(feature))
    assert [g[:2] for g in groups] == [(b, b + audio.FILTERBANK_GROUP_BANDS)
                                       for b in range(0, 64, audio.FILTERBANK_GROUP_BANDS)]
    if feature == "mel":
        assert (first, stop) == (5, 240)               # 125 Hz .. 7.5 kHz at 31.25 Hz a bin
        assert sum(g[3] - g[2] for g in groups) < 300  # ~1/7 of the dense 64 x 235


# ---------------------------------------------------------------- the parameter set
def test_presets_values_and_names():
    assert (V.sample_rate_hz, V.channels, V.fft_length, V.num_bands) == (16000, "mono", 512, 64)
    assert (V.band_min_hz, V.band_max_hz, V.log_offset, V.patch_frames) == (125.0, 7500.0,
                                                                              0.01, 96)
    assert V.name == "vggish_mel" and V.audio_folder == "16000hz_mono" and not V.overrides
    assert fe("gam", deltas=True).name == "vggish_gam_deltas"
    # an override equal to the preset's value is no override: same arrays, same folder
    assert fe(num_bands=64, fft_length=None) == V
    a, b = fe(num_bands=32), fe(num_bands=32, fft_length=1024)
    assert a.overrides == ("num_bands",) and b.overrides == ("fft_length", "num_bands")
    assert len({V.name, a.name, b.name}) == 3 and a.name.startswith("vggish_mel_")
    assert audio.FrontEnd.from_dict(b.to_dict()) == b
    assert audio.describe_difference(V, V, "x", "y") == ""
    assert audio.describe_difference(a, V, "x.json", "settings") == \
        "num_bands: 32 in x.json but 64 in settings"


def test_from_dict_refuses_a_record_that_contradicts_itself():
    d = V.to_dict()
    d["patch_shape"] = [32, 96]
    with pytest.raises(ValueError, match=r"patch_shape is \[32, 96\] but its fields give"):
        audio.FrontEnd.from_dict(d, "f.json")
    with pytest.raises(ValueError, match="no sample_rate_hz"):
        audio.FrontEnd.from_dict({"preset": "vggish"}, "f.json")


def test_overrides_change_the_arrays_as_a_direct_computation_does():
    """32 bands and a 1024-point FFT: the patches are [n, 32, 96] and equal the log of the
    mel matrix of those values over a plain float64 STFT."""
    custom = fe(num_bands=32, fft_length=1024, band_max_hz=7000.0)
    x = noise(TWO_PATCHES, 11, 0.5)
    out = audio.features(x, RATE, custom)
    assert out.shape == (2, 32, 96) == (2, *custom.patch_shape)
    frames = audio.frame(x.astype(np.float64), 400, 160) * audio.periodic_hann(400)
    magnitude = np.abs(np.fft.rfft(frames, 1024, axis=1))                     # [192, 513]
    mel = np.log(magnitude @ audio.mel_matrix(32, 1024, 16000, 125.0, 7000.0) + 0.01)
    np.testing.assert_allclose(out, mel[:192].reshape(2, 96, 32).transpose(0, 2, 1),
                               atol=1e-4)


def test_stereo_policy_keeps_each_channel():
    x = noise(TWO_PATCHES, 12, channels=2)
    stereo = fe(channels="stereo")
    out = audio.features(x, RATE, stereo)
    assert out.shape == (2, 2, 64, 96) and stereo.patch_shape == (2, 64, 96)
    np.testing.assert_array_equal(out[:, 0], audio.log_mel_patches(x[:, 0], RATE))
    np.testing.assert_array_equal(out[:, 1], audio.log_mel_patches(x[:, 1], RATE))
    both = audio.features(x, RATE, fe(channels="stereo", deltas=True))
    assert both.shape == (2, 6, 64, 96)               # left s/d/dd, then right s/d/dd
    np.testing.assert_array_equal(both[:, 3], out[:, 1])
    mono = audio.features(x[:, 0], RATE, stereo)         # a mono track is duplicated
    np.testing.assert_array_equal(mono[:, 0], mono[:, 1])
    first = audio.features(x, RATE, fe(channels="first"))
    np.testing.assert_array_equal(first, out[:, 0])


def test_a_32khz_preset_analyses_32khz_without_resampling(monkeypatch):
    """A PANNs-like preset: 32 kHz, 1024-sample window, hop 320, 64 bands 50-14000 Hz."""
    monkeypatch.setitem(audio.PRESETS, "test32k", dict(
        audio.PRESETS["vggish"], sample_rate_hz=32000, window_seconds=0.032,
        hop_seconds=0.01, fft_length=1024, band_min_hz=50.0, band_max_hz=14000.0))
    p = audio.front_end("test32k")
    assert (p.window_samples, p.hop_samples, p.audio_folder) == (1024, 320, "32000hz_mono")
    x = tone(12000.0, 2.0, rate=32000)                  # above 16 kHz audio's Nyquist
    spec = audio.log_spectrogram(x, 32000, p)
    assert spec.shape == (audio.num_frames(64000, 1024, 320), 64)
    peak = int(spec[len(spec) // 2].argmax())
    assert abs(audio.band_centres_hz(p)[peak] - 12000.0) < 600.0
    # a 16 kHz input would be upsampled: its 12 kHz band holds nothing but the log offset
    low = audio.log_spectrogram(audio.resample(x, 32000, 16000), 16000, p)
    assert low[len(low) // 2, peak] < np.log(0.01) + 1e-3 < spec[len(spec) // 2, peak] - 5


def test_records_from_before_cqt_filter_scale():
    """Records written before the field: cqt features were made with bands half as wide
    (scale 2) and are another front end now; mel and gam features never used it."""
    for feature in ("mel", "gam", "cqt"):
        new = audio.front_end("dcase2021", feature=feature)
        old = new.to_dict()
        del old["cqt_filter_scale"]
        read = audio.FrontEnd.from_dict(old)
        if feature == "cqt":
            assert read.cqt_filter_scale == 2.0 and new.cqt_filter_scale == 1.0
            assert audio.describe_difference(read, new, "old.json", "settings") == \
                "cqt_filter_scale: 2.0 in old.json but 1.0 in settings"
        else:
            assert read == new
    with pytest.raises(ValueError, match="cqt_filter_scale 0.0 must be > 0"):
        audio.front_end("dcase2021", feature="cqt", cqt_filter_scale=0.0)
    # half as wide bands (the old CQT) fit below Nyquist where librosa's width does not
    audio.front_end("dcase2021", feature="cqt", cqt_min_hz=43.0, cqt_filter_scale=2.0)
    with pytest.raises(ValueError, match="the top constant-Q band"):
        audio.front_end("dcase2021", feature="cqt", cqt_min_hz=43.0)
