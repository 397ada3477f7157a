"""train.py on synthetic audio images: it learns, resumes exactly, and runs under torchrun."""
import csv
import json
import os
import re
import signal
import subprocess
import sys
import types

import numpy as np
import pytest
import torch

from soundtrack import audio
from soundtrack import datafiles
from soundtrack import metrics
import network
from AudioDataLoader import Datalist, PatchDataset, minival_split
from conftest import REPO, load_script, write_feature_folder

import train
from soundtrack.training import checkpoints, loop, objectives, optim
from soundtrack.training.env import Dist

step04 = load_script("04_make_datalists")
N_CLASSES = 3


def make_features(root, out, tracks_per_class=(12, 6), patches=3, seed=0):
    """Lists and float16 patches where class c lights up mel bands 20c..20c+12, under noise."""
    rng = np.random.default_rng(seed)
    lists = out / "file_lists" / "syn"
    lists.mkdir(parents=True, exist_ok=True)
    datafiles.write_lines(lists / "classes.txt", [f"class{c}" for c in range(N_CLASSES)])
    tracks = {}
    for split, n in zip(("train", "val"), tracks_per_class):
        rows, ids = [], []
        for c in range(N_CLASSES):
            for i in range(n):
                vid = f"{split}/class{c}/clip{i:02d}"
                x = rng.normal(0, 1, (patches + i % 2, 64, 96)).astype(np.float32)
                x[:, 20 * c: 20 * c + 12, :] += 1.0
                tracks[vid] = x
                rows.append(f"{vid}\t{c}")
                ids.append(vid)
        datafiles.write_lines(lists / f"{split}_videos.txt", rows)
        datafiles.write_lines(lists / f"{split}_16000hz_mono_audio.txt", ids)
    write_feature_folder(root / "syn" / "features", tracks)
    return ["--dataset", "syn", "--data-root", str(root), "--output-root", str(out)]


@pytest.fixture()
def syn(tmp_path):
    common = make_features(tmp_path / "data", tmp_path)
    step04.main(common)
    return tmp_path, common + ["--batch-size", "16", "--learning-rate", "0.003",
                               "--warmup-epochs", "0.5", "--minival-fraction", "0.2"]


