"""Learned late fusion (torch): phase II of the two-phase paper on frozen inputs.

Inputs are aligned rows ``{name: [n, d]}`` like those of ``fusion`` (the same row order for
every source, aligned by id upstream). Score sources enter as centred log-probabilities
(``score_features``), embeddings ``[n, d]`` standardised on the training folds. Model
(``FusionNet``): fusion layer (elementwise, grouped or concat) -> dense layer -> softmax.
Training (``train_learned``): Adam on cross-entropy (soft targets accepted), LEARNED_STEPS
steps of LEARNED_BATCH_ROWS rows (full batch when fewer), with an L2 pull towards the
initial weights. Scoring (``cross_fit_learned``): each fold is predicted by a model trained on
the other folds (seed + fold), on the folds of ``fusion.cross_fit``, so the two fusions are
compared on the same held-out rows. Above FULL_DENSE_MAX_CLASSES classes the dense layer
keeps only same-class weights (a full C x C layer is slow on a CPU and overfits). Timings:
``scripts/bench_fusion.py --learned``.
"""
import contextlib

import numpy as np
import torch
from torch import nn

import config
import fusion
import metrics

LEARNED_VARIANTS = ("elementwise", "grouped", "concat")
AUDIO_PREFIX = "audio"           # sources whose name starts with this form the audio group
LEARNED_STEPS = 100              # Adam steps per fit (per fold)
LEARNED_BATCH_ROWS = 512         # rows per step; all rows (full batch) when fewer
LEARNED_LR = 0.03
LEARNED_L2 = 1e-2                # x squared distance of the parameters from their init
FULL_DENSE_MAX_CLASSES = 64      # above: the dense layer keeps only same-class weights
LOG_FLOOR = 1e-6                 # probabilities are clipped here before the log


def source_groups(names, groups=None):
    """"audio" or "visual" for each source name.

    Default: a name starting with AUDIO_PREFIX ("audio", "audio_mel", ...) is audio, any
    other name is visual. ``groups`` ({name: "audio" | "visual"}) overrides per name.
    """
    groups = groups or {}
    out = []
    for k in names:
        g = groups.get(k, "audio" if k.startswith(AUDIO_PREFIX) else "visual")
        if g not in ("audio", "visual"):
            raise ValueError(f"source {k!r}: group must be 'audio' or 'visual', got {g!r}")
        out.append(g)
    return out


def score_features(probs):
    """Input of the learned fusion for a score source: centred log-probabilities.

    log p minus its row mean: logits up to the softmax-invariant offset, so a dense layer
    initialised to the identity starts from the product of the sources' probabilities.
    """
    x = np.log(np.maximum(np.asarray(probs, dtype=np.float32), LOG_FLOOR))
    return x - x.mean(axis=1, keepdims=True)


