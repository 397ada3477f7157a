"""Pretrained backbones: PANNs CNN14 and VGGish equal their references (panns_inference +
torchlibrosa, torchvggish) with random weights, and their published files load safely.

No weights can be downloaded here, so each reference is built with random weights (its batch
norms calibrated on the test signals, so that its output depends on its input), saved in the
published file's structure (numpy arrays and extra top-level keys, pickled under numpy 1.x's
module names, as the published files are), loaded through train.py's INIT_CHECKPOINT path
and compared on the same waveforms: noise, a tone, a chirp and silence, 1 s and 10 s.
Measured maxima are printed (pytest -s) and stated in README.md.
"""
import collections
import copy
import datetime
import json
import pickle
import re
import types

import numpy as np
import pytest
import torch

from soundtrack import audio
from soundtrack import datafiles
import network
import network.vggish
from conftest import load_script, write_feature_folder
from network import pretrained
from network.panns import Cnn14

import train
from soundtrack.training import checkpoints

SIGNALS = ("noise", "tone", "chirp", "silence")
PANNS = audio.front_end("panns")
MAXIMA = {}


def signal(kind, seconds, rate, seed=0):
    t = np.arange(int(seconds * rate)) / rate
    if kind == "noise":
        return (0.3 * np.random.default_rng(seed).standard_normal(len(t))).astype(np.float32)
    if kind == "tone":
        return (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    if kind == "chirp":       # 100 Hz -> 0.9 x Nyquist over the signal
        top = 0.45 * rate
        return (0.5 * np.sin(2 * np.pi * (100 * t + (top - 100) / (2 * seconds) * t * t))
                ).astype(np.float32)
    return np.zeros(len(t), np.float32)


def relative(ours, ref):
    """max |ours - ref| / max |ref| (one number per comparison)."""
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    return float(np.abs(ours - ref).max() / max(np.abs(ref).max(), 1e-30))


def note(name, value):
    MAXIMA[name] = max(MAXIMA.get(name, 0.0), value)
    print(f"[measured] {name}: {MAXIMA[name]:.3g}")


class _Numpy1Pickler(pickle._Pickler):
    """Pickles numpy's globals under numpy 1.x's names (numpy.core.multiarray...), as the
    published files (saved in 2019-2020) have them; everything else as usual."""

    def save_global(self, obj, name=None):
        module = getattr(obj, "__module__", "") or ""
        if module.startswith("numpy._core"):
            name = name or obj.__qualname__
            self.write(pickle.GLOBAL + f"numpy.core{module[len('numpy._core'):]}\n{name}\n"
                       .encode())
            self.memoize(obj)
            return
        super().save_global(obj, name)

    dispatch = dict(pickle._Pickler.dispatch)
    dispatch[type] = save_global
    dispatch[types.FunctionType] = save_global


def save_like_published(obj, path):
    torch.save(obj, path, pickle_module=types.SimpleNamespace(
        Pickler=_Numpy1Pickler, __name__="numpy1_pickle"))
    return path


def calibrate_batch_norms(model, *inputs):
    """Set every batch norm's running statistics to those of its input on `inputs` (one
    eval pass, layer by layer), so that a random network's output follows its input."""
    def set_stats(m, args):
        x = args[0].transpose(0, 1).reshape(args[0].shape[1], -1).double()
        m.running_mean.copy_(x.mean(1))
        m.running_var.copy_(x.var(1))
    hooks = [m.register_forward_pre_hook(set_stats) for m in model.modules()
             if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        model(*inputs)
    for h in hooks:
        h.remove()


# ---------------------------------------------------------------- the PANNs reference
@pytest.fixture(scope="module")
def panns_models(tmp_path_factory):
    """panns_inference's Cnn14 (HOME pointed at a stub label CSV, so its import downloads
    nothing) and torchlibrosa's front end modules."""
    home = tmp_path_factory.mktemp("home")
    (home / "panns_data").mkdir()
    (home / "panns_data" / "class_labels_indices.csv").write_text(
        "index,mid,display_name\n" + "".join(f"{i},/m/{i},label {i}\n" for i in range(527)))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))
        from panns_inference import models
    assert not (home / "panns_data" / "class_labels_indices.csv.tmp").exists()
    return models