def test_learns_and_writes_every_output(syn, capsys):
    out, common = syn
    train.main(common + ["--epochs", "4", "--run", "r", "--mixup-alpha", "0.4"])
    npy = out / "npy_files" / "syn" / "r"
    scores = np.load(npy / "val_scores.npy")
    ids = datafiles.read_ids(npy / "val_ids.txt")
    labels = np.array([int(i.split("/")[1][-1]) for i in ids])
    assert scores.shape == (18, N_CLASSES) and np.allclose(scores.sum(1), 1, atol=1e-4)
    assert np.mean(scores.argmax(1) == labels) > 0.8          # chance is 1/3
    logits, track = np.load(npy / "val_patch_logits.npy"), np.load(npy / "val_patch_track.npy")
    assert len(logits) == len(track) and np.array_equal(np.unique(track), np.arange(18))
    assert np.load(npy / "val_embedding.npy").shape[0] == 18
    np.testing.assert_array_equal(np.load(npy / "val_labels.npy"), labels)
    np.testing.assert_allclose(np.load(npy / "val_logits.npy"),
                               metrics.track_mean(logits, track, 18), rtol=1e-6)
    np.testing.assert_allclose(scores, metrics.track_scores(logits, track, 18), rtol=1e-6)
    run = out / "runs" / "syn" / "r"
    ckpt = torch.load(run / "best.pt", weights_only=False)
    assert ckpt["config"]["model"] == "slim_cnn" and ckpt["classes"][0] == "class0"
    assert ckpt["front_end"]["name"] == "vggish_mel" and ckpt["patch_shape"] == [64, 96]
    assert "git_commit" in ckpt and "torch" in ckpt["versions"]
    rows = list(csv.DictReader(open(run / "log.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2", "3", "4"]
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    events = list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert events
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    assert {"train/loss", "lr", "minival/track_top1", "val/track_top1"} <= set(acc.Tags()["scalars"])
    assert "best on minival, never on the scored split" in capsys.readouterr().out


@pytest.mark.parametrize("ema_decay", ["0", "0.9"])
def test_resume_after_kill_9_matches_a_straight_run(syn, ema_decay):
    out, common = syn
    # the same torch threads in this process and the killed one: the numbers depend on it
    args = common + ["--epochs", "2", "--loader-workers", "0", "--torch-threads", "1",
                     "--ema-decay", ema_decay]
    train.main(args + ["--run", "straight"])
    # SIGKILL at the 2nd optimizer step of epoch 2 (deterministic: no timing involved)
    per_epoch = len(train.build(cli_cfg(args), Dist("cpu"),
                                datafiles.Paths(cli_cfg(args))).loader)
    env = dict(os.environ, SOUNDTRACK_KILL_AT_STEP=str(per_epoch + 2))
    proc = subprocess.run([sys.executable, str(REPO / "train.py"), *args, "--run", "killed"],
                          cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, start_new_session=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL
    last = torch.load(out / "runs" / "syn" / "killed" / "last.pt", weights_only=False)
    assert last["epoch"] == 1, "the kill was meant to land in epoch 2"
    train.main(args + ["--run", "killed", "--resume"])
    a = np.load(out / "npy_files" / "syn" / "straight" / "val_scores.npy")
    b = np.load(out / "npy_files" / "syn" / "killed" / "val_scores.npy")
    assert np.array_equal(a, b)


def test_weight_average_follows_the_live_weights_at_the_ramped_rate():
    from soundtrack.training.ema import WeightAverage
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    ema = WeightAverage(model, 0.99)
    start = model[0].weight.detach().clone()
    expect = start.clone()
    for n in range(1, 4):
        with torch.no_grad():
            model[0].weight.add_(1.0)
        model[1].num_batches_tracked += 5
        ema.update()
        d = min(0.99, (1 + n) / (10 + n))          # 2/11, 3/12, 4/13: the ramp
        expect = d * expect + (1 - d) * model[0].weight.detach()
    torch.testing.assert_close(ema.state["0.weight"], expect)
    assert ema.state["1.num_batches_tracked"] == 15          # integers follow, not averaged
    live = model[0].weight.detach().clone()
    with ema.applied():
        torch.testing.assert_close(model[0].weight.detach(), expect)
    assert torch.equal(model[0].weight.detach(), live)
    # bound to the module: a step through torch.compile's wrapper is averaged all the same
    compiled = torch.compile(model)
    with torch.no_grad():
        next(compiled.parameters()).add_(1.0)          # the Linear's weight
    ema.update()
    d = min(0.99, 5 / 14)
    torch.testing.assert_close(ema.state["0.weight"], d * expect + (1 - d) * live.add(1.0))


def test_ema_scores_the_average_and_the_record_says_so(syn, capsys):
    out, common = syn
    args = common + ["--epochs", "2", "--run", "e", "--eval-checkpoint", "last",
                     "--torch-threads", "1"]
    train.main(args + ["--ema-decay", "0.9"])
    assert "the weight average (EMA_DECAY 0.9" in capsys.readouterr().out
    run, npy = out / "runs" / "syn" / "e", out / "npy_files" / "syn" / "e"
    last = torch.load(run / "last.pt", weights_only=False)
    steps = last["ema"]["updates"]
    assert last["ema"]["decay"] == 0.9 and steps > 0
    assert any(not torch.equal(v, last["model"][k]) for k, v in last["ema"]["state"].items())
    record = json.loads((npy / "record.json").read_text())
    assert record["splits"]["val"]["checkpoint"]["weights"] == "ema"
    # predict.py's classifier and a body started from this run load the average too
    from soundtrack import inference
    loaded = inference.Classifier(run / "last.pt").model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in last["ema"]["state"].items())
    fresh = network.build_audio("slim_cnn", N_CLASSES, (64, 96))
    checkpoints.init_from_checkpoint(fresh, run / "last.pt", "slim_cnn",
                                     audio.FrontEnd.from_dict(last["front_end"]))
    assert torch.equal(fresh.state_dict()["blocks.0.0.weight"],
                       last["ema"]["state"]["blocks.0.0.weight"])
    # the scores are the average's: rescoring with the live weights gives others
    ema_scores = np.load(npy / "val_scores.npy")
    torch.save({**last, "ema": None}, run / "last.pt")
    train.main(args + ["--eval-only"])
    assert not np.array_equal(np.load(npy / "val_scores.npy"), ema_scores)
    # a run made without the average does not resume with one (nor the reverse)
    with pytest.raises(SystemExit):
        train.main(args + ["--resume", "--epochs", "3", "--ema-decay", "0.9"])
    assert "holds no weight average, this run asks for EMA_DECAY 0.9" in capsys.readouterr().err
    torch.save(last, run / "last.pt")
    with pytest.raises(SystemExit):
        train.main(args + ["--resume", "--epochs", "3"])
    assert ("holds a weight average (EMA_DECAY 0.9), this run asks for EMA_DECAY 0.0"
            in capsys.readouterr().err)
    with pytest.raises(SystemExit):
        train.main(args + ["--overwrite", "--ema-decay", "1.0"])
    assert "EMA_DECAY must be 0 (off) or in (0, 1), got 1.0" in capsys.readouterr().err


def cli_cfg(argv):
    from soundtrack import cli
    parser = cli.parser(None, train.TRAIN_KEYS)
    parser.add_argument("--resume", default=False)
    parser.add_argument("--eval-only", default=False)
    parser.add_argument("--eval-splits", default=None)
    return cli.parse(parser, argv)


def torchrun_errors(r):
    """torchrun's stderr from its start (the failing rank's own message), less its warnings."""
    return "\n".join(line for line in r.stderr.splitlines() if "WARNING" not in line)[:6000]


def test_torchrun_two_processes_score_each_track_once(syn):
    out, common = syn
    train.main(common + ["--epochs", "1", "--run", "one"])
    one = np.load(out / "npy_files" / "syn" / "one" / "val_scores.npy")
    # --standalone: torchrun finds a free port itself. "--": it would take --run as its own
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc_per_node=2", "--", str(REPO / "train.py")]
    # the same checkpoint scored by two processes: identical scores, each track once
    r = subprocess.run(torchrun + common + ["--run", "one", "--eval-only"], cwd=REPO,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, torchrun_errors(r)
    two = np.load(out / "npy_files" / "syn" / "one" / "val_scores.npy")
    assert two.shape == one.shape and np.allclose(one, two, atol=1e-5)
    track = np.load(out / "npy_files" / "syn" / "one" / "val_patch_track.npy")
    assert np.array_equal(np.bincount(track), Datalist(
        out / "datalists" / "syn" / "vggish_mel_val.npz").n_patches)
    # and training itself runs as DDP with gloo (with the weight average: each rank
    # averages the weights DDP keeps equal, the main rank saves it)
    r = subprocess.run(torchrun + common + ["--epochs", "1", "--run", "ddp",
                                            "--ema-decay", "0.9"], cwd=REPO,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, torchrun_errors(r)
    ddp_ids = datafiles.read_ids(out / "npy_files" / "syn" / "ddp" / "val_ids.txt")
    assert len(ddp_ids) == len(set(ddp_ids)) == 18
    last = torch.load(out / "runs" / "syn" / "ddp" / "last.pt", weights_only=False)
    assert last["ema"]["updates"] > 0


def test_loader_per_track_and_packed_agree(syn):
    out, common = syn
    step04.main(common[:6] + ["--packed"])
    dl = Datalist(out / "datalists" / "syn" / "vggish_mel_train.npz")
    per_track = PatchDataset(dl, out / "data" / "syn" / "features" / "vggish_mel")
    packed = PatchDataset(dl, None, packed=out / "datalists" / "syn" / "vggish_mel_train_patches.npy")
    assert len(per_track) == len(packed) == dl.n_patches.sum()
    for i in (0, 7, len(packed) - 1):
        a, b = per_track[i], packed[i]
        assert torch.equal(a[0], b[0]) and a[1:] == b[1:] and a[0].shape == (1, 64, 96)
    fit, held = minival_split(dl.labels, 0.2, 0)
    assert not set(fit) & set(held) and len(fit) + len(held) == len(dl)
    assert set(dl.labels[held]) == set(range(N_CLASSES))


@pytest.mark.parametrize("name", ["slim_cnn", "panns_like_cnn", "resnet18", "vggish",
                                  "vgg_plain", "vgg_strided", "vgg_deepstem",
                                  "vgg_time_strided", "vgg_fullres_stem",
                                  "vgg_strided_fine", "vgg_deepstem_fine",
                                  "vgg_plain_half", "vgg_plain_lean"])
@pytest.mark.parametrize("channels", [1, 3])
def test_models_named_outputs(name, channels):
    model = network.build(name, n_classes=5, in_channels=channels).eval()
    out = model(torch.zeros(2, channels, 64, 96))
    assert out["logits"].shape == (2, 5) and out["embedding"].ndim == 2


@pytest.mark.parametrize("name, widths", [("vgg_plain", [32, 64, 128, 256]),
                                          ("vgg_plain_half", [16, 32, 64, 128]),
                                          ("vgg_plain_lean", [16, 32, 64, 256])])
def test_vgg_plain_is_the_described_baseline(name, widths):
    """4 blocks of two bias-free 3x3 convs (32-64-128-256; the width variants 16-128 and
    16-256), no strided stem, pooling between blocks only (the last block sees 8 x 12
    positions), band-wise input BN, one linear layer on the pooled feature."""
    model = network.build_audio(name, 7, (64, 96)).eval()
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [w for w in widths for _ in (0, 1)]
    assert all(c.stride == (1, 1) and c.bias is None and c.kernel_size == (3, 3) for c in convs)
    pools = [m for m in model.modules() if isinstance(m, torch.nn.AvgPool2d)]
    assert len(pools) == 3 and model.bn_bands.num_features == 64
    seen = {}
    model.blocks[-1].register_forward_hook(lambda m, i, o: seen.update(shape=o.shape))
    model(torch.zeros(2, 1, 64, 96))
    assert tuple(seen["shape"]) == (2, widths[-1], 8, 12)
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(widths[-1], 7)]
    assert model.dropout.p == 0.3 and network.head_prefixes(model) == ("fc_logits.",)


def test_vgg_strided_is_vgg_plain_behind_one_strided_conv():
    plain = network.build_audio("vgg_plain", 7, (64, 96)).eval()
    model = network.build_audio("vgg_strided", 7, (64, 96)).eval()
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 32, 32, 64, 64, 128, 128, 256, 256]
    assert convs[0].stride == (2, 2) and all(c.stride == (1, 1) for c in convs[1:])
    seen = {}
    model.blocks[-1].register_forward_hook(lambda m, i, o: seen.update(shape=o.shape))
    plain.blocks[-1].register_forward_hook(lambda m, i, o: seen.update(plain=o.shape))
    x = torch.zeros(2, 1, 64, 96)
    model(x), plain(x)
    assert tuple(seen["shape"]) == (2, 256, 4, 6) and tuple(seen["plain"]) == (2, 256, 8, 12)
    assert network.head_prefixes(model) == ("fc_logits.",) and model.dropout.p == 0.3


@pytest.mark.parametrize("name, stem, final_map", [
    ("vgg_deepstem", [(16, (1, 1)), (32, (2, 2))], (4, 6)),        # full-res conv, strided conv
    ("vgg_time_strided", [(16, (1, 2))], (8, 6)),                   # every band, half the frames
    ("vgg_deepstem_fine", [(16, (1, 1)), (32, (2, 2))], (8, 12)),  # ... and the last block at 1/8
])
def test_vgg_stem_variants(name, stem, final_map):
    """The variants tried for the default: the stem's (width, stride) convs, then vgg_plain's
    four blocks of two convs (the time-strided one 16-64-128-256 wide)."""
    model = network.build_audio(name, 7, (64, 96)).eval()
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.stride) for c in convs[:len(stem)]] == stem
    widths = [c.out_channels for c in convs[len(stem):]]
    assert widths[2:] == [64, 64, 128, 128, 256, 256] and widths[0] == widths[1] == stem[-1][0]
    assert all(c.stride == (1, 1) for c in convs[len(stem):])
    seen = {}
    model.blocks[-1].register_forward_hook(lambda m, i, o: seen.update(shape=o.shape))
    model(torch.zeros(2, 1, 64, 96))
    assert tuple(seen["shape"]) == (2, 256, *final_map)


