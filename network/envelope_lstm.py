"""The seed's envelope model (``../shared/seeds/002``): per-frame visual features, a 2-layer
LSTM (hidden 512), three fully connected layers to one value per frame (a sigmoid of it is
the predicted envelope), and a class head for the auxiliary-task comparison.

Input ``x`` (what ``envelope_task`` feeds it), padded to the batch's longest clip:
  backbone "features": float [B, T, D + 1]: frame t's frozen feature (step 08's frames
    through a trained 2D body, spatially pooled: train.py --per-frame) and, last, 1 for a
    real frame, 0 for padding;
  a video ResNet ("r3d_18", "r2plus1d_18", torchvision, random weights or a state dict, the
    temporal stride removed so that every frame keeps its own feature) or a registered 2D
    visual model ("tv_*", fine-tuned per frame): float [B, T, 4, S, S], RGB in [0, 1] and,
    as a fourth plane, the same 1 / 0 validity.
POOL: "mean" (spatial average per frame: [512]) or "flatten" (the seed's 512 x h x w map per
frame: 512 x 7 x 7 at 112 px; video ResNets only).
The LSTM runs forward in time, so padding after a clip never reaches its frames.
Returns {"envelope" [B, T] (logits, before the sigmoid), "logits" [B, n_classes] (from the
mean of the LSTM's outputs over real frames), "embedding" [B, hidden] (that mean)}; hidden is
512 (the seed's) unless ENVELOPE_HIDDEN says otherwise. Features (backbone "features") are
standardised by the training frames' mean and std (buffers, set by envelope_task) and then
centred per clip.
"""
import torch
import torch.nn as nn

from network import register

HIDDEN = 512
VIDEO_RESNETS = ("r3d_18", "r2plus1d_18")
POOLS = ("mean", "flatten")


def video_resnet_body(arch, weights="none"):
    """A torchvision video ResNet up to its last block, every temporal stride set to 1.

    -> a module mapping [B, 3, T, S, S] to [B, 512, T, S / 16, S / 16]."""
    import torchvision
    model = getattr(torchvision.models.video, arch)(weights=None)
    if weights not in ("none", ""):
        state = torch.load(weights, map_location="cpu", weights_only=True)
        model.load_state_dict({k: v for k, v in state.items() if not k.startswith("fc.")},
                              strict=False)
    for m in model.modules():
        if isinstance(m, nn.Conv3d) and m.stride[0] != 1:
            m.stride = (1, *m.stride[1:])
    return nn.Sequential(model.stem, model.layer1, model.layer2, model.layer3, model.layer4)


class _Frames2D(nn.Module):
    """A registered 2D visual model's body applied to every frame: -> [B, T, pooled_dim]."""

    def __init__(self, name, weights):
        super().__init__()
        import network
        self.model = network.build(name, n_classes=2, weights=weights)
        self.dim = type(self.model).POOLED_DIM

    def forward(self, frames):                       # [B, T, 3, S, S]
        b, t = frames.shape[:2]
        pooled = self.model(frames.flatten(0, 1))["pooled"]
        return pooled.view(b, t, -1)


@register("envelope_lstm")
class EnvelopeLSTM(nn.Module):
    MODALITY = "envelope"
    HEAD = ("fc_envelope", "fc_logits")

    def __init__(self, n_classes, input_dim=0, backbone="features", pool="mean",
                 weights="none", frame_pixels=112, hidden=HIDDEN):
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"ENVELOPE_POOL must be one of {POOLS}, got {pool!r}")
        self.backbone_name, self.pool = backbone, pool
        self.body = None
        if backbone == "features":
            if input_dim <= 0:
                raise ValueError("backbone 'features' needs the features' width (input_dim)")
            dim = input_dim
        elif backbone in VIDEO_RESNETS:
            self.body = video_resnet_body(backbone, weights)
            side = -(-frame_pixels // 16)
            dim = 512 * (side * side if pool == "flatten" else 1)
        elif backbone.startswith("tv_"):
            if pool != "mean":
                raise ValueError("a 2D body gives its pooled feature: ENVELOPE_POOL mean")
            self.body = _Frames2D(backbone, weights)
            dim = self.body.dim
        else:
            raise ValueError(f"ENVELOPE_BACKBONE must be features, {', '.join(VIDEO_RESNETS)} "
                             f"or a tv_* model, got {backbone!r}")
        # features: standardised by the training frames' mean and std (set by envelope_task,
        # saved with the weights); an LSTM fed raw activations barely trains
        self.register_buffer("feature_mean", torch.zeros(dim if self.body is None else 0))
        self.register_buffer("feature_std", torch.ones(dim if self.body is None else 0))
        self.lstm = nn.LSTM(dim, hidden, num_layers=2, batch_first=True)
        self.fc_envelope = nn.Sequential(nn.Linear(hidden, 256), nn.ReLU(), nn.Linear(256, 64),
                                         nn.ReLU(), nn.Linear(64, 1))
        self.fc_logits = nn.Linear(hidden, n_classes)

    def features(self, x):
        """x (module docstring) -> (per-frame features [B, T, dim], validity [B, T])."""
        if self.body is None:
            valid = x[..., -1].float()
            w = valid[..., None]
            feats = (x[..., :-1].float() - self.feature_mean) / self.feature_std
            # minus the clip's own mean over its real frames: what stays is what changes
            # within the clip (scene and colours, ~90 % of the demo's feature variance, go)
            feats = feats - (feats * w).sum(1, keepdim=True) / w.sum(1, keepdim=True).clamp_min(1)
            return feats * w, valid
        valid = x[:, :, 3, 0, 0].float()
        frames = x[:, :, :3].float()
        if isinstance(self.body, _Frames2D):
            return self.body(frames), valid
        maps = self.body(frames.transpose(1, 2))                   # [B, 512, T, h, w]
        maps = maps.transpose(1, 2)                                # [B, T, 512, h, w]
        feats = maps.mean((-2, -1)) if self.pool == "mean" else maps.flatten(2)
        return feats, valid

    def forward(self, x):
        feats, valid = self.features(x)
        h, _ = self.lstm(feats)                                    # [B, T, 512]
        w = valid[..., None]
        pooled = (h * w).sum(1) / w.sum(1).clamp_min(1.0)
        return {"envelope": self.fc_envelope(h).squeeze(-1), "logits": self.fc_logits(pooled),
                "embedding": pooled}