@pytest.fixture(scope="module")
def panns_reference(panns_models):
    """One reference CNN14 with random weights, built as panns_inference builds it for the
    published file (32 kHz, window 1024, hop 320, 64 bands 50-14000 Hz, 527 classes); tests
    may change its batch norms' statistics, never its front end."""
    torch.manual_seed(0)
    return panns_models.Cnn14(sample_rate=32000, window_size=1024, hop_size=320, mel_bins=64,
                              fmin=50, fmax=14000, classes_num=527).eval()


def exact_stft(spectrogram_extractor):
    """torchlibrosa's STFT convolutions recomputed in float64 from its own DFT matrix W
    (complex128) and window: the reference's maths without its float32 coefficients."""
    import librosa
    stft = spectrogram_extractor.stft
    window = librosa.util.pad_center(librosa.filters.get_window(stft.window, stft.win_length,
                                                                fftbins=True), size=stft.n_fft)
    w = stft.W[:, :stft.n_fft // 2 + 1] * window[:, None]
    exact = type(spectrogram_extractor)(n_fft=stft.n_fft, hop_length=stft.hop_length,
                                        win_length=stft.win_length, window=stft.window,
                                        center=stft.center, pad_mode=stft.pad_mode).double()
    exact.stft.conv_real.weight.data = torch.from_numpy(np.real(w).T[:, None, :].copy())
    exact.stft.conv_imag.weight.data = torch.from_numpy(np.imag(w).T[:, None, :].copy())
    return exact


def test_panns_front_end_equals_torchlibrosa(panns_reference):
    """The panns preset's log-mel vs CNN14's own torchlibrosa front end, in dB.

    As shipped, torchlibrosa's STFT is a float32 convolution with float32 DFT coefficients:
    its rounding is ~1e-7 of a frame's energy in every bin, so bands more than ~70 dB below a
    frame's loudest differ from the exact values by up to a few hundredths of a dB (pure
    tones and chirps reach -100 dB there). So: with the reference's own DFT matrix kept in
    float64, within 1e-3 dB everywhere; as shipped, within 1e-3 dB wherever the band is
    within 60 dB of the track's loudest, and 0.1 dB everywhere."""
    ref = panns_reference
    np.testing.assert_allclose(ref.logmel_extractor.melW.numpy(), audio.filterbank_matrix(PANNS),
                               rtol=0, atol=1e-6 * float(ref.logmel_extractor.melW.max()))
    mel32 = ref.logmel_extractor
    exact, mel64 = exact_stft(ref.spectrogram_extractor), copy.deepcopy(mel32).double()
    for seconds, kinds in ((1, SIGNALS), (10, ("tone", "chirp"))):   # 10 s: the hard ones
        for kind in kinds:
            x = signal(kind, seconds, 32000)
            ours = audio.log_spectrogram(x, 32000, PANNS)
            with torch.no_grad():
                want64 = mel64(exact(torch.from_numpy(x).double()[None]))[0, 0].numpy()
                want32 = mel32(ref.spectrogram_extractor(torch.from_numpy(x)[None]))[0, 0].numpy()
            assert ours.shape == want32.shape == (PANNS.n_frames(len(x)), 64)
            d64, d32 = np.abs(ours - want64), np.abs(ours - want32)
            loud = want32 > want32.max() - 60.0
            note("panns log-mel vs float64-coefficient reference, dB", d64.max())
            note("panns log-mel vs shipped reference within 60 dB of the peak, dB",
                 d32[loud].max())
            note("panns log-mel vs shipped reference anywhere, dB", d32.max())
            assert d64.max() < 1e-3, (kind, seconds)
            assert d32[loud].max() < 1e-3 and d32.max() < 0.1, (kind, seconds)


def panns_state(ref):
    """A published-structured PANNs checkpoint of `ref`'s weights."""
    sampler = np.random.RandomState(0)
    return {"iteration": 600000, "model": ref.state_dict(),
            "sampler": {"indexes_per_class": [np.arange(5) * c for c in range(3)],
                        "queue": [np.int64(2), np.int64(0)],
                        "pointers_of_classes": [0, 1, 2],
                        "random_state": sampler.get_state()}}


def test_cnn14_loaded_from_a_published_file_equals_panns_cnn14(panns_reference, tmp_path):
    """Reference CNN14 with random weights -> its published-format file -> INIT_CHECKPOINT ->
    panns_cnn14 on our log-mel: clipwise output (sigmoid of the logits) and embedding within
    a relative 1e-4 of the reference's on the same waveforms. The reference's front end
    runs with its DFT matrix in float64 (see the test above: shipped, it differs from exact
    by up to ~0.1 dB in bands ~95 dB down, which moves a random network's output by ~1e-3)."""
    ref = panns_reference
    # every signal at 1 s; at 10 s (1001 frames: odd sizes at every pooling) the chirp and
    # silence (the batch norms calibrated on 1 s make the embeddings of 10 s differ anyway)
    kinds = {1: SIGNALS, 10: ("chirp", "silence")}
    waves = {s: torch.from_numpy(np.stack([signal(k, s, 32000, seed=s) for k in kinds[s]]))
             for s in (1, 10)}
    calibrate_batch_norms(ref, waves[1])
    path = save_like_published(panns_state(ref), tmp_path / "Cnn14_mAP=0.431.pth")
    exact = exact_stft(ref.spectrogram_extractor)
    mel64 = copy.deepcopy(ref.logmel_extractor).double()

    model = network.build_audio("panns_cnn14", 527, PANNS.patch_shape).eval()
    checkpoints.init_from_checkpoint(model, path, "panns_cnn14", PANNS)
    for name, p in model.fc_audioset.named_parameters():   # the head is not loaded: copy it
        p.data.copy_(ref.state_dict()[f"fc_audioset.{name}"])
    for seconds, x in waves.items():
        with torch.no_grad():
            spec = mel64(exact(x.double())).float()
            want = _reference_from_log_mel(ref, spec)
            feats = np.stack([audio.log_spectrogram(w, 32000, PANNS).T for w in x.numpy()])
            out = model(torch.from_numpy(feats)[:, None])
        clip, emb = torch.sigmoid(out["logits"]).numpy(), out["embedding"].numpy()
        for i, kind in enumerate(kinds[seconds]):
            note("cnn14 clipwise output, relative", relative(clip[i], want["clipwise_output"][i]))
            note("cnn14 embedding, relative", relative(emb[i], want["embedding"][i]))
            assert relative(clip[i], want["clipwise_output"][i]) < 1e-4, (kind, seconds)
            assert relative(emb[i], want["embedding"][i]) < 1e-4, (kind, seconds)
        # not vacuous: the signals' embeddings differ far more than the tolerance
        spread = [relative(want["embedding"][i], want["embedding"][0])
                  for i in range(1, len(x))]
        assert min(spread) > 0.05, spread


def _reference_from_log_mel(ref, spec):
    """The reference's forward with its front end's output given (its extractors replaced by
    identities for the call)."""
    extractors = ref.spectrogram_extractor, ref.logmel_extractor
    ref.spectrogram_extractor = ref.logmel_extractor = torch.nn.Sequential()
    try:
        return {k: v.numpy() for k, v in ref(spec).items()}
    finally:
        ref.spectrogram_extractor, ref.logmel_extractor = extractors


# ---------------------------------------------------------------- loading and its errors
class TinyCnn14(Cnn14):
    """CNN14 with narrow blocks: the same keys and loader, ~0.1 % of the weights."""

    def __init__(self, n_classes=527, in_channels=1, n_bands=64, n_frames=1001):
        super().__init__(n_classes, in_channels, n_bands, n_frames, widths=(4, 4, 8, 8, 16, 16))


if "test_tiny_cnn14" not in network.names():
    network.register("test_tiny_cnn14")(TinyCnn14)


def tiny_published(path, edit=None, front_end_matrices=True):
    """A published-structured file of a TinyCnn14, with its front-end matrices."""
    state = TinyCnn14().state_dict()
    if front_end_matrices:
        real, imag = pretrained.stft_matrices(1024, 1024)
        state.update({"spectrogram_extractor.stft.conv_real.weight":
                      torch.tensor(real[:, None, :], dtype=torch.float32),
                      "spectrogram_extractor.stft.conv_imag.weight":
                      torch.tensor(imag[:, None, :], dtype=torch.float32),
                      "logmel_extractor.melW": torch.tensor(audio.filterbank_matrix(PANNS))})
    obj = {"iteration": 1, "model": state, "sampler": {"indexes": np.arange(4)}}
    if edit:
        edit(obj)
    return save_like_published(obj, path)


def test_a_published_structured_pickle_loads_under_weights_only(tmp_path):
    path = tiny_published(tmp_path / "c.pth")
    with pytest.raises(pickle.UnpicklingError):             # what weights_only alone does
        torch.load(path, weights_only=True)
    globals_needed = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    assert "numpy.core.multiarray._reconstruct" in globals_needed
    model = TinyCnn14(n_classes=3)
    note_ = checkpoints.init_from_checkpoint(model, path, "test_tiny_cnn14", PANNS)
    assert "afresh" in note_
    np.testing.assert_array_equal(model.conv_block3.conv1.weight.detach(),
                                  pretrained.safe_load(path, "x")["model"]
                                  ["conv_block3.conv1.weight"])


@pytest.mark.parametrize("edit, message", [
    (lambda o: o["model"].update({"conv_block2.conv1.weightX":
                                  o["model"].pop("conv_block2.conv1.weight")}),
     "missing conv_block2.conv1.weight; unexpected conv_block2.conv1.weightX"),
    (lambda o: o["model"].pop("bn0.running_var"), "missing bn0.running_var"),
    (lambda o: o["model"].update({"fc1.weight": torch.zeros(16, 8)}),
     "reshaped fc1.weight (16, 8) (model: (16, 16))"),
    (lambda o: o["model"]["logmel_extractor.melW"].mul_(1.01),
     "logmel_extractor.melW differs from the panns_mel front end's by"),
    (lambda o: o["model"].update({"logmel_extractor.melW": torch.zeros(257, 64)}),
     "logmel_extractor.melW is (257, 64), the panns_mel front end's is (513, 64)"),
    (lambda o: o.update(when=datetime.date(2020, 1, 1)),
     "it needs datetime.date, which are not allowed"),
])
def test_a_bad_published_file_fails_naming_the_key(tmp_path, edit, message):
    path = tiny_published(tmp_path / "bad.pth", edit)
    with pytest.raises(ValueError, match=re.escape(message)) as e:
        checkpoints.init_from_checkpoint(TinyCnn14(n_classes=3), path, "test_tiny_cnn14", PANNS)
    assert str(path) in str(e.value)


def test_a_vggish_file_given_to_cnn14_names_the_file_expected(tmp_path):
    path = tmp_path / "vggish-10086976.pth"
    torch.save(network.build_audio("vggish", 2, (64, 96)).state_dict(), path)
    with pytest.raises(ValueError) as e:
        checkpoints.init_from_checkpoint(TinyCnn14(n_classes=3), path, "test_tiny_cnn14", PANNS)
    msg = str(e.value)
    assert "Found a VGGish state dict" in msg and "Cnn14_mAP=0.431.pth" in msg
    assert "zenodo.org/record/3987831" in msg and "missing bn0.bias" in msg
    with pytest.raises(ValueError, match="expect the 'panns' front end's analysis unchanged; "
                                         "these features are vggish_mel"):
        checkpoints.init_from_checkpoint(TinyCnn14(n_classes=3), tiny_published(tmp_path / "p.pth"),
                                   "test_tiny_cnn14", audio.VGGISH)
    with pytest.raises(ValueError, match="no such file"):
        checkpoints.init_from_checkpoint(TinyCnn14(), tmp_path / "nope.pth", "test_tiny_cnn14", PANNS)


# ---------------------------------------------------------------- VGGish
@pytest.fixture(scope="module")
def vggish_reference():
    """torchvggish's network with random weights, calibrated so that the PCA's clip range
    is exercised: PCA means = the mean embedding, eigenvectors = a random rotation scaled
    so that the whitened values spread over about [-3, 3]."""
    from torchvggish import torchvggish as tv
    torch.manual_seed(0)
    ref = tv._vgg(postprocess=False).eval()
    # every signal at 1 s (one patch each); a 10 s chirp (10 patches, each its own band)
    patches = {1: np.concatenate([audio.features(signal(k, 1, 16000), 16000, audio.VGGISH)
                                  for k in SIGNALS]),
               10: audio.features(signal("chirp", 10, 16000), 16000, audio.VGGISH)}
    with torch.no_grad():
        emb = ref(torch.from_numpy(np.concatenate(list(patches.values()))
                                   ).transpose(1, 2)[:, None]).numpy()
    rotation, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((128, 128)))
    pproc = object.__new__(tv.Postprocessor)                # its __init__ downloads the file
    pproc._pca_matrix = torch.tensor(rotation / (emb.std() + 1e-6) * 1.5, dtype=torch.float32)
    pproc._pca_means = torch.tensor(emb.mean(0).reshape(-1, 1), dtype=torch.float32)
    return ref, pproc, patches