def test_vgg_fullres_stem_pools_a_full_resolution_block_instead_of_striding():
    """Two 16-wide convs see every band and frame, 2x2 average pooling (no stride anywhere),
    then vgg_strided's four blocks: the same final map as vgg_strided."""
    model = network.build_audio("vgg_fullres_stem", 7, (64, 96)).eval()
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [16, 16, 32, 32, 64, 64, 128, 128, 256, 256]
    assert all(c.stride == (1, 1) for c in convs)
    seen = {}
    model.blocks[0].convs.register_forward_hook(lambda m, i, o: seen.update(first=o.shape))
    model.blocks[-1].register_forward_hook(lambda m, i, o: seen.update(last=o.shape))
    model(torch.zeros(2, 1, 64, 96))
    assert tuple(seen["first"]) == (2, 16, 64, 96) and tuple(seen["last"]) == (2, 256, 4, 6)
    assert network.head_prefixes(model) == ("fc_logits.",) and model.dropout.p == 0.3


def test_vgg_strided_fine_keeps_the_last_blocks_at_an_eighth():
    """vgg_strided's convs and weights, one pooling fewer: blocks 3 and 4 both see 8 x 12
    positions, the final map of vgg_plain."""
    model = network.build_audio("vgg_strided_fine", 7, (64, 96)).eval()
    strided = network.build_audio("vgg_strided", 7, (64, 96)).eval()
    assert [tuple(v.shape) for v in model.state_dict().values()] == \
        [tuple(v.shape) for v in strided.state_dict().values()]
    pools = [m for m in model.modules() if isinstance(m, torch.nn.AvgPool2d)]
    assert len(pools) == 2 and isinstance(model.blocks[-2].pool, torch.nn.Identity)
    seen = {}
    model.blocks[-2].register_forward_hook(lambda m, i, o: seen.update(third=o.shape))
    model.blocks[-1].register_forward_hook(lambda m, i, o: seen.update(last=o.shape))
    model(torch.zeros(2, 1, 64, 96))
    assert tuple(seen["third"]) == (2, 128, 8, 12) and tuple(seen["last"]) == (2, 256, 8, 12)


