"""A tiny video classifier: the demo's stand-in for a user's video model.

Each frame goes through a small 2D CNN together with its difference to the next frame
(so the network sees motion, not only appearance); a residual temporal convolution mixes
neighbouring frames; the mean over time is the clip's embedding.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from network import register


def conv_block(c_in, c_out, stride=1):
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


@register("tiny_video_cnn")
class TinyVideoCNN(nn.Module):
    """Per-frame CNN on [RGB, next-frame difference] + temporal conv + mean over time.

    Args:
      n_classes: number of output classes.
      width: channels of the first conv layer; later layers use 2x and 4x.
      embedding_dim: size of the clip embedding (input of the last linear layer).
      dropout: dropout before the last linear layer.
    Input:
      clips [batch, frames, 3, height, width], uint8 or float in [0, 1]; frames >= 1, any
      height and width (pooled globally).
    Returns:
      {"logits": [batch, n_classes], "embedding": [batch, embedding_dim]}
    """

    HEAD = ("fc",)

    def __init__(self, n_classes, width=16, embedding_dim=64, dropout=0.2):
        super().__init__()
        w = width
        # Strided convolutions rather than pooling: on a CPU, max-pooling small frames
        # costs more than the convolutions themselves.
        self.frame_net = nn.Sequential(
            conv_block(6, w, stride=2),              # [., w, H/2, W/2]
            conv_block(w, 2 * w, stride=2),          # [., 2w, H/4, W/4]
            conv_block(2 * w, 4 * w, stride=2),      # [., 4w, H/8, W/8]
            conv_block(4 * w, embedding_dim))        # [., D, H/8, W/8]
        self.temporal = nn.Conv1d(embedding_dim, embedding_dim, 3, padding=1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(embedding_dim, n_classes)

    def forward(self, clips):
        if clips.dtype == torch.uint8:
            clips = clips.float() / 255.0
        b, t, c, h, w = clips.shape
        if c != 3:
            raise ValueError(f"expected clips [batch, frames, 3, H, W], got {tuple(clips.shape)}")
        # Per clip and colour channel: zero mean, unit variance over time and space, so that
        # the (random) colours of a video matter less than its pattern and motion.
        mean = clips.mean(dim=(1, 3, 4), keepdim=True)                    # [B, 1, 3, 1, 1]
        std = clips.std(dim=(1, 3, 4), keepdim=True)
        x = (clips - mean) / (std + 0.02)                                 # [B, T, 3, H, W]
        # Motion: difference to the next frame (0 for the last one), at the frame rate given.
        diff = torch.cat([x[:, 1:] - x[:, :-1], torch.zeros_like(x[:, :1])], dim=1)
        x = torch.cat([x, diff], dim=2)                           # [B, T, 6, H, W]
        x = self.frame_net(x.reshape(b * t, 6, h, w))             # [B*T, D, h', w']
        x = x.mean(dim=(2, 3)).reshape(b, t, -1)                  # [B, T, D]
        x = x.transpose(1, 2)                                     # [B, D, T]
        x = x + F.relu(self.temporal(x))                          # [B, D, T]
        embedding = x.mean(dim=2)                                 # [B, D]
        logits = self.fc(self.dropout(embedding))                 # [B, n_classes]
        return {"logits": logits, "embedding": embedding}