def test_vggish_equals_torchvggish_both_ways_and_after_pca(vggish_reference, tmp_path):
    """The release's state dict and PCA file (numpy arrays, numpy 1.x names) load into
    torchvggish / vggish_pca; embeddings before PCA within a relative 1e-4 of
    torchvggish's (ReLU on: torchvggish; off: its network with the ReLU removed, Google's
    VGGish), after PCA + 8-bit quantisation within one step."""
    ref, pproc, patches = vggish_reference
    weights = tmp_path / "vggish-10086976.pth"
    torch.save(collections.OrderedDict(ref.state_dict()), weights)
    pca = save_like_published({"pca_eigen_vectors": pproc._pca_matrix.double().numpy(),
                               "pca_means": pproc._pca_means.double().numpy().ravel()},
                              tmp_path / "vggish_pca_params-970ea276.pth")
    no_relu = torch.nn.Sequential(*list(ref.embeddings)[:-1])
    models = {}
    for name in ("torchvggish", "vggish_pca"):      # ReLU on / off; both postprocess
        models[name] = network.build_audio(name, 5, (64, 96)).eval()
        checkpoints.init_from_checkpoint(models[name], weights, name, audio.VGGISH, pca)
    for seconds, x in patches.items():
        x = torch.from_numpy(x)[:, None]
        with torch.no_grad():
            relu_ref = ref(x.transpose(2, 3))
            flat = ref.features(x.transpose(2, 3)).permute(0, 2, 3, 1).reshape(len(x), -1)
            plain_ref = no_relu(flat)
            out = {k: m(x)["embedding"] for k, m in models.items()}
            # before the postprocessor: vggish_pca's embedding is vggish's (the ReLU off)
            before = {k: m.embeddings(m.features(x.transpose(2, 3)).permute(0, 2, 3, 1)
                                      .reshape(len(x), -1)) for k, m in models.items()}
        assert (plain_ref < 0).any()                        # the ReLU matters on these inputs
        for name, ours, want in (("no ReLU, vs torchvggish without it", before["vggish_pca"],
                                  plain_ref),
                                 ("ReLU, vs torchvggish", before["torchvggish"], relu_ref)):
            note(f"vggish embedding ({name}), relative", relative(ours, want))
            assert relative(ours, want) < 1e-4, name
        assert relative(before["vggish_pca"], relu_ref) > 0.1   # the flag changes it
        q_ref = pproc.postprocess(relu_ref)
        q_plain = pproc.postprocess(plain_ref)
        steps = max(float((out["torchvggish"] - q_ref).abs().max()),
                    float((out["vggish_pca"] - q_plain).abs().max()))
        note("vggish 8-bit embedding vs torchvggish, steps", steps)
        assert steps <= 1
        assert ((q_plain == 0) | (q_plain == 255)).any() and out["vggish_pca"].std() > 10
    with pytest.raises(ValueError, match=r"set VGGISH_PCA_PARAMS \(expected "
                                         r"vggish_pca_params-970ea276\.pth, published at the "
                                         r"torchvggish release"):
        checkpoints.init_from_checkpoint(network.build_audio("vggish_pca", 5, (64, 96)), weights,
                                   "vggish_pca", audio.VGGISH)
    with pytest.raises(ValueError, match="is a VGGish state dict .*, not the PCA parameters"):
        checkpoints.init_from_checkpoint(network.build_audio("vggish_pca", 5, (64, 96)), weights,
                                   "vggish_pca", audio.VGGISH, weights)


