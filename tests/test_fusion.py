"""Fusion: weight search, cross-fitting, bootstrap, numpy-only import, step 07 end to end."""
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, load_script

from soundtrack import datafiles
import fusion
from soundtrack import metrics

fuse07 = load_script("07_fuse")

N_CLASSES = 10
PAIRS_AUDIO = [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]
PAIRS_VIDEO = [(1, 2), (3, 4), (5, 6), (7, 8), (9, 0)]


def confusable_logits(labels, pairs, rng, boost=2.5, noise=1.0):
    """Logits where each class is confused with its partner (complementary modalities)."""
    n = len(labels)
    partner = np.arange(N_CLASSES)
    for a, b in pairs:
        partner[a], partner[b] = b, a
    logits = rng.normal(0, noise, (n, N_CLASSES)).astype(np.float32)
    logits[np.arange(n), labels] += boost
    logits[np.arange(n), partner[labels]] += boost
    return logits


def complementary(n=300, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, N_CLASSES, n)
    return ({"audio": metrics.softmax(confusable_logits(labels, PAIRS_AUDIO, rng)),
             "video": metrics.softmax(confusable_logits(labels, PAIRS_VIDEO, rng))}, labels)


def noisy(labels, noise, rng, n_classes=N_CLASSES):
    logits = rng.normal(0, noise, (len(labels), n_classes)).astype(np.float32)
    logits[np.arange(len(labels)), labels] += 2.0
    return metrics.softmax(logits)


# ---------------------------------------------------------------- pieces

def test_grid_includes_both_ends_and_sums_to_one():
    units, m = fusion.weight_grid(2, 101)
    w = units / m
    assert len(w) == 101 and m == 100
    assert w[0].tolist() == [0.0, 1.0] and w[-1].tolist() == [1.0, 0.0]
    units3, m3 = fusion.weight_grid(3, 101)
    assert len(units3) <= fusion.MAX_SIMPLEX_POINTS and (units3.sum(1) == m3).all()
    assert {tuple(u) for u in units3} >= {(m3, 0, 0), (0, m3, 0), (0, 0, m3)}


def test_normalize_decides_and_reports():
    p = np.array([[0.2, 0.8], [0.5, 0.5]], np.float32)
    out, kind = fusion.normalize(p, "auto")
    assert kind == "probs" and np.allclose(out, p)
    logits = np.array([[1.0, 3.0], [-2.0, 0.5]], np.float32)
    out, kind = fusion.normalize(logits, "auto")
    assert kind == "logits" and np.allclose(out, metrics.softmax(logits))
    with pytest.raises(ValueError, match=r"src: declared as probabilities but row 0 has a "
                                         r"negative"):
        fusion.normalize(logits - 5, "probs", "src")


def test_importing_fusion_does_not_import_torch():
    """fusion is numpy only; in a fresh interpreter, since other tests import torch."""
    code = ("import sys, fusion; "
            "print(sorted(m for m in ('torch', 'learned_fusion') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "[]"


def test_metrics_dict_follows_metrics_module():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, N_CLASSES, 500)
    scores = noisy(labels, 1.0, rng)
    m = fusion.metrics(scores, labels)
    assert m["top1"] == metrics.topk_accuracy(scores, labels, 1)
    assert m["top5"] == metrics.topk_accuracy(scores, labels, 5)
    per_class = [np.mean(scores[labels == c].argmax(1) == c) for c in np.unique(labels)]
    assert m["mean_class_acc"] == pytest.approx(100 * np.mean(per_class))
    assert m["n"] == 500
    assert fusion.metrics(np.full((4, 3), 1 / 3), np.array([0, 1, 2, 0]))["top1"] == 0


def tied_sources(n, rng):
    """Three integer-valued sources: many classes share their scores in every source, so the
    fused scores have exact ties at the true class for every weight vector."""
    labels = rng.integers(0, N_CLASSES, n)
    sources = {k: rng.integers(0, 3, (n, N_CLASSES)).astype(np.float32) for k in "abc"}
    for x in sources.values():
        x[np.arange(n), labels] += rng.integers(0, 2, n)  # the true class a little ahead
    return sources, labels


