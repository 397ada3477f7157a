"""The TAU Urban Audio-Visual Scenes 2021 preparation on a fake miniature tree of the same
shape: audio/ (48 kHz 24-bit stereo wavs), video/ (mp4 without sound), evaluation_setup/ and
meta.csv, with the rows a real download can hold that do not fit."""
import json
import subprocess

import numpy as np
import pytest

from soundtrack import media
from conftest import load_script

prep = load_script("00_prepare_tau2021av")
step01 = load_script("01_make_file_lists")
step02 = load_script("02_extract_audio")

HEADER = "filename_audio\tfilename_video\tscene_label\n"
# (scene, city-location, segment): train and evaluate use different locations, as the
# official split does
TRAIN = [("airport", "lisbon-1000", 0), ("airport", "lisbon-1000", 1), ("bus", "lyon-1001", 0),
         ("bus", "lyon-1001", 1)]
EVALUATE = [("airport", "milan-1002", 0), ("bus", "prague-1003", 0)]


def name(scene, loc, seg):
    return f"{scene}-{loc}-{seg * 10000}"


def make_clip(ffmpeg, root, stem, freq, wav=True, video=True):
    if video:
        (root / "video").mkdir(parents=True, exist_ok=True)
        subprocess.run([ffmpeg, *media.QUIET, "-f", "lavfi", "-i", "testsrc2=s=32x24:r=10:d=1",
                        "-c:v", "libx264", "-pix_fmt", "yuv420p", "-y",
                        str(root / "video" / f"{stem}.mp4")], check=True)
    if wav:
        (root / "audio").mkdir(parents=True, exist_ok=True)
        # left and right differ, so "stereo kept" is visible after the round trip
        subprocess.run([ffmpeg, *media.QUIET, "-f", "lavfi", "-i",
                        f"aevalsrc=0.5*sin({freq}*2*PI*t)|0.25*sin({2 * freq}*2*PI*t):s=48000:d=1",
                        "-c:a", "pcm_s24le", "-y", str(root / "audio" / f"{stem}.wav")],
                       check=True)


@pytest.fixture(scope="module")
def tau(tmp_path_factory, ffmpeg):
    """A fake development set: 4 train + 2 evaluate rows that work, plus a train row whose wav
    is missing, an evaluate row whose video is missing and one whose video is corrupt."""
    root = tmp_path_factory.mktemp("tau") / "TAU-urban-audio-visual-scenes-2021-development"
    rows = {"train": list(TRAIN) + [("bus", "lyon-1001", 2)],
            "evaluate": list(EVALUATE) + [("airport", "milan-1002", 1),
                                          ("bus", "prague-1003", 1)]}
    for k, (scene, loc, seg) in enumerate(rows["train"][:4] + rows["evaluate"][:2]):
        make_clip(ffmpeg, root, name(scene, loc, seg), 300 + 50 * k)
    make_clip(ffmpeg, root, name("bus", "lyon-1001", 2), 900, wav=False)       # no wav
    make_clip(ffmpeg, root, name("airport", "milan-1002", 1), 900, video=False)  # no video
    make_clip(ffmpeg, root, name("bus", "prague-1003", 1), 950)
    corrupt = root / "video" / (name("bus", "prague-1003", 1) + ".mp4")
    corrupt.write_bytes(corrupt.read_bytes()[:300])                             # corrupt
    setup = root / "evaluation_setup"
    setup.mkdir()
    meta = ["filename_audio\tfilename_video\tscene_label\tidentifier\n"]
    for fold, fold_rows in rows.items():
        lines = [HEADER]
        for scene, loc, seg in fold_rows:
            stem = name(scene, loc, seg)
            lines.append(f"audio/{stem}.wav\tvideo/{stem}.mp4\t{scene}\n")
            meta.append(f"audio/{stem}.wav\tvideo/{stem}.mp4\t{scene}\t{loc}\n")
        (setup / f"fold1_{fold}.csv").write_text("".join(lines), encoding="utf-8")
    (setup / "fold1_test.csv").write_text("filename_audio\tfilename_video\n", encoding="utf-8")
    (root / "meta.csv").write_text("".join(meta), encoding="utf-8")
    return root


def run(tau_root, out, *extra):
    return prep.main(["--tau-root", str(tau_root), "--dataset", "tau", "--video-root",
                      str(out / "videos"), "--output-root", str(out), "--data-root",
                      str(out / "data"), "--workers", "2", *extra])


def decode(ffmpeg, path, rate, channels):
    raw = subprocess.run([ffmpeg, *media.QUIET, "-i", str(path), "-f", "s32le", "-ac",
                          str(channels), "-ar", str(rate), "pipe:1"], check=True,
                         capture_output=True).stdout
    return np.frombuffer(raw, dtype="<i4").reshape(-1, channels)


