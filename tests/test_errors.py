"""The errors a newcomer meets first: a dataset that does not exist, a step not yet run. Every
script ends with one line naming what is missing and the step that makes it, exit status 2,
never a traceback."""
import os
import subprocess
import sys

import pytest

from conftest import REPO

SCRIPTS = {  # script -> its own arguments besides --dataset (what a user would type)
    "scripts/00_prepare_tau2021av.py": ["--tau-root", "no_such_folder"],
    "scripts/01_make_file_lists.py": [],
    "scripts/02_extract_audio.py": [],
    "scripts/03_make_audio_images.py": [],
    "scripts/04_make_datalists.py": [],
    "train.py": [],
    "scripts/05_score_tracks.py": [],
    "scripts/06_match_video_to_audio.py": [],
    "scripts/07_fuse.py": [],
    "scripts/08_extract_frames.py": [],
    "scripts/09_make_envelopes.py": [],
    "scripts/10_evaluate_envelopes.py": [],
    "scripts/11_linear_probe.py": [],
    "scripts/12_two_phase.py": ["--sources", "aud_mel=tp_aud_mel", "vis_inc=tp_vis_inc"],
    "scripts/predict.py": ["runs/nosuch/cnn_mel/best.pt", "clip.mp4"],
}
EXPECTED = {  # what the line must say: the missing input and the step that makes it
    "scripts/00_prepare_tau2021av.py": "is --tau-root the unpacked development set",
    "scripts/01_make_file_lists.py": "video root",
    "scripts/02_extract_audio.py": "run scripts/01_make_file_lists.py --dataset nosuch first",
    "scripts/03_make_audio_images.py": "run scripts/02_extract_audio.py --dataset nosuch first",
    "scripts/04_make_datalists.py": "run scripts/03_make_audio_images.py --dataset nosuch",
    "train.py": "run scripts/01_make_file_lists.py --dataset nosuch first",
    "scripts/05_score_tracks.py": "run train.py --run cnn_mel --dataset nosuch first",
    "scripts/06_match_video_to_audio.py": "run scripts/01_make_file_lists.py --dataset nosuch",
    "scripts/07_fuse.py": "run scripts/01_make_file_lists.py --dataset nosuch first",
    "scripts/08_extract_frames.py": "run scripts/01_make_file_lists.py --dataset nosuch first",
    "scripts/09_make_envelopes.py": "run scripts/01_make_file_lists.py --dataset nosuch first",
    "scripts/10_evaluate_envelopes.py": "run train.py --run cnn_mel --dataset nosuch first",
    "scripts/11_linear_probe.py": "run scripts/01_make_file_lists.py --dataset nosuch first",
    "scripts/12_two_phase.py": "run scripts/01_make_file_lists.py --dataset nosuch first",
    "scripts/predict.py": "runs/nosuch/cnn_mel/best.pt not found: run train.py --run cnn_mel",
}


def test_every_runbook_script_is_listed():
    listed = {p for p in SCRIPTS}
    on_disk = {f"scripts/{p.name}" for p in (REPO / "scripts").glob("*.py")
               if p.name != "00_make_demo_dataset.py"} | {"train.py"}   # 00 makes the data
    assert listed == on_disk


@pytest.mark.parametrize("script", list(SCRIPTS))
def test_a_dataset_that_does_not_exist_is_one_line_and_exit_2(script, tmp_path):
    argv = [sys.executable, str(REPO / script), "--dataset", "nosuch",
            "--output-root", str(tmp_path), "--data-root", str(tmp_path / "data"),
            *SCRIPTS[script]]
    proc = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONWARNINGS="ignore"))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-2000:]
    assert EXPECTED[script] in lines[0]
