"""Checkpoints: what last.pt / best.pt hold, resuming only what was started with the same model,
front end and classes, the checkpoint that scores, and a body started from INIT_CHECKPOINT."""
import torch

import network
from soundtrack import atomic
from soundtrack import audio
from soundtrack import datafiles
from soundtrack.errors import StageError


def save_checkpoint(path, state):
    atomic.atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path, device="cpu"):
    return torch.load(path, map_location=device, weights_only=False)


def checkpoint_state(meta, model, optimizer, scheduler, scaler, epoch, best, ema=None):
    """What last.pt / best.pt hold: the run's record plus every state to resume from; with a
    weight average (EMA_DECAY), "ema" holds it (the weights that score), "model" the live
    weights the training continues from."""
    return {**meta, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
            "epoch": epoch, "best": best, "ema": ema.state_dict() if ema is not None else None}


def check_resumable(ckpt, meta, path):
    """A run resumes only with the model, front end and classes it was started with."""
    for key in ("model_name", "classes", "n_classes", "in_channels", "frames"):
        if ckpt.get(key) != meta.get(key):
            raise StageError(f"{path} has {key} = {ckpt.get(key)!r}, this run "
                     f"{meta.get(key)!r}: use another --run, or the settings it was made with")
    if "front_end" not in meta:
        return
    try:
        datafiles.check_front_end(audio.FrontEnd.from_dict(ckpt["front_end"]),
                                  audio.FrontEnd.from_dict(meta["front_end"]), str(path),
                                  "this run's features")
    except (KeyError, ValueError) as e:
        raise StageError(f"cannot resume from {path}: {e}")


def choose_checkpoint(model, run_dir, cfg, env):
    """Load the checkpoint that scores (EVAL_CHECKPOINT) into the model. -> {"path",
    "epoch", "which": "best" | "last", "why"}, as the result's record keeps it."""
    best_path, last_path = run_dir / "best.pt", run_dir / "last.pt"
    chosen = best_path if cfg.eval_checkpoint == "best" and best_path.exists() else last_path
    ckpt = load_checkpoint(chosen, env.device)
    model.load_state_dict(datafiles.scored_weights(ckpt))
    average = ckpt.get("ema")
    why = ("best on minival, never on the scored split" if chosen == best_path
           else "the last epoch")
    weights = (f"the weight average (EMA_DECAY {average['decay']}, {average['updates']} steps)"
               if average else "the live weights")
    if env.main:
        print(f"[train] scoring with {chosen.name} (epoch {ckpt['epoch']}; EVAL_CHECKPOINT="
              f"{cfg.eval_checkpoint}: {why}; {weights})")
    return {"path": chosen, "epoch": ckpt["epoch"], "which": chosen.stem, "why": why,
            **({"weights": "ema", "ema_decay": average["decay"]} if average else {})}


def init_from_checkpoint(model, path, model_name, front_end, pca_params=""):
    """Start the model's body from INIT_CHECKPOINT: a train.py checkpoint (its model name and
    front end must be this run's; the weights it scores with, its EMA_DECAY average if it
    has one), a bare state dict, or a published file (PANNs'
    ``{"model": state_dict, ...}`` with its front-end matrices checked against this run's;
    VGGish's release state dict, plus VGGISH_PCA_PARAMS for a postprocessing model). Read
    with torch.load(weights_only=True) (``network.pretrained.safe_load``). Every body key
    must be present with its shape, and the file may hold no key the model lacks; the head
    starts afresh. Raises ValueError naming the keys, both values, the file, and the file
    expected. -> one line for the log."""
    from network import pretrained
    ckpt = pretrained.safe_load(path, "INIT_CHECKPOINT")
    if isinstance(ckpt, dict) and "model_name" in ckpt:        # a train.py checkpoint
        if ckpt["model_name"] != model_name:
            raise ValueError(f"INIT_CHECKPOINT {path} holds a {ckpt['model_name']!r} model, "
                             f"this run trains {model_name!r}")
        if "front_end" in ckpt:
            datafiles.check_front_end(audio.FrontEnd.from_dict(ckpt["front_end"]), front_end,
                                      f"INIT_CHECKPOINT {path}", "this run's features")
        state = datafiles.scored_weights(ckpt)   # the weights that scored
    else:
        state = pretrained.init_state(model, ckpt, path, front_end, pca_params)
    try:
        loaded = network.load_body(model, state, where=f"INIT_CHECKPOINT {path}")
    except ValueError as e:
        raise ValueError(pretrained.explain_misfit(model, ckpt, e)) from None
    return f"body from {path} ({loaded} tensors); head {network.head_prefixes(model)} afresh"
