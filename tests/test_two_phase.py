"""Step 12 (Phase II of the two-phase system) on tiny synthetic contracts: alignment by id,
both protocols, Table I / II, stand-in labels, saved models, and the refusals."""
import json

import numpy as np
import pytest
import torch

from conftest import load_script

import datafiles
import learned_fusion
import metrics

step12 = load_script("12_two_phase")
N_CLASSES, DIM = 4, 6
SOURCES = {"aud_mel": "tp_aud_mel", "aud_gam": "tp_aud_gam", "aud_cqt": "tp_aud_cqt",
           "vis_inc": "tp_vis_inc", "vis_conv": "tp_vis_conv"}
MODELS = {"tp_aud_mel": "slim_cnn", "tp_aud_gam": "slim_cnn", "tp_aud_cqt": "slim_cnn",
          "tp_vis_inc": "tv_inception_v3", "tp_vis_conv": "tv_resnet18"}
# each audio source tells classes {0,1} from {2,3}, each visual source {0,2} from {1,3}
SEES = {"aud": np.array([0, 0, 1, 1]), "vis": np.array([0, 1, 0, 1])}


def write_run(root, run, name, splits, rng):
    classes = [f"c{k}" for k in range(N_CLASSES)]
    npy = root / "npy_files" / "t" / run
    for split, (ids, labels) in splits.items():
        order = rng.permutation(len(ids))         # every source in its own row order
        ids_s, y = [ids[i] for i in order], labels[order]
        half = SEES[name[:3]][y]
        logits = rng.normal(0, 1.0, (len(y), N_CLASSES)).astype(np.float32)
        logits[:, :] += 2.5 * (SEES[name[:3]][None, :] == half[:, None])
        logits[np.arange(len(y)), y] += rng.normal(0.6, 0.5, len(y)).astype(np.float32)
        emb = np.concatenate([logits, rng.normal(0, 1, (len(y), DIM - N_CLASSES))], axis=1)
        datafiles.save_npy(npy / f"{split}_scores.npy", metrics.softmax(logits))
        datafiles.save_npy(npy / f"{split}_logits.npy", logits)
        datafiles.save_npy(npy / f"{split}_embedding.npy", emb.astype(np.float32))
        datafiles.save_npy(npy / f"{split}_labels.npy", y.astype(np.int64))
        datafiles.write_lines(npy / f"{split}_ids.txt", ids_s)
    run_dir = root / "runs" / "t" / run
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.save({"model_name": MODELS[run], "classes": classes, "model": {}},
               run_dir / "best.pt")


@pytest.fixture
def contracts(tmp_path):
    rng = np.random.default_rng(0)
    splits = {}
    for split, n in (("train", 80), ("val", 80)):
        ids = [f"{split}/v{k:03d}" for k in range(n)]
        splits[split] = (ids, np.arange(n) % N_CLASSES)
    for name, run in SOURCES.items():
        write_run(tmp_path, run, name, splits, rng)
    datafiles.write_lines(tmp_path / "file_lists" / "t" / "classes.txt",
                          [f"c{k}" for k in range(N_CLASSES)])
    return tmp_path


def argv(root, sources=SOURCES):
    return ["--dataset", "t", "--output-root", str(root), "--learned-fusion-steps", "25",
            "--learned-fusion-mixup-alpha", "0.2", "--bootstrap-samples", "200",
            "--sources", *[f"{k}={v}" for k, v in sources.items()]]


