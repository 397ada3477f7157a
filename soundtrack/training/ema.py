"""EMA_DECAY > 0: an exponential moving average of the model's weights, updated after every
optimizer step; it is what the minival and the scoring see, and checkpoints keep it beside
the live weights (which resume the training)."""
import contextlib

import torch

from soundtrack.errors import StageError


class WeightAverage:
    """The average of every floating-point tensor of ``model.state_dict()`` (weights and
    batch-norm statistics); integer buffers (batch counts) follow the live model. It is
    bound to the module itself, so a DDP or torch.compile wrapper around it changes
    nothing. After
    update n the average moves by 1 - d towards the live weights, d = min(decay, (1 + n) /
    (10 + n)): the first steps' random weights fade within tens of steps, not 1 / (1 -
    decay)."""

    def __init__(self, model, decay):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA_DECAY must be in (0, 1) to average, got {decay}")
        self.model, self.decay, self.updates = model, float(decay), 0
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self):
        self.updates += 1
        weight = 1.0 - min(self.decay, (1 + self.updates) / (10 + self.updates))
        live = self.model.state_dict()
        floats = [k for k, v in self.state.items() if v.is_floating_point()]
        torch._foreach_lerp_([self.state[k] for k in floats],
                             [live[k].detach() for k in floats], weight)
        for k, v in self.state.items():
            if not v.is_floating_point():
                v.copy_(live[k])

    def state_dict(self):
        return {"decay": self.decay, "updates": self.updates, "state": self.state}

    def load_state_dict(self, saved):
        """Continue the average a checkpoint holds (``resume_from`` checks it first)."""
        self.updates = saved["updates"]
        for k, v in saved["state"].items():
            self.state[k].copy_(v)

    @contextlib.contextmanager
    def applied(self):
        """The model holds the average inside the block, its live weights again after."""
        live = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.model.load_state_dict(self.state)
        try:
            yield self.model
        finally:
            self.model.load_state_dict(live)


def resume_from(average, saved, where):
    """Continue a run's average (None when EMA_DECAY is 0) from a checkpoint's ("ema":
    None when it had none; `where` names it). A run resumes only with the decay it was
    started with, 0 included: another would change what it averages. Raises StageError."""
    decay, held = (average.decay if average else 0.0), (saved["decay"] if saved else 0.0)
    if decay != held:
        had = f"a weight average (EMA_DECAY {held})" if saved else "no weight average"
        raise StageError(f"{where} holds {had}, this run asks for EMA_DECAY {decay}: "
                         f"resume with the setting it was started with")
    if average is not None:
        average.load_state_dict(saved)


def make(model, cfg):
    """The run's weight average, or None when EMA_DECAY is 0."""
    if not 0.0 <= cfg.ema_decay < 1.0:
        raise StageError(f"EMA_DECAY must be 0 (off) or in (0, 1), got {cfg.ema_decay}")
    return WeightAverage(model, cfg.ema_decay) if cfg.ema_decay > 0 else None
