"""Learned fusion (torch): the six Phase II layers against hand-computed outputs, the
identity start, training, cross-fitting, saving, and the errors."""
import numpy as np
import pytest
import torch

import fusion
from soundtrack import learned_fusion as lf
from soundtrack import metrics
from test_fusion import N_CLASSES, complementary

GROUPS = ["audio", "audio", "visual"]       # sources aud_a, aud_b, vis_c


def net_with(layer, dim, n_classes, **params):
    """A FusionNet whose named parameters are set to the given values."""
    net = lf.FusionNet(3, dim, n_classes, layer, GROUPS)
    with torch.no_grad():
        for name, value in params.items():
            dict(net.named_parameters())[name].copy_(torch.tensor(value, dtype=torch.float32))
    return net


# three embeddings of d = 2 (one row): aud_a, aud_b, vis_c
EMB = np.array([[[1.0, 2.0], [3.0, -1.0], [0.5, 4.0]]], np.float32)          # [1, S, d]
DENSE = {"dense.weight": [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], "dense.bias": [0.0, 0.0, 1.0]}


def run(net, x):
    with torch.no_grad():
        out = net(torch.from_numpy(x))
    return out["embedding"].numpy()[0], out["logits"].numpy()[0]


def test_F1_sum_of_weighted_embeddings_by_hand():
    # z = [1*1 + 2*3 + 0*0.5 + 0.5, 0*2 + 1*(-1) + (-1)*4 + 0.5] = [7.5, -4.5]
    net = net_with("sum", 2, 3, w=[[1, 0], [2, 1], [0, -1]], b=[0.5, 0.5], **DENSE)
    z, logits = run(net, EMB)
    np.testing.assert_allclose(z, [7.5, -4.5])
    np.testing.assert_allclose(logits, [7.5, -4.5, 4.0])      # W z + bias


def test_F2_grouped_embeddings_by_hand():
    # a = [1, 1]*[1, 2] + [1, 2]*[3, -1] = [4, 0];  v = [2, .5]*[.5, 4] = [1, 2]
    # z = [.5, 1]*a + [2, -1]*v + [0, 1] = [2 + 2, 0 - 2 + 1] = [4, -1]
    net = net_with("grouped", 2, 3, u=[[1, 1], [1, 2], [2, 0.5]], alpha=[0.5, 1],
                   beta=[2, -1], b=[0, 1], **DENSE)
    z, logits = run(net, EMB)
    np.testing.assert_allclose(z, [4.0, -1.0])
    np.testing.assert_allclose(logits, [4.0, -1.0, 4.0])


def test_F3_concat_embeddings_by_hand():
    net = net_with("concat", 2, 2, u=[[1, 1], [1, 2], [2, 0.5]],
                   **{"dense.weight": [[1, 0, 0, 0], [0, 0, 1, -1]], "dense.bias": [0, 3]})
    z, logits = run(net, EMB)
    np.testing.assert_allclose(z, [4.0, 0.0, 1.0, 2.0])       # [a ; v]
    np.testing.assert_allclose(logits, [4.0, 2.0])            # [a0, v0 - v1 + 3]


# logits of C = 2 classes: centred per row -> [1, -1], [1, -1], [-1.5, 1.5]
LOGITS = {"aud_a": [[3.0, 1.0]], "aud_b": [[2.0, 0.0]], "vis_c": [[1.0, 4.0]]}
KINDS = {k: "logits" for k in LOGITS}


def test_F4_sum_of_weighted_logits_by_hand():
    _, x = lf.stack_inputs(LOGITS, KINDS)
    np.testing.assert_allclose(x[0], [[1, -1], [1, -1], [-1.5, 1.5]])
    # z = [2, 1]*[1, -1] + [0, 3]*[1, -1] + [1, 1]*[-1.5, 1.5] + [0, 1] = [0.5, -1.5]
    net = lf.FusionNet(3, 2, 2, "sum", GROUPS)
    with torch.no_grad():
        net.w.copy_(torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 1.0]]))
        net.b.copy_(torch.tensor([0.0, 1.0]))
    z, logits = run(net, x)
    np.testing.assert_allclose(z, [0.5, -1.5])
    np.testing.assert_allclose(logits, z)                     # identity dense (d == C)
    p = lf.predict_fusion(net, x)[0]
    np.testing.assert_allclose(p, [1 / (1 + np.exp(-2.0)), 1 / (1 + np.exp(2.0))], rtol=1e-6)


def test_F5_F6_grouped_and_concat_logits_at_init_by_hand():
    # init: u = 1/|group| (1/2 audio, 1 visual), alpha = beta = 1/2, dense [I/2, I/2]
    # a = .5*[1, -1] + .5*[1, -1] = [1, -1], v = [-1.5, 1.5]; both give z = [-.25, .25]
    _, x = lf.stack_inputs(LOGITS, KINDS)
    expected = [1 / (1 + np.exp(0.5)), 1 / (1 + np.exp(-0.5))]   # softmax([-.25, .25])
    grouped = lf.FusionNet(3, 2, 2, "grouped", GROUPS)
    z, logits = run(grouped, x)
    np.testing.assert_allclose(z, [-0.25, 0.25])
    np.testing.assert_allclose(lf.predict_fusion(grouped, x)[0], expected, rtol=1e-6)
    concat = lf.FusionNet(3, 2, 2, "concat", GROUPS)
    z, logits = run(concat, x)
    np.testing.assert_allclose(z, [1.0, -1.0, -1.5, 1.5])
    np.testing.assert_allclose(logits, [-0.25, 0.25])
    np.testing.assert_allclose(lf.predict_fusion(concat, x)[0], expected, rtol=1e-6)


