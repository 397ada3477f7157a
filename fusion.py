"""Late fusion of score sources by a searched weighted average (numpy only).

Every function takes the sources as an ordered mapping ``{name: [n, n_classes]}`` whose rows
are the SAME videos in the same order; rows are aligned by id before they get here
(``soundtrack.join``; steps 06 and 07), never by position. The learned fusion layer lives in
``learned_fusion`` (torch); this module does not import it.

Normalisation (``normalize``), the same for every use of a source:
  ``probs``   rows must be non-negative and sum to 1 within PROBS_SUM_TOLERANCE; they are
              rescaled to sum to exactly 1. Rows that fail are an error naming the row: a
              source declared as probabilities that is not is a bug upstream, not a guess.
  ``logits``  softmax over classes (log-probabilities give back the probabilities).
  ``auto``    ``probs`` if every row passes that check, otherwise ``logits``; the decision
              is returned so that callers report it (and ``--apply`` reuses it).
The weighted average is taken over probabilities.

Metrics (``metrics``) are percent: top-1, top-5, mean per-class top-1 (over the classes
present), and n; correctness of a row follows the tie rule of the ``metrics`` module (an
exact tie counts against the row).

Weight search (``search_weights``, ``cross_fit``): a grid of weight vectors that sum to 1.
Two sources: the first source's weight takes FUSION_GRID_STEPS values 0, 1/(steps-1), ..., 1
(both ends included), the second gets the rest. More sources: the simplex grid
{k / m : k integer, sum k = m} with the finest m <= steps-1 that gives at most
MAX_SIMPLEX_POINTS points (3 sources: m = 30, 496 points). Cost: one pass of
G x n x C x S multiply-adds and G x n x C comparisons (G grid points), in row chunks that fit
the cache (timings: ``benchmarks/bench_fusion.py``). Selection: highest top-1, ties broken by
top-5, then by the smallest distance to equal weights, then by grid order (smaller weight on
the first source).

Honest numbers (``cross_fit``): rows are split into k folds (stratified by class, shuffled
with a fixed seed: ``make_folds``); each fold's rows are fused with the weights chosen on the
other folds only, and the headline metrics are over all rows scored that way. The weights
chosen on all rows are reported too, labelled oracle (they have seen the labels they are
scored on); they are the fair choice for ANOTHER split (``07_fuse.py --apply``).

Significance: ``soundtrack.metrics.paired_bootstrap``, a percentile interval of the accuracy
difference of two systems on the same rows.
"""
import itertools
import math
from dataclasses import dataclass, field

import numpy as np

import config
from soundtrack import metrics as metrics_module  # one softmax and one tie rule for the project

KINDS = ("auto", "probs", "logits")
PROBS_SUM_TOLERANCE = 1e-3       # |row sum - 1| allowed for a probability row
TOP_K = 5                        # the "top-5" of the metrics
MAX_SIMPLEX_POINTS = 500         # weight vectors tried for 3 or more sources
CHUNK_ELEMENTS = 1 << 19         # rows x classes per chunk of the grid search (2 MiB float32)


# ---------------------------------------------------------------- normalisation

def probs_problem(scores, tolerance=PROBS_SUM_TOLERANCE):
    """None if every row is a probability vector, else a message naming the first bad row."""
    neg = np.flatnonzero((scores < 0).any(axis=1))
    if len(neg):
        r = int(neg[0])
        return (f"row {r} has a negative value {scores[r].min():.4g} "
                f"({len(neg)} such rows)")
    sums = scores.sum(axis=1, dtype=np.float64)
    off = np.flatnonzero(np.abs(sums - 1.0) > tolerance)
    if len(off):
        r = int(off[0])
        return f"row {r} sums to {sums[r]:.6g}, not 1 ({len(off)} such rows)"
    return None


