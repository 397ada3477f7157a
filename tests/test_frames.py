"""Step 08 on real mp4 files: frames with their times, every kind of bad input listed."""
import subprocess
import sys

import numpy as np
import pytest

from soundtrack import frames
from soundtrack import media
import train
from conftest import REPO, load_script, make_video
from test_extract import ODD_NAMES, _kill_while_writing, read_tsv

step01 = load_script("01_make_file_lists")
step08 = load_script("08_extract_frames")
SETTINGS = ["--frames-per-second", "4", "--frame-size-pixels", "32"]
VFR_TIMES = [0.0, 0.1, 0.3, 0.6, 1.0, 1.5]      # seconds: gaps of 0.1 .. 0.5 s


def make_vfr(ffmpeg, path):
    """A clip whose frames are shown at VFR_TIMES (a variable frame rate)."""
    expr = "+".join(f"eq(N\\,{k})*{t}" for k, t in enumerate(VFR_TIMES))   # "\\," : a comma
    subprocess.run([ffmpeg, "-nostdin", "-v", "error", "-f", "lavfi", "-i",
                    f"testsrc2=s=64x48:r=10:d={len(VFR_TIMES) / 10}", "-vf",
                    f"setpts=({expr})/TB", "-fps_mode", "vfr", "-video_track_timescale", "1000",
                    "-c:v", "libx264", "-pix_fmt", "yuv420p", "-y", "file:" + str(path)],
                   check=True)