def test_layout_lists_and_lossless_sound(tau, tmp_path, ffmpeg, capsys):
    assert run(tau, tmp_path) == 3                          # some rows listed skipped
    videos = tmp_path / "videos"
    made = sorted(p.relative_to(videos).as_posix() for p in videos.rglob("*.mkv"))
    assert made == sorted(
        [f"train/{s}/{name(s, loc, g)}.mkv" for s, loc, g in TRAIN + [("bus", "lyon-1001", 2)]]
        + [f"val/{s}/{name(s, loc, g)}.mkv" for s, loc, g in EVALUATE])
    lists = tmp_path / "file_lists" / "tau"
    skipped = (lists / "tau2021_val_skipped.txt").read_text().splitlines()
    assert [line.split("\t")[0] for line in skipped] == [
        f"val/airport/{name('airport', 'milan-1002', 1)}", f"val/bus/{name('bus', 'prague-1003', 1)}"]
    assert "not found" in skipped[0] and "ffmpeg" in skipped[1]
    assert (lists / "tau2021_train_no_wav.txt").read_text().split() == [
        f"train/bus/{name('bus', 'lyon-1001', 2)}"]
    assert (lists / "tau2021_train_skipped.txt").read_text() == ""
    assert "recording locations in both splits: 0" in capsys.readouterr().out
    manifest = json.loads((videos / prep.MANIFEST_NAME).read_text())
    assert manifest["splits"] == {"train": "fold1_train.csv", "val": "fold1_evaluate.csv"}
    assert manifest["counts"]["train"] == {"rows": 5, "prepared": 5, "no_wav": 1, "skipped": 0,
                                           "pending": 0, "classes": 2}
    # the sound is the wav's own samples, both channels, bit for bit (24-bit in the top bytes)
    stem = name("airport", "lisbon-1000", 0)
    original = decode(ffmpeg, tau / "audio" / f"{stem}.wav", 48000, 2)
    muxed = decode(ffmpeg, videos / "train" / "airport" / f"{stem}.mkv", 48000, 2)
    assert original.shape == (48000, 2) and np.array_equal(original, muxed)
    assert np.abs(original[:, 0] - original[:, 1]).max() > 0    # stereo, not duplicated mono

    # the runbook takes it from here: step 01 lists it, step 02 finds sound where a wav was
    common = ["--dataset", "tau", "--video-root", str(videos), "--output-root", str(tmp_path),
              "--data-root", str(tmp_path / "data")]
    step01.main(common)
    assert (lists / "classes.txt").read_text().split() == ["airport", "bus"]
    assert len((lists / "train_videos.txt").read_text().splitlines()) == 5
    assert step02.main(common + ["--workers", "1"]) == 0
    no_audio = (lists / "train_16000hz_mono_no_audio.txt").read_text().splitlines()
    assert [line.split("\t")[0] for line in no_audio] == [f"train/bus/{name('bus', 'lyon-1001', 2)}"]
    assert len((lists / "val_16000hz_mono_audio.txt").read_text().split()) == 2


def test_rerun_resumes_and_refuses_other_settings(tau, tmp_path, capsys):
    run(tau, tmp_path, "--shard", "1/2")
    assert "pending" in capsys.readouterr().out                 # the other shard's rows
    first = {p: p.stat().st_mtime_ns for p in (tmp_path / "videos").rglob("*.mkv")}
    run(tau, tmp_path, "--shard", "2/2")
    run(tau, tmp_path)                                          # nothing left but the failures
    out = capsys.readouterr().out
    assert "pending" not in out.split("[00 tau] train")[-1]
    assert len(list((tmp_path / "videos").rglob("*.mkv"))) == 7
    assert all(p.stat().st_mtime_ns == t for p, t in first.items())   # not rewritten
    assert not list((tmp_path / "videos").rglob("*.partial"))
    with pytest.raises(SystemExit, match="other settings"):
        run(tau, tmp_path, "--audio-from", "video")


def test_leaks_and_bad_tables_are_refused(tau, tmp_path):
    fake = tmp_path / "tau"
    (fake / "evaluation_setup").mkdir(parents=True)
    train = tau / "evaluation_setup" / "fold1_train.csv"
    (fake / "evaluation_setup" / "fold1_train.csv").write_text(train.read_text())
    (fake / "evaluation_setup" / "fold1_evaluate.csv").write_text(
        HEADER + train.read_text().splitlines()[1] + "\n")       # a training row evaluated
    with pytest.raises(SystemExit, match="in both"):
        run(fake, tmp_path / "a")
    (fake / "evaluation_setup" / "fold1_evaluate.csv").write_text("filename_audio\tlabel\n")
    with pytest.raises(SystemExit, match="columns"):
        run(fake, tmp_path / "b")
    with pytest.raises(SystemExit, match="not found"):
        run(tmp_path / "nowhere", tmp_path / "c")
    with pytest.raises(SystemExit):
        prep.main(["--tau-root", str(tau), "--dataset", "demo"])
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
