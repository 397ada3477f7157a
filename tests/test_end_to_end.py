"""The whole runbook, steps 00-07, on a tiny generated demo dataset (the `make demo` path)."""
import json

import numpy as np

import datafiles
import train
from conftest import load_script


def test_runbook_end_to_end(tmp_path, capsys):
    common = ["--dataset", "tiny", "--data-root", str(tmp_path / "data"),
              "--output-root", str(tmp_path), "--workers", "2"]
    load_script("00_make_demo_dataset").main(
        common + ["--num-classes", "4", "--videos-per-class", "6", "--clip-seconds", "2", "3"])
    load_script("01_make_file_lists").main(common)
    assert load_script("02_extract_audio").main(common) == 3        # the corrupt file
    assert load_script("03_make_audio_images").main(common) == 0
    load_script("04_make_datalists").main(common)
    train.main(common + ["--run", "r", "--epochs", "2", "--batch-size", "32"])
    load_script("05_score_tracks").main(common + ["--run", "r"])
    load_script("train_demo_video_model").main(common + ["--video-epochs", "2"])
    npy = tmp_path / "npy_files" / "tiny" / "r"
    results = tmp_path / "video_classification_results" / "tiny"
    load_script("06_match_video_to_audio").main(common + [
        "--video-scores", str(results / "demo_video_cnn_val_scores.npy"),
        "--audio-ids", str(npy / "val_ids.txt"),
        "--out", str(results / "demo_video_cnn_val_matched.npy")])
    load_script("07_fuse").main(common + [
        "--scores", f"audio={npy / 'val_scores.npy'}",
        f"video={results / 'demo_video_cnn_val_matched.npy'}", "--bootstrap-samples", "200"])
    out = capsys.readouterr().out

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
    matched_ids = datafiles.read_ids(results / "demo_video_cnn_val_matched_ids.txt")
    assert matched_ids == audio_ids
    assert np.load(results / "demo_video_cnn_val_matched.npy").shape == (len(audio_ids), 4)
    report = json.loads((tmp_path / "npy_files" / "tiny" / "fusion" / "report.json").read_text())
    for key in ("audio.top1", "video.top1", "fused.top1", "fused.audio_weight", "oracle.top1"):
        node = report
        for part in key.split("."):
            node = node[part]
        assert isinstance(node, (int, float)), key
    assert 0 <= report["fused"]["audio_weight"] <= 1
    for png in ("accuracy_vs_weight.png", "per_class_gain.png", "confusion.png"):
        assert (tmp_path / "npy_files" / "tiny" / "fusion" / png).stat().st_size > 1000
    assert "oracle" in out
