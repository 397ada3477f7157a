"""Step 12 (Phase II of the two-phase system) on tiny synthetic contracts: alignment by id,
both protocols, Table I / II, stand-in labels, saved models, and the refusals."""
import json

import numpy as np
import pytest
import torch

from conftest import load_script

from soundtrack import datafiles
from soundtrack import learned_fusion
from soundtrack import inference
from soundtrack import metrics
from soundtrack import records

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
    record = records.new("train.py", "audio" if name.startswith("aud") else "visual", classes,
                         model=MODELS[run])
    for split, (ids, _) in splits.items():            # as train.py's scoring leaves it
        records.add_split(records.folder_record(npy), record, split, len(ids), checkpoint={
            "path": f"runs/t/{run}/best.pt", "epoch": 1, "which": "best", "why": "test"})


def make_contracts(tmp_path):
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


@pytest.fixture
def contracts(tmp_path):
    return make_contracts(tmp_path)


@pytest.fixture(scope="module")
def phase2(tmp_path_factory):
    """Step 12 run once on fresh contracts: (root, its report)."""
    root = make_contracts(tmp_path_factory.mktemp("two_phase"))
    return root, step12.main(argv(root))


def argv(root, sources=SOURCES):
    return ["--dataset", "t", "--output-root", str(root), "--learned-fusion-steps", "25",
            "--learned-fusion-mixup-alpha", "0.2", "--bootstrap-samples", "200",
            "--sources", *[f"{k}={v}" for k, v in sources.items()]]


def test_12_tables_protocols_stand_ins_and_saved_models(phase2):
    contracts, report = phase2
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
    with pytest.raises(ValueError, match=r"val: .*tp_vis_inc/val_ids.txt \(vis_inc\) and .* "
                                         r"hold different ids: 1 of aud_mel's ids missing"):
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


class StubBackbone:
    """A backbone whose outputs for a file are its contract row for that file's id (so the
    two-phase path of predict.py is tested without training: wiring, fusion, comparison)."""

    def __init__(self, path, npy, classes, shift=0.0):
        self.path, self.npy, self.classes, self.shift = path, npy, classes, shift
        self.input_name, self.record = "stub", {}

    def prepare(self, path, ffmpeg, timeout_s):
        return path, {"seconds": 1.0, "n_patches": 2, "note": ""}

    def outputs(self, path):
        vid = "val/" + path.stem
        row = datafiles.read_ids(self.npy / "val_ids.txt").index(vid)
        out = {k: np.load(self.npy / f"val_{k}.npy")[row]
               for k in ("scores", "logits", "embedding")}
        if vid == "val/v007":
            out["logits"][0] += self.shift           # class 0's logit only, one file
        return out


def test_predict_scores_files_with_the_two_phase_system(phase2, monkeypatch):
    contracts, _ = phase2
    predict = load_script("predict")
    out_dir = contracts / "npy_files" / "t" / "two_phase"
    classes = [f"c{k}" for k in range(N_CLASSES)]
    shifts = {"tp_aud_cqt": 0.5}                       # one backbone recomputes differently
    monkeypatch.setattr(inference, "backbone", lambda path, device="cpu": StubBackbone(
        path, contracts / "npy_files" / "t" / path.parent.name, classes,
        shifts.get(path.parent.name, 0.0)))
    video_root = contracts / "videos"
    files = [video_root / "val" / f"v{k:03d}.mp4" for k in (3, 7)]
    report = contracts / "pred.json"
    assert predict.main(["--dataset", "t", "--output-root", str(contracts), "--video-root",
                         str(video_root), str(out_dir / "phase2_F4.pt"), *map(str, files),
                         "--compare-split", "val", "--out", str(report)]) == 0
    got = json.loads(report.read_text())
    assert got["phase2"]["phase2_layer"] == "F4" and len(got["files"]) == 2
    ids = datafiles.read_ids(out_dir / "val_two_phase_ids.txt")
    fused = np.load(out_dir / "val_F4_a_scores.npy")[ids.index("val/v003")]
    assert got["files"][0]["top5"][0] == [classes[int(fused.argmax())],
                                          round(float(fused.max()), 6)]
    same, shifted = got["compared"]
    assert same["id"] == "val/v003" and same["phase2_probs_max_abs_diff"] < 1e-6
    assert same["max_abs_diff"]["aud_cqt"] == {"embedding": 0.0, "logits": 0.0, "scores": 0.0}
    assert shifted["max_abs_diff"]["aud_cqt"]["logits"] == pytest.approx(0.5)
    assert shifted["max_abs_diff"]["aud_mel"]["logits"] == 0.0
    assert shifted["phase2_probs_max_abs_diff"] > 1e-4     # the shifted logit moved it


def test_binomial_tail_is_exact():
    assert metrics.binomial_tail(5, 10, 0.5) == pytest.approx(638 / 1024, rel=1e-12)
    assert metrics.binomial_tail(10, 10, 0.5) == pytest.approx(1 / 1024, rel=1e-12)
    assert metrics.binomial_tail(0, 10, 0.3) == pytest.approx(1.0)
