"""The whole runbook, steps 00-08, on a tiny generated demo dataset (the `make demo` path)."""
import json

import numpy as np
import pytest

from soundtrack import datafiles
from soundtrack import metrics
import train
from conftest import load_script


def run_runbook(root):
    """Steps 00-08 of the tiny demo under `root` (the video model through step 08 and
    train.py). -> (audio npy folder, video npy folder, video results folder)."""
    common = ["--dataset", "tiny", "--data-root", str(root / "data"),
              "--output-root", str(root)]
    workers = ["--workers", "2"]                 # for the steps that work in parallel
    load_script("00_make_demo_dataset").main(
        common + workers + ["--num-classes", "4", "--videos-per-class", "6",
                            "--clip-seconds", "2", "3"])
    load_script("01_make_file_lists").main(common)
    assert load_script("02_extract_audio").main(common + workers) == 3   # the corrupt file
    assert load_script("03_make_audio_images").main(common + workers) == 0
    load_script("04_make_datalists").main(common)
    train.main(common + ["--run", "r", "--epochs", "2", "--batch-size", "32"])
    load_script("05_score_tracks").main(common + ["--run", "r"])
    video = ["--frames-per-second", "2", "--frame-size-pixels", "32"]
    assert load_script("08_extract_frames").main(common + workers + video) == 3   # corrupt
    train.main(common + video + ["--run", "v", "--model", "tv_mobilenet_v3_small",
                                 "--pretrained-weights", "none", "--epochs", "1",
                                 "--batch-size", "32", "--per-frame"])
    load_script("05_score_tracks").main(common + ["--run", "v"])    # checks the contract
    npy, vnpy = root / "npy_files" / "tiny" / "r", root / "npy_files" / "tiny" / "v"
    results = root / "video_classification_results" / "tiny"
    load_script("06_match_video_to_audio").main(common + [
        "--video-scores", str(vnpy / "val_scores.npy"),
        "--audio-ids", str(npy / "val_ids.txt"),
        "--out", str(results / "video_val_matched.npy")])
    load_script("07_fuse").main(common + [
        "--scores", f"audio={npy / 'val_scores.npy'}",
        f"video={results / 'video_val_matched.npy'}", "--bootstrap-samples", "200"])
    return npy, vnpy, results


