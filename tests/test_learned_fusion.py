"""Learned fusion (torch): the model's starting point, cross-fitting, and its errors."""
import numpy as np
import pytest
import torch

import fusion
import learned_fusion
import metrics
from test_fusion import N_CLASSES, complementary


@pytest.mark.parametrize("variant", learned_fusion.LEARNED_VARIANTS)
@pytest.mark.parametrize("n_classes", [N_CLASSES, learned_fusion.FULL_DENSE_MAX_CLASSES + 6])
def test_untrained_net_is_the_geometric_mean_of_the_sources(variant, n_classes):
    """With its identity initialisation, every variant and dense kind starts from the
    normalised product of the sources' probabilities (square-rooted for two sources)."""
    rng = np.random.default_rng(0)
    p = [metrics.softmax(rng.normal(0, 1, (8, n_classes))) for _ in range(2)]
    x = np.stack([learned_fusion.score_features(q) for q in p])
    net = learned_fusion.FusionNet(2, n_classes, n_classes, variant, ["audio", "visual"])
    assert net.dense_kind == ("full" if n_classes <= learned_fusion.FULL_DENSE_MAX_CLASSES
                              else "diagonal")
    out = learned_fusion.predict_learned(net, x)
    geo = np.sqrt(p[0] * p[1])
    np.testing.assert_allclose(out, geo / geo.sum(1, keepdims=True), rtol=1e-4, atol=1e-7)
    assert isinstance(net, torch.nn.Module)


@pytest.mark.parametrize("variant", learned_fusion.LEARNED_VARIANTS)
def test_learned_fusion_beats_each_source(variant):
    sources, labels = complementary(300)
    folds = fusion.make_folds(labels, 5, seed=0)
    r = learned_fusion.cross_fit_learned(sources, labels, variant, folds)
    singles = [fusion.metrics(p, labels)["top1"] for p in sources.values()]
    assert r["probs"].shape == (300, N_CLASSES) and r["dense"] == "full"
    assert r["metrics"]["top1"] > max(singles) + 10  # chance is 10 %
    again = learned_fusion.cross_fit_learned(sources, labels, variant, folds)
    np.testing.assert_array_equal(again["probs"], r["probs"])  # deterministic


def test_learned_grouped_needs_both_groups():
    sources, labels = complementary(50)
    folds = fusion.make_folds(labels, 5, seed=0)
    with pytest.raises(ValueError, match="audio and one visual"):
        learned_fusion.cross_fit_learned({"rgb": sources["audio"], "flow": sources["video"]},
                                         labels, "grouped", folds)
