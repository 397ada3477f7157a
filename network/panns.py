"""PANNs CNN14 (Kong et al. 2020, "PANNs: Large-Scale Pretrained Audio Neural Networks"), the
AudioSet-pretrained network, under its published parameter names so its checkpoint loads.

Input  x: [batch, 1, 64 mel bands, frames]: the ``panns`` front end's log-mel (soundtrack/audio.py,
       equal to PANNs' torchlibrosa front end, which here runs in step 03 instead of inside
       the model); any number of frames >= 32 (five 2 x 2 poolings); a patch is 1001
       frames, 10 s, the clips PANNs were trained on.
Output {"logits": [batch, n_classes], "embedding": [batch, 2048]}: ``fc1`` (after its ReLU)
       is the embedding, ``fc_audioset`` the head (527 AudioSet classes in the published
       file, whose ``clipwise_output`` is sigmoid(logits); this project's classes when
       fine-tuning).

The body, as published: ``bn0`` normalises each mel band; six blocks of two 3 x 3
convolutions (no bias) + batch norm + ReLU, widths 64 .. 2048, 2 x 2 average pooling after
the first five; dropout 0.2 after each block; mean over frequency; max + mean over time;
dropout 0.5; ``fc1`` + ReLU. The published checkpoint also stores the front end's STFT and
mel matrices (``spectrogram_extractor.*``, ``logmel_extractor.*``): ``network.pretrained``
checks them against soundtrack/audio.py's and drops them. PANNs' own SpecAugment and mixup are the
training task's (train.py) here.
"""
import torch.nn as nn
import torch.nn.functional as F

from network import register

CNN14_WIDTHS = (64, 128, 256, 512, 1024, 2048)
AUDIOSET_CLASSES = 527


class PannsConvBlock(nn.Module):
    """(conv 3x3 -> BN -> ReLU) x 2, then average pooling (none for pool=(1, 1))."""

    def __init__(self, c_in, c_out):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.bn2 = nn.BatchNorm2d(c_out)

    def forward(self, x, pool):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.avg_pool2d(x, pool) if pool != (1, 1) else x


@register("panns_cnn14")
class Cnn14(nn.Module):
    """PANNs CNN14 (~80 M parameters, 2048-d embedding)."""
    HEAD = ("fc_audioset",)
    PRESET = "panns"                     # the front end its published weights expect
    PUBLISHED = ("Cnn14_mAP=0.431.pth", "Zenodo record 3987831 "
                 "(https://zenodo.org/record/3987831)")

    def __init__(self, n_classes=AUDIOSET_CLASSES, in_channels=1, n_bands=64, n_frames=1001,
                 widths=CNN14_WIDTHS):
        super().__init__()
        if n_bands < 32 or n_frames < 32:
            raise ValueError(f"panns_cnn14 pools five times by 2: it needs >= 32 bands and "
                             f">= 32 frames, this front end makes {n_bands} x {n_frames}")
        self.bn0 = nn.BatchNorm2d(n_bands)
        c = in_channels
        for i, w in enumerate(widths, 1):
            setattr(self, f"conv_block{i}", PannsConvBlock(c, w))
            c = w
        self.n_blocks = len(widths)
        self.fc1 = nn.Linear(c, c)
        self.fc_audioset = nn.Linear(c, n_classes)
        self._init_weights()

    def _init_weights(self):
        # PANNs' initialisation: Xavier-uniform weights, zero biases, unit batch norms
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        # x: [B, C, bands, frames]; bn0 sees the bands as channels
        x = self.bn0(x.transpose(1, 2)).transpose(1, 2)
        x = x.transpose(2, 3)                        # [B, C, frames, bands]: PANNs' (time, freq)
        for i in range(1, self.n_blocks + 1):
            block = getattr(self, f"conv_block{i}")
            x = block(x, (2, 2) if i < self.n_blocks else (1, 1))
            x = F.dropout(x, p=0.2, training=self.training)
        x = x.mean(dim=3)                            # [B, 2048, frames / 32]
        x = x.amax(dim=2) + x.mean(dim=2)            # [B, 2048]
        x = F.dropout(x, p=0.5, training=self.training)
        emb = F.relu(self.fc1(x))                    # [B, 2048]
        # as published, the classifier sees fc1's output without the embedding's dropout
        return {"logits": self.fc_audioset(emb), "embedding": emb}
