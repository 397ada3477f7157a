"""Learned fusion (torch): Phase II of the two-phase system (Pham et al., DCASE 2021), the
one implementation of a fusion layer + dense layer trained on frozen inputs.

OUR READING. The seed's equations did not survive in its text (../shared/seeds/
003_4b13d33758f83ab9.txt); the layers below are our reading of its prose. With e_i the inputs
of the sources (audio set A, visual set V), all of one width d, and * element-wise:

  sum      z = sum_i w_i * e_i + b                       w_i, b in R^d   (F1, F4)
  grouped  a = sum_{i in A} u_i * e_i,  v = sum_{j in V} u_j * e_j,
           z = alpha * a + beta * v + b                  u_i, alpha, beta, b in R^d (F2, F5)
  concat   z = [a ; v]  (a, v as in grouped)             z in R^2d      (F3, F6)

then the dense layer FC(n_classes) and a softmax. Every weight is a trainable VECTOR per
source (not a scalar). The paper's F1-F3 take the backbones' FC(1024) embeddings, F4-F6 their
FC(n_classes) outputs (the contract's ``logits``): ``PHASE2_LAYERS``.

Inputs are aligned rows ``{name: [n, d]}`` (one row order for every source, aligned by id
upstream), stacked as ``[n, S, d]``. What enters the layer depends on the input's kind:
  "embedding"  standardised per dimension with the training rows' mean and std (kept in the
               model as buffers, so a saved model takes raw embeddings);
  "logits"     centred per row (x minus its row mean: softmax-invariant);
  "scores"     probabilities as centred log-probabilities (``score_features``): what step
               07 feeds when it has score files only (no embeddings, no logits).
Initialisation: w_i = 1/S, u_i = 1/|group|, alpha = beta = 1/2, b = 0; when d == n_classes
the dense layer starts as the identity (concat: [I/2, I/2]), so an untrained model on
logits or scores predicts the normalised weighted geometric mean of the sources'
probabilities (sum: each source's to the power 1/S; grouped and concat: the audio and the
visual group's geometric means, each to the power 1/2). Above FULL_DENSE_MAX_CLASSES classes with d == n_classes the dense
layer keeps only same-class weights ("diagonal": a full C x C layer is slow on a CPU and
overfits).

Training (``train_fusion``, settings in ``FusionSettings`` from config.py's LEARNED_FUSION_*
keys): Adam, LEARNED_FUSION_STEPS steps of LEARNED_FUSION_BATCH_ROWS rows (all rows when
fewer); mixup on the inputs (training.objectives.mixup, Beta(LEARNED_FUSION_MIXUP_ALPHA); 0 = off) and the
KL-divergence loss to the soft targets (training.objectives.kl_loss, as Phase I); plus LEARNED_FUSION_L2 x
the squared distance of the parameters from their initial values. The backbones are never
touched: only these inputs are read. Scoring: ``cross_fit_fusion`` predicts each fold with a
model trained on the other folds (seed + fold), on the folds of ``fusion.cross_fit``, so the
weighted average and the learned layers are compared on the same held-out rows;
``fit_fusion`` trains one model on all given rows (protocol (a) of the two-phase paper).
Timings: ``benchmarks/bench_fusion.py --learned``.
"""
import contextlib
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

import config
import fusion
from soundtrack import metrics
from soundtrack.training.objectives import kl_loss, mixup   # Phase I's loss and mixup

LAYERS = ("sum", "grouped", "concat")
# The two-phase paper's six Phase II layers: (the contract array they read, the layer)
PHASE2_LAYERS = {"F1": ("embedding", "sum"), "F2": ("embedding", "grouped"),
                 "F3": ("embedding", "concat"), "F4": ("logits", "sum"),
                 "F5": ("logits", "grouped"), "F6": ("logits", "concat")}
KINDS = ("embedding", "logits", "scores")
AUDIO_PREFIX = "aud"             # sources named aud* (audio, aud_mel, ...) are the audio set A
FULL_DENSE_MAX_CLASSES = 64      # above (and d == C): the dense layer keeps same-class weights
LOG_FLOOR = 1e-6                 # probabilities are clipped here before the log
STD_FLOOR = 1e-6                 # added to an embedding dimension's std


