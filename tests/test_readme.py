"""The README's "Your own videos" block, taken from the README itself, runs on a generated
Kinetics-style download (flat folders, the annotation CSVs, an MMAction2 .pkl of video
scores) and reaches step 07's report: the runbook cannot rot."""
import json
import os
import pickle
import re
import subprocess
import sys

import numpy as np
import torch

from conftest import REPO, make_video
from soundtrack import datafiles

CLASSES = {"air drumming": 300, "beatboxing": 900, "clapping": 2500}   # class -> tone, Hz
PER_CLASS = {"train": 6, "val": 4}


def readme_block():
    """The commands between the README's markers, and the variables it sets."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- your-own-videos -->\n```bash\n(.*?)```\n<!-- end -->", text, re.S)
    assert block, "README.md lost its 'Your own videos' block"
    return block.group(1)


def make_download(root, ffmpeg):
    """Flat <split>/<youtube_id>_<start>_<end>.mp4 videos, the CSVs (one row whose file is
    missing, one file no row names, one val video without sound), MMAction2's annotation
    list and a results.pkl of video scores in its order."""
    rng = np.random.default_rng(0)
    rows = {"train": [], "val": []}
    for split, n in PER_CLASS.items():
        for c, (name, hz) in enumerate(CLASSES.items()):
            for k in range(n):
                yid = f"{split[:2]}{c}{k}x{'-_'[k % 2]}Yz"
                start = 10 * k
                stem = f"{yid}_{start:06d}_{start + 10:06d}"
                silent = split == "val" and c == 0 and k == 0
                make_video(ffmpeg, root / "videos" / split / f"{stem}.mp4", seconds=2.0,
                           audio=None if silent else "sine", freq=hz)
                rows[split].append((name, yid, start, start + 10, stem, c))
    rows["train"].append(("clapping", "gone0000000", 0, 10, None, 2))      # not downloaded
    make_video(ffmpeg, root / "videos" / "train" / "stray_000000_000010.mp4", seconds=1.0)
    header = "label,youtube_id,time_start,time_end,split,is_cc"
    for split, csv_split in (("train", "train"), ("val", "validate")):
        (root / f"k600_{split}.csv").write_text("\n".join(
            [header] + [f'"{lab}",{y},{s},{e},{csv_split},0' for lab, y, s, e, _, _ in
                        rows[split]]) + "\n")
    val = [r for r in rows["val"]]
    order = rng.permutation(len(val))                 # the model's own row order
    (root / "val_list.txt").write_text("".join(f"{val[i][4]}.mp4 {val[i][5]}\n" for i in order))
    dump = []
    for i in order:
        score = rng.random(len(CLASSES)).astype(np.float32)
        score[val[i][5]] += 1.0                       # a video model that is mostly right
        dump.append({"pred_score": torch.from_numpy(score / score.sum()),
                     "gt_label": torch.tensor([val[i][5]])})
    with open(root / "results.pkl", "wb") as f:
        pickle.dump(dump, f)


def test_the_readme_runbook_reaches_the_fusion_report(tmp_path, ffmpeg):
    make_download(tmp_path, ffmpeg)
    values = {"VIDEOS": str(tmp_path / "videos"),
              "CSVS": f'"{tmp_path / "k600_train.csv"} {tmp_path / "k600_val.csv"}"',
              "SCORES": str(tmp_path / "results.pkl"), "LIST": str(tmp_path / "val_list.txt"),
              "TRAIN": '"--epochs 4 --batch-size 16 --minival-fraction 0 --torch-threads 1"',
              "D": f'"--dataset k600 --video-root $VIDEOS --output-root {tmp_path} '
                   f'--data-root {tmp_path / "data"}"'}
    block = readme_block()
    names = re.findall(r"^([A-Z]+)=", block, re.M)
    assert set(names) == set(values), names           # the test sets what the README sets
    commands = re.sub(r"^([A-Z]+)=.*$", lambda m: f"{m.group(1)}={values[m.group(1)]}", block,
                      flags=re.M)
    assert commands.count("python ") == 8
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep +
               os.environ.get("PATH", ""))
    proc = subprocess.run(["bash", "-e", "-c", commands], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode in (0,), proc.stdout[-3000:] + proc.stderr[-3000:]

    lists = tmp_path / "file_lists" / "k600"
    assert datafiles.read_classes(lists / "classes.txt") == list(CLASSES)
    assert list(datafiles.read_reasons(lists / "train_missing.txt")) == ["gone0000000_000000_000010"]
    assert list(datafiles.read_reasons(lists / "train_unlisted.txt")) == \
        ["train/stray_000000_000010.mp4"]
    report = json.loads((tmp_path / "npy_files" / "k600" / "fusion" / "report.json").read_text())
    n_val = PER_CLASS["val"] * len(CLASSES)
    assert report["n"] == n_val - 1                   # the silent video has no audio score
    whole = report["whole_split"]
    assert (whole["n"], whole["n_video_only"]) == (n_val, 1)
    rows = datafiles.read_lines(tmp_path / "npy_files" / "k600" / "fusion" /
                                "whole_split_rows.tsv")
    only = [r.split("\t") for r in rows[1:] if "\tvideo_only\t" in r]
    assert len(only) == 1 and only[0][2].startswith("step 02 no_audio")
    assert "fused" in report and report["video"]["top1"] > 50