@pytest.fixture(scope="module")
def frame_root(tmp_path_factory, ffmpeg):
    """A Kinetics-layout root whose val split holds one of each bad input for step 08."""
    root = tmp_path_factory.mktemp("videos")
    for c in ("a", "b"):
        for i in range(2):
            make_video(ffmpeg, root / "train" / c / f"t{i}.mp4", 1.0)
    v = root / "val" / "a"
    make_video(ffmpeg, v / "good.mp4", 2.0)
    make_video(ffmpeg, v / "one_frame.mp4", 0.1)
    make_vfr(ffmpeg, v / "vfr.mp4")
    subprocess.run([ffmpeg, "-nostdin", "-v", "error", "-f", "lavfi", "-t", "1", "-i",
                    "sine=r=16000", "-c:a", "aac", "-y", "file:" + str(v / "sound_only.mp4")],
                   check=True)
    for name in ODD_NAMES:
        make_video(ffmpeg, root / "val" / "b" / f"{name}.mp4", 0.5, audio=None)
    good = (v / "good.mp4").read_bytes()
    (root / "val" / "b" / "truncated.mp4").write_bytes(good[: len(good) // 3])
    (root / "val" / "b" / "empty.mp4").write_bytes(b"")
    (root / "val" / "b" / "text.mp4").write_text("this is not a video\n")
    return root


def run08(root, out, *extra):
    common = ["--dataset", "t", "--video-root", str(root), "--data-root", str(out / "data"),
              "--output-root", str(out)]
    step01.main(common)
    return step08.main(common + ["--workers", "2", *SETTINGS, *extra])


def test_bad_inputs_are_listed_and_frames_keep_their_times(frame_root, tmp_path, capsys):
    assert run08(frame_root, tmp_path) == 3
    out = capsys.readouterr().out
    assert "listed 12 = done 8 + exists 0 + no video 1 + failed 3" in out
    lists = tmp_path / "file_lists" / "t"
    done = (lists / "val_32px_4fps_frames.txt").read_text().splitlines()
    assert read_tsv(lists / "val_32px_4fps_no_video.txt") == {"val/a/sound_only":
                                                              "no video stream"}
    failed = read_tsv(lists / "val_32px_4fps_failed.txt")
    assert set(failed) == {"val/b/truncated", "val/b/empty", "val/b/text"}
    assert failed["val/b/empty"] == "empty file (0 bytes)"
    assert "not a readable media file" in failed["val/b/text"]
    assert {f"val/b/{n}" for n in ODD_NAMES} <= set(done)

    fdir = tmp_path / "data" / "t" / "frames" / "32px_4fps"
    assert frames.read_record(fdir) == frames.FrameSettings("4", 32, 3)
    good = frames.load_video(fdir / "val" / "a" / "good.npz")
    np.testing.assert_allclose(good["times"], np.arange(8) / 4)            # 2 s at 4 fps
    image = frames.decode(good["jpeg"][good["offsets"][0]:good["offsets"][1]])
    assert image.shape == (3, 32, 32) and image.float().std() > 10
    one = frames.load_video(fdir / "val" / "a" / "one_frame.npz")
    assert len(one["times"]) == 1
    # 4 fps resamples the VFR clip: each instant shows the source frame on screen then
    vfr = frames.load_video(fdir / "val" / "a" / "vfr.npz")
    np.testing.assert_allclose(vfr["times"], np.arange(len(vfr["times"])) / 4)
    assert not list(tmp_path.rglob("*.partial"))


def container_times(ffmpeg, path):
    """Each frame's time as the container stores it (ffmpeg's framecrc muxer)."""
    text = subprocess.run([ffmpeg, "-nostdin", "-v", "error", "-i", "file:" + str(path),
                           "-map", "0:v:0", "-c", "copy", "-f", "framecrc", "-"],
                          capture_output=True, text=True, check=True).stdout
    num, den = next(ln.split(":")[1].strip() for ln in text.splitlines()
                    if ln.startswith("#tb 0")).split("/")
    pts = sorted(int(ln.split(",")[2]) for ln in text.splitlines() if ln[:1].isdigit())
    return np.asarray(pts) * int(num) / int(den)


def test_native_rate_keeps_a_variable_frame_rate(frame_root, ffmpeg):
    path = frame_root / "val" / "a" / "vfr.mp4"
    jpeg, offsets, times = media.decode_jpeg_frames(path, 32, None)
    stored = container_times(ffmpeg, path)
    assert len(set(np.round(np.diff(stored), 3))) >= 3          # the clip is VFR indeed
    np.testing.assert_allclose(times, stored - stored[0], atol=1e-3)
    assert len(offsets) == len(stored) + 1 and offsets[-1] == len(jpeg)


def test_rerun_skips_and_other_settings_are_refused(frame_root, tmp_path, capsys):
    run08(frame_root, tmp_path)
    capsys.readouterr()
    assert run08(frame_root, tmp_path) == 3
    assert "listed 12 = done 0 + exists 8 + no video 1 + failed 3" in capsys.readouterr().out
    fdir = tmp_path / "data" / "t" / "frames" / "32px_4fps"
    record = (fdir / frames.RECORD).read_text().replace('"jpeg_qscale": 3', '"jpeg_qscale": 9')
    (fdir / frames.RECORD).write_text(record)
    with pytest.raises(SystemExit, match="jpeg_qscale = 9"):
        run08(frame_root, tmp_path)
    with pytest.raises(SystemExit, match="frame settings differ: jpeg_qscale = 9 in .*frames.json"):
        train.main(["--dataset", "t", "--data-root", str(tmp_path / "data"), "--output-root",
                    str(tmp_path), "--model", "tv_mobilenet_v3_small", *SETTINGS])


def test_shards_partition_the_work(frame_root, tmp_path, capsys):
    run08(frame_root, tmp_path, "--shard", "1/2", "--splits", "val")
    first = capsys.readouterr().out
    run08(frame_root, tmp_path, "--shard", "2/2", "--splits", "val")
    second = capsys.readouterr().out
    n1, n2 = (int(t.split("listed ")[1].split()[0]) for t in (first, second))
    assert n1 + n2 == 12 and "pending" in first and "pending" not in second.split("on disk")[1]


def test_kill_9_then_rerun_equals_uninterrupted_run(frame_root, tmp_path):
    def argv(out):
        return [str(REPO / "scripts" / "08_extract_frames.py"), "--dataset", "t", "--video-root",
                str(frame_root), "--data-root", str(out / "data"), "--output-root", str(out),
                "--workers", "2", *SETTINGS]

    ref, killed = tmp_path / "ref", tmp_path / "killed"
    for out in (ref, killed):
        step01.main(argv(out)[1:9])
    subprocess.run([sys.executable, *argv(ref)], check=False, capture_output=True)
    assert _kill_while_writing(argv(killed), killed / "data", "*.partial", ".npz")
    subprocess.run([sys.executable, *argv(killed)], check=False, capture_output=True)
    assert not list(killed.rglob("*.partial"))
    ref_files = sorted(p.relative_to(ref) for p in (ref / "data").rglob("*.npz"))
    assert len(ref_files) == 12
    assert ref_files == sorted(p.relative_to(killed) for p in (killed / "data").rglob("*.npz"))
    for rel in ref_files:
        assert (ref / rel).read_bytes() == (killed / rel).read_bytes(), rel


def test_jpeg_offsets_split_images_and_refuse_garbage(frame_root):
    jpeg, offsets, _ = media.decode_jpeg_frames(frame_root / "val" / "a" / "good.mp4", 32, 4)
    data = jpeg.tobytes()
    again = media.jpeg_offsets(data)
    np.testing.assert_array_equal(again, offsets)
    with pytest.raises(ValueError, match="no end-of-image marker"):
        media.jpeg_offsets(data[: offsets[1] - 1])
    with pytest.raises(ValueError, match=f"no JPEG start-of-image marker at byte {offsets[1]}"):
        media.jpeg_offsets(data[:offsets[1]] + b"x" + data[offsets[1]:])


@pytest.mark.parametrize("flags, message", [
    (["--frames-per-second", "two"], "FRAMES_PER_SECOND must be 'native' or a positive number"),
    (["--frame-size-pixels", "4"], "FRAME_SIZE_PIXELS must be 8..4096, got 4"),
    (["--hue-jitter", "0.7"], "HUE_JITTER in [0, 0.5], got 0.7"),
])
def test_frame_settings_that_cannot_work_are_refused(tmp_path, capsys, flags, message):
    common = ["--dataset", "t", "--data-root", str(tmp_path / "data"), "--output-root",
              str(tmp_path)]
    with pytest.raises(SystemExit) as e:
        if "--hue-jitter" in flags:
            train.main(common + ["--model", "tv_mobilenet_v3_small", *flags])
        else:
            step08.main(common + flags)
    assert message in f"{e.value} {capsys.readouterr().err}"