def test_old_feature_records_without_the_panns_fields_read_back_as_vggish():
    record = audio.VGGISH.to_dict()
    for key in ("spectrum", "mel_scale", "mel_norm", "log_scale", "log_floor", "centre_padding"):
        record.pop(key)
    assert audio.FrontEnd.from_dict(record) == audio.VGGISH
    assert audio.VGGISH.name == "vggish_mel" and PANNS.name == "panns_mel"
    assert PANNS.audio_folder == "32000hz_mono" and PANNS.patch_shape == (64, 1001)
    assert PANNS.n_frames(320000) == 1001 and PANNS.one_patch_samples == 320000
    patches = audio.features(signal("noise", 20, 32000), 32000, PANNS)
    assert patches.shape == (2, 64, 1001)         # frames 0-1000 and 1000-2000 of 2001


# ---------------------------------------------------------------- the two ways to use them
step04 = load_script("04_make_datalists")
step11 = load_script("11_linear_probe")
SHORT = audio.front_end("panns", patch_frames=101, patch_hop_frames=100)   # 1 s patches


@pytest.fixture()
def panns_syn(tmp_path):
    """Panns-front-end features of 3 classes (class c lights up bands 20c..20c+12), 1 s
    patches (the patch length may differ from the preset's: CNN14 pools globally), and a
    published-structured TinyCnn14 file."""
    rng = np.random.default_rng(0)
    lists = tmp_path / "file_lists" / "syn"
    datafiles.write_lines(lists / "classes.txt", ["a", "b", "c"])
    tracks = {}
    for split, n in (("train", 8), ("val", 4)):
        ids = [f"{split}/{'abc'[c]}/t{i}" for c in range(3) for i in range(n)]
        for vid in ids:
            c = "abc".index(vid.split("/")[1])
            x = rng.normal(-40, 5, (1 + len(tracks) % 2, 64, 101)).astype(np.float32)
            x[:, 20 * c:20 * c + 12] += 15
            tracks[vid] = x
        datafiles.write_lines(lists / f"{split}_videos.txt",
                              [f"{v}\t{'abc'.index(v.split('/')[1])}" for v in ids])
        datafiles.write_lines(lists / f"{split}_32000hz_mono_audio.txt", ids)
    write_feature_folder(tmp_path / "data" / "syn" / "features", tracks, SHORT)
    common = ["--dataset", "syn", "--data-root", str(tmp_path / "data"), "--output-root",
              str(tmp_path), "--front-end", "panns", "--patch-frames", "101",
              "--patch-hop-frames", "100"]
    step04.main(common)
    return tmp_path, common, tiny_published(tmp_path / "Cnn14_mAP=0.431.pth"), tracks