@dataclass(frozen=True)
class FusionSettings:
    """How a fusion model is trained (config.py's LEARNED_FUSION_* keys, and SEED)."""
    steps: int = config.LEARNED_FUSION_STEPS
    learning_rate: float = config.LEARNED_FUSION_LR
    l2: float = config.LEARNED_FUSION_L2
    batch_rows: int = config.LEARNED_FUSION_BATCH_ROWS
    mixup_alpha: float = config.LEARNED_FUSION_MIXUP_ALPHA
    seed: int = config.SEED

    @classmethod
    def from_settings(cls, cfg):
        """From a cli.Settings holding the LEARNED_FUSION_* keys and SEED."""
        return cls(steps=cfg.learned_fusion_steps, learning_rate=cfg.learned_fusion_lr,
                   l2=cfg.learned_fusion_l2, batch_rows=cfg.learned_fusion_batch_rows,
                   mixup_alpha=cfg.learned_fusion_mixup_alpha, seed=cfg.seed)

    def to_dict(self):
        return asdict(self)


SETTINGS_KEYS = ["LEARNED_FUSION_STEPS", "LEARNED_FUSION_LR", "LEARNED_FUSION_L2",
                 "LEARNED_FUSION_BATCH_ROWS", "LEARNED_FUSION_MIXUP_ALPHA", "SEED"]


def source_groups(names, groups=None):
    """"audio" or "visual" for each source name.

    Default: a name starting with AUDIO_PREFIX ("aud_mel", "audio", ...) is audio, any
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
    """Input of the fusion layer for a score source: centred log-probabilities.

    log p minus its row mean: logits up to the softmax-invariant offset, so a dense layer
    initialised to the identity starts from the product of the sources' probabilities.
    """
    x = np.log(np.maximum(np.asarray(probs, dtype=np.float32), LOG_FLOOR))
    return x - x.mean(axis=1, keepdims=True)


def row_features(array, kind):
    """The row-wise transform of one source's input (standardisation lives in the model).

    Args:
      array: float [n, d]; kind: one of KINDS.
    Returns:
      float32 [n, d]: centred log-probabilities (scores), centred logits, or the embedding.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    x = np.asarray(array, dtype=np.float32)
    if kind == "scores":
        return score_features(x)
    if kind == "logits":
        return x - x.mean(axis=1, keepdims=True)
    return x


class FusionNet(nn.Module):
    """Input standardisation -> fusion layer -> dense layer; forward returns {"logits",
    "embedding"} (the fusion layer's output z).

    Input x: float [batch, S, d] (row features, see ``row_features``). Layers: see the module
    docstring. The buffers ``in_mean``, ``in_std`` ([S, d]; 0 and 1 for inputs that are not
    embeddings) are set by ``set_standardisation``.

    Args:
      n_sources, dim: inputs are [batch, n_sources, dim]. n_classes: outputs.
      layer: one of LAYERS. groups: "audio" / "visual" per source.
      dense: "full", "diagonal" or "auto" (full up to FULL_DENSE_MAX_CLASSES classes or when
        dim != n_classes, else diagonal); the kind used is ``dense_kind``.
    """

    def __init__(self, n_sources, dim, n_classes, layer, groups, dense="auto"):
        super().__init__()
        if layer not in LAYERS:
            raise ValueError(f"unknown fusion layer {layer!r}; choose from {LAYERS}")
        if len(groups) != n_sources:
            raise ValueError(f"{len(groups)} groups for {n_sources} sources")
        if layer != "sum" and set(groups) != {"audio", "visual"}:
            raise ValueError(f"fusion layer {layer!r} needs at least one audio and one visual "
                             f"source, got groups {list(groups)}")
        if dense == "auto":
            dense = ("full" if n_classes <= FULL_DENSE_MAX_CLASSES or dim != n_classes
                     else "diagonal")
        if dense == "diagonal" and dim != n_classes:
            raise ValueError(f"a diagonal dense layer needs inputs of n_classes={n_classes} "
                             f"dims, got {dim}")
        self.layer, self.dense_kind = layer, dense
        self.blocks = 2 if layer == "concat" else 1
        self.register_buffer("is_audio", torch.tensor([g == "audio" for g in groups]))
        self.register_buffer("in_mean", torch.zeros(n_sources, dim))
        self.register_buffer("in_std", torch.ones(n_sources, dim))
        # parameters are created in a fixed order: it fixes the RNG draws of nn.Linear
        if layer == "sum":
            self.w = nn.Parameter(torch.full((n_sources, dim), 1.0 / n_sources))
            self.b = nn.Parameter(torch.zeros(dim))
        else:
            size = torch.where(self.is_audio, self.is_audio.sum(), (~self.is_audio).sum())
            self.u = nn.Parameter((1.0 / size.float())[:, None].repeat(1, dim))
        if layer == "grouped":
            self.alpha = nn.Parameter(torch.full((dim,), 0.5))
            self.beta = nn.Parameter(torch.full((dim,), 0.5))
            self.b = nn.Parameter(torch.zeros(dim))
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

    def set_standardisation(self, mean, std):
        """mean, std: float [S, d] (0 / 1 rows for sources that are not standardised)."""
        with torch.no_grad():
            self.in_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
            self.in_std.copy_(torch.as_tensor(std, dtype=torch.float32))

    def fusion(self, x):
        """[batch, S, d] standardised -> z [batch, blocks * d]."""
        if self.layer == "sum":
            return (self.w * x).sum(1) + self.b
        ux = self.u * x                                      # [batch, S, d]
        a = ux[:, self.is_audio].sum(1)
        v = ux[:, ~self.is_audio].sum(1)
        if self.layer == "grouped":
            return self.alpha * a + self.beta * v + self.b
        return torch.cat([a, v], dim=1)

    def forward(self, x):
        z = self.fusion((x - self.in_mean) / self.in_std)   # [batch, blocks * d]
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


