"""Step 10's automatic metrics of predicted envelopes; small pure numpy functions.

Peaks (``pick_peaks``, the one picker for predicted and true envelopes alike): local maxima of
the per-frame envelope at least PEAK_HEIGHT high with a prominence (scipy.signal's: how far a
peak stands above the higher of the two lowest points that separate it from higher ground) of
at least PEAK_PROMINENCE, at least 2 frames apart; the envelope is padded at each end with
its own minimum, so that a peak on the first or last frame counts, while a flat or sloping
envelope has none.

Onsets (``match``): predicted and true peaks matched one to one within +-tolerance frames, the
largest such matching (mir_eval's onset evaluation does the same with a time window);
precision = matched / predicted, recall = matched / true, F1 their harmonic mean; a clip
with no true and no predicted peak has P = R = F1 = 1 (nothing to find, nothing claimed),
one side empty and the other not: F1 = 0. Totals over clips sum the counts first (micro).

Pearson r per clip: an undefined r (a constant envelope, either side) counts as 0, in the
means and in the rating.

The seed's three-way rating, automatic, thresholds fixed in advance (config-free on
purpose): good = onset F1 1.0 and r >= 0.5; bad = onset F1 0 or r < 0.2; not so good
otherwise. Score = (good - bad) / clips in [-1, 1].
"""
import numpy as np
from scipy.signal import find_peaks

from soundtrack.envelope.target import frame_edges


GOOD_MIN_R, BAD_MAX_R = 0.5, 0.2
RATINGS = ("good", "not_so_good", "bad")
RATING_VALUE = {"good": 1, "not_so_good": 0, "bad": -1}


def pick_peaks(y, height, prominence):
    """Frame indices of the peaks of an envelope float [n] (module docstring) -> int64 [k]."""
    y = np.asarray(y, np.float64)
    if not y.size:
        return np.zeros(0, np.int64)
    low = [y.min()]
    idx, _ = find_peaks(np.concatenate([low, y, low]), height=height, prominence=prominence,
                        distance=2)
    return (idx - 1).astype(np.int64)


def match(pred, true, tolerance):
    """The size of the largest one-to-one matching of predicted to true peak frames with
    |p - t| <= tolerance (augmenting paths; small sets) -> int."""
    pred, true = list(map(int, pred)), list(map(int, true))
    owner = {}                                     # true index -> predicted index

    def augment(p, seen):
        for t, tv in enumerate(true):
            if abs(pred[p] - tv) <= tolerance and t not in seen:
                seen.add(t)
                if t not in owner or augment(owner[t], seen):
                    owner[t] = p
                    return True
        return False
    return sum(augment(p, set()) for p in range(len(pred)))


def prf(tp, n_pred, n_true):
    """(precision, recall, F1) from counts, with the empty-clip conventions above."""
    if n_pred == 0 and n_true == 0:
        return 1.0, 1.0, 1.0
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_true if n_true else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def pearson(a, b):
    """Pearson r; nan when either sequence is constant or shorter than 2."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 2 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.mean((a - a.mean()) * (b - b.mean())) / (a.std() * b.std()))


def bce(pred, target, eps=1e-4):
    p = np.clip(np.asarray(pred, np.float64), eps, 1 - eps)
    t = np.asarray(target, np.float64)
    return float(-np.mean(t * np.log(p) + (1 - t) * np.log(1 - p)))


def rating(f1, r):
    r = 0.0 if not np.isfinite(r) else r
    if f1 == 1.0 and r >= GOOD_MIN_R:
        return "good"
    if f1 == 0.0 or r < BAD_MAX_R:
        return "bad"
    return "not_so_good"


def clip_metrics(pred, true, height, prominence, tolerance):
    """One clip: {r, mse, bce, n_pred, n_true, tp, precision, recall, f1, count_ok, rating,
    pred_peaks, true_peaks}."""
    pred, true = np.asarray(pred, np.float64), np.asarray(true, np.float64)
    if pred.shape != true.shape:
        raise ValueError(f"predicted envelope has {pred.shape}, the true one {true.shape}")
    pp, tp_ = pick_peaks(pred, height, prominence), pick_peaks(true, height, prominence)
    tp = match(pp, tp_, tolerance)
    p, r_, f1 = prf(tp, len(pp), len(tp_))
    r = pearson(pred, true)
    r = 0.0 if not np.isfinite(r) else r          # a constant envelope correlates with nothing
    return dict(r=r, mse=float(np.mean((pred - true) ** 2)), bce=bce(pred, true),
                n_pred=len(pp), n_true=len(tp_), tp=tp, precision=p, recall=r_, f1=f1,
                count_ok=len(pp) == len(tp_), rating=rating(f1, r),
                pred_peaks=pp.tolist(), true_peaks=tp_.tolist())


def summary(rows):
    """Totals over clips' clip_metrics rows: micro onset P/R/F1, mean r (nan-skipping), MSE,
    BCE, onset-count accuracy, rating counts and score."""
    tp = sum(r["tp"] for r in rows)
    n_pred, n_true = sum(r["n_pred"] for r in rows), sum(r["n_true"] for r in rows)
    p, rc, f1 = prf(tp, n_pred, n_true)
    counts = {k: sum(r["rating"] == k for r in rows) for k in RATINGS}
    return dict(clips=len(rows), onset_precision=p, onset_recall=rc, onset_f1=f1,
                mean_r=float(np.nanmean([r["r"] for r in rows])) if rows else float("nan"),
                mse=float(np.mean([r["mse"] for r in rows])),
                bce=float(np.mean([r["bce"] for r in rows])),
                onset_count_accuracy=float(np.mean([r["count_ok"] for r in rows])),
                ratings=counts,
                score=(counts["good"] - counts["bad"]) / len(rows) if rows else float("nan"))


def micro_f1(tp, n_pred, n_true):
    return prf(int(tp), int(n_pred), int(n_true))[2]


def stat_f1(rows):
    return micro_f1(sum(r["tp"] for r in rows), sum(r["n_pred"] for r in rows),
                    sum(r["n_true"] for r in rows))


def stat_r(rows):
    return float(np.nanmean([r["r"] for r in rows]))


def event_frame(time_s, times):
    """The frame whose interval (frame_edges) holds an event at time_s."""
    edges = frame_edges(times)
    return int(np.clip(np.searchsorted(edges, time_s, side="right") - 1, 0, len(times) - 1))


def near(peaks, frame, tolerance):
    return bool(len(peaks)) and bool(np.min(np.abs(np.asarray(peaks) - frame)) <= tolerance)
