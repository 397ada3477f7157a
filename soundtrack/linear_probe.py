"""A linear probe: multinomial logistic regression on frozen embeddings (step 11).

Features are standardised with the training rows' mean and standard deviation; the model is
softmax(x W + b) fitted by full-batch L-BFGS (float64, torch) to the mean cross-entropy plus
``l2 / 2 * |W|^2`` (the bias is not penalised). The penalty is chosen from a grid by top-1 on
a minival carved from the training rows (per class, AudioDataLoader.minival_split), then the
probe is refitted on all training rows with it. Ties go to the larger penalty (the simpler
model).
"""
import numpy as np
import torch

from soundtrack import metrics
from AudioDataLoader import minival_split

MAX_ITERATIONS = 200             # L-BFGS iterations per fit (converges well before on 2048-d)


def standardiser(x):
    """(mean, std) of training features [n, d]; a constant feature gets std 1."""
    x = np.asarray(x, np.float64)
    std = x.std(axis=0)
    return x.mean(axis=0), np.where(std > 0, std, 1.0)


def fit(x, y, n_classes, l2):
    """Fit softmax regression to standardised features x [n, d] and labels y [n] (0..C-1).

    Returns (W [d, C], b [C]) as float64 numpy arrays."""
    x = torch.as_tensor(np.asarray(x, np.float64))
    y = torch.as_tensor(np.asarray(y, np.int64))
    w = torch.zeros(x.shape[1], n_classes, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=MAX_ITERATIONS, tolerance_grad=1e-9,
                            tolerance_change=1e-12, history_size=20,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = (torch.nn.functional.cross_entropy(x @ w + b, y)
                + 0.5 * l2 * (w * w).sum())
        loss.backward()
        return loss
    opt.step(closure)
    return w.detach().numpy(), b.detach().numpy()


def probabilities(x, w, b):
    """softmax(x W + b) -> float32 [n, C] (x standardised like the training rows)."""
    z = np.asarray(x, np.float64) @ w + b
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


def choose_and_fit(x, y, n_classes, grid, minival_fraction, seed):
    """Choose l2 from `grid` on a minival carved from (x, y), refit on all rows.

    Returns (predict, report): predict(features [m, d]) -> probabilities [m, C];
    report {"l2": chosen, "minival_top1": {l2: %}, "n_fit", "n_minival", "train_top1"}."""
    y = np.asarray(y, np.int64)
    if len(grid) == 0:
        raise ValueError("the probe's l2 grid is empty")
    fit_rows, held = minival_split(y, minival_fraction, seed)
    table = {}
    if len(held):
        mean, std = standardiser(x[fit_rows])
        for l2 in grid:
            w, b = fit((x[fit_rows] - mean) / std, y[fit_rows], n_classes, l2)
            table[float(l2)] = metrics.topk_accuracy(
                probabilities((x[held] - mean) / std, w, b), y[held], 1)
        best = max(table.values())
        chosen = max(l2 for l2, acc in table.items() if acc == best)
    else:                                    # nothing to choose on: the largest penalty
        chosen = float(max(grid))
    mean, std = standardiser(x)
    w, b = fit((x - mean) / std, y, n_classes, chosen)

    def predict(features):
        return probabilities((np.asarray(features, np.float64) - mean) / std, w, b)
    report = {"l2": chosen, "minival_top1": table, "n_fit": int(len(fit_rows)),
              "n_minival": int(len(held)),
              "train_top1": metrics.topk_accuracy(predict(x), y, 1)}
    return predict, report