def test_fine_tuning_from_a_published_file_runs_through_train_py(panns_syn):
    out, common, path, _ = panns_syn
    train.main(common + ["--model", "test_tiny_cnn14", "--init-checkpoint", str(path),
                         "--epochs", "1", "--freeze-body-epochs", "1", "--body-lr-scale",
                         "0.1", "--batch-size", "8", "--run", "ft", "--no-spec-augment"])
    ckpt = torch.load(out / "runs" / "syn" / "ft" / "last.pt", weights_only=True)
    published = pretrained.safe_load(path, "x")["model"]
    for key, value in ckpt["model"].items():     # frozen body (batch norms too) = the file's
        if not key.startswith("fc_audioset"):
            assert torch.equal(value, published[key]), key
    assert ckpt["model"]["fc_audioset.weight"].shape == (3, 16)
    assert ckpt["front_end"]["name"] == SHORT.name and ckpt["patch_shape"] == [64, 101]
    npy = out / "npy_files" / "syn" / "ft"
    assert np.load(npy / "val_scores.npy").shape == (12, 3)
    assert np.load(npy / "val_embedding.npy").shape == (12, 16)


def test_frozen_embeddings_score_through_train_py_and_the_probe_learns(panns_syn):
    """--epochs 0 scores the published weights as loaded; step 11 fits a probe on them."""
    out, common, path, tracks = panns_syn
    train.main(common + ["--model", "test_tiny_cnn14", "--init-checkpoint", str(path),
                         "--epochs", "0", "--eval-splits", "train", "val", "--run", "emb"])
    npy = out / "npy_files" / "syn" / "emb"
    model = TinyCnn14(n_classes=3).eval()
    model.load_state_dict({**model.state_dict(), **{
        k: v for k, v in pretrained.safe_load(path, "x")["model"].items()
        if k in model.state_dict() and not k.startswith("fc_audioset")}})
    ids = datafiles.read_ids(npy / "val_ids.txt")
    emb = np.load(npy / "val_embedding.npy")
    for row in (0, 5):
        x = torch.from_numpy(tracks[ids[row]].astype(np.float16).astype(np.float32))[:, None]
        with torch.no_grad():
            want = model(x)["embedding"].mean(0).numpy()
        np.testing.assert_allclose(emb[row], want, rtol=1e-4, atol=1e-5)
    # the same, scored in two shards (the second run twice: it resumes, skipping its file)
    for shard in ("2/2", "1/2", "1/2"):
        train.main(common + ["--model", "test_tiny_cnn14", "--init-checkpoint", str(path),
                             "--epochs", "0", "--eval-splits", "train", "val", "--run", "embs",
                             "--shard", shard])
        if shard == "2/2":
            assert not (out / "npy_files" / "syn" / "embs" / "val_embedding.npy").exists()
    for name in ("val_embedding.npy", "train_scores.npy", "val_patch_track.npy"):
        np.testing.assert_array_equal(np.load(npy / name),
                                      np.load(out / "npy_files" / "syn" / "embs" / name))
    assert datafiles.read_ids(out / "npy_files" / "syn" / "embs" / "val_ids.txt") == ids
    with pytest.raises(SystemExit):
        train.main(common + ["--model", "test_tiny_cnn14", "--epochs", "1", "--shard", "1/2"])
    step11.main(common[:6] + ["--run", "emb", "--eval-splits", "val"])
    probe = out / "npy_files" / "syn" / "emb_probe"
    scores = np.load(probe / "val_scores.npy")
    assert datafiles.read_ids(probe / "val_ids.txt") == ids and scores.shape == (12, 3)
    report = json.loads((probe / "probe.json").read_text())
    assert report["l2"] in report["grid"] and len(report["minival_top1"]) == len(report["grid"])
    assert report["splits"]["val"]["top1"] > 60         # chance is 33 %
