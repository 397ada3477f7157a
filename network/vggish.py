"""The VGGish architecture as published (Hershey et al. 2017, AudioSet's VGGish).

VGGish takes patches as [96 frames, 64 bands]; this project stores [64 bands, 96 frames],
so forward() transposes: input x [batch, channels, 64, 96] -> [batch, channels, 96, 64].
The layer names and shapes follow the torchvggish release (features: conv 64, pool, conv 128,
pool, conv 256 x2, pool, conv 512 x2, pool; embeddings: fc 4096, fc 4096, fc 128; the
convolutions' output flattened channels-last, as TensorFlow did), so its state dict
(``vggish-10086976.pth``) loads as the body (``network.pretrained``). A linear classifier on
the embedding gives the logits.

Two switches, each a registered name:
* ``embedding_relu``: torchvggish ends the embedding with a ReLU that Google's VGGish lacks
  (its fc2 has no activation): off in ``vggish`` / ``vggish_pca``, on in ``torchvggish``.
* ``postprocess``: the AudioSet release's postprocessor (``vggish_pca_params-970ea276.pth``):
  subtract the PCA means, rotate by the eigenvectors (PCA with whitening), clip to [-2, 2],
  quantise to 256 levels -> an embedding of whole numbers 0..255 (as float), the format of
  the released AudioSet / YouTube-8M features. Its classifier sees (q - 127.5) / 127.5.
  The rounding has no gradient: these models are for frozen embeddings.
"""
import torch
import torch.nn as nn

from network import register

EMBEDDING_SIZE = 128
QUANTIZE_MIN_VAL, QUANTIZE_MAX_VAL = -2.0, 2.0     # the release's clip range
QUANTIZE_LEVELS = 256                              # 8 bits


def postprocess_embedding(embedding, eigen_vectors, means):
    """The AudioSet release's postprocessor.

    Args:
      embedding: float [batch, 128], VGGish's raw embedding.
      eigen_vectors: float [128, 128] (rows: principal directions, whitened).
      means: float [128, 1].

    Returns:
      float [batch, 128] of whole numbers 0..255: round((clip(E (x - m), -2, 2) + 2) x 255 / 4).
    """
    pca = (eigen_vectors @ (embedding.T - means)).T
    clipped = pca.clamp(QUANTIZE_MIN_VAL, QUANTIZE_MAX_VAL)
    scale = (QUANTIZE_LEVELS - 1) / (QUANTIZE_MAX_VAL - QUANTIZE_MIN_VAL)
    return torch.round((clipped - QUANTIZE_MIN_VAL) * scale)


class VGGish(nn.Module):
    HEAD = ("classifier",)
    PRESET = "vggish"                   # the front end the published weights expect
    PUBLISHED = ("vggish-10086976.pth", "the torchvggish release v0.1 "
                 "(https://github.com/harritaylor/torchvggish/releases/tag/v0.1)")
    PCA_PUBLISHED = ("vggish_pca_params-970ea276.pth", PUBLISHED[1])

    def __init__(self, n_classes, in_channels=1, n_bands=64, n_frames=96, embedding_relu=False,
                 postprocess=False):
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
        fc = [nn.Linear(512 * 6 * 4, 4096), nn.ReLU(inplace=True),
              nn.Linear(4096, 4096), nn.ReLU(inplace=True),
              nn.Linear(4096, EMBEDDING_SIZE)]
        self.embeddings = nn.Sequential(*fc, *([nn.ReLU(inplace=True)] if embedding_relu else []))
        self.postprocess = postprocess
        if postprocess:
            # filled from the PCA file (or a checkpoint of this model); body, not head
            self.register_buffer("pca_eigen_vectors", torch.zeros(EMBEDDING_SIZE, EMBEDDING_SIZE))
            self.register_buffer("pca_means", torch.zeros(EMBEDDING_SIZE, 1))
        self.classifier = nn.Linear(EMBEDDING_SIZE, n_classes)

    def forward(self, x):
        x = x.transpose(2, 3)                  # [B, C, 96 frames, 64 bands], VGGish's order
        x = self.features(x)                   # [B, 512, 6, 4]
        # flatten in VGGish's (frames, bands, channels) order so published weights apply
        x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)
        emb = self.embeddings(x)               # [B, 128]
        if not self.postprocess:
            return {"logits": self.classifier(emb), "embedding": emb}
        q = postprocess_embedding(emb.float(), self.pca_eigen_vectors, self.pca_means)
        half = (QUANTIZE_LEVELS - 1) / 2
        return {"logits": self.classifier((q - half) / half), "embedding": q}


@register("vggish")
class GoogleVGGish(VGGish):
    """Google's VGGish: raw 128-d embedding, no final ReLU, no postprocessing."""


@register("vggish_pca")
class VGGishPCA(VGGish):
    """Google's VGGish + the release's PCA / clip / 8-bit postprocessor (frozen embeddings)."""

    def __init__(self, n_classes, in_channels=1, n_bands=64, n_frames=96):
        super().__init__(n_classes, in_channels, n_bands, n_frames, postprocess=True)


@register("torchvggish")
class TorchVGGish(VGGish):
    """VGGish as ``torchvggish.vggish()`` computes it: final ReLU, then the postprocessor."""

    def __init__(self, n_classes, in_channels=1, n_bands=64, n_frames=96):
        super().__init__(n_classes, in_channels, n_bands, n_frames, embedding_relu=True,
                         postprocess=True)