def test_runbook_end_to_end(tmp_path, capsys):
    npy, vnpy, results = run_runbook(tmp_path)
    out = capsys.readouterr().out
    common = ["--dataset", "tiny", "--data-root", str(tmp_path / "data"),
              "--output-root", str(tmp_path)]
    # the visual run's per-frame features line up with step 08's frames, video by video
    from soundtrack import frames
    frame_dir = tmp_path / "data" / "tiny" / "frames" / "32px_2fps"
    video_ids = datafiles.read_ids(vnpy / "val_ids.txt")
    track, times = np.load(vnpy / "val_patch_track.npy"), np.load(vnpy / "val_frame_times.npy")
    assert np.load(vnpy / "val_frame_pooled.npy").shape == (len(track), 576)
    assert np.load(vnpy / "val_embedding.npy").shape == (len(video_ids), 1024)
    for row in (0, len(video_ids) - 1):
        stored = frames.load_video(frame_dir / (video_ids[row] + ".npz"))["times"]
        np.testing.assert_array_equal(times[track == row], stored)
    clip = next((tmp_path / "data" / "tiny" / "videos" / "val").rglob("*.mp4"))
    assert load_script("predict").main(common + [str(tmp_path / "runs" / "tiny" / "v" / "best.pt"),
                                                 str(clip)]) == 0
    assert "1 files scored, 0 failed (tv_mobilenet_v3_small on frames 32px_2fps" in \
        capsys.readouterr().out

    # counts reconcile, with the reasons listed
    lists = tmp_path / "file_lists" / "tiny"
    n_videos = sum(len(datafiles.read_video_list(lists / f"{s}_videos.txt")[0])
                   for s in ("train", "val"))
    n_sound = sum(len(datafiles.read_ids(lists / f"{s}_16000hz_mono_audio.txt"))
                  for s in ("train", "val"))
    no_audio = sum(len(datafiles.read_reasons(lists / f"{s}_16000hz_mono_no_audio.txt"))
                   for s in ("train", "val"))
    failed = sum(len(datafiles.read_reasons(lists / f"{s}_16000hz_mono_failed.txt"))
                 for s in ("train", "val"))
    assert n_videos == n_sound + no_audio + failed and no_audio >= 3 and failed >= 1

    # the matched video rows are in audio id order, and fusion reports what the issue asks
    audio_ids = datafiles.read_ids(npy / "val_ids.txt")
    matched_ids = datafiles.read_ids(results / "video_val_matched_ids.txt")
    assert matched_ids == audio_ids
    assert np.load(results / "video_val_matched.npy").shape == (len(audio_ids), 4)
    fusion_dir = tmp_path / "npy_files" / "tiny" / "fusion"
    report = json.loads((fusion_dir / "report.json").read_text())
    # the reported numbers are those of the files beside them, by id
    labels = datafiles.labels_for(lists / "val_videos.txt", audio_ids)
    fused_ids = datafiles.read_ids(fusion_dir / "fused_ids.txt")
    assert fused_ids == audio_ids
    fused = np.load(fusion_dir / "fused_scores.npy")
    assert report["fused"]["top1"] == pytest.approx(metrics.topk_accuracy(fused, labels, 1))
    assert report["audio"]["top1"] == pytest.approx(
        metrics.topk_accuracy(np.load(npy / "val_scores.npy"), labels, 1))
    assert report["audio"]["top1"] == json.loads((npy / "val_metrics.json").read_text())[
        "track_top1"]
    weights = report["fused"]["weights"]
    assert set(weights) == {"audio", "video"} and sum(weights.values()) == pytest.approx(1)
    assert report["oracle"]["top1"] >= report["fused"]["top1"] - 1e-9   # tuned on these rows
    assert report["n"] == len(audio_ids) and report["labels"] == "file_lists/tiny/val_videos.txt"
    for png in ("accuracy_vs_weight.png", "per_class_gain.png", "confusion.png"):
        assert (tmp_path / "npy_files" / "tiny" / "fusion" / png).stat().st_size > 1000
    assert "oracle" in out
    check_whole_split(fusion_dir, vnpy, lists, report)
    check_predict_for_fusion_users(tmp_path, common)
    check_records(tmp_path, npy, vnpy, results, common)


def check_predict_for_fusion_users(root, common):
    """predict.py --scores-out writes what step 07 --apply reads; --fuse gives the same fused
    scores as --apply with step 07's weights; --workers 2 the same as one at a time."""
    clips = sorted((root / "data" / "tiny" / "videos" / "val").rglob("*.mp4"))[:4]
    runs, fusion_dir = root / "runs" / "tiny", root / "npy_files" / "tiny" / "fusion"
    predict = load_script("predict")
    outs = {}
    for name, run, workers in (("audio", "r", "1"), ("video", "v", "2"), ("audio2", "r", "2")):
        outs[name] = root / f"pred_{name}"
        predict.main(common + [str(runs / run / "best.pt"), *map(str, clips),
                               "--eval-split", "new", "--scores-out", str(outs[name]),
                               "--workers", workers])
    a1, a2 = (np.load(outs[k] / "new_scores.npy") for k in ("audio", "audio2"))
    np.testing.assert_array_equal(a1, a2)                         # workers change nothing
    ids = datafiles.read_ids(outs["audio"] / "new_ids.txt")
    assert len(ids) == len(a1) and ids[0].startswith("val/")
    load_script("07_fuse").main(common + [
        "--apply", str(fusion_dir / "weights.json"), "--eval-split", "new",
        "--out-dir", str(root / "applied"),
        "--scores", f"audio={outs['audio'] / 'new_scores.npy'}",
        f"video={outs['video'] / 'new_scores.npy'}"])
    applied = np.load(root / "applied" / "new_fused_scores.npy")
    predict.main(common + [str(runs / "r" / "best.pt"), *map(str, clips), "--eval-split", "new",
                           "--scores-out", str(root / "pred_fused"), "--fuse",
                           str(fusion_dir / "weights.json"), f"video={runs / 'v' / 'best.pt'}"])
    np.testing.assert_allclose(np.load(root / "pred_fused" / "new_scores.npy"), applied,
                               atol=1e-6)
    assert datafiles.read_ids(root / "applied" / "new_fused_ids.txt") == ids


