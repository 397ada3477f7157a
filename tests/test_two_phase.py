"""Phase I of the two-phase DCASE 2021 system: the dcase2021 front end, the residual-inception
backbones, Adam + the L2 term, the recipes (demo and GPU) and the contract Phase II reads."""
import types

import numpy as np
import pytest
import torch
import yaml

from soundtrack import audio
from soundtrack import cli
from soundtrack import datafiles
from soundtrack import metrics
import network
from conftest import REPO, load_script, sine, write_feature_folder

import train
from soundtrack.training import loop, objectives, optim, tasks

step04 = load_script("04_make_datalists")
DEMO = REPO / "recipes" / "two_phase_demo"
GPU = REPO / "recipes" / "two_phase_gpu"
AUDIO, VISUAL = ("aud_mel", "aud_gam", "aud_cqt"), ("vis_inc", "vis_conv")


def recipe_settings(path, **extra):
    """config.py's settings with a recipe's keys (and `extra`) set, as cli.parse makes them."""
    values = {k: getattr(cli.config, k) for k in cli.config_keys()}
    values.update(cli.load_yaml(path))
    cfg = cli.Settings({k.lower(): v for k, v in values.items()})
    cfg.update(extra)
    cfg.shard = cli.parse_shard(cfg.shard)
    return cfg


# ---------------------------------------------------------------- the dcase2021 front end
def test_dcase2021_preset_is_the_papers_analysis():
    for feature in audio.FEATURES:
        fe = audio.front_end("dcase2021", feature, deltas=True)
        assert (fe.sample_rate_hz, fe.channels, fe.num_bands) == (32000, "stereo", 128)
        assert (fe.window_samples, fe.hop_samples) == (2560, 448)          # 80 ms, 14 ms
        assert fe.patch_shape == (6, 128, 709) and fe.in_channels == 6
        assert 9.9 < fe.one_patch_samples / 32000 <= 10.0                  # a 10 s segment
        assert fe.audio_folder == "32000hz_stereo"
    # the CQT's 128 bins end below Nyquist, as recorded in features.json
    record = datafiles.feature_record(audio.front_end("dcase2021", "cqt", True), "float16", "pad")
    d = record["front_end"]
    top = audio.cqt_centres_hz(128, d["cqt_min_hz"], d["cqt_bins_per_octave"])[-1]
    assert (d["cqt_min_hz"], d["cqt_bins_per_octave"]) == (40.0, 15)
    assert top * (1 + 1 / audio.cqt_q(15)) < 16000 and top > 12000         # uses the range


@pytest.mark.parametrize("feature", audio.FEATURES)
def test_dcase2021_keeps_both_channels_and_stacks_their_deltas(feature):
    """Six channels: left static / delta / delta-delta, then right; each channel its own
    sound (a 500 Hz tone left, a 3 kHz tone right), deltas over the whole track."""
    fe = audio.front_end("dcase2021", feature, deltas=True)
    rate = 32000
    left, right = sine(10.2, 500.0, rate), sine(10.2, 3000.0, rate, amplitude=0.2)
    left[: rate * 4] *= np.linspace(0, 1, rate * 4)                       # a fade-in: deltas > 0
    x = audio.features(np.stack([left, right], axis=1), rate, fe)
    assert x.shape == (1, 6, 128, 709) and x.dtype == np.float32
    centres = audio.band_centres_hz(fe)
    for ch, hz in ((0, 500.0), (3, 3000.0)):
        peak = centres[x[0, ch].mean(axis=1).argmax()]
        assert abs(np.log2(peak / hz)) < 0.25, (ch, peak, hz)              # within a 1/4 octave
    spec = audio.log_spectrogram(left, rate, fe)[:709]                      # [frames, bands]
    d = audio.delta(audio.log_spectrogram(left, rate, fe))
    np.testing.assert_allclose(x[0, 0], spec.T, atol=1e-5)
    np.testing.assert_allclose(x[0, 1], d[:709].T, atol=1e-5)
    np.testing.assert_allclose(x[0, 2], audio.delta(d)[:709].T, atol=1e-5)
    band = np.abs(centres - 500).argmin()
    assert x[0, 1, band, 50:250].mean() > 0                                # the fade-in rises
    assert not np.allclose(x[0, :3], x[0, 3:])                             # stereo kept


