"""Step 00, the demo dataset: real H.264/AAC files, the special files, determinism.

A 2-class dataset with 2 videos per class and split (8 files, about 2 s to make).
"""
import json
import re
import subprocess

import numpy as np
import pytest

from soundtrack import media
from conftest import load_script

make_demo = load_script("00_make_demo_dataset")

ARGS = ["--num-classes", "2", "--videos-per-class", "2", "--clip-seconds", "3", "4"]


def make(root, *extra):
    make_demo.main(["--video-root", str(root), *ARGS, *extra])
    return json.loads((root / make_demo.MANIFEST_NAME).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo") / "videos"
    return root, make(root, "--seed", "3", "--workers", "2")


def streams(path):
    """The codec names ffmpeg reports for a file's video and audio streams."""
    proc = subprocess.run([media.ffmpeg_binary("imageio"), "-hide_banner", "-i", str(path)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    text = proc.stderr.decode("utf-8", "replace")
    return (re.findall(r"Video: (\w+)", text), re.findall(r"Audio: (\w+)", text))


def test_layout_and_manifest(demo):
    root, manifest = demo
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.mp4"))
    assert len(files) == 8 and not list(root.rglob("*.partial"))
    assert {f.split("/")[0] for f in files} == {"train", "val"}
    assert sorted(v["id"] + ".mp4" for v in manifest["videos"]) == files
    kinds = sorted(s["kind"] for s in manifest["special_files"])
    assert kinds == ["corrupt", "no_audio", "no_audio", "no_audio", "short_audio"]


def test_normal_video_is_h264_aac_with_expected_length(demo):
    root, manifest = demo
    row = next(v for v in manifest["videos"] if not v["special"])
    path = root / (row["id"] + ".mp4")
    assert streams(path) == (["h264"], ["aac"])
    frames = media.decode_frames(path, 64, make_demo.FRAMES_PER_SECOND)
    assert frames.dtype == np.uint8 and frames.shape[1:] == (64, 64, 3)
    assert len(frames) == round(row["seconds"] * make_demo.FRAMES_PER_SECOND)
    assert frames.std() > 10  # a textured picture, not a flat colour
    assert np.abs(np.diff(frames.astype(float), axis=0)).mean() > 1  # it moves
    audio = media.decode_audio(path, 16000)
    assert abs(len(audio) / 16000 - row["seconds"]) < 0.1
    assert audio.std() > 100  # not silence


def test_special_files_fail_as_described(demo):
    root, manifest = demo
    for s in manifest["special_files"]:
        path = root / (s["id"] + ".mp4")
        if s["kind"] == "no_audio":
            assert streams(path) == (["h264"], [])
            with pytest.raises(media.MediaError) as e:
                media.decode_audio(path, 16000)
            assert e.value.kind == "no_audio"
        elif s["kind"] == "corrupt":
            with pytest.raises(media.MediaError) as e:
                media.decode_frames(path, 32, 4)
            assert e.value.kind == "failed"
        elif s["kind"] == "short_audio":
            n = len(media.decode_audio(path, 16000))
            assert 0 < n < 0.96 * 16000
            assert len(media.decode_frames(path, 32, 4)) >= 12  # the video is 3-4 s


def test_same_seed_same_content_any_workers(demo, tmp_path):
    root, manifest = demo
    again = make(tmp_path / "videos", "--seed", "3", "--workers", "1")
    assert again == manifest
    row = next(v for v in manifest["videos"] if not v["special"])
    for r in (root, tmp_path / "videos"):
        assert (r / (row["id"] + ".mp4")).exists()
    a = media.decode_frames(root / (row["id"] + ".mp4"), 64, 12)
    b = media.decode_frames(tmp_path / "videos" / (row["id"] + ".mp4"), 64, 12)
    np.testing.assert_array_equal(a, b)
    other = make(tmp_path / "other", "--seed", "4", "--workers", "1")
    assert {v["id"] for v in other["videos"]}.isdisjoint(v["id"] for v in manifest["videos"])


def test_rerun_skips_and_refuses_other_settings(demo, capsys):
    root, _ = demo
    make(root, "--seed", "3", "--workers", "1")
    assert "(0 made, 8 existed)" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        make(root, "--seed", "5", "--workers", "1")


def test_class_cycle_and_special_placement():
    table = make_demo.class_table(8)
    assert len({c["name"] for c in table}) == 8
    for c in range(8):
        nxt = table[(c + 1) % 8]
        shared = (table[c]["sound"] == nxt["sound"]) + (table[c]["picture"] == nxt["picture"])
        assert shared == 1  # neighbours share exactly one modality's type
        same_sound = [d for d in table if d["sound"] == table[c]["sound"]]
        same_picture = [d for d in table if d["picture"] == table[c]["picture"]]
        assert len(same_sound) == len(same_picture) == 2
        # ... and there the secondary cue differs
        assert len({d["sound_cue"] for d in same_sound}) == 2
        assert len({d["picture_cue"] for d in same_picture}) == 2
    places = make_demo.special_positions(8, 24)
    val_classes = [c for (split, c, _) in places if split == "val"]
    assert len(val_classes) == len(set(val_classes)) == 4
    with pytest.raises(ValueError):
        make_demo.special_positions(2, 1)