def test_unknown_model_lists_the_choices():
    with pytest.raises(ValueError, match="slim_cnn"):
        network.build("resnet50", n_classes=2)


def test_vggish_takes_frames_by_bands():
    """VGGish's first pooled map must be [96/2 frames, 64/2 bands]: the transpose happened."""
    model = network.build("vggish", n_classes=2).eval()
    seen = {}
    model.features[1].register_forward_hook(lambda m, i, o: seen.update(shape=o.shape))
    model(torch.zeros(1, 1, 64, 96))
    assert tuple(seen["shape"][2:]) == (96, 64)


def test_balanced_sampler_draws_classes_equally_and_splits_ranks():
    labels = np.array([0] * 90 + [1] * 9 + [2] * 1)
    ranks = [loop.BalancedSampler(labels, seed=3, world=2, rank=r) for r in (0, 1)]
    for s in ranks:
        s.set_epoch(4)
    draws = [list(s) for s in ranks]
    assert len(draws[0]) == len(draws[1]) == len(ranks[0]) == 50
    counts = np.bincount(labels[np.concatenate(draws)], minlength=3)
    assert counts.min() > 20                  # ~33 each instead of 90 / 9 / 1
    again = loop.BalancedSampler(labels, seed=3, world=2, rank=0)
    again.set_epoch(4)
    assert list(again) == draws[0]            # a resumed run draws the same patches


