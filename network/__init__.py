"""Model registry: ``build(name, **kwargs)``; an unknown name is answered with the list.

Every model's ``forward`` returns a dict of named outputs:
  ``logits``    float [batch, n_classes] (before softmax)
  ``embedding`` float [batch, embedding_dim] (the input of the last linear layer)
Audio models take patches ``[batch, channels, bands, frames]`` (``build_audio`` passes the
front end's patch shape: vggish ``[64, 96]``); visual models (``tv_*``, torchvision bodies)
take images ``[batch, 3, height, width]`` (uint8 or float in [0, 1]) and also return
``pooled``, their body's feature. A class's ``MODALITY`` ("audio" when absent, or "visual")
says which data train.py feeds it (``modality``).

Every model class names its *head* in ``HEAD``: the parameter-name prefixes of the layers
sized by the classes (``fc_logits``, ...). The rest is the *body*: what INIT_CHECKPOINT
loads, FREEZE_BODY_EPOCHS freezes and BODY_LR_SCALE scales (``body_and_head``, ``load_body``).
"""
import importlib

_MODULES = ["network.audio_cnn", "network.vggish", "network.panns", "network.resnet",
            "network.residual_inception",
            "network.torchvision_models", "network.envelope_lstm"]
MODALITIES = ("audio", "visual", "envelope")   # envelope: sequences of frames (envelope_task)
_REGISTRY = {}


def register(name):
    """Class decorator: make a model buildable as ``build(name, ...)``; the class must name
    its head (``HEAD``, a tuple of parameter-name prefixes)."""
    def wrap(cls):
        if name in _REGISTRY:
            raise ValueError(f"model name {name!r} registered twice")
        if not isinstance(getattr(cls, "HEAD", None), tuple) or not cls.HEAD:
            raise TypeError(f"model {name!r}: {cls.__name__}.HEAD must name its head layers")
        if getattr(cls, "MODALITY", "audio") not in MODALITIES:
            raise TypeError(f"model {name!r}: MODALITY must be one of {MODALITIES}")
        _REGISTRY[name] = cls
        return cls
    return wrap


def _load():
    for module in _MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:  # a module that exists but fails to import is a real error
                raise


def names():
    _load()
    return sorted(_REGISTRY)


def modality(name):
    """"audio" or "visual": the data a registered model takes (unknown names: ValueError)."""
    _load()
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(names())}")
    return getattr(_REGISTRY[name], "MODALITY", "audio")


def model_class(name):
    """The registered class of a model name (its MIN_INPUT_PIXELS, HEAD, ...)."""
    modality(name)
    return _REGISTRY[name]


def build(name, **kwargs):
    """Instantiate a registered model, e.g. build('slim_cnn', n_classes=8, in_channels=1)."""
    _load()
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(names())}")
    return _REGISTRY[name](**kwargs)


def build_audio(name, n_classes, patch_shape):
    """An audio model for patches of `patch_shape` ((bands, frames) or (channels, bands,
    frames), a FrontEnd's patch_shape). Models with a fixed input (vggish) refuse others."""
    shape = tuple(patch_shape)
    in_channels = shape[0] if len(shape) == 3 else 1
    return build(name, n_classes=n_classes, in_channels=in_channels, n_bands=shape[-2],
                 n_frames=shape[-1])


def head_prefixes(model):
    """The parameter-name prefixes of a model's head (its class's HEAD)."""
    return tuple(f"{p}." for p in type(model).HEAD)


def body_and_head(model):
    """{"body": [parameters], "head": [parameters]}, in model.named_parameters() order."""
    head = head_prefixes(model)
    out = {"body": [], "head": []}
    for name, p in model.named_parameters():
        out["head" if name.startswith(head) else "body"].append(p)
    return out


def load_body(model, state, where):
    """Copy a state dict's body tensors into `model`; its head keeps its own initialisation.

    Every body key of the model must be in `state` with the same shape, and `state` may hold
    no key the model lacks (a head key may be there with any shape: it is not loaded).
    Raises ValueError listing the missing, unexpected and reshaped keys by name.
    Returns the number of tensors loaded.
    """
    head = head_prefixes(model)
    own = model.state_dict()
    body = {k: v for k, v in own.items() if not k.startswith(head)}
    missing = sorted(k for k in body if k not in state)
    unexpected = sorted(k for k in state if k not in own)
    reshaped = sorted(f"{k} {tuple(state[k].shape)} (model: {tuple(v.shape)})"
                      for k, v in body.items() if k in state and state[k].shape != v.shape)
    if missing or unexpected or reshaped:
        raise ValueError(f"{where} does not fit {type(model).__name__}: "
                         + "; ".join(f"{what} {', '.join(keys[:8])}"
                                     + (f" (+{len(keys) - 8} more)" if len(keys) > 8 else "")
                                     for what, keys in (("missing", missing),
                                                        ("unexpected", unexpected),
                                                        ("reshaped", reshaped)) if keys))
    model.load_state_dict({**own, **{k: state[k] for k in body}})
    return len(body)