class FusionNet(nn.Module):
    """Fusion layer -> dense layer; forward returns {"logits", "embedding"}.

    Input x: float [S, batch, d] (S sources, same d). Fusion layers:
      elementwise  z = sum_s w_s * x_s + b           w_s, b in R^d (init 1/S, 0)
      grouped      z_g = sum_{s in g} a_s x_s        a_s scalar (init 1/|g|), g = audio,
                   z = u_A * z_A + u_V * z_V + b     visual; u_g, b in R^d (init 1/2, 0)
      concat       z = [z_A ; z_V] + b               b in R^2d
    (with one source per group, grouped is elementwise reparametrised.)
    Dense: full Linear(blocks*d, C), initialised to [I/blocks ...] when d == C, else
    "diagonal": only the weights from input class c to output class c of each block
    (blocks = 2 for concat, else 1).

    Args:
      n_sources, dim: inputs are [n_sources, batch, dim]. n_classes: outputs.
      variant: one of LEARNED_VARIANTS. groups: "audio" / "visual" per source.
      dense: "full", "diagonal" or "auto" (full up to FULL_DENSE_MAX_CLASSES classes or when
        dim != n_classes, else diagonal); the kind used is ``dense_kind``.
    """

    def __init__(self, n_sources, dim, n_classes, variant, groups, dense="auto"):
        super().__init__()
        if variant not in LEARNED_VARIANTS:
            raise ValueError(f"unknown learned fusion {variant!r}; choose from "
                             f"{LEARNED_VARIANTS}")
        if variant != "elementwise" and set(groups) != {"audio", "visual"}:
            raise ValueError(f"fusion {variant!r} needs at least one audio and one visual "
                             f"source, got groups {groups}")
        if dense == "auto":
            dense = ("full" if n_classes <= FULL_DENSE_MAX_CLASSES or dim != n_classes
                     else "diagonal")
        if dense == "diagonal" and dim != n_classes:
            raise ValueError(f"a diagonal dense layer needs inputs of n_classes={n_classes} "
                             f"dims (scores), got {dim}")
        self.variant, self.dense_kind = variant, dense
        self.blocks = 2 if variant == "concat" else 1
        # parameters are created in a fixed order: it fixes the RNG draws of nn.Linear
        self.register_buffer("is_audio", torch.tensor([g == "audio" for g in groups]))
        if variant == "elementwise":
            self.w = nn.Parameter(torch.full((n_sources, dim), 1.0 / n_sources))
        else:
            size = torch.where(self.is_audio, self.is_audio.sum(), (~self.is_audio).sum())
            self.a = nn.Parameter(1.0 / size.float())
        if variant == "grouped":
            self.u = nn.Parameter(torch.full((2, dim), 0.5))
        self.b = nn.Parameter(torch.zeros(self.blocks * dim))
        if dense == "full":
            self.dense = nn.Linear(self.blocks * dim, n_classes)
            if dim == n_classes:
                with torch.no_grad():
                    self.dense.weight.copy_(
                        torch.eye(n_classes).repeat(1, self.blocks) / self.blocks)
                    self.dense.bias.zero_()
        else:
            self.dense_w = nn.Parameter(torch.full((self.blocks, n_classes), 1.0 / self.blocks))
            self.dense_b = nn.Parameter(torch.zeros(n_classes))

    def fusion(self, x):
        """[S, batch, d] -> [batch, blocks * d]."""
        if self.variant == "elementwise":
            return (self.w[:, None, :] * x).sum(0) + self.b
        ax = self.a[:, None, None] * x
        z_audio = ax[self.is_audio].sum(0)
        z_visual = ax[~self.is_audio].sum(0)
        if self.variant == "grouped":
            return self.u[0] * z_audio + self.u[1] * z_visual + self.b
        return torch.cat([z_audio, z_visual], dim=1) + self.b

    def forward(self, x):
        z = self.fusion(x)                                   # [batch, blocks * d]
        if self.dense_kind == "full":
            logits = self.dense(z)
        else:
            zb = z.view(len(z), self.blocks, -1)             # [batch, blocks, C]
            logits = (zb * self.dense_w).sum(1) + self.dense_b
        return {"logits": logits, "embedding": z}


