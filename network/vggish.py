"""The VGGish architecture as published (Hershey et al. 2017, AudioSet's VGGish).

VGGish takes patches as [96 frames, 64 bands]; this project stores [64 bands, 96 frames],
so forward() transposes: input x [batch, channels, 64, 96] -> [batch, channels, 96, 64].
The layer names and shapes follow the published model (features: conv 64, pool, conv 128,
pool, conv 256 x2, pool, conv 512 x2, pool; embeddings: fc 4096, fc 4096, fc 128), so a
converted VGGish state dict loads into `features` and `embeddings` (`load_vggish_weights`).
A linear classifier on the 128-d embedding gives the logits.
"""
import torch
import torch.nn as nn

from network import register


@register("vggish")
class VGGish(nn.Module):
    HEAD = ("classifier",)

    def __init__(self, n_classes, in_channels=1, n_bands=64, n_frames=96):
        super().__init__()
        if (n_bands, n_frames) != (64, 96):
            raise ValueError(f"vggish takes patches of 64 bands x 96 frames (its published "
                             f"input), this front end makes {n_bands} x {n_frames}")
        layers, c = [], in_channels
        for w, n in [(64, 1), (128, 1), (256, 2), (512, 2)]:
            for _ in range(n):
                layers += [nn.Conv2d(c, w, 3, padding=1), nn.ReLU(inplace=True)]
                c = w
            layers.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*layers)
        self.embeddings = nn.Sequential(
            nn.Linear(512 * 6 * 4, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, 4096), nn.ReLU(inplace=True),
            nn.Linear(4096, 128), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(128, n_classes)

    def forward(self, x):
        x = x.transpose(2, 3)                  # [B, C, 96 frames, 64 bands], VGGish's order
        x = self.features(x)                   # [B, 512, 6, 4]
        # flatten in VGGish's (frames, bands, channels) order so published weights apply
        x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)
        emb = self.embeddings(x)               # [B, 128]
        return {"logits": self.classifier(emb), "embedding": emb}

    def load_vggish_weights(self, path):
        """Load a VGGish state dict (features.* and embeddings.* keys) from `path`."""
        state = torch.load(path, map_location="cpu")
        missing, unexpected = self.load_state_dict(state, strict=False)
        bad = [k for k in missing if not k.startswith("classifier")]
        if bad or unexpected:
            raise ValueError(f"{path}: not a VGGish state dict (missing {bad[:5]}, "
                             f"unexpected {list(unexpected)[:5]})")
