"""The envelope model: padding never reaches the loss or the real frames' outputs; one
optimiser step for each backbone option (frozen features, the video ResNets with and without
the seed's flattened maps, a fine-tuned 2D body); the shared loop learns a toy envelope."""
import numpy as np
import pytest
import torch

from soundtrack.envelope import task as envelope_task
import network


def _model(**kw):
    torch.manual_seed(0)
    return network.build("envelope_lstm", n_classes=3, **kw)


def test_padding_is_masked_out_of_the_loss_and_the_outputs():
    model = _model(input_dim=5).eval()
    rng = np.random.default_rng(0)
    feats = [rng.standard_normal((n, 5)).astype(np.float32) for n in (7, 4)]
    targets = [rng.uniform(0, 1, len(f)).astype(np.float32) for f in feats]
    ds = envelope_task.ClipSequences(["a", "b"], [0, 1], targets, feats)
    items = [ds[i] for i in range(2)]
    x, env, valid = (torch.stack([it[k] for it in items]) for k in range(3))
    with torch.no_grad():
        out = model(x)
        loss = envelope_task.masked_bce(out["envelope"], env, valid)
        # each clip alone, no padding at all
        alone = [model(torch.from_numpy(np.c_[f, np.ones(len(f), np.float32)])[None])
                 for f in feats]
    per_frame = [torch.nn.functional.binary_cross_entropy_with_logits(
        a["envelope"][0], torch.from_numpy(t), reduction="none") for a, t in zip(alone, targets)]
    assert loss.item() == pytest.approx(torch.cat(per_frame).mean().item(), abs=1e-5)
    np.testing.assert_allclose(out["envelope"][1, :4], alone[1]["envelope"][0], atol=1e-5)
    np.testing.assert_allclose(out["logits"][1], alone[1]["logits"][0], atol=1e-5)
    # garbage in the padded frames' targets changes nothing
    env2 = env.clone()
    env2[1, 4:] = 1.0
    assert envelope_task.masked_bce(out["envelope"], env2, valid).item() == pytest.approx(
        loss.item(), abs=1e-7)


@pytest.mark.parametrize("backbone,pool", [("r3d_18", "mean"), ("r2plus1d_18", "flatten"),
                                           ("tv_mobilenet_v3_small", "mean")])
def test_one_step_with_each_frames_backbone(backbone, pool):
    model = _model(backbone=backbone, pool=pool, frame_pixels=32).train()
    x = torch.rand(2, 3, 4, 32, 32)
    x[:, :, 3] = 1.0
    x[1, 2:] = 0.0                                   # the second clip: 2 frames, then padding
    env = torch.rand(2, 3)
    out = model(x)
    assert out["envelope"].shape == (2, 3)           # every frame keeps its own value
    loss = envelope_task.masked_bce(out["envelope"], env, x[:, :, 3, 0, 0])
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    before = [p.detach().clone() for p in model.body.parameters()]
    loss.backward()
    opt.step()
    assert any(not torch.equal(a, p) for a, p in zip(before, model.body.parameters()))
    if pool == "flatten":
        assert model.lstm.input_size == 512 * 2 * 2   # 512 x (32 / 16)^2: the flattened map


def test_unknown_backbone_and_pool_are_refused():
    with pytest.raises(ValueError, match="ENVELOPE_BACKBONE"):
        _model(backbone="i3d")
    with pytest.raises(ValueError, match="ENVELOPE_POOL"):
        _model(input_dim=4, pool="max")


def _toy_tree(root, rng, n_train=40, n_val=12, frames=20):
    """What steps 01, 08 (frames.json's settings), 09 and a --per-frame visual run leave, for
    a toy task: feature 0 of a frame is 1 at a contact (plus noise), the envelope is 1 there."""
    import json
    from soundtrack import datafiles
    from soundtrack import frames as frames_mod
    settings = frames_mod.FrameSettings("native", 32, 3)
    env_dir = root / "d" / "t" / "envelopes" / "32px_nativefps_sigma4.54ms"
    lists, feat = root / "file_lists" / "t", root / "npy_files" / "t" / "feat"
    datafiles.write_lines(lists / "classes.txt", ["a", "b"])
    datafiles.write_text(env_dir / "envelopes.json", json.dumps({"frames": settings.to_dict()}))
    for split, n in (("train", n_train), ("val", n_val)):
        ids = [f"{split}/{'ab'[k % 2]}/c{k}" for k in range(n)]
        datafiles.write_lines(lists / f"{split}_videos.txt", [f"{i}\t{k % 2}"
                                                              for k, i in enumerate(ids)])
        datafiles.write_lines(lists / f"{split}_32px_nativefps_sigma4.54ms_envelopes.txt", ids)
        pooled, track, times = [], [], []
        for k, i in enumerate(ids):
            t = frames - 4 * (k % 3)                         # clips of 12, 16 and 20 frames
            env = np.full(t, 0.05, np.float32)
            hits = rng.choice(np.arange(2, t - 2), 2, replace=False)
            env[hits] = 1.0
            datafiles.save_npy(env_dir / (i + ".npy"), env)
            f = rng.standard_normal((t, 3)).astype(np.float32) * 0.1
            f[:, 0] += env
            pooled.append(f)
            track += [k] * t
            times.append(np.arange(t) / 12)
        datafiles.save_npy(feat / f"{split}_frame_pooled.npy", np.concatenate(pooled))
        datafiles.save_npy(feat / f"{split}_patch_track.npy", np.asarray(track, np.int64))
        datafiles.save_npy(feat / f"{split}_frame_times.npy", np.concatenate(times))
        datafiles.write_lines(feat / f"{split}_ids.txt", ids)


def test_the_shared_loop_learns_a_toy_envelope_and_step_10_scores_it(tmp_path):
    import json
    import train
    from conftest import load_script
    _toy_tree(tmp_path, np.random.default_rng(0))
    common = ["--dataset", "t", "--data-root", str(tmp_path / "d"), "--output-root",
              str(tmp_path), "--frames-per-second", "native", "--frame-size-pixels", "32"]
    train.main(common + ["--model", "envelope_lstm", "--envelope-features-run", "feat",
                         "--run", "env", "--epochs", "10", "--batch-size", "4",
                         "--envelope-hidden", "32", "--learning-rate", "0.003",
                         "--no-channels-last", "--torch-threads", "1", "--eval-splits", "val"])
    load_script("10_evaluate_envelopes").main(common + ["--run", "env",
                                                        "--bootstrap-samples", "200"])
    report = json.loads((tmp_path / "npy_files" / "t" / "envelope" / "report.json").read_text())
    model, const = report["methods"]["model"], report["methods"]["constant (training mean)"]
    assert model["mean_r"] > 0.8 and model["onset_f1"] > 0.8 and const["onset_f1"] == 0.0
    assert report["model_minus_best_baseline"]["onset_f1"]["low"] > 0
    assert (tmp_path / "npy_files" / "t" / "envelope" / "plots" / "rating_good.png").exists()