@contextlib.contextmanager
def _single_thread():
    """Run torch on one thread inside the block: these models are tiny, and OpenMP threads
    spinning against other processes on a shared CPU made steps much slower."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def train_learned(x, labels, variant, groups, n_classes, seed=config.SEED,
                  steps=LEARNED_STEPS, lr=LEARNED_LR, dense="auto", l2=LEARNED_L2):
    """Fit a FusionNet with Adam and cross-entropy, ``steps`` updates.

    Batches: all rows when n <= LEARNED_BATCH_ROWS (full batch), else LEARNED_BATCH_ROWS
    rows drawn without replacement from a seeded shuffle, reshuffled each epoch; so the
    cost is fixed (steps x batch rows x S x d) whatever n is.

    Args:
      x: float32 [S, n, d] inputs (``score_features`` or standardised embeddings).
      labels: int [n] class per row, or float [n, C] soft targets (cross-entropy with soft
        targets, i.e. KL divergence up to a constant).
      variant, groups, dense: see ``FusionNet``.
    Returns:
      (model in eval mode, mean training loss of the last epoch's worth of steps).
    """
    with _single_thread():
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        model = FusionNet(x.shape[0], x.shape[2], n_classes, variant, groups, dense)
        xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        yt = torch.from_numpy(np.asarray(labels))
        yt = yt.float() if yt.is_floating_point() else yt.long()
        n = xt.shape[1]
        batch = min(n, LEARNED_BATCH_ROWS)
        per_epoch = max(1, n // batch)
        params = list(model.parameters())
        init = [p.detach().clone() for p in params]
        opt = torch.optim.Adam(params, lr=lr)
        losses, order = [], None
        for step in range(steps):
            if batch == n:
                xb, yb = xt, yt
            else:
                if step % per_epoch == 0:
                    order = torch.from_numpy(rng.permutation(n))
                idx = order[(step % per_epoch) * batch:(step % per_epoch + 1) * batch]
                xb, yb = xt[:, idx], yt[idx]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(xb)["logits"], yb)
            if l2:
                loss = loss + l2 * sum(((p - p0) ** 2).sum() for p, p0 in zip(params, init))
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
    tail = losses[-per_epoch:] or [float("nan")]
    return model.eval(), float(np.mean(tail))


def predict_learned(model, x):
    """Class probabilities float32 [n, C] for inputs [S, n, d] (in row chunks)."""
    out = []
    with _single_thread(), torch.no_grad():
        for a in range(0, x.shape[1], LEARNED_BATCH_ROWS * 8):
            xb = torch.from_numpy(np.ascontiguousarray(x[:, a:a + LEARNED_BATCH_ROWS * 8],
                                                       dtype=np.float32))
            out.append(torch.softmax(model(xb)["logits"], dim=1).numpy())
    return np.concatenate(out)


def cross_fit_learned(inputs, labels, variant, folds, kinds=None, groups=None,
                      n_classes=None, seed=config.SEED, steps=LEARNED_STEPS, lr=LEARNED_LR,
                      dense="auto", l2=LEARNED_L2):
    """Learned fusion scored like ``fusion.cross_fit``: each fold predicted by a model trained
    on the other folds (seed + fold), so held-out rows never train their own model.

    Args:
      inputs: {name: float [n, d]}, aligned rows. kinds: {name: "scores" | "embedding"}
        (default "scores": normalised probabilities, fed as ``score_features``; embeddings
        are standardised with the training folds' mean and std).
      labels: int [n]. folds: int [n] (``CrossFit.folds``, so both fusions share folds).
      groups: see ``source_groups``.
    Returns:
      {"probs": float32 [n, C], "metrics": ``fusion.metrics`` of probs, "fold_losses": [k],
       "dense": kind used}.
    """
    names = list(inputs)
    kinds = {k: (kinds or {}).get(k, "scores") for k in names}
    arrays = [np.asarray(inputs[k], dtype=np.float32) for k in names]
    n = len(arrays[0])
    if n_classes is None:
        if any(v != "scores" for v in kinds.values()):
            raise ValueError("n_classes is needed when some inputs are embeddings")
        n_classes = arrays[0].shape[1]
    dims = {a.shape[1] for a in arrays}
    if len(dims) != 1 or any(len(a) != n for a in arrays):
        raise ValueError(f"learned fusion needs [n, d] inputs of one shape, got "
                         f"{[a.shape for a in arrays]}")
    labels = metrics.check_labels(labels, n, n_classes)
    folds = np.asarray(folds, dtype=np.int64)
    group_of = source_groups(names, groups)
    feats = np.stack([score_features(a) if kinds[k] == "scores" else a
                      for k, a in zip(names, arrays)])                # [S, n, d]
    probs = np.empty((n, n_classes), dtype=np.float32)
    losses, dense_used = [], None
    for f in range(int(folds.max()) + 1):
        train, test = folds != f, folds == f
        x = feats.copy()
        for s, k in enumerate(names):
            if kinds[k] == "embedding":
                mu = x[s, train].mean(axis=0)
                sd = x[s, train].std(axis=0) + 1e-6
                x[s] = (x[s] - mu) / sd
        model, loss = train_learned(x[:, train], labels[train], variant, group_of, n_classes,
                                    seed=seed + f, steps=steps, lr=lr, dense=dense, l2=l2)
        probs[test] = predict_learned(model, x[:, test])
        losses.append(loss)
        dense_used = model.dense_kind
    return {"probs": probs, "metrics": fusion.metrics(probs, labels), "fold_losses": losses,
            "dense": dense_used}
