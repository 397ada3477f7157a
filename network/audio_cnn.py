"""Convolutional audio classifiers trained from scratch on log-mel patches.

Input  x: [batch, channels, bands, frames] (vggish front end: 64 mel bands, 96 frames;
       channels 1, 3 with deltas, 2 stereo, 6 both).
Output {"logits": [batch, n_classes], "embedding": [batch, embedding_dim]}.

Both follow PANNs (Kong et al. 2020): batch norm over mel bands at the input, blocks of
3x3 convolutions with batch norm and ReLU, average pooling, then global pooling (mean over
frequency, then max + mean over time) and a fully connected embedding.
"""
import torch.nn as nn
import torch.nn.functional as F

from network import register


class ConvBlock(nn.Module):
    """(conv 3x3 -> BN -> ReLU) x n_convs, then average pooling by `pool`."""

    def __init__(self, c_in, c_out, n_convs=2, pool=(2, 2)):
        super().__init__()
        layers = []
        for i in range(n_convs):
            layers += [nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, padding=1, bias=False),
                       nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
        self.convs = nn.Sequential(*layers)
        self.pool = nn.AvgPool2d(pool) if pool else nn.Identity()

    def forward(self, x):
        return self.pool(self.convs(x))


class PannsStyleCNN(nn.Module):
    """Blocks of widths `widths`, global pooling, embedding, classifier. Any patch size
    (global pooling); `n_bands` sizes the band-wise input batch norm. `stem_stride` (an int,
    or (bands, frames)) other than 1 puts a strided 3x3 conv before the blocks, after
    `stem_full_width` > 0 full-resolution channels of one 3x3 conv. `pools` blocks (default:
    all but the last) end in 2x2 average pooling; the others keep their resolution."""
    HEAD = ("fc_logits",)

    def __init__(self, n_classes, in_channels=1, widths=(64, 128, 256, 512), n_convs=2,
                 stem_stride=1, embedding_dim=256, dropout=0.2, n_bands=64, n_frames=96,
                 stem_full_width=0, pools=None):
        super().__init__()
        self.bn_bands = nn.BatchNorm2d(n_bands)  # normalises each mel band over the batch
        blocks, c = [], in_channels
        if stem_stride not in (1, (1, 1)):  # a lean first stage: one strided conv (2: both axes)
            full = []
            if stem_full_width:  # one full-resolution conv before the strided one
                full = [nn.Conv2d(c, stem_full_width, 3, padding=1, bias=False),
                        nn.BatchNorm2d(stem_full_width), nn.ReLU(inplace=True)]
                c = stem_full_width
            blocks.append(nn.Sequential(*full,
                nn.Conv2d(c, widths[0], 3, stride=stem_stride, padding=1, bias=False),
                nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True)))
            c = widths[0]
        pools = len(widths) - 1 if pools is None else pools
        for i, w in enumerate(widths):
            blocks.append(ConvBlock(c, w, n_convs, pool=(2, 2) if i < pools else None))
            c = w
        self.blocks = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(dropout)
        self.fc_embedding = nn.Linear(c, embedding_dim)
        self.fc_logits = nn.Linear(embedding_dim, n_classes)

    def forward(self, x):
        # x: [B, C, bands, frames]; band-wise BN sees bands as channels
        x = self.bn_bands(x.transpose(1, 2)).transpose(1, 2)
        x = self.blocks(x)                           # [B, C', bands', frames']
        x = x.mean(dim=2)                            # [B, C', frames']
        x = x.amax(dim=2) + x.mean(dim=2)            # [B, C']
        emb = F.relu(self.fc_embedding(self.dropout(x)))
        return {"logits": self.fc_logits(self.dropout(emb)), "embedding": emb}


@register("slim_cnn")
class SlimCNN(PannsStyleCNN):
    """The fast from-scratch default: strided stem, 4 blocks of one conv, widths 32-256."""

    def __init__(self, n_classes, in_channels=1, **kw):
        kw.setdefault("widths", (32, 64, 128, 256))
        kw.setdefault("n_convs", 1)
        kw.setdefault("stem_stride", 2)
        kw.setdefault("embedding_dim", 128)
        super().__init__(n_classes, in_channels, **kw)


@register("panns_like_cnn")
class PannsLikeCNN(PannsStyleCNN):
    """PANNs CNN6/CNN10-like, trained from scratch on any front end: 4 blocks of two convs,
    widths 64-512 (slower, stronger). Not PANNs' weights: those are ``panns_cnn14``."""

    def __init__(self, n_classes, in_channels=1, **kw):
        kw.setdefault("widths", (64, 128, 256, 512))
        kw.setdefault("n_convs", 2)
        kw.setdefault("embedding_dim", 512)
        super().__init__(n_classes, in_channels, **kw)


@register("slim_cnn_fullres")
class SlimCNNFullRes(SlimCNN):
    """slim_cnn without the strided stem: the first block sees every band and frame
    (~3x the compute per patch; no better on the development tasks, README Benchmarks)."""

    def __init__(self, n_classes, in_channels=1, **kw):
        kw.setdefault("stem_stride", 1)
        super().__init__(n_classes, in_channels, **kw)