def test_spec_augment_zeroes_exactly_one_band_span_and_one_time_span():
    """Per patch: the zeroed cells are exactly the union of ONE run of whole bands (<= 8
    wide) and ONE run of whole frames (<= 16 wide); widths vary and reach beyond 1."""
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(64, 2, 64, 96) + 1.0                     # no zeros of its own
    y = objectives.spec_augment(x, time_frames=16, freq_bands=8, gen=gen)
    widths = []
    for b in range(len(y)):
        zero = (y[b] == 0)
        assert torch.equal(zero[0], zero[1])                # the same mask on every channel
        bands = torch.nonzero(zero[0].all(dim=1)).flatten()
        frames = torch.nonzero(zero[0].all(dim=0)).flatten()
        for run, limit in ((bands, 8), (frames, 16)):
            assert len(run) <= limit
            if len(run):
                assert torch.equal(run, torch.arange(run[0], run[0] + len(run)))  # one run
        expect = torch.zeros(64, 96, dtype=torch.bool)
        expect[bands] = True
        expect[:, frames] = True
        assert torch.equal(zero[0], expect)                 # nothing else was zeroed
        assert torch.equal(y[b][:, ~expect], x[b][:, ~expect])
        widths.append((len(bands), len(frames)))
    band_w, frame_w = zip(*widths)
    assert max(band_w) > 4 and max(frame_w) > 8 and len(set(frame_w)) > 5


