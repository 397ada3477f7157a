"""A residual-inception CNN for audio images, with the two-phase paper's dense block.

Input  x: [batch, channels, bands, frames] (any front end: the dcase2021 preset's
       [6, 128, 709], the vggish preset's [1, 64, 96], ...).
Output {"logits": [batch, n_classes], "embedding": [batch, 1024]}: the embedding is the
       FC(1024) output after its ReLU, the input of the last layer, as in the visual models
       (network/torchvision_models.py), so Phase II reads the same layer from all five
       backbones.

This is OUR READING of the audio network of Pham et al. (DCASE 2021, seeds/003): the paper
reuses "the residual-inception block of [15]" without publishing its layers, so the block
below keeps only what the text names: parallel branches of different receptive fields
(1x1; 1x1 -> 3x3; 1x1 -> 3x3 -> 3x3, i.e. 5x5; 3x3 average pooling -> 1x1), concatenated,
batch norm and ReLU, a residual shortcut (a 1x1 convolution where the width changes), then
pooling. After the blocks: global pooling (mean over bands, then max + mean over time, as
network/audio_cnn.py), then the paper's dense block FC(1024) -> ReLU -> dropout ->
FC(n_classes). Widths, depth and the stem are our choices.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from network import register

EMBEDDING_DIM = 1024             # the paper's FC(1024)
DROPOUT = 0.3


def conv_bn_relu(c_in, c_out, kernel, stride=1):
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2,
                                   bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class ResidualInceptionBlock(nn.Module):
    """Four parallel branches of c_out / 4 channels each (receptive fields 1, 3, 5 and a
    3x3 average), concatenated -> BN -> ReLU, plus a shortcut (identity, or 1x1 conv + BN
    when c_in != c_out), then `pool` (2x2 average) or nothing.

    [B, c_in, H, W] -> [B, c_out, H / 2, W / 2] (pool) or [B, c_out, H, W]."""

    def __init__(self, c_in, c_out, pool=True):
        super().__init__()
        if c_out % 4:
            raise ValueError(f"residual-inception width {c_out} must be a multiple of 4")
        b = c_out // 4
        self.branch1 = nn.Conv2d(c_in, b, 1, bias=False)
        self.branch3 = nn.Sequential(conv_bn_relu(c_in, b, 1), nn.Conv2d(b, b, 3, padding=1,
                                                                         bias=False))
        self.branch5 = nn.Sequential(conv_bn_relu(c_in, b, 1), conv_bn_relu(b, b, 3),
                                     nn.Conv2d(b, b, 3, padding=1, bias=False))
        self.branch_pool = nn.Sequential(nn.AvgPool2d(3, stride=1, padding=1),
                                         nn.Conv2d(c_in, b, 1, bias=False))
        self.bn = nn.BatchNorm2d(c_out)
        self.shortcut = (nn.Identity() if c_in == c_out else
                         nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False),
                                       nn.BatchNorm2d(c_out)))
        self.pool = nn.AvgPool2d(2) if pool else nn.Identity()

    def forward(self, x):
        y = torch.cat([self.branch1(x), self.branch3(x), self.branch5(x),
                       self.branch_pool(x)], dim=1)
        return self.pool(F.relu(self.bn(y) + self.shortcut(x)))


class ResidualInceptionCNN(nn.Module):
    """Band-wise input batch norm, a strided 3x3 stem (+ 2x2 max pooling when `stem_pool`),
    residual-inception blocks of `widths` (each but the last halves both axes), global
    pooling, the dense block. Any patch size of at least 8 x 8 per block after the stem;
    `n_bands` sizes the input batch norm."""
    HEAD = ("fc_embedding", "fc_logits")   # the paper's dense block

    def __init__(self, n_classes, in_channels=1, widths=(64, 128, 256, 512), stem_width=32,
                 stem_pool=False, dropout=DROPOUT, n_bands=64, n_frames=96):
        super().__init__()
        self.bn_bands = nn.BatchNorm2d(n_bands)
        stem = [conv_bn_relu(in_channels, stem_width, 3, stride=2)]
        if stem_pool:
            stem.append(nn.MaxPool2d(2))
        self.stem = nn.Sequential(*stem)
        blocks, c = [], stem_width
        for i, w in enumerate(widths):
            blocks.append(ResidualInceptionBlock(c, w, pool=i < len(widths) - 1))
            c = w
        self.blocks = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(dropout)
        self.fc_embedding = nn.Linear(c, EMBEDDING_DIM)
        self.fc_logits = nn.Linear(EMBEDDING_DIM, n_classes)

    def forward(self, x):
        # x: [B, C, bands, frames]; band-wise BN sees the bands as channels
        x = self.bn_bands(x.transpose(1, 2)).transpose(1, 2)
        x = self.blocks(self.stem(x))                        # [B, C', bands', frames']
        x = x.mean(dim=2)                                    # [B, C', frames']
        x = x.amax(dim=2) + x.mean(dim=2)                    # [B, C']
        embedding = F.relu(self.fc_embedding(self.dropout(x)))   # [B, 1024]
        return {"logits": self.fc_logits(self.dropout(embedding)), "embedding": embedding}


@register("residual_inception")
class ResidualInception(ResidualInceptionCNN):
    """The full-size reading (widths 64-512; 1.48 M weights for 8 classes): for 10 s
    dcase2021 patches on a GPU (recipes/two_phase_gpu/)."""


@register("residual_inception_slim")
class ResidualInceptionSlim(ResidualInceptionCNN):
    """The same network, narrow (widths 32-128, stem pooled; 0.20 M weights for 8 classes):
    the CPU demo's audio backbones (recipes/two_phase_demo/)."""

    def __init__(self, n_classes, in_channels=1, **kw):
        kw.setdefault("widths", (32, 64, 128))
        kw.setdefault("stem_width", 24)
        kw.setdefault("stem_pool", True)
        super().__init__(n_classes, in_channels, **kw)
