"""Scores and accuracies shared by training, step 05, fusion and the benchmarks.

Track scores are the mean of a track's patch softmax probabilities (the upstream recipe);
accuracies are in percent over rows with a label >= 0.

The tie rule, the one used for every accuracy in the project: a row is top-k correct when
fewer than k OTHER classes score at least as high as its true class, i.e. when its
``true_class_rank`` is < k. An exact tie counts against the row, so a constant score row is
never correct (for k < n_classes) and a class tied with one other is wrong at top-1 and
right at top-2, whatever the order of the classes.
"""
import math

import numpy as np


def softmax(logits, axis=-1):
    """Numerically stable softmax of float logits, float32."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=axis, keepdims=True)).astype(np.float32)


def track_mean(values, patch_track, n_tracks):
    """Mean of per-patch rows over each track.

    Args:
      values: [n_patches, d] per-patch values (probabilities, embeddings).
      patch_track: int [n_patches], the track row (0..n_tracks-1) of each patch.
    Returns:
      float32 [n_tracks, d]; a track without patches is an error (it has no score).
    """
    values = np.asarray(values, dtype=np.float64)
    counts = np.bincount(patch_track, minlength=n_tracks)
    if np.any(counts == 0):
        raise ValueError(f"{int(np.sum(counts == 0))} tracks have no patches, e.g. row "
                         f"{int(np.argmax(counts == 0))}")
    sums = np.zeros((n_tracks, values.shape[1]))
    np.add.at(sums, patch_track, values)
    return (sums / counts[:, None]).astype(np.float32)


def track_scores(patch_logits, patch_track, n_tracks):
    """[n_tracks, n_classes]: the mean of each track's patch softmax probabilities."""
    return track_mean(softmax(patch_logits), patch_track, n_tracks)


def check_labels(labels, n, n_classes):
    """Class labels of n rows, validated.

    Args:
      labels: int [n], each in 0..n_classes-1.
    Returns:
      int64 [n]; a wrong shape or dtype, or a label outside the classes, is a ValueError
      naming the first bad row.
    """
    labels = np.asarray(labels)
    if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels: expected int [{n}], got {labels.dtype} {labels.shape}")
    bad = np.flatnonzero((labels < 0) | (labels >= n_classes))
    if len(bad):
        raise ValueError(f"labels: row {bad[0]} has label {labels[bad[0]]}, outside "
                         f"0..{n_classes - 1} ({len(bad)} such rows)")
    return labels.astype(np.int64)


def true_class_rank(scores, labels):
    """Rank of the true class of each row under the tie rule of the module docstring.

    Args:
      scores: [n, C]; labels: int [n] in 0..C-1.
    Returns:
      int64 [n]: the number of OTHER classes scoring at least as high as the true class
      (0 when the true class strictly beats every other class, C-1 for a constant row).
    """
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores: expected [n, n_classes], got shape {scores.shape}")
    labels = check_labels(labels, len(scores), scores.shape[1])
    true = scores[np.arange(len(scores)), labels]
    return np.count_nonzero(scores >= true[:, None], axis=1) - 1