def test_spec_augment_masks_two_spans_each_and_one_mask_draws_as_before():
    """SPEC_AUGMENT_MASKS 2: up to two runs of bands and two of frames per patch, each run
    within its limit; with 1 the masks are those of the one-mask draw (same generator)."""
    x = torch.rand(64, 1, 64, 96) + 1.0
    one = objectives.spec_augment(x, 16, 8, torch.Generator().manual_seed(3))
    again = objectives.spec_augment(x, 16, 8, torch.Generator().manual_seed(3), n_masks=1)
    assert torch.equal(one, again)
    y = objectives.spec_augment(x, 16, 8, torch.Generator().manual_seed(3), n_masks=2)
    runs_seen = set()
    for b in range(len(y)):
        zero = y[b, 0] == 0
        bands = zero.all(dim=1)
        frames = zero.all(dim=0)
        expect = bands[:, None] | frames[None, :]
        assert torch.equal(zero, expect)                    # only whole bands and frames
        for line, limit in ((bands, 8), (frames, 16)):
            starts = int(line[0]) + int((line[1:] & ~line[:-1]).sum())
            assert starts <= 2 and int(line.sum()) <= 2 * limit
            runs_seen.add(starts)
    assert 2 in runs_seen                                   # two separate spans do occur


def test_min_train_steps_raises_the_epochs_and_the_record_says_so(syn, capsys):
    """MIN_TRAIN_STEPS: a small training set runs ceil(steps / steps per epoch) epochs; the
    checkpoint's config and log.csv hold the raised number; a large EPOCHS is left alone."""
    out, common = syn
    # 36 fit tracks x ~3.5 patches / batch 16 -> a few steps per epoch
    train.main(common + ["--epochs", "1", "--min-train-steps", "20", "--run", "ms"])
    run = out / "runs" / "syn" / "ms"
    rows = list(csv.DictReader(open(run / "log.csv")))
    ckpt = checkpoints.load_checkpoint(run / "last.pt")
    steps = ckpt["scheduler"]["last_epoch"] // len(rows)
    assert len(rows) == ckpt["config"]["epochs"] == -(-20 // steps) > 1
    assert ckpt["config"]["min_train_steps"] == 20
    assert "MIN_TRAIN_STEPS 20" in capsys.readouterr().out
    # a floor the run already reaches changes nothing: the same weights as without one
    train.main(common + ["--epochs", "2", "--min-train-steps", "2", "--run", "floor"])
    train.main(common + ["--epochs", "2", "--min-train-steps", "0", "--run", "nofloor"])
    a, b = (checkpoints.load_checkpoint(out / "runs" / "syn" / r / "last.pt")["model"]
            for r in ("floor", "nofloor"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    c = types.SimpleNamespace(epochs=300, min_train_steps=2000)
    assert loop.settle_epochs(c, 7) == "" and c.epochs == 300
    c = types.SimpleNamespace(epochs=0, min_train_steps=2000)   # scoring only stays so
    assert loop.settle_epochs(c, 7) == "" and c.epochs == 0
    c = types.SimpleNamespace(epochs=40, min_train_steps=2000)
    assert loop.settle_epochs(c, 7) and c.epochs == 286


def test_step_schedule_and_sgd(syn):
    """STEP_GAMMA every STEP_EPOCHS after warm-up; SGD (Nesterov) trains the model."""
    out, common = syn
    from soundtrack import cli
    cfg = cli.parse(cli.parser(None, train.TRAIN_KEYS),
                    common + ["--schedule", "step", "--step-epochs", "2", "--step-gamma", "0.5",
                              "--warmup-epochs", "1", "--epochs", "6", "--optimizer", "sgd"])
    model = network.build_audio("slim_cnn", N_CLASSES, (64, 96))
    opt = optim.make_optimizer(model, cfg)
    assert isinstance(opt, torch.optim.SGD) and opt.param_groups[0]["nesterov"]
    sched = optim.make_scheduler(opt, cfg, steps_per_epoch=10)
    factors = []
    for _ in range(60):
        factors.append(opt.param_groups[0]["lr"] / cfg.learning_rate)
        opt.step()
        sched.step()
    np.testing.assert_allclose(factors[:10], (np.arange(10) + 1) / 10)        # warm-up
    np.testing.assert_allclose(factors[10:20], 1.0)
    np.testing.assert_allclose(factors[20:40], 0.5)
    np.testing.assert_allclose(factors[40:60], 0.25)
    train.main(common + ["--epochs", "3", "--run", "sgd", "--optimizer", "sgd",
                         "--learning-rate", "0.02", "--schedule", "step", "--step-epochs", "2"])
    rows = list(csv.DictReader(open(out / "runs" / "syn" / "sgd" / "log.csv")))
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    assert float(rows[1]["lr"]) < float(rows[0]["lr"])    # the step, at the end of epoch 2


# ---------------------------------------------------------------- body, head, init, front ends
def test_init_checkpoint_then_frozen_body_keeps_the_body_exactly(syn):
    out, common = syn
    train.main(common + ["--epochs", "1", "--run", "a"])
    a = torch.load(out / "runs" / "syn" / "a" / "last.pt", weights_only=False)
    train.main(common + ["--epochs", "1", "--run", "b", "--init-checkpoint",
                         str(out / "runs" / "syn" / "a" / "last.pt"),
                         "--freeze-body-epochs", "1"])
    b = torch.load(out / "runs" / "syn" / "b" / "last.pt", weights_only=False)
    model = network.build_audio("slim_cnn", N_CLASSES, (64, 96))
    head = network.head_prefixes(model)
    body_keys = [k for k in a["model"] if not k.startswith(head)]
    assert body_keys and all(torch.equal(a["model"][k], b["model"][k]) for k in body_keys)
    # batch-norm running statistics of the frozen body stayed too (listed among body keys)
    assert any(k.endswith("running_mean") for k in body_keys)
    # the head was trained: it moved from a's (and from its fresh initialisation)
    assert not torch.equal(a["model"]["fc_logits.weight"], b["model"]["fc_logits.weight"])


def test_body_learning_rate_is_scaled(syn):
    out, common = syn
    from soundtrack import cli
    cfg = cli.parse(cli.parser(None, train.TRAIN_KEYS), common + ["--body-lr-scale", "0.1"])
    model = network.build_audio("slim_cnn", N_CLASSES, (64, 96))
    groups = {g["name"]: g for g in optim.make_optimizer(model, cfg).param_groups}
    assert groups["head_decay"]["lr"] == cfg.learning_rate
    assert groups["body_decay"]["lr"] == pytest.approx(0.1 * cfg.learning_rate)
    assert groups["body_no_decay"]["weight_decay"] == 0.0
    n = sum(p.numel() for g in groups.values() for p in g["params"])
    assert n == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.update({"blocks.1.convs.0.weightX": s.pop("blocks.1.convs.0.weight")}),
     "missing blocks.1.convs.0.weight; unexpected blocks.1.convs.0.weightX"),
    (lambda s: s.pop("bn_bands.running_var"), "missing bn_bands.running_var"),
    (lambda s: s.update({"blocks.0.0.weight": torch.zeros(3, 1, 3, 3)}),
     "reshaped blocks.0.0.weight (3, 1, 3, 3) (model: (32, 1, 3, 3))"),
])
def test_load_body_names_every_bad_key(edit, message):
    model = network.build_audio("slim_cnn", N_CLASSES, (64, 96))
    state = network.build_audio("slim_cnn", 7, (64, 96)).state_dict()   # another head: fine
    network.load_body(model, dict(state), "ok")
    edit(state)
    with pytest.raises(ValueError, match=re.escape(message)):
        network.load_body(model, state, "f.pt")


