"""Model registry: ``build(name, **kwargs)``; an unknown name is answered with the list.

Every model's ``forward`` returns a dict of named outputs:
  ``logits``    float [batch, n_classes] (before softmax)
  ``embedding`` float [batch, embedding_dim] (the input of the last linear layer)
Audio models take patches ``[batch, channels, 64 mel bands, 96 frames]``; video models take
clips ``[batch, frames, 3, height, width]`` (uint8 or float in [0, 1]).
"""
import importlib

_MODULES = ["network.audio_cnn", "network.vggish", "network.resnet", "network.video_cnn"]
_REGISTRY = {}


def register(name):
    """Class decorator: make a model buildable as ``build(name, ...)``."""
    def wrap(cls):
        if name in _REGISTRY:
            raise ValueError(f"model name {name!r} registered twice")
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


def build(name, **kwargs):
    """Instantiate a registered model, e.g. build('slim_cnn', n_classes=8, in_channels=1)."""
    _load()
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(names())}")
    return _REGISTRY[name](**kwargs)