def topk_from_rank(rank, k):
    """Percent of rows with ``true_class_rank`` < k; NaN for no rows."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    rank = np.asarray(rank)
    return float("nan") if rank.size == 0 else 100.0 * float(np.mean(rank < k))


def topk_accuracy(scores, labels, k=1):
    """Percent of labelled rows that are top-k correct (the tie rule of the module docstring).

    Args:
      scores: [n, C]; labels: int [n], a label < 0 marks an unlabelled row (ignored).
      k: >= 1; k >= C counts every labelled row correct.
    Returns:
      float percent over the rows with a label >= 0; NaN when there is none.
    """
    scores, labels = np.asarray(scores), np.asarray(labels)
    if labels.shape != scores.shape[:1]:
        raise ValueError(f"labels: expected [{len(scores)}] for scores {scores.shape}, "
                         f"got {labels.shape}")
    keep = labels >= 0
    return topk_from_rank(true_class_rank(scores[keep], labels[keep]), k)


def binomial_tail(hits, n, chance):
    """One-sided exact P(X >= hits) for X ~ Binomial(n, chance), summed in log space (no
    scipy: step 12 and step 05 call it for every backbone)."""
    k = np.arange(int(hits), int(n) + 1)
    if not len(k):
        return 0.0
    if chance <= 0.0 or chance >= 1.0:
        return float(hits <= n * chance)
    lg = np.vectorize(math.lgamma)
    log_terms = (lg(n + 1) - lg(k + 1) - lg(n - k + 1) + k * math.log(chance)
                 + (n - k) * math.log1p(-chance))
    top = log_terms.max()
    return float(min(1.0, math.exp(top) * np.exp(log_terms - top).sum()))


def above_chance(scores, labels):
    """Is top-1 accuracy above chance? A one-sided exact binomial test.

    Chance is the best constant guess: the share of the most frequent true class among the
    labelled rows (1 / n_classes when balanced). p = P(X >= n_correct) for X ~ Binomial(n,
    chance), the probability that guessing does at least as well.

    Args:
      scores: [n, C]; labels: int [n] (< 0: unlabelled, ignored).
    Returns:
      {"n", "n_correct", "chance_top1" (percent), "binomial_p"}; p is NaN for no rows.
    """
    scores, labels = np.asarray(scores), np.asarray(labels)
    keep = labels >= 0
    n = int(keep.sum())
    if n == 0:
        return {"n": 0, "n_correct": 0, "chance_top1": float("nan"), "binomial_p": float("nan")}
    correct = int((true_class_rank(scores[keep], labels[keep]) < 1).sum())
    chance = float(np.bincount(labels[keep]).max() / n)
    return {"n": n, "n_correct": correct, "chance_top1": 100.0 * chance,
            "binomial_p": binomial_tail(correct, n, chance)}


# ---------------------------------------------------------------- the paired bootstrap

def paired_bootstrap(a, b, n_samples, seed, level=0.95, stat=None):
    """Percentile interval of stat(a) - stat(b) over rows resampled with replacement, the same
    rows for both systems (paired): the one bootstrap of the project (steps 07, 10, 12).

    Args:
      a, b: the two systems' per-row results on the same rows, in the same order.
      stat: None: a and b are bool [n] (row correct), and the statistic is the accuracy in
        percent. The per-row difference is then -1, 0 or +1, so a sample's mean difference
        depends only on how many +1 and -1 rows it drew, which is multinomial with the
        observed proportions: drawing those counts is the same distribution as resampling
        row indices, at O(n_samples) cost instead of O(n_samples x n).
        Else stat(list of rows) -> float, any statistic of a list of rows (micro F1 over
        clips, a mean r): each sample draws n row indices.
      n_samples, seed: the bootstrap's samples and its numpy generator's seed.
    Returns:
      {"diff": the observed difference, "ci95": [lo, hi] at `level`, "n_samples", "seed",
       "level"}; in percentage points for accuracies, in stat's units otherwise.
    """
    rng = np.random.default_rng(seed)
    if stat is None:
        a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
        if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
            raise ValueError(f"need two bool vectors of the same length, got {a.shape}, "
                             f"{b.shape}")
        n = len(a)
        plus, minus = int((a & ~b).sum()), int((~a & b).sum())
        p = np.array([plus, minus, n - plus - minus], dtype=np.float64) / n
        counts = rng.multinomial(n, p, size=n_samples)
        diffs = 100.0 * (counts[:, 0] - counts[:, 1]) / n
        observed = 100.0 * (plus - minus) / n
    else:
        if len(a) != len(b) or not len(a):
            raise ValueError(f"need two lists of rows of the same length, got {len(a)}, "
                             f"{len(b)}")
        n = len(a)
        diffs = np.empty(n_samples)
        for s in range(n_samples):
            idx = rng.integers(0, n, n)
            diffs[s] = stat([a[i] for i in idx]) - stat([b[i] for i in idx])
        observed = stat(a) - stat(b)
    tail = 100.0 * (1 - level) / 2
    lo, hi = np.percentile(diffs, [tail, 100 - tail])
    return {"diff": observed, "ci95": [float(lo), float(hi)],
            "n_samples": int(n_samples), "seed": int(seed), "level": float(level)}