def test_init_checkpoint_of_another_model_or_front_end_is_refused(syn, tmp_path):
    out, common = syn
    train.main(common + ["--epochs", "1", "--run", "a"])
    ckpt = torch.load(out / "runs" / "syn" / "a" / "last.pt", weights_only=False)
    other_model = dict(ckpt, model_name="panns_like_cnn")
    torch.save(other_model, tmp_path / "other_model.pt")
    with pytest.raises(SystemExit, match="holds a 'panns_like_cnn' model, this run trains 'slim_cnn'"):
        train.main(common + ["--epochs", "1", "--run", "c", "--init-checkpoint",
                             str(tmp_path / "other_model.pt")])
    other_fe = dict(ckpt, front_end=dict(ckpt["front_end"], log_offset=0.001))
    torch.save(other_fe, tmp_path / "other_fe.pt")
    with pytest.raises(SystemExit, match=r"log_offset: 0\.001 in INIT_CHECKPOINT"):
        train.main(common + ["--epochs", "1", "--run", "c", "--init-checkpoint",
                             str(tmp_path / "other_fe.pt")])


def test_train_refuses_features_whose_record_disagrees_with_the_datalist(syn):
    out, common = syn
    record = out / "data" / "syn" / "features" / "vggish_mel" / "features.json"
    data = json.loads(record.read_text())
    data["front_end"]["band_max_hz"] = 7000.0
    record.write_text(json.dumps(data))
    with pytest.raises(SystemExit, match=r"band_max_hz: 7500\.0 in .*vggish_mel_train\.npz "
                                         r"but 7000\.0 in .*features\.json"):
        train.main(common + ["--epochs", "1", "--run", "d"])