def normalize(scores, kind="auto", name="scores"):
    """Row probabilities of one source.

    Args:
      scores: float [n, C], finite.
      kind: "probs", "logits" or "auto" (see the module docstring).
      name: used in error messages (a file name or source name).
    Returns:
      (probs float32 [n, C], kind used: "probs" or "logits").
    """
    if kind not in KINDS:
        raise ValueError(f"{name}: kind must be one of {KINDS}, got {kind!r}")
    scores = np.asarray(scores, dtype=np.float32)
    if scores.ndim != 2 or scores.shape[1] < 2:
        raise ValueError(f"{name}: expected [n, n_classes >= 2], got shape {scores.shape}")
    if not np.isfinite(scores).all():
        r = int(np.flatnonzero(~np.isfinite(scores).all(axis=1))[0])
        raise ValueError(f"{name}: non-finite value in row {r}")
    if kind == "logits":
        return metrics_module.softmax(scores), "logits"
    problem = probs_problem(scores)
    if problem is None:
        return scores / scores.sum(axis=1, keepdims=True), "probs"
    if kind == "probs":
        raise ValueError(f"{name}: declared as probabilities but {problem}")
    return metrics_module.softmax(scores), "logits"


# ---------------------------------------------------------------- metrics

def metrics(scores, labels):
    """Top-1 and top-5 accuracy, mean per-class accuracy (percent) and n of one score matrix.

    Args:
      scores: [n, C]; labels: int [n] in 0..C-1.
    Returns:
      {"top1", "top5", "mean_class_acc": float percent (NaN when n == 0), "n": int}.
    """
    scores = np.asarray(scores)
    rank = metrics_module.true_class_rank(scores, labels)
    if len(rank) == 0:
        return {"top1": float("nan"), "top5": float("nan"), "mean_class_acc": float("nan"),
                "n": 0}
    per_class = per_class_accuracy(rank < 1, labels, scores.shape[1])
    return {"top1": metrics_module.topk_from_rank(rank, 1),
            "top5": metrics_module.topk_from_rank(rank, TOP_K),
            "mean_class_acc": 100.0 * float(np.nanmean(per_class)),
            "n": int(len(rank))}


def per_class_accuracy(correct, labels, n_classes):
    """Fraction correct per class, float64 [n_classes]; NaN for classes with no rows."""
    labels = np.asarray(labels)
    total = np.bincount(labels, minlength=n_classes).astype(np.float64)
    hits = np.bincount(labels, weights=np.asarray(correct, dtype=np.float64),
                       minlength=n_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, hits / np.maximum(total, 1), np.nan)


def best_source(source_metrics):
    """Name of the best single source: highest top-1, then top-5, then first given."""
    names = list(source_metrics)
    return max(names, key=lambda k: (source_metrics[k]["top1"], source_metrics[k]["top5"],
                                     -names.index(k)))


# ---------------------------------------------------------------- weighted average

def _as_list(sources):
    if not sources:
        raise ValueError("no score sources given")
    names = list(sources)
    arrays = [np.asarray(sources[k], dtype=np.float32) for k in names]
    shape = arrays[0].shape
    for k, a in zip(names, arrays):
        if a.ndim != 2 or a.shape != shape:
            raise ValueError(f"source {k!r}: shape {a.shape}, expected {shape} like "
                             f"{names[0]!r} (rows aligned by id, same classes)")
    return names, arrays


def _combine(chunks, weights, out, tmp):
    """out = sum_s weights[s] * chunks[s], in source order (float32, the one fusion formula)."""
    np.multiply(chunks[0], weights[0], out=out)
    for chunk, w in zip(chunks[1:], weights[1:]):
        np.multiply(chunk, w, out=tmp)
        out += tmp
    return out


def fuse(sources, weights):
    """Weighted average of aligned probability sources.

    Args:
      sources: {name: float [n, C]} (normalised rows).
      weights: {name: weight} or a sequence in source order; non-negative, summing to 1.
    Returns:
      float32 [n, C].
    """
    names, arrays = _as_list(sources)
    if isinstance(weights, dict):
        if set(weights) != set(names):
            raise ValueError(f"weights are for {sorted(weights)}, sources are {sorted(names)}")
        weights = [weights[k] for k in names]
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (len(names),) or (w < 0).any() or abs(w.sum() - 1) > 1e-6:
        raise ValueError(f"weights must be {len(names)} non-negative numbers summing to 1, "
                         f"got {list(weights)}")
    out = np.empty_like(arrays[0])
    return _combine(arrays, w.astype(np.float32), out, np.empty_like(out))