def standardisation(x, kinds):
    """Per-source mean and std [S, d] of rows x [n, S, d]: the embeddings' own, 0 / 1 for
    the other kinds."""
    mean = np.zeros(x.shape[1:], np.float32)
    std = np.ones(x.shape[1:], np.float32)
    for s, kind in enumerate(kinds):
        if kind == "embedding":
            mean[s] = x[:, s].mean(axis=0)
            std[s] = x[:, s].std(axis=0) + STD_FLOOR
    return mean, std


def train_fusion(x, labels, layer, groups, n_classes, kinds, settings=FusionSettings(),
                 dense="auto"):
    """Fit a FusionNet with Adam, mixup and the KL loss, ``settings.steps`` updates.

    Batches: all rows when n <= batch_rows (full batch), else batch_rows rows drawn without
    replacement from a seeded shuffle, reshuffled each epoch; so the cost is fixed (steps x
    batch rows x S x d) whatever n is. Mixup (mixup_alpha > 0) mixes each batch with a
    permutation of itself, inputs and soft targets alike (objectives.mixup).

    Args:
      x: float32 [n, S, d] row features (``row_features``). kinds: the kind of each source
        (embeddings are standardised with these rows' statistics).
      labels: int [n]. layer, groups, dense: see ``FusionNet``.
    Returns:
      (model in eval mode, mean training loss of the last epoch's worth of steps).
    """
    s = settings
    with _single_thread():
        torch.manual_seed(s.seed)
        rng = np.random.default_rng(s.seed)
        gen = torch.Generator().manual_seed(s.seed)
        model = FusionNet(x.shape[1], x.shape[2], n_classes, layer, groups, dense)
        model.set_standardisation(*standardisation(x, kinds))
        xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        yt = torch.nn.functional.one_hot(torch.from_numpy(np.asarray(labels, np.int64)),
                                         n_classes).float()
        n = len(xt)
        batch = min(n, s.batch_rows)
        per_epoch = max(1, n // batch)
        params = list(model.parameters())
        init = [p.detach().clone() for p in params]
        opt = torch.optim.Adam(params, lr=s.learning_rate)
        losses, order = [], None
        for step in range(s.steps):
            if batch == n:
                xb, yb = xt, yt
            else:
                if step % per_epoch == 0:
                    order = torch.from_numpy(rng.permutation(n))
                idx = order[(step % per_epoch) * batch:(step % per_epoch + 1) * batch]
                xb, yb = xt[idx], yt[idx]
            if s.mixup_alpha > 0:
                xb, yb = mixup(xb, yb, s.mixup_alpha, gen, rng)
            opt.zero_grad()
            loss = kl_loss(model(xb)["logits"], yb)
            if s.l2:
                loss = loss + s.l2 * sum(((p - p0) ** 2).sum() for p, p0 in zip(params, init))
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
    tail = losses[-per_epoch:] or [float("nan")]
    return model.eval(), float(np.mean(tail))


def predict_fusion(model, x, chunk_rows=4096):
    """Class probabilities float32 [n, C] for row features [n, S, d] (in row chunks)."""
    out = []
    with _single_thread(), torch.no_grad():
        for a in range(0, len(x), chunk_rows):
            xb = torch.from_numpy(np.ascontiguousarray(x[a:a + chunk_rows], dtype=np.float32))
            out.append(torch.softmax(model(xb)["logits"], dim=1).numpy())
    if not out:
        return np.zeros((0, model.dense_b.shape[0] if model.dense_kind == "diagonal"
                         else model.dense.out_features), np.float32)
    return np.concatenate(out)


def stack_inputs(inputs, kinds):
    """{name: float [n, d]} + {name: kind} -> (names, row features float32 [n, S, d]).

    All inputs must have one shape (the fusion layers add them element-wise)."""
    names = list(inputs)
    if not names:
        raise ValueError("no fusion inputs given")
    arrays = [np.asarray(inputs[k], dtype=np.float32) for k in names]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1 or arrays[0].ndim != 2:
        raise ValueError(f"the fusion layers need [n, d] inputs of one shape, got "
                         f"{dict(zip(names, [a.shape for a in arrays]))}")
    return names, np.stack([row_features(a, kinds[k]) for k, a in zip(names, arrays)], axis=1)


def _kinds(names, kinds):
    kinds = {k: (kinds or {}).get(k, "scores") for k in names}
    bad = {k: v for k, v in kinds.items() if v not in KINDS}
    if bad:
        raise ValueError(f"input kinds must be of {KINDS}, got {bad}")
    return kinds


def fit_fusion(inputs, labels, layer, n_classes, kinds=None, groups=None,
               settings=FusionSettings(), dense="auto"):
    """One model trained on all given rows (protocol (a): Phase II on the training split).

    Args:
      inputs: {name: float [n, d]} aligned rows. kinds: {name: kind} (default "scores").
      labels: int [n]. groups: see ``source_groups``.
    Returns:
      (model, {"names", "kinds", "groups", "layer", "n_classes", "dim", "dense", "loss",
       "settings"}: what ``save_model`` records to rebuild it).
    """
    kinds = _kinds(list(inputs), kinds)
    names, x = stack_inputs(inputs, kinds)
    labels = metrics.check_labels(labels, len(x), n_classes)
    group_of = source_groups(names, groups)
    model, loss = train_fusion(x, labels, layer, group_of, n_classes, [kinds[k] for k in names],
                               settings, dense)
    return model, {"names": names, "kinds": [kinds[k] for k in names], "groups": group_of,
                   "layer": layer, "n_classes": int(n_classes), "dim": int(x.shape[2]),
                   "dense": model.dense_kind, "loss": loss, "settings": settings.to_dict()}


def cross_fit_fusion(inputs, labels, layer, folds, n_classes, kinds=None, groups=None,
                     settings=FusionSettings(), dense="auto"):
    """A fusion layer scored like ``fusion.cross_fit``: each fold predicted by a model
    trained on the other folds (seed + fold), so held-out rows never train their own model.

    Args:
      inputs: {name: float [n, d]}, aligned rows. kinds: {name: kind} (default "scores").
      labels: int [n]. folds: int [n] (``CrossFit.folds``, so both fusions share folds).
      groups: see ``source_groups``.
    Returns:
      {"probs": float32 [n, C], "metrics": ``fusion.metrics`` of probs, "fold_losses": [k],
       "dense": kind used}.
    """
    kinds = _kinds(list(inputs), kinds)
    names, x = stack_inputs(inputs, kinds)
    labels = metrics.check_labels(labels, len(x), n_classes)
    folds = np.asarray(folds, dtype=np.int64)
    if folds.shape != labels.shape:
        raise ValueError(f"folds {folds.shape} and labels {labels.shape} differ in length")
    group_of = source_groups(names, groups)
    probs = np.empty((len(x), n_classes), dtype=np.float32)
    losses, dense_used = [], None
    for f in range(int(folds.max()) + 1):
        train, test = folds != f, folds == f
        fold_settings = FusionSettings(**{**settings.to_dict(), "seed": settings.seed + f})
        model, loss = train_fusion(x[train], labels[train], layer, group_of, n_classes,
                                   [kinds[k] for k in names], fold_settings, dense)
        probs[test] = predict_fusion(model, x[test])
        losses.append(loss)
        dense_used = model.dense_kind
    return {"probs": probs, "metrics": fusion.metrics(probs, labels), "fold_losses": losses,
            "dense": dense_used}


def save_model(path, model, record):
    """A fitted model and its record (``fit_fusion``'s, plus whatever the caller adds: plain
    Python values) in one torch file, readable with weights_only=True."""
    from soundtrack import datafiles
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    datafiles.atomic_write(path, lambda tmp: torch.save({"record": record, "state": state},
                                                        tmp))


def load_model(path):
    """-> (FusionNet in eval mode, record) from ``save_model``'s file."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    r = saved["record"]
    model = FusionNet(len(r["names"]), r["dim"], r["n_classes"], r["layer"], r["groups"],
                      r["dense"])
    model.load_state_dict(saved["state"])
    return model.eval(), r


def predict_saved(model, record, inputs):
    """Probabilities [n, C] of a loaded model for raw inputs {name: [n, d]} (its sources)."""
    missing = [k for k in record["names"] if k not in inputs]
    if missing:
        raise ValueError(f"the fusion model needs sources {record['names']}; missing {missing}")
    _, x = stack_inputs({k: inputs[k] for k in record["names"]},
                        dict(zip(record["names"], record["kinds"])))
    return predict_fusion(model, x)
