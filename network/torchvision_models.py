"""Visual models: a torchvision body up to its global pooling, then the two-phase paper's
dense block, FC(1024) -> ReLU -> dropout -> FC(n_classes).

Input: images [batch, 3, H, W], uint8 or float in [0, 1], RGB; H and W at least the model's
MIN_INPUT_PIXELS. The normalisation is defined once, here, per model (NORMALISE: ImageNet's
mean and std; InceptionV3's (x - 0.5) / 0.5, which is exactly what torchvision's
``transform_input=True`` makes of ImageNet-normalised input, the form its ImageNet weights
expect). Returns {"logits" [B, n_classes], "embedding" [B, 1024] (the FC(1024) output after
its ReLU: the input of the last layer), "pooled" [B, POOLED_DIM] (the body's feature)}.

Weights of the body: "imagenet" (torchvision's weight enum; read from the torch hub cache,
never downloaded here: an error names the file to place there and its URL), "none" (random),
or a path to a state dict of the torchvision model (its own classifier keys are ignored).
The dense block always starts afresh; it is the HEAD (FREEZE_BODY_EPOCHS trains it alone).
"""
import functools
import os
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from network import register

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
EMBEDDING_DIM = 1024
DROPOUT = 0.5


def hub_file(weights_enum):
    """Where torch.hub keeps a torchvision weight file: <hub dir>/checkpoints/<file name>."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights_enum.url)


def read_state_dict(weights, weights_enum, model_name):
    """A torchvision state dict for `weights` ("imagenet" or a file path)."""
    if weights == "imagenet":
        path = hub_file(weights_enum)
        if not path.is_file():
            raise ValueError(f"{model_name}: imagenet weights ({weights_enum}) are not in the "
                             f"torch hub cache and are never downloaded here: place "
                             f"{weights_enum.url} at {path} (e.g. `curl -L -o {path} "
                             f"{weights_enum.url}` on a machine with network), or set "
                             "PRETRAINED_WEIGHTS to a state-dict file or none")
    else:
        path = Path(weights)
        if not path.is_file():
            raise ValueError(f"{model_name}: PRETRAINED_WEIGHTS {weights!r} is neither "
                             "'imagenet', 'none' nor a file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is reported the same way
        raise ValueError(f"{model_name}: cannot read weights {path} ({e})") from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict):
        raise ValueError(f"{model_name}: {path} is not a state dict")
    return state, path


class TorchvisionBody(nn.Module):
    """The shared part of every visual model; subclasses name the torchvision builder.

    Class attributes:
      ARCH: torchvision.models builder name; WEIGHTS: its weight enum's name (IMAGENET1K_V1);
      POOLED_DIM: width of the body's pooled feature; NORMALISE: (mean, std) per channel;
      MIN_INPUT_PIXELS: the smallest H and W the body takes; NOMINAL_PIXELS: its usual size.
    """

    MODALITY = "visual"
    HEAD = ("fc_embedding", "fc_logits")
    NORMALISE = (IMAGENET_MEAN, IMAGENET_STD)
    MIN_INPUT_PIXELS = 32
    NOMINAL_PIXELS = 224

    def __init__(self, n_classes, weights="none", dropout=DROPOUT):
        super().__init__()
        import torchvision
        name = type(self).__name__
        builder = getattr(torchvision.models, self.ARCH)
        self.body = builder(weights=None, **self.build_kwargs())
        if weights not in ("none", "", None):
            enum = torchvision.models.get_model_weights(self.ARCH)[self.WEIGHTS]
            state, path = read_state_dict(weights, enum, name)
            try:
                self.body.load_state_dict(state)
            except RuntimeError as e:
                raise ValueError(f"{name}: {path} does not fit torchvision's {self.ARCH}: "
                                 f"{str(e).splitlines()[0]} {str(e)[:600]}") from None
        self.cut_classifier()
        mean, std = self.NORMALISE
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.fc_embedding = nn.Linear(self.POOLED_DIM, EMBEDDING_DIM)
        self.dropout = nn.Dropout(dropout)
        self.fc_logits = nn.Linear(EMBEDDING_DIM, n_classes)

    def build_kwargs(self):
        return {}

    def cut_classifier(self):
        """Replace torchvision's classifier by the identity: the body ends at its pooling."""
        self.body.fc = nn.Identity()

    def forward(self, images):
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"{type(self).__name__}: expected images [batch, 3, H, W], got "
                             f"{tuple(images.shape)}")
        if min(images.shape[-2:]) < self.MIN_INPUT_PIXELS:
            raise ValueError(f"{type(self).__name__} needs images of at least "
                             f"{self.MIN_INPUT_PIXELS} px, got {tuple(images.shape[-2:])}")
        x = images.float() / 255.0 if images.dtype == torch.uint8 else images
        pooled = self.body((x - self.mean) / self.std)                # [B, POOLED_DIM]
        embedding = F.relu(self.fc_embedding(pooled))                 # [B, 1024]
        logits = self.fc_logits(self.dropout(embedding))              # [B, n_classes]
        return {"logits": logits, "embedding": embedding, "pooled": pooled}


@register("tv_resnet18")
class TvResNet18(TorchvisionBody):
    ARCH, WEIGHTS, POOLED_DIM = "resnet18", "IMAGENET1K_V1", 512


@register("tv_inception_v3")
class TvInceptionV3(TorchvisionBody):
    ARCH, WEIGHTS, POOLED_DIM = "inception_v3", "IMAGENET1K_V1", 2048
    NORMALISE = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))    # = transform_input on ImageNet's
    MIN_INPUT_PIXELS = 75
    NOMINAL_PIXELS = 299

    def build_kwargs(self):
        # the auxiliary classifier is built so that ImageNet's file loads strictly, then cut;
        # our NORMALISE already is transform_input's result
        return {"aux_logits": True, "transform_input": False, "init_weights": True}

    def cut_classifier(self):
        self.body.fc = nn.Identity()
        self.body.dropout = nn.Identity()   # the dense block has its own dropout
        self.body.aux_logits, self.body.AuxLogits = False, None


@register("tv_convnext_tiny")
class TvConvNeXtTiny(TorchvisionBody):
    ARCH, WEIGHTS, POOLED_DIM = "convnext_tiny", "IMAGENET1K_V1", 768

    def cut_classifier(self):
        self.body.classifier[2] = nn.Identity()   # keep its LayerNorm and Flatten


@register("tv_mobilenet_v3_small")
class TvMobileNetV3Small(TorchvisionBody):
    ARCH, WEIGHTS, POOLED_DIM = "mobilenet_v3_small", "IMAGENET1K_V1", 576

    def build_kwargs(self):
        # batch-norm momentum 0.1, not torchvision's 0.01 (set for 600-epoch ImageNet runs):
        # with 0.01 the running statistics still lag far behind after a short fine-tuning or
        # the demo's run, and the model in eval mode scores near chance (seen here)
        return {"norm_layer": functools.partial(nn.BatchNorm2d, eps=0.001, momentum=0.1)}

    def cut_classifier(self):
        self.body.classifier = nn.Identity()      # its own FC(1024) block goes: ours replaces it


@register("tv_efficientnet_b0")
class TvEfficientNetB0(TorchvisionBody):
    ARCH, WEIGHTS, POOLED_DIM = "efficientnet_b0", "IMAGENET1K_V1", 1280

    def cut_classifier(self):
        self.body.classifier = nn.Identity()