def weight_grid(n_sources, steps=config.FUSION_GRID_STEPS):
    """The weight vectors tried by the search.

    Returns:
      (units int64 [G, n_sources], m): weights are units / m; each row sums to m. For two
      sources the first source's weight runs 0, 1/m, ..., 1 with m = steps - 1.
    """
    if n_sources < 1 or steps < 2:
        raise ValueError(f"need n_sources >= 1 and steps >= 2, got {n_sources}, {steps}")
    if n_sources == 1:
        return np.ones((1, 1), dtype=np.int64), 1
    m = steps - 1
    if n_sources == 2:
        first = np.arange(m + 1)
        return np.stack([first, m - first], axis=1).astype(np.int64), m
    while m > 1 and math.comb(m + n_sources - 1, n_sources - 1) > MAX_SIMPLEX_POINTS:
        m -= 1
    rows = [c + (m - sum(c),) for c in itertools.product(range(m + 1), repeat=n_sources - 1)
            if sum(c) <= m]
    return np.asarray(rows, dtype=np.int64), m


def grid_counts(sources, labels, units, m, groups=None, n_groups=1):
    """Top-1 and top-5 hit counts of every grid weight vector, per group of rows.

    One pass over the rows in cache-sized chunks; each chunk is fused with every weight
    vector by ``_combine`` (the formula of ``fuse``) and ranked by
    ``metrics.true_class_rank``, so a count equals what ``fuse`` + ``metrics`` would give.

    Args:
      sources: {name: float [n, C]} normalised; labels: int [n].
      units, m: from ``weight_grid``.
      groups: int [n] in 0..n_groups-1 (folds), or None for one group.
    Returns:
      (top1 int64 [n_groups, G], top5 int64 [n_groups, G]).
    """
    names, arrays = _as_list(sources)
    n, n_classes = arrays[0].shape
    labels = metrics_module.check_labels(labels, n, n_classes)
    groups = np.zeros(n, dtype=np.int64) if groups is None else np.asarray(groups, np.int64)
    weights = (units / m).astype(np.float32)
    top1 = np.zeros((n_groups, len(units)), dtype=np.int64)
    top5 = np.zeros_like(top1)
    step = max(1, CHUNK_ELEMENTS // n_classes)
    out = np.empty((min(step, n), n_classes), dtype=np.float32)
    tmp = np.empty_like(out)
    for a in range(0, n, step):
        chunks = [x[a:a + step] for x in arrays]
        rows = len(chunks[0])
        y, g = labels[a:a + step], groups[a:a + step]
        for j, w in enumerate(weights):
            fused = _combine(chunks, w, out[:rows], tmp[:rows])
            rank = metrics_module.true_class_rank(fused, y)
            top1[:, j] += np.bincount(g, weights=rank < 1, minlength=n_groups).astype(np.int64)
            top5[:, j] += np.bincount(g, weights=rank < TOP_K,
                                      minlength=n_groups).astype(np.int64)
    return top1, top5


def choose(top1, top5, units, m):
    """Index of the selected grid point: top-1, then top-5, then closeness to equal weights.

    Distances are compared exactly in integer units; remaining ties go to grid order.
    """
    s = units.shape[1]
    dist2 = ((s * units - m) ** 2).sum(axis=1)
    order = np.lexsort((np.arange(len(units)), dist2, -np.asarray(top5), -np.asarray(top1)))
    return int(order[0])


def search_weights(sources, labels, steps=config.FUSION_GRID_STEPS):
    """Weights chosen on all given rows (an oracle if these rows are also the ones reported).

    Returns:
      {"weights": {name: w}, "index": grid index, "top1": percent, "top5": percent}.
    """
    names = list(sources)
    units, m = weight_grid(len(names), steps)
    top1, top5 = grid_counts(sources, labels, units, m)
    j = choose(top1[0], top5[0], units, m)
    n = len(labels)
    return {"weights": dict(zip(names, (units[j] / m).tolist())), "index": j,
            "top1": 100.0 * top1[0, j] / n, "top5": 100.0 * top5[0, j] / n}


# ---------------------------------------------------------------- cross-fitting

def make_folds(labels, n_folds=config.FUSION_FOLDS, seed=config.SEED):
    """Fold of each row: stratified by class, shuffled with a fixed seed.

    Within each class (in class order) the rows are shuffled and dealt to folds round-robin,
    continuing where the previous class stopped, so fold sizes differ by at most one and
    each class is spread as evenly as possible. Depends only on labels and seed.

    Returns:
      int64 [n] in 0..n_folds-1.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if n_folds < 2 or len(labels) < n_folds:
        raise ValueError(f"need 2 <= n_folds <= n rows, got n_folds={n_folds}, "
                         f"n={len(labels)}")
    rng = np.random.default_rng(seed)
    folds = np.empty(len(labels), dtype=np.int64)
    start = 0
    for c in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == c))
        folds[rows] = (start + np.arange(len(rows))) % n_folds
        start += len(rows)
    return folds


@dataclass
class CrossFit:
    """The outcome of ``cross_fit``; weights arrays are in the order of ``names``."""
    names: list
    grid: np.ndarray            # float64 [G, S] the weight vectors tried
    curve_top1: np.ndarray      # float64 [G] top-1 (percent) of each grid point on all rows
    curve_top5: np.ndarray      # float64 [G]
    folds: np.ndarray           # int64 [n] fold of each row
    fold_index: list            # grid index chosen for each fold (on the other folds)
    probs: np.ndarray           # float32 [n, C] each row fused with its fold's weights
    metrics: dict               # metrics of `probs` (the honest headline)
    oracle_index: int           # grid index chosen on all rows
    oracle_metrics: dict        # metrics of the oracle weights on all rows
    fold_metrics: list = field(default_factory=list)  # metrics of each held-out fold

    @property
    def fold_weights(self):
        """float64 [k, S]: the weights each fold's rows were fused with."""
        return self.grid[self.fold_index]

    @property
    def oracle_weights(self):
        return self.grid[self.oracle_index]

    def weights_dict(self, w):
        return {k: float(v) for k, v in zip(self.names, w)}


def cross_fit(sources, labels, n_folds=config.FUSION_FOLDS, steps=config.FUSION_GRID_STEPS,
              seed=config.SEED, folds=None):
    """Weighted-average fusion with the weight of each fold chosen on the other folds.

    The grid is scored once, per fold (``grid_counts``); fold f's choice uses the summed
    counts of the other folds only, so no row's label influences the weight it is fused with.

    Args:
      sources: {name: float [n, C]} normalised, aligned; labels: int [n].
      folds: int [n] fold per row (default ``make_folds(labels, n_folds, seed)``).
    Returns:
      CrossFit.
    """
    names, arrays = _as_list(sources)
    n, n_classes = arrays[0].shape
    labels = metrics_module.check_labels(labels, n, n_classes)
    folds = make_folds(labels, n_folds, seed) if folds is None else np.asarray(folds, np.int64)
    k = int(folds.max()) + 1
    if folds.shape != (n,) or folds.min() < 0 or len(np.unique(folds)) != k or k < 2:
        raise ValueError("folds must label every row with 0..k-1 (k >= 2), each fold non-empty")
    units, m = weight_grid(len(names), steps)
    top1, top5 = grid_counts(sources, labels, units, m, folds, k)
    total1, total5 = top1.sum(axis=0), top5.sum(axis=0)
    fold_index = [choose(total1 - top1[f], total5 - top5[f], units, m) for f in range(k)]
    oracle = choose(total1, total5, units, m)
    grid = units / m
    fused = np.empty_like(arrays[0])
    fold_metrics = []
    for f, j in enumerate(fold_index):
        rows = np.flatnonzero(folds == f)
        fused[rows] = fuse({nm: a[rows] for nm, a in zip(names, arrays)}, grid[j])
        fold_metrics.append(metrics(fused[rows], labels[rows]))
    return CrossFit(names=names, grid=grid, curve_top1=100.0 * total1 / n,
                    curve_top5=100.0 * total5 / n, folds=folds, fold_index=fold_index,
                    probs=fused, metrics=metrics(fused, labels), oracle_index=oracle,
                    oracle_metrics=metrics(fuse(sources, grid[oracle]), labels),
                    fold_metrics=fold_metrics)


# ---------------------------------------------------------------- paired bootstrap