@register("vgg_plain")
class VggPlain(PannsStyleCNN):
    """A plain VGG-style baseline (the comparison the from-scratch default must stand up to):
    4 blocks of two (conv 3x3 -> BN -> ReLU), widths 32-64-128-256, 2x2 average pooling
    between blocks, no strided stem; band-wise input batch norm; the mean over frequency,
    then max + mean over time; dropout 0.3 and ONE linear layer (no embedding layer: the
    embedding is the pooled 256-d feature)."""
    HEAD = ("fc_logits",)

    def __init__(self, n_classes, in_channels=1, **kw):
        kw.setdefault("widths", (32, 64, 128, 256))
        kw.setdefault("n_convs", 2)
        kw.setdefault("stem_stride", 1)
        kw.setdefault("dropout", 0.3)
        super().__init__(n_classes, in_channels, **kw)
        width = kw["widths"][-1]
        del self.fc_embedding
        self.fc_logits = nn.Linear(width, n_classes)

    def forward(self, x):
        x = self.bn_bands(x.transpose(1, 2)).transpose(1, 2)   # [B, C, bands, frames]
        x = self.blocks(x).mean(dim=2)                          # [B, 256, frames']
        emb = x.amax(dim=2) + x.mean(dim=2)                     # [B, 256]
        return {"logits": self.fc_logits(self.dropout(emb)), "embedding": emb}


@register("vgg_deepstem")
class VggDeepStem(VggPlain):
    """vgg_strided with one full-resolution 3x3 convolution (16 wide) before the strided one:
    every band and frame passes a nonlinearity before the axes are halved. A variant tried
    for the default (docs/benchmarks.md)."""

    def __init__(self, n_classes, in_channels=1, **kw):
        kw.setdefault("stem_stride", 2)
        kw.setdefault("stem_full_width", 16)
        super().__init__(n_classes, in_channels, **kw)


@register("vgg_time_strided")
class VggTimeStrided(VggPlain):
    """vgg_plain behind a stem that strides in time only (stride (1, 2)): every mel band is
    kept, half of the frames; the first block is 16 wide (widths 16-64-128-256) to stay
    >= 2x the baseline's speed. A variant tried for the default (docs/benchmarks.md)."""

    def __init__(self, n_classes, in_channels=1, **kw):
        kw.setdefault("stem_stride", (1, 2))
        kw.setdefault("widths", (16, 64, 128, 256))
        super().__init__(n_classes, in_channels, **kw)


@register("vgg_strided")
class VggStrided(VggPlain):
    """vgg_plain behind a strided stem: one 3x3 convolution (stride 2, as wide as the first
    block) halves both axes before the four blocks of two convolutions, which then see a
    quarter of the positions (3.2x the baseline's training patches per second on 2 CPU
    threads, docs/benchmarks.md). The from-scratch default from 2026-12-06 until vgg_plain_half
    (recipes/variants/scratch_strided.yaml)."""

    def __init__(self, n_classes, in_channels=1, **kw):
        kw.setdefault("stem_stride", 2)
        super().__init__(n_classes, in_channels, **kw)


@register("vgg_fullres_stem")
class VggFullresStem(VggPlain):
    """vgg_strided with its strided stem replaced by a full-resolution block: two 16-wide
    3x3 convolutions see every band and frame, then 2x2 average pooling (not a stride)
    halves both axes before the same four blocks (widths 16-32-64-128-256). A variant tried
    for the default (docs/benchmarks.md)."""

    def __init__(self, n_classes, in_channels=1, **kw):
        kw.setdefault("widths", (16, 32, 64, 128, 256))
        super().__init__(n_classes, in_channels, **kw)


@register("vgg_strided_fine")
class VggStridedFine(VggStrided):
    """vgg_strided without the pooling before its last block: the last block works on 8 x 12
    positions (as vgg_plain's), not 4 x 6, so max + mean over time see 12 frames; the whole
    body downsamples by 8, as vgg_plain's, the stride taking the place of the first pooling."""

    def __init__(self, n_classes, in_channels=1, **kw):
        kw.setdefault("pools", 2)
        super().__init__(n_classes, in_channels, **kw)


@register("vgg_deepstem_fine")
class VggDeepStemFine(VggDeepStem):
    """vgg_deepstem with its last block at 8 x 12 positions, as vgg_strided_fine's (no
    pooling before it). A variant tried for the default (docs/benchmarks.md)."""

    def __init__(self, n_classes, in_channels=1, **kw):
        kw.setdefault("pools", 2)
        super().__init__(n_classes, in_channels, **kw)


@register("vgg_plain_half")
class VggPlainHalf(VggPlain):
    """vgg_plain at half width (16-32-64-128): every block keeps vgg_plain's resolution (no
    strided stem), a quarter of its multiply-adds (79 M per patch against 313 M), 0.30 M
    weights. The from-scratch default (recipes/audio_scratch.yaml; docs/benchmarks.md)."""

    def __init__(self, n_classes, in_channels=1, **kw):
        kw.setdefault("widths", (16, 32, 64, 128))
        super().__init__(n_classes, in_channels, **kw)


@register("vgg_plain_lean")
class VggPlainLean(VggPlain):
    """vgg_plain with its first three blocks at half width and its last block at full width
    (16-32-64-256): full resolution, a 256-d pooled feature as vgg_plain's. A variant tried
    for the default (docs/benchmarks.md)."""

    def __init__(self, n_classes, in_channels=1, **kw):
        kw.setdefault("widths", (16, 32, 64, 256))
        super().__init__(n_classes, in_channels, **kw)
