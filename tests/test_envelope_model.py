"""The envelope model: padding never reaches the loss or the real frames' outputs; one
optimiser step for each backbone option (frozen features, the video ResNets with and without
the seed's flattened maps, a fine-tuned 2D body); the shared loop learns a toy envelope."""
import numpy as np
import pytest
import torch

import envelope_task
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
    x = torch.rand(2, 5, 4, 32, 32)
    x[:, :, 3] = 1.0
    x[1, 3:] = 0.0                                   # the second clip: 3 frames, then padding
    env = torch.rand(2, 5)
    out = model(x)
    assert out["envelope"].shape == (2, 5)           # every frame keeps its own value
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