def test_grid_counts_equal_topk_accuracy_of_fuse_at_every_grid_point(monkeypatch):
    """The chunked search scores each weight exactly like fuse() + metrics.topk_accuracy,
    ties included, per fold and across chunk boundaries (10-row chunks here)."""
    monkeypatch.setattr(fusion, "CHUNK_ELEMENTS", 10 * N_CLASSES)
    rng = np.random.default_rng(2)
    sources, labels = tied_sources(257, rng)
    folds = fusion.make_folds(labels, 3, seed=0)
    units, m = fusion.weight_grid(3, 11)
    top1, top5 = fusion.grid_counts(sources, labels, units, m, folds, 3)
    tied_rows = 0
    for j in range(len(units)):
        fused = fusion.fuse(sources, units[j] / m)
        true = fused[np.arange(len(labels)), labels]
        tied_rows += np.sum((fused == true[:, None]).sum(1) > 1)
        for f in range(3):
            rows = folds == f
            for counts, k in ((top1, 1), (top5, fusion.TOP_K)):
                expected = metrics.topk_accuracy(fused[rows], labels[rows], k)
                assert 100 * counts[f, j] / rows.sum() == pytest.approx(expected, abs=1e-9)
    assert tied_rows > len(units) * 20  # the ties this test is about do occur


def two_class_rows(threshold, above, count):
    """Rows of class 0 that are top-1 correct only for audio weight > (or <) threshold."""
    a = 0.9 if above else 0.1
    v = (0.5 - threshold * a) / (1 - threshold)  # fused p0 = w a + (1 - w) v is 0.5 there
    audio = np.tile([a, 1 - a], (count, 1))
    video = np.tile([v, 1 - v], (count, 1))
    return audio.astype(np.float32), video.astype(np.float32)


def test_search_finds_the_known_best_weight():
    a1, v1 = two_class_rows(0.295, True, 10)   # correct for audio weight >= 0.30
    a2, v2 = two_class_rows(0.305, False, 10)  # correct for audio weight <= 0.30
    sources = {"audio": np.vstack([a1, a2]), "video": np.vstack([v1, v2])}
    labels = np.zeros(20, dtype=np.int64)
    best = fusion.search_weights(sources, labels)
    assert best["weights"]["audio"] == pytest.approx(0.30)
    assert best["top1"] == 100.0


def test_ties_go_to_top5_then_to_equal_weights():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, N_CLASSES, 200)
    p = noisy(labels, 1.0, rng)
    best = fusion.search_weights({"audio": p, "video": p.copy()}, labels)
    assert best["weights"] == {"audio": 0.5, "video": 0.5}  # all weights tie on top-1/top-5


def test_folds_are_stratified_and_fixed_by_seed():
    labels = np.repeat(np.arange(7), [3, 11, 20, 5, 1, 9, 14])
    folds = fusion.make_folds(labels, 5, seed=0)
    assert np.array_equal(folds, fusion.make_folds(labels, 5, seed=0))
    sizes = np.bincount(folds, minlength=5)
    assert sizes.max() - sizes.min() <= 1
    for c in range(7):
        per_fold = np.bincount(folds[labels == c], minlength=5)
        assert per_fold.max() - per_fold.min() <= 1


def test_cross_fit_never_uses_a_rows_own_label():
    """Relabelling fold 0 changes the oracle but not the weight fold 0 is fused with."""
    rng = np.random.default_rng(4)
    labels = rng.integers(0, N_CLASSES, 400)
    sources = {"audio": noisy(labels, 1.4, rng), "video": noisy(labels, 1.0, rng)}
    folds = fusion.make_folds(labels, 5, seed=0)
    before = fusion.cross_fit(sources, labels, folds=folds)
    perturbed = labels.copy()
    in0 = folds == 0
    # fold 0's labels now agree with the audio source's argmax: audio looks perfect there
    perturbed[in0] = sources["audio"][in0].argmax(1)
    after = fusion.cross_fit(sources, perturbed, folds=folds)
    assert not np.array_equal(before.curve_top1, after.curve_top1)
    assert after.oracle_weights[0] > before.oracle_weights[0]  # the oracle follows the labels
    assert after.fold_index[0] == before.fold_index[0]
    np.testing.assert_array_equal(after.probs[in0], before.probs[in0])
    assert after.fold_index[1:] != before.fold_index[1:]  # other folds did see the change


