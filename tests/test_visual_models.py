"""The torchvision visual models: outputs, one training step, exact reloads, weights."""
import copy

import pytest
import torch

import network
from network import torchvision_models as tvm

VISUAL = [n for n in network.names() if network.modality(n) == "visual"]


def test_the_registry_names_the_torchvision_models_apart_from_the_audio_ones():
    assert set(VISUAL) == {"tv_resnet18", "tv_inception_v3", "tv_convnext_tiny",
                           "tv_mobilenet_v3_small", "tv_efficientnet_b0"}
    assert network.modality("slim_cnn") == "audio"


@pytest.mark.parametrize("name", VISUAL)
def test_builds_steps_and_reloads_exactly(name, tmp_path):
    torch.manual_seed(0)
    cls = network.model_class(name)
    model = cls(n_classes=3, weights="none")
    s = cls.MIN_INPUT_PIXELS
    x = torch.randint(0, 256, (2, 3, s, s), dtype=torch.uint8)
    model.train()
    out = model(x)
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "logits": (2, 3), "embedding": (2, tvm.EMBEDDING_DIM), "pooled": (2, cls.POOLED_DIM)}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)   # steps ~lr: BN over 2 images
    # at 1 x 1 pixels gives gradients ~1e7, which a plain SGD step turns into NaN
    before = model.fc_logits.weight.detach().clone()
    torch.nn.functional.cross_entropy(out["logits"], torch.tensor([0, 2])).backward()
    opt.step()
    assert not torch.equal(before, model.fc_logits.weight)
    assert all(p.grad is not None for n, p in model.named_parameters()
               if n.startswith(network.head_prefixes(model)))
    torch.save(model.state_dict(), tmp_path / "m.pt")
    # a copy with every saved tensor scrambled (cheaper than building a new model; the
    # normalisation constants are not saved, and stay)
    again = copy.deepcopy(model)
    with torch.no_grad():
        for t in again.state_dict().values():
            t.add_(torch.rand_like(t) if t.is_floating_point() else torch.ones_like(t))
    again.load_state_dict(torch.load(tmp_path / "m.pt", weights_only=True))
    model.eval(), again.eval()
    with torch.no_grad():
        a, b = model(x), again(x)
    for k in a:
        assert torch.isfinite(a[k]).all() and torch.equal(a[k], b[k]), k
    with pytest.raises(ValueError, match=f"at least {s} px"):
        model(x[..., : s - 1, : s - 1])


def test_imagenet_weights_offline_name_the_file_and_load_when_placed(tmp_path, monkeypatch):
    import torchvision
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    enum = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    expected = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert tvm.hub_file(enum) == expected and enum.url.endswith(expected.name)
    with pytest.raises(ValueError, match=f"place {enum.url} at {expected}"):
        network.build("tv_resnet18", n_classes=2, weights="imagenet")
    # a file in torchvision's format (ImageNet's 1000-class classifier included) is loaded
    reference = torchvision.models.resnet18(weights=None)
    expected.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), expected)
    model = network.build("tv_resnet18", n_classes=2, weights="imagenet")
    assert torch.equal(model.body.conv1.weight, reference.conv1.weight)
    # a state-dict file of another model is refused, naming the file
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="bad.pt does not fit torchvision's resnet18"):
        network.build("tv_resnet18", n_classes=2, weights=str(tmp_path / "bad.pt"))


def test_inception_normalisation_is_torchvisions_transform_input():
    """Our (x - 0.5) / 0.5 equals ImageNet normalisation followed by transform_input=True,
    the form torchvision's ImageNet InceptionV3 weights expect."""
    torch.manual_seed(0)
    ours = network.build("tv_inception_v3", n_classes=2).eval()
    theirs = copy.deepcopy(ours.body)         # the same torchvision Inception3 and weights,
    theirs.transform_input = True             # with torchvision's own input transform
    x = torch.rand(1, 3, 80, 80)
    mean = torch.tensor(tvm.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(tvm.IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        a, b = ours(x)["pooled"], theirs((x - mean) / std)
    # random weights make activations ~1e7: compare relative to the whole vector
    assert (a - b).norm() / b.norm() < 1e-5