def test_12_tables_protocols_stand_ins_and_saved_models(contracts):
    report = step12.main(argv(contracts))
    out = contracts / "npy_files" / "t" / "two_phase"
    saved = json.loads((out / "report.json").read_text())
    assert saved["F4_b_vs_best_backbone"] == report["F4_b_vs_best_backbone"]
    assert (out / "per_class_accuracy.png").stat().st_size > 0
    # Table I: six layers x two protocols, per class and overall, each with n and protocol
    for p in ("a", "b"):
        assert list(report["table1"][p]) == ["F1", "F2", "F3", "F4", "F5", "F6"]
        overall = report["table1"][p]["F4"]["overall"]
        assert overall["n"] == 80 and overall["protocol"] == step12.PROTOCOLS[p]
        assert [c["n"] for c in report["table1"][p]["F1"]["per_class"]] == [20] * 4
    # Table II: the subsets hold the right backbones
    t2 = report["table2"]
    assert list(t2) == ["audio only", "visual only", "audio-visual"]
    assert len(t2["audio only"]["sources"]) == 3 and len(t2["visual only"]["sources"]) == 2
    assert t2["audio-visual"]["F4_b"] == report["table1"]["b"]["F4"]["overall"]
    # each modality alone confuses pairs the other separates: fusing both must win
    singles = [b["top1"] for b in report["backbones"].values()]
    assert max(singles) < 75 and t2["audio-visual"]["F4_b"]["top1"] > max(singles) + 15
    assert t2["audio-visual"]["weighted_average"]["top1"] > max(singles) + 15
    assert all(b["binomial_p"] < 0.01 for b in report["backbones"].values())
    # stand-in: a visual slot whose model is not inception_v3 / convnext_tiny
    labels = {k: b["label"] for k, b in report["backbones"].items()}
    assert labels["vis_conv"] == "vis_conv (tv_resnet18, stand-in)"
    assert labels["vis_inc"] == "vis_inc (tv_inception_v3)"
    md = (out / "report.md").read_text()
    assert "vis_conv (tv_resnet18, stand-in)" in md and "Table I, protocol (b)" in md
    # the saved protocol (a) model scores the raw contract rows as step 12 did (by id)
    model, record = learned_fusion.load_model(out / "phase2_F4.pt")
    ids = datafiles.read_ids(out / "val_two_phase_ids.txt")
    inputs = {}
    for name, run in SOURCES.items():
        npy = contracts / "npy_files" / "t" / run
        own = datafiles.read_ids(npy / "val_ids.txt")
        pos = [own.index(i) for i in ids]
        inputs[name] = np.load(npy / "val_logits.npy")[pos]
    np.testing.assert_allclose(learned_fusion.predict_saved(model, record, inputs),
                               np.load(out / "val_F4_a_scores.npy"), rtol=1e-5, atol=1e-6)
    assert record["sources"]["vis_conv"]["checkpoint"] == "runs/t/tp_vis_conv/best.pt"


def test_12_refuses_other_ids_other_labels_and_bad_names(contracts):
    npy = contracts / "npy_files" / "t" / "tp_vis_inc"
    ids = datafiles.read_ids(npy / "val_ids.txt")
    datafiles.write_lines(npy / "val_ids.txt", ids[:-1] + ["val/other"])
    with pytest.raises(ValueError, match=r"val: vis_inc .* hold different ids: 1 of "
                                         r"aud_mel's missing"):
        step12.main(argv(contracts))
    # TWO_PHASE_ROWS common: the ids all hold, the others counted per source
    report = step12.main(argv(contracts) + ["--two-phase-rows", "common",
                                            "--learned-fusion-steps", "2"])
    assert report["n_eval"] == 79 and report["rows"]["dropped"]["val"]["vis_inc"] == {
        "n": 1, "examples": ["val/other"]}
    assert report["rows"]["dropped"]["val"]["aud_mel"]["n"] == 1
    datafiles.write_lines(npy / "val_ids.txt", ids)
    labels = np.load(npy / "val_labels.npy")
    labels[3] = (labels[3] + 1) % N_CLASSES
    datafiles.save_npy(npy / "val_labels.npy", labels)
    with pytest.raises(ValueError, match=rf"id '{ids[3]}' has label {labels[3]} in vis_inc"):
        step12.main(argv(contracts))
    with pytest.raises(SystemExit):
        step12.main(argv(contracts, {"mel": "tp_aud_mel"}))