def check_whole_split(fusion_dir, vnpy, lists, report):
    """Every video of the split is scored: a video without a sound track keeps exactly its
    video score (normalised as the fusion normalises it), marked with step 02's reason."""
    import fusion
    whole = report["whole_split"]
    ids = datafiles.read_ids(fusion_dir / "whole_split_ids.txt")
    video_ids = datafiles.read_ids(vnpy / "val_ids.txt")
    assert sorted(ids) == sorted(video_ids) and whole["n"] == len(ids)
    scores = np.load(fusion_dir / "whole_split_scores.npy")
    video, _ = fusion.normalize(np.load(vnpy / "val_scores.npy"), "probs")
    fused_ids = datafiles.read_ids(fusion_dir / "fused_ids.txt")
    fused = np.load(fusion_dir / "fused_scores.npy")
    rows = [line.split("\t") for line in datafiles.read_lines(fusion_dir / "whole_split_rows.tsv")[1:]]
    assert [r[0] for r in rows] == ids
    no_audio = datafiles.read_reasons(lists / "val_16000hz_mono_no_audio.txt")
    only = [r for r in rows if r[1] == "video_only"]
    assert len(only) == whole["n_video_only"] >= 1 and whole["n_with_sound"] == len(fused_ids)
    for vid, kind, reason in rows:
        row = scores[ids.index(vid)]
        if kind == "video_only":
            np.testing.assert_array_equal(row, video[video_ids.index(vid)])
            if vid in no_audio:
                assert reason.startswith("step 02 no_audio")
        else:
            np.testing.assert_array_equal(row, fused[fused_ids.index(vid)])
    labels = datafiles.labels_for(lists / "val_videos.txt", ids)
    assert whole["video"]["top1"] == pytest.approx(metrics.topk_accuracy(
        video[[video_ids.index(i) for i in ids]], labels, 1))
    assert whole["fused"]["top1"] == pytest.approx(metrics.topk_accuracy(scores, labels, 1))


def test_one_set_of_common_flags_runs_the_runbook_on_a_val_only_tree(tmp_path, capsys):
    """A tree with a val split only (as a user with Kinetics val and a video model's val
    scores has): the SAME dataset flags go to steps 01-07, train.py and predict.py; the
    splits to process and the workers to the steps that take them."""
    import shutil
    make = ["--dataset", "v", "--data-root", str(tmp_path / "data"), "--output-root",
            str(tmp_path)]
    load_script("00_make_demo_dataset").main(
        make + ["--num-classes", "2", "--videos-per-class", "8", "--clip-seconds", "2", "2",
                "--workers", "2"])
    shutil.rmtree(tmp_path / "data" / "v" / "videos" / "train")
    common = make + ["--train-split", "val", "--eval-split", "val"]
    splits = ["--splits", "val"]
    load_script("01_make_file_lists").main(common + splits)
    assert load_script("02_extract_audio").main(common + splits + ["--workers", "2"]) in (0, 3)
    assert load_script("03_make_audio_images").main(common + splits + ["--workers", "2"]) == 0
    load_script("04_make_datalists").main(common + splits)
    train.main(common + ["--run", "r", "--epochs", "1", "--minival-fraction", "0"])
    load_script("05_score_tracks").main(common + ["--run", "r"])
    # a video model's scores as a user brings them: rows in their own order, own ids file
    npy = tmp_path / "npy_files" / "v" / "r"
    ids, labels = datafiles.read_video_list(tmp_path / "file_lists" / "v" / "val_videos.txt")
    rng = np.random.default_rng(0)
    order = rng.permutation(len(ids))
    video = np.eye(2, dtype=np.float32)[labels[order]] * 2 + rng.normal(0, 1, (len(ids), 2))
    results = tmp_path / "video_classification_results" / "v"
    datafiles.save_npy(results / "user_val_scores.npy", video.astype(np.float32))
    datafiles.write_lines(results / "user_val_ids.txt", [ids[i] for i in order])
    load_script("06_match_video_to_audio").main(common + ["--run", "r", "--video-name", "user"])
    load_script("07_fuse").main(common + ["--run", "r", "--video-name", "user",
                                          "--bootstrap-samples", "100", "--learned-layers"])
    report = json.loads((tmp_path / "npy_files" / "v" / "fusion" / "report.json").read_text())
    assert report["n"] == len(datafiles.read_ids(npy / "val_ids.txt"))
    metrics05 = json.loads((npy / "val_metrics.json").read_text())
    assert metrics05["track_top1"] == report["audio"]["top1"]     # one top-k everywhere
    clip = next((tmp_path / "data" / "v" / "videos" / "val").rglob("*.mp4"))
    predict = load_script("predict")
    assert predict.main(common + [str(tmp_path / "runs" / "v" / "r" / "best.pt"),
                                  str(clip)]) == 0
    assert "1 files scored, 0 failed" in capsys.readouterr().out


