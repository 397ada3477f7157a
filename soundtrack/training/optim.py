"""Optimiser, learning-rate schedule, a frozen body, and the DDP wrapper."""
import math

import torch

import network


def make_scheduler(optimizer, cfg, steps_per_epoch):
    """Warm-up, then cosine or step decay; a factor on every parameter group's own lr."""
    warmup = max(1, int(round(cfg.warmup_epochs * steps_per_epoch))) if cfg.warmup_epochs else 0
    total = cfg.epochs * steps_per_epoch

    def factor(step):
        if step < warmup:
            return (step + 1) / warmup
        if cfg.schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))
        return cfg.step_gamma ** (step // (cfg.step_epochs * steps_per_epoch))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def make_optimizer(model, cfg):
    """AdamW, Adam or SGD over four groups: body / head x weights (decayed) / biases and norms
    (not decayed); the body's learning rate is BODY_LR_SCALE x the head's. WEIGHT_DECAY is the
    optimizer's (AdamW's decoupled decay; Adam's and SGD's gradient term); the paper's L2 term
    in the loss is L2_LAMBDA (``l2_penalty``)."""
    groups = []
    for part, scale in (("body", cfg.body_lr_scale), ("head", 1.0)):
        params = network.body_and_head(model)[part]
        for decay in (True, False):
            chosen = [p for p in params if (p.ndim > 1) == decay]
            if chosen:
                groups.append({"params": chosen, "lr": cfg.learning_rate * scale,
                               "weight_decay": cfg.weight_decay if decay else 0.0,
                               "name": f"{part}_{'decay' if decay else 'no_decay'}"})
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.learning_rate, momentum=cfg.momentum, nesterov=True)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.learning_rate)
    return torch.optim.AdamW(groups, lr=cfg.learning_rate)


def freeze_body(model, frozen):
    """Body parameters stop (or resume) receiving gradients; a frozen body's batch norms
    also keep their running statistics (eval mode). Call after model.train()."""
    body = set(map(id, network.body_and_head(model)["body"]))
    for p in model.parameters():
        if id(p) in body:
            p.requires_grad_(not frozen)
    if frozen:
        head = network.head_prefixes(model)
        for name, m in model.named_modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and not name.startswith(head):
                m.eval()


def wrap_ddp(model, env):
    """The model as DDP sees it (only parameters that require gradients take part)."""
    if env.world == 1:
        return model
    return torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[env.device.index] if env.device.type == "cuda" else None)
