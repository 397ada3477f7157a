"""Benchmark of the fusion weight search at Kinetics-600 validation scale.

Reads nothing; makes two synthetic probability sources [rows, classes] from a seed.
Writes nothing; prints the seconds taken by
  - the grid search: every weight of the FUSION_GRID_STEPS grid scored on all rows
    (fusion.grid_counts, the cost that grows with rows x classes x weights),
  - the full cross-fitting (fusion.cross_fit: the same grid pass, per-fold choices, fusing
    and metrics), and optionally each learned fusion layer on the score features, as step
    07 runs them (--learned: learned_fusion.cross_fit_fusion, LEARNED_FUSION_* settings).
"""
import argparse
import time

import numpy as np

from soundtrack import cli
import fusion
from soundtrack import learned_fusion
from soundtrack import metrics


def synthetic_sources(n_rows, n_classes, seed):
    """Two noisy softmax sources of the same labels; the second is the better one."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, n_rows)
    sources = {}
    for name, noise in (("audio", 1.0), ("video", 0.8)):
        logits = rng.normal(0, noise, (n_rows, n_classes)).astype(np.float32)
        logits[np.arange(n_rows), labels] += 2.0
        sources[name] = metrics.softmax(logits)
    return sources, labels


def main(argv=None):
    parser = cli.parser(__doc__, ["FUSION_GRID_STEPS", "FUSION_FOLDS",
                                  *learned_fusion.SETTINGS_KEYS])
    parser.add_argument("--rows", type=int, default=30000)
    parser.add_argument("--num-classes", type=int, default=600)
    parser.add_argument("--learned", action=argparse.BooleanOptionalAction, default=False,
                        help="also time the cross-fitted learned fusion layers")
    cfg = cli.parse(parser, argv)
    sources, labels = synthetic_sources(cfg.rows, cfg.num_classes, cfg.seed)
    units, m = fusion.weight_grid(len(sources), cfg.fusion_grid_steps)
    t = time.perf_counter()
    fusion.grid_counts(sources, labels, units, m)
    search_s = time.perf_counter() - t
    t = time.perf_counter()
    cf = fusion.cross_fit(sources, labels, cfg.fusion_folds, cfg.fusion_grid_steps, cfg.seed)
    cross_fit_s = time.perf_counter() - t
    print(f"{cfg.rows} rows x {cfg.num_classes} classes x {len(units)} weights: grid search "
          f"{search_s:.2f} s; cross_fit ({cfg.fusion_folds} folds) {cross_fit_s:.2f} s; "
          f"cross-fitted top-1 {cf.metrics['top1']:.2f} %")
    times = {"search_s": search_s, "cross_fit_s": cross_fit_s}
    if cfg.learned:
        fit = learned_fusion.FusionSettings.from_settings(cfg)
        for layer in learned_fusion.LAYERS:
            t = time.perf_counter()
            r = learned_fusion.cross_fit_fusion(sources, labels, layer, cf.folds,
                                                cfg.num_classes, settings=fit)
            times[layer + "_s"] = time.perf_counter() - t
            print(f"learned {layer} ({r['dense']} dense, {cfg.fusion_folds} fits): "
                  f"{times[layer + '_s']:.2f} s; top-1 {r['metrics']['top1']:.2f} %")
    return times


if __name__ == "__main__":
    main()