def _numbers(node, path=""):
    """Every number in a JSON tree, by its path."""
    if isinstance(node, dict):
        return {k: v for key, value in node.items() for k, v in _numbers(value, f"{path}.{key}").items()}
    if isinstance(node, list):
        return {k: v for i, value in enumerate(node) for k, v in _numbers(value, f"{path}[{i}]").items()}
    return {path: node} if isinstance(node, (int, float)) and not isinstance(node, bool) else {}


def test_two_runs_in_different_folders_write_the_same_report(tmp_path):
    """The same seeds in two folders: every number and path in report.json agrees (paths are
    recorded relative to the output root)."""
    reports = []
    for name in ("first", "second"):
        run_runbook(tmp_path / name)
        reports.append(json.loads((tmp_path / name / "npy_files" / "tiny" / "fusion" /
                                   "report.json").read_text()))
    a, b = (_numbers(r) for r in reports)
    assert len(a) > 50 and a == b
    assert reports[0]["sources"] == reports[1]["sources"]
    assert reports[0]["sources"]["audio"]["file"] == "npy_files/tiny/r/val_scores.npy"


def check_records(root, npy, vnpy, results, common):
    """Every result the runbook wrote has its record, saying what made it; step 07 and step 05
    refuse a score file whose record's classes are not classes.txt's."""
    from soundtrack import records
    classes = datafiles.read_classes(root / "file_lists" / "tiny" / "classes.txt")
    written = [p for p in (root / "npy_files" / "tiny").iterdir() if p.is_dir()]
    assert {p.name for p in written} == {"r", "v", "fusion"}
    assert records.read(results / "video_val_all_record.json")["splits"]["val"]["rows"] == \
        len(datafiles.read_ids(vnpy / "val_ids.txt"))
    for folder in written:
        record = records.read(folder / "record.json")
        assert record["classes"] == classes and "val" in record["splits"], folder
    r = records.read(npy / "record.json")
    assert (r["made_by"], r["modality"], r["model"]) == ("train.py", "audio", "slim_cnn")
    assert r["front_end"]["name"] == "vggish_mel" and r["frames"] is None
    n_val = len(datafiles.read_ids(npy / "val_ids.txt"))
    assert r["splits"]["val"]["rows"] == n_val
    ckpt = r["splits"]["val"]["checkpoint"]
    assert ckpt["path"] == "runs/tiny/r/best.pt" and ckpt["which"] == "best" and ckpt["epoch"] >= 1
    v = records.read(vnpy / "record.json")
    assert v["modality"] == "visual" and v["frames"]["size_pixels"] == 32
    matched = records.read(results / "video_val_matched_record.json")
    assert matched["made_by"] == "06_match_video_to_audio.py"
    assert matched["sources"] == {"audio": "npy_files/tiny/r/record.json",
                                  "video": "npy_files/tiny/v/record.json"}
    assert records.read(root / "npy_files" / "tiny" / "fusion" / "record.json")["splits"][
        "val"]["rows"] == n_val
    # a score file whose record lists other classes is refused, naming both files
    other = dict(r, classes=classes[::-1])
    records.write(npy / "record.json", other)
    with pytest.raises(ValueError, match=r"r/record.json records 4 classes, .*classes.txt has "
                                         r"4; they differ first at column 0"):
        load_script("07_fuse").main(common + [
            "--scores", f"audio={npy / 'val_scores.npy'}",
            f"video={results / 'video_val_matched.npy'}", "--bootstrap-samples", "200"])
    with pytest.raises(SystemExit, match=r"r/record.json records 4 classes"):
        load_script("05_score_tracks").main(common + ["--run", "r"])
    records.write(npy / "record.json", r)
