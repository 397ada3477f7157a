"""Scores and accuracies shared by training, step 05 and the benchmarks.

Track scores are the mean of a track's patch softmax probabilities (the upstream recipe);
accuracies are in percent over rows with a label >= 0.
"""
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


def topk_accuracy(scores, labels, k=1):
    """Percent of labelled rows (label >= 0) whose label is among the k highest scores."""
    scores, labels = np.asarray(scores), np.asarray(labels)
    keep = labels >= 0
    if not np.any(keep):
        return float("nan")
    s, y = scores[keep], labels[keep]
    k = min(k, s.shape[1])
    top = np.argpartition(-s, k - 1, axis=1)[:, :k]
    return float(100.0 * np.mean(np.any(top == y[:, None], axis=1)))