def test_cross_fit_headline_is_over_all_rows():
    sources, labels = complementary(300)
    cf = fusion.cross_fit(sources, labels)
    assert cf.metrics["n"] == 300 and cf.probs.shape == (300, N_CLASSES)
    assert cf.oracle_metrics["top1"] == pytest.approx(cf.curve_top1[cf.oracle_index])
    singles = [fusion.metrics(p, labels)["top1"] for p in sources.values()]
    assert cf.metrics["top1"] > max(singles)


def test_bootstrap_interval():
    rng = np.random.default_rng(5)
    a = rng.random(500) < 0.6
    same = metrics.paired_bootstrap(a, a.copy(), 2000, seed=0)
    assert same["diff"] == 0 and same["ci95"] == [0.0, 0.0]
    b = a.copy()
    b[np.flatnonzero(~a)[:60]] = True  # b is right on 60 more rows
    better = metrics.paired_bootstrap(b, a, 2000, seed=0)
    assert better["diff"] == pytest.approx(12.0) and better["ci95"][0] > 0
    # the multinomial shortcut matches resampling rows
    idx = np.random.default_rng(1).integers(0, 500, (2000, 500))
    naive = np.percentile(100 * (b[idx].mean(1) - a[idx].mean(1)), [2.5, 97.5])
    assert np.allclose(better["ci95"], naive, atol=0.8)
    noise = rng.random(500) < 0.6
    mixed = metrics.paired_bootstrap(noise, a, 2000, seed=0)
    assert mixed["ci95"][0] < mixed["diff"] < mixed["ci95"][1]


# ---------------------------------------------------------------- step 07

def write_source(path, scores, ids):
    np.save(path, scores)
    datafiles.write_lines(datafiles.ids_path_for(path), ids)


@pytest.fixture
def fusion_files(tmp_path):
    rng = np.random.default_rng(6)
    n = 250
    sources, labels = complementary(n, seed=6)
    ids = [f"val/c{labels[k]}/v{k:04d}" for k in range(n)]
    classes = [f"class_{c}" for c in range(N_CLASSES)]
    datafiles.write_lines(tmp_path / "classes.txt", classes)
    extra = ["val/c0/silent_video"]  # labelled video without a track: not scored
    datafiles.write_lines(tmp_path / "val_videos.txt",
                          [f"{i}\t{y}" for i, y in zip(ids, labels)] + [f"{extra[0]}\t0"])
    write_source(tmp_path / "val_audio_scores.npy", sources["audio"], ids)
    perm = rng.permutation(n)  # video rows in another order: must be reordered by id
    video_logits = np.log(sources["video"])[perm] + 3.0  # logits, not probabilities
    write_source(tmp_path / "video_matched.npy", video_logits, [ids[k] for k in perm])
    return tmp_path, sources, labels, ids, classes


def base_argv(tmp_path):
    return ["--scores", f"audio={tmp_path / 'val_audio_scores.npy'}",
            f"video={tmp_path / 'video_matched.npy'}",
            "--classes", str(tmp_path / "classes.txt"), "--bootstrap-samples", "300"]


def get(d, dotted):
    for key in dotted.split("."):
        d = d[key]
    return d