def test_delta_of_a_ramp_is_its_slope():
    spec = np.arange(20, dtype=np.float32)[:, None] * np.float32(0.5) + np.zeros((1, 3))
    d = audio.delta(spec)
    np.testing.assert_allclose(d[2:-2], 0.5, atol=1e-6)                    # interior: the slope
    assert 0 < d[0, 0] < 0.5                                               # edges replicated


# ---------------------------------------------------------------- the backbones
@pytest.mark.parametrize("shape", [(6, 128, 138), (1, 64, 96)])           # demo, VGGish patches
def test_residual_inception_outputs_the_dense_blocks_layers(shape):
    for name in ("residual_inception", "residual_inception_slim"):
        model = network.build_audio(name, 8, shape).eval()
        out = model(torch.randn(2, *shape))
        assert out["logits"].shape == (2, 8) and out["embedding"].shape == (2, 1024)
        assert (out["embedding"] >= 0).all()                               # FC(1024) after ReLU
        torch.testing.assert_close(out["logits"], model.fc_logits(out["embedding"]))
        assert network.head_prefixes(model) == ("fc_embedding.", "fc_logits.")


# ---------------------------------------------------------------- Adam + the paper's L2 term
def test_l2_penalty_is_half_lambda_times_the_trainable_weights_squares():
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2),
                                torch.nn.Linear(2, 2))
    with torch.no_grad():
        for i, p in enumerate(model.parameters()):
            p.copy_(torch.arange(p.numel(), dtype=torch.float32).view_as(p) + i)
    weights = (model[0].weight, model[2].weight)                           # not biases, not BN
    by_hand = 0.5 * 0.01 * sum(float((w.detach() ** 2).sum()) for w in weights)
    assert float(objectives.l2_penalty(model, 0.01).detach()) == pytest.approx(by_hand, rel=1e-6)
    model[0].weight.requires_grad_(False)                                  # frozen: not counted
    by_hand -= 0.5 * 0.01 * float((model[0].weight.detach() ** 2).sum())
    assert float(objectives.l2_penalty(model, 0.01).detach()) == pytest.approx(by_hand, rel=1e-6)
    assert float(objectives.l2_penalty(model, 0.0).detach()) == 0.0


class TinyLinear(torch.nn.Module):
    HEAD = ("fc_logits",)

    def __init__(self):
        super().__init__()
        self.fc_logits = torch.nn.Linear(6, 3)

    def forward(self, x):
        return {"logits": self.fc_logits(x.flatten(1))}


def one_step(cfg, model, x, y, task):
    """One optimizer step of train.py's own epoch loop over a one-batch loader."""
    env = types.SimpleNamespace(device=torch.device("cpu"), rank=0, world=1, main=True)
    optimizer = optim.make_optimizer(model, cfg)
    scheduler = optim.make_scheduler(optimizer, cfg, 1)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    model.train()
    loss = loop.train_one_epoch(model, [(x, y, torch.zeros(len(y)))], task, optimizer,
                                 scheduler, scaler, env, cfg, 0)
    return optimizer, loss


