"""ResNet-18 (He et al. 2016) adapted to spectrogram patches: the MMAction2 audio baseline.

Input  x: [batch, channels, bands, frames] (any size: global pooling); the first convolution
takes `in_channels` (1, 3 with deltas, ...) instead of RGB. Output {"logits", "embedding"
[B, 512]}.
"""
import torch.nn as nn

from network import register


class BasicBlock(nn.Module):
    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.Identity() if stride == 1 and c_in == c_out else nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


@register("resnet18")
class ResNet18(nn.Module):
    HEAD = ("fc",)

    def __init__(self, n_classes, in_channels=1, widths=(64, 128, 256, 512), n_bands=64,
                 n_frames=96):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 7, 2, 3, bias=False), nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
        layers, c = [], widths[0]
        for i, w in enumerate(widths):
            stride = 1 if i == 0 else 2
            layers += [BasicBlock(c, w, stride), BasicBlock(w, w, 1)]
            c = w
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(c, n_classes)

    def forward(self, x):
        x = self.layers(self.stem(x))          # [B, 512, 2, 3] for a 64x96 patch
        emb = x.mean(dim=(2, 3))               # [B, 512]
        return {"logits": self.fc(emb), "embedding": emb}