def test_07_end_to_end_and_apply(fusion_files, capsys):
    tmp_path, sources, labels, ids, classes = fusion_files
    out = tmp_path / "fusion"
    fuse07.main(base_argv(tmp_path) + ["--labels", str(tmp_path / "val_videos.txt"),
                                       "--out-dir", str(out)])
    for name in ["fused_scores.npy", "fused_ids.txt", "weights.json", "report.json",
                 "report.md", "accuracy_vs_weight.png", "per_class_gain.png", "confusion.png",
                 "learned_concat_scores.npy", "learned_concat_ids.txt"]:
        assert (out / name).stat().st_size > 0, name
    report = json.loads((out / "report.json").read_text())
    for key in ["audio.top1", "audio.top5", "video.top1", "video.top5", "fused.top1",
                "fused.top5", "fused.audio_weight", "fused.fold_weights", "oracle.top1",
                "oracle.audio_weight", "gain.top1", "gain.ci95", "n", "git_commit",
                "versions.numpy", "versions.torch", "learned.sum.top1",
                "learned.grouped.top1", "learned.concat.top1", "settings.learned_fusion.steps"]:
        get(report, key)
    assert report["n"] == len(ids)
    assert report["sources"]["video"]["kind"] == "logits"
    assert report["sources"]["audio"]["kind"] == "probs"
    folds_audio = [w["audio"] for w in report["fused"]["fold_weights"]]
    assert report["fused"]["audio_weight"] == pytest.approx(np.mean(folds_audio))
    assert len(report["gain"]["ci95"]) == 2
    assert report["fused"]["top1"] > max(report["audio"]["top1"], report["video"]["top1"])
    # rows follow the first source (audio) order; video was reordered by id, not position
    assert datafiles.read_ids(out / "fused_ids.txt") == ids
    weights = json.loads((out / "weights.json").read_text())
    oracle = fusion.fuse(sources, weights["weights"])
    assert fusion.metrics(oracle, labels)["top1"] == pytest.approx(report["oracle"]["top1"],
                                                                  abs=1e-6)
    md = (out / "report.md").read_text()
    assert "cross-fitted" in md and "oracle" in md and "learned concat layer" in md
    printed = capsys.readouterr().out
    assert "| method | top-1 %" in printed

    # --apply on an "unlabelled" split: other ids, no labels file
    test_ids = [f"test/x/v{k}" for k in range(5)]
    write_source(tmp_path / "t_audio_scores.npy", sources["audio"][:5], test_ids)
    write_source(tmp_path / "t_video.npy", np.log(sources["video"][:5]), test_ids)
    fuse07.main(["--apply", str(out / "weights.json"), "--eval-split", "test", "--out-dir", str(out),
                 "--scores", f"video={tmp_path / 't_video.npy'}",
                 f"audio={tmp_path / 't_audio_scores.npy'}",
                 "--classes", str(tmp_path / "classes.txt")])
    applied = np.load(out / "test_fused_scores.npy")
    expected = fusion.fuse({k: v[:5] for k, v in sources.items()}, weights["weights"])
    np.testing.assert_allclose(applied, expected, atol=1e-6)
    assert datafiles.read_ids(out / "test_fused_ids.txt") == test_ids
    lines = datafiles.read_lines(out / "test_predictions.tsv")
    assert lines[0].split("\t") == ["id", "top1", "top2", "top3", "top4", "top5"]
    first = lines[1].split("\t")
    assert first[0] == test_ids[0] and first[1] == classes[int(expected[0].argmax())]


def test_07_rejects_different_id_sets_and_missing_labels(fusion_files):
    tmp_path, sources, labels, ids, classes = fusion_files
    write_source(tmp_path / "video_matched.npy", np.log(sources["video"][1:]), ids[1:])
    with pytest.raises(ValueError, match=r"different ids: 1 of audio's ids missing"):
        fuse07.main(base_argv(tmp_path) + ["--labels", str(tmp_path / "val_videos.txt"),
                                           "--learned-layers"])
    write_source(tmp_path / "video_matched.npy", np.log(sources["video"]), ids)
    datafiles.write_lines(tmp_path / "val_videos.txt",
                          [f"{i}\t{y}" for i, y in zip(ids[1:], labels[1:])])
    with pytest.raises(ValueError, match=r"val_videos.txt: no label for 1 of 250 ids"):
        fuse07.main(base_argv(tmp_path) + ["--labels", str(tmp_path / "val_videos.txt"),
                                           "--learned-layers"])