def test_l2_lambda_adds_lambda_theta_to_the_gradient():
    """SGD (Nesterov, first step: update = lr (1 + momentum) grad): with L2_LAMBDA the step
    moves the weight matrix further by lr (1 + momentum) lambda theta, the bias not at all."""
    moved = []
    for l2 in (0.0, 0.5):
        cfg = recipe_settings(DEMO / "aud_mel.yaml", optimizer="sgd", l2_lambda=l2,
                              mixup_alpha=0.0, spec_augment=False, warmup_epochs=0.0,
                              learning_rate=0.1, channels_last=False)
        torch.manual_seed(0)
        model = TinyLinear()
        start = [p.detach().clone() for p in model.parameters()]
        task = tasks.AudioClassification(cfg, 3, None, [])
        one_step(cfg, model, torch.ones(4, 1, 2, 3), torch.tensor([0, 1, 2, 0]), task)
        moved.append([p.detach() - s for p, s in zip(model.parameters(), start)])
    factor = 0.1 * (1 + cfg.momentum) * 0.5                               # lr (1 + m) lambda
    (w0, b0), (w1, b1) = moved
    torch.testing.assert_close(w1 - w0, -factor * start[0], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(b1, b0)


# ---------------------------------------------------------------- the recipes
def test_recipes_audio_backbones_differ_only_in_their_filterbank():
    for folder in (DEMO, GPU):
        texts = {b: yaml.safe_load((folder / f"{b}.yaml").read_text()) for b in AUDIO}
        for b, keys in texts.items():
            assert keys.pop("feature") == b.split("_")[1]
            assert keys["front_end"] == "dcase2021" and keys["deltas"] is True
            assert keys["optimizer"] == "adam" and keys["l2_lambda"] > 0
            assert keys["mixup_alpha"] > 0
        assert texts["aud_mel"] == texts["aud_gam"] == texts["aud_cqt"], folder
        for b in VISUAL:
            keys = yaml.safe_load((folder / f"{b}.yaml").read_text())
            assert keys["frames_per_second"] == "2" and keys["mixup_alpha"] > 0
            assert keys["optimizer"] == "adam" and keys["l2_lambda"] > 0
    demo = [yaml.safe_load((DEMO / f"{b}.yaml").read_text()) for b in VISUAL]
    assert {k: demo[0][k] for k in ("frames_per_second", "frame_size_pixels")} == {
        k: demo[1][k] for k in ("frames_per_second", "frame_size_pixels")}   # one step-08 folder
    gpu = {b: yaml.safe_load((GPU / f"{b}.yaml").read_text())["model"] for b in VISUAL}
    assert gpu == {"vis_inc": "tv_inception_v3", "vis_conv": "tv_convnext_tiny"}
    assert not {d["model"] for d in demo} & set(gpu.values())              # demo: stand-ins
    assert "stand-in" in (DEMO / "vis_inc.yaml").read_text()


@pytest.mark.parametrize("backbone", AUDIO + VISUAL)
def test_gpu_recipe_trains_one_step(backbone):
    """Each GPU recipe's model and optimisation (Adam + L2, mixup, KL) through one step of
    train.py's loop, on the CPU with random weights: a batch of 2 full 10 s dcase2021 patches,
    or 2 frames at the model's smallest size."""
    cfg = recipe_settings(GPU / f"{backbone}.yaml", pretrained_weights="none",
                          channels_last=False)
    torch.manual_seed(0)
    if backbone in AUDIO:
        fe = audio.front_end_from_settings(cfg)
        model = network.build_audio(cfg.model, 10, fe.patch_shape)
        x = torch.randn(2, *fe.patch_shape)
        task = tasks.AudioClassification(cfg, 10, None, [])
    else:
        model = network.build(cfg.model, n_classes=10, weights="none")
        size = network.model_class(cfg.model).MIN_INPUT_PIXELS
        x = torch.randint(0, 256, (2, 3, size, size), dtype=torch.uint8)
        task = tasks.VisualClassification(cfg, 10, types.SimpleNamespace(
            subset=None, labels=np.zeros(0)), [])
    before = model.fc_logits.weight.detach().clone()
    optimizer, loss = one_step(cfg, model, x, torch.tensor([1, 7]), task)
    assert type(optimizer) is torch.optim.Adam and np.isfinite(loss)
    assert not torch.equal(before, model.fc_logits.weight)


# ---------------------------------------------------------------- the contract Phase II reads
def test_phase1_run_writes_both_splits_contract_with_the_fc1024_embedding(tmp_path):
    """train.py with a demo audio recipe on tiny dcase2021 features, --eval-splits train val:
    each split has scores, logits = FC(n) and embedding = FC(1024) per track, ids, labels, and
    the checkpoint records the model, the optimizer and L2_LAMBDA."""
    fe = audio.front_end("dcase2021", "mel", True, patch_frames=16, patch_hop_frames=16)
    rng = np.random.default_rng(0)
    lists = tmp_path / "file_lists" / "syn"
    datafiles.write_lines(lists / "classes.txt", ["a", "b"])
    tracks, rows = {}, {"train": [], "val": []}
    for split, n in (("train", 8), ("val", 3)):
        for c in (0, 1):
            for i in range(n):
                vid = f"{split}/{'ab'[c]}/t{i}"
                tracks[vid] = rng.normal(2 * c, 1, (1 + i % 2, *fe.patch_shape))
                rows[split].append(f"{vid}\t{c}")
    for split in rows:
        datafiles.write_lines(lists / f"{split}_videos.txt", rows[split])
        datafiles.write_lines(lists / f"{split}_32000hz_stereo_audio.txt",
                              [r.split("\t")[0] for r in rows[split]])
    write_feature_folder(tmp_path / "data" / "syn" / "features", tracks, fe)
    common = ["--dataset", "syn", "--data-root", str(tmp_path / "data"), "--output-root",
              str(tmp_path), "--config", str(DEMO / "aud_mel.yaml"), "--patch-frames", "16",
              "--patch-hop-frames", "16"]
    step04.main(common)
    train.main(common + ["--epochs", "1", "--run", "tp_aud_mel", "--batch-size", "8",
                         "--eval-splits", "train", "val", "--minival-fraction", "0"])
    npy = tmp_path / "npy_files" / "syn" / "tp_aud_mel"
    for split, n in (("train", 16), ("val", 6)):
        ids = datafiles.read_ids(npy / f"{split}_ids.txt")
        assert len(ids) == n and set(ids) == {r.split("\t")[0] for r in rows[split]}
        emb, logits = np.load(npy / f"{split}_embedding.npy"), np.load(npy / f"{split}_logits.npy")
        assert emb.shape == (n, 1024) and logits.shape == (n, 2)
        assert np.load(npy / f"{split}_scores.npy").shape == (n, 2)
        np.testing.assert_array_equal(np.load(npy / f"{split}_labels.npy"),
                                      [int(i.split("/")[1] == "b") for i in ids])
    ckpt = torch.load(tmp_path / "runs" / "syn" / "tp_aud_mel" / "best.pt", weights_only=False)
    assert ckpt["model_name"] == ckpt["config"]["model"] == "residual_inception_slim"
    assert ckpt["config"]["optimizer"] == "adam" and ckpt["config"]["l2_lambda"] == 1e-4
    assert ckpt["front_end"]["preset"] == "dcase2021" and ckpt["patch_shape"] == [6, 128, 16]
    # the embedding is the FC(1024) layer: the checkpoint's last layer maps it to the logits
    # (a track's logits are the mean of its patches' logits: linear, so exact on the mean)
    w, b = ckpt["model"]["fc_logits.weight"].numpy(), ckpt["model"]["fc_logits.bias"].numpy()
    np.testing.assert_allclose(np.load(npy / "val_embedding.npy") @ w.T + b,
                               np.load(npy / "val_logits.npy"), rtol=1e-4, atol=1e-4)


def test_above_chance_is_the_exact_binomial_tail_over_the_majority_class():
    scores = np.eye(4)[[0, 1, 2, 0]]
    labels = np.array([0, 1, 2, 3])                    # 3 of 4 right, balanced: chance 1/4
    got = metrics.above_chance(scores, labels)
    assert (got["n"], got["n_correct"], got["chance_top1"]) == (4, 3, 25.0)
    assert got["binomial_p"] == pytest.approx(4 * 0.25 ** 3 * 0.75 + 0.25 ** 4)
    skewed = metrics.above_chance(np.eye(2)[[0, 0, 0, 1]], np.array([0, 0, 0, 0]))
    assert skewed["chance_top1"] == 100.0 and skewed["binomial_p"] == pytest.approx(1.0)