def test_a_custom_front_end_trains_a_model_of_its_shape(tmp_path):
    """NUM_BANDS 32: the model is built for [32, 96] patches and the checkpoint says so."""
    from soundtrack import audio
    fe = audio.front_end("vggish", num_bands=32)
    rng = np.random.default_rng(0)
    lists = tmp_path / "file_lists" / "syn"
    datafiles.write_lines(lists / "classes.txt", ["a", "b"])
    tracks = {f"train/{'ab'[c]}/t{i}": rng.normal(c, 1, (2, 32, 96)) for c in (0, 1)
              for i in range(6)}
    datafiles.write_lines(lists / "train_videos.txt",
                          [f"{v}\t{'ab'.index(v.split('/')[1])}" for v in tracks])
    datafiles.write_lines(lists / "train_16000hz_mono_audio.txt", list(tracks))
    write_feature_folder(tmp_path / "data" / "syn" / "features", tracks, fe)
    common = ["--dataset", "syn", "--data-root", str(tmp_path / "data"), "--output-root",
              str(tmp_path), "--num-bands", "32", "--train-split", "train", "--eval-split", "train"]
    step04.main(common + ["--splits", "train"])
    train.main(common + ["--epochs", "1", "--run", "c32", "--minival-fraction", "0"])
    ckpt = torch.load(tmp_path / "runs" / "syn" / "c32" / "last.pt", weights_only=False)
    assert ckpt["patch_shape"] == [32, 96] and ckpt["front_end"]["num_bands"] == 32
    assert ckpt["model"]["bn_bands.weight"].shape == (32,)
    with pytest.raises(ValueError, match="vggish takes patches of 64 bands x 96 frames"):
        network.build_audio("vggish", 2, fe.patch_shape)


def test_epoch_bars_count_steps_and_do_not_redraw_into_a_log(syn, monkeypatch):
    """The epoch bar's n reaches its total (one per step), and with stderr in a file the
    loss in its postfix does not force a redraw per step (one line per interval, not per
    step)."""
    import io
    from soundtrack import cli
    out, common = syn
    bars = []
    real = cli.progress

    def spy(*args, **kwargs):
        bars.append(real(*args, **kwargs))
        return bars[-1]
    log = io.StringIO()                                  # not a terminal
    monkeypatch.setattr(cli, "progress", spy)
    monkeypatch.setattr(sys, "stderr", log)
    train.main(common + ["--epochs", "2", "--run", "bars", "--batch-size", "4"])
    epochs = [b for b in bars if str(b.desc).startswith("epoch")]
    assert len(epochs) == 2 and all(b.total > 10 and b.n == b.total for b in epochs)
    redraws = log.getvalue().count("\r") + log.getvalue().count("\n")
    assert redraws <= 3 * len(bars), log.getvalue()[-500:]     # open, clear, close: per bar


def test_an_existing_run_is_not_started_over_without_asking(syn, capsys):
    out, common = syn
    args = common + ["--epochs", "1", "--run", "again", "--loader-workers", "0"]
    train.main(args)
    first = (out / "runs" / "syn" / "again" / "last.pt").stat().st_mtime_ns
    with pytest.raises(SystemExit, match=r"runs/syn/again holds an earlier run \(last.pt after "
                                         r"epoch 1\): pass --resume to continue it, --overwrite"):
        train.main(args)
    assert (out / "runs" / "syn" / "again" / "last.pt").stat().st_mtime_ns == first
    train.main(args + ["--overwrite"])
    assert "--overwrite: starting afresh over" in capsys.readouterr().out