def test_phase2_layers_are_F1_to_F6_on_embeddings_then_logits():
    assert list(lf.PHASE2_LAYERS) == ["F1", "F2", "F3", "F4", "F5", "F6"]
    assert [lf.PHASE2_LAYERS[f] for f in ("F1", "F4")] == [("embedding", "sum"),
                                                           ("logits", "sum")]
    assert {lf.PHASE2_LAYERS[f][1] for f in ("F1", "F2", "F3")} == set(lf.LAYERS)


def test_embeddings_are_standardised_with_the_training_rows_only():
    rng = np.random.default_rng(0)
    emb = {k: rng.normal(3, 2, (40, 5)).astype(np.float32) for k in ("aud_a", "vis_c")}
    labels = rng.integers(0, 3, 40)
    model, record = lf.fit_fusion(emb, labels, "sum", 3, {k: "embedding" for k in emb},
                                  settings=lf.FusionSettings(steps=2))
    np.testing.assert_allclose(model.in_mean[0].numpy(), emb["aud_a"].mean(0), rtol=1e-5)
    np.testing.assert_allclose(model.in_std[1].numpy(), emb["vis_c"].std(0) + lf.STD_FLOOR,
                               rtol=1e-5)
    assert record["kinds"] == ["embedding", "embedding"] and record["dim"] == 5


@pytest.mark.parametrize("layer", lf.LAYERS)
@pytest.mark.parametrize("n_classes", [N_CLASSES, lf.FULL_DENSE_MAX_CLASSES + 6])
def test_untrained_net_is_the_geometric_mean_of_the_sources(layer, n_classes):
    """With its identity start, every layer and dense kind starts from the normalised
    product of the sources' probabilities (square-rooted for two sources)."""
    rng = np.random.default_rng(0)
    p = {"audio": metrics.softmax(rng.normal(0, 1, (8, n_classes))),
         "video": metrics.softmax(rng.normal(0, 1, (8, n_classes)))}
    _, x = lf.stack_inputs(p, {"audio": "scores", "video": "scores"})
    net = lf.FusionNet(2, n_classes, n_classes, layer, ["audio", "visual"])
    assert net.dense_kind == ("full" if n_classes <= lf.FULL_DENSE_MAX_CLASSES
                              else "diagonal")
    geo = np.sqrt(p["audio"] * p["video"])
    np.testing.assert_allclose(lf.predict_fusion(net, x), geo / geo.sum(1, keepdims=True),
                               rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("layer", lf.LAYERS)
def test_learned_fusion_beats_each_source(layer):
    sources, labels = complementary(300)
    folds = fusion.make_folds(labels, 5, seed=0)
    settings = lf.FusionSettings(mixup_alpha=0.2)
    r = lf.cross_fit_fusion(sources, labels, layer, folds, N_CLASSES, settings=settings)
    singles = [fusion.metrics(p, labels)["top1"] for p in sources.values()]
    assert r["probs"].shape == (300, N_CLASSES) and r["dense"] == "full"
    assert r["metrics"]["top1"] > max(singles) + 10  # chance is 10 %
    again = lf.cross_fit_fusion(sources, labels, layer, folds, N_CLASSES, settings=settings)
    np.testing.assert_array_equal(again["probs"], r["probs"])  # deterministic


def test_cross_fitting_does_not_let_a_fold_see_its_own_labels():
    """Relabelling fold 0's rows changes no prediction of fold 0 (trained on folds 1-4)."""
    sources, labels = complementary(200)
    folds = fusion.make_folds(labels, 5, seed=0)
    settings = lf.FusionSettings(steps=20)
    r = lf.cross_fit_fusion(sources, labels, "sum", folds, N_CLASSES, settings=settings)
    moved = labels.copy()
    moved[folds == 0] = (moved[folds == 0] + 1) % N_CLASSES
    r2 = lf.cross_fit_fusion(sources, moved, "sum", folds, N_CLASSES, settings=settings)
    np.testing.assert_array_equal(r["probs"][folds == 0], r2["probs"][folds == 0])
    assert not np.array_equal(r["probs"][folds == 1], r2["probs"][folds == 1])


def test_saved_model_predicts_what_it_predicted(tmp_path):
    rng = np.random.default_rng(1)
    emb = {"aud_a": rng.normal(0, 1, (30, 4)), "vis_c": rng.normal(0, 1, (30, 4))}
    labels = rng.integers(0, 3, 30)
    kinds = {k: "embedding" for k in emb}
    model, record = lf.fit_fusion(emb, labels, "grouped", 3, kinds,
                                  settings=lf.FusionSettings(steps=5))
    lf.save_model(tmp_path / "m.pt", model, {**record, "note": "x"})
    loaded, rec = lf.load_model(tmp_path / "m.pt")
    _, x = lf.stack_inputs(emb, kinds)
    np.testing.assert_array_equal(lf.predict_saved(loaded, rec, emb), lf.predict_fusion(model, x))
    with pytest.raises(ValueError, match=r"missing \['vis_c'\]"):
        lf.predict_saved(loaded, rec, {"aud_a": emb["aud_a"]})


def test_grouped_needs_both_groups_and_inputs_one_shape():
    sources, labels = complementary(50)
    folds = fusion.make_folds(labels, 5, seed=0)
    with pytest.raises(ValueError, match="audio and one visual"):
        lf.cross_fit_fusion({"rgb": sources["audio"], "flow": sources["video"]}, labels,
                            "grouped", folds, N_CLASSES)
    with pytest.raises(ValueError, match="one shape"):
        lf.cross_fit_fusion({"aud": sources["audio"], "vis": sources["video"][:, :4]},
                            labels, "sum", folds, N_CLASSES)
