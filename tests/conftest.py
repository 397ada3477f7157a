"""Shared test helpers: import the repository's modules and numbered scripts, make media."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO))

import audio  # noqa: E402
import datafiles  # noqa: E402
import media  # noqa: E402
from cli import load_script  # noqa: E402,F401 - tests import it from here


@pytest.fixture(scope="session")
def ffmpeg():
    return media.ffmpeg_binary("imageio")


def make_video(ffmpeg, path, seconds=2.0, audio="sine", rate=16000, channels=1,
               audio_seconds=None, freq=440):
    """A small real H.264 mp4 from ffmpeg's lavfi sources.

    audio: 'sine' (a tone at `freq`), 'noise', 'silence', or None for no audio stream.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    argv = [ffmpeg, *media.QUIET, "-f", "lavfi",
            "-i", f"testsrc2=s=64x48:r=10:d={seconds}"]
    if audio:
        src = {"sine": f"sine=f={freq}:r={rate}", "noise": f"anoisesrc=r={rate}:a=0.3:s=1",
               "silence": f"anullsrc=r={rate}"}[audio]
        argv += ["-f", "lavfi", "-t", str(audio_seconds or seconds), "-i", src,
                 "-ac", str(channels), "-c:a", "aac"]
    argv += ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-y", "file:" + str(path)]
    subprocess.run(argv, check=True)
    return path


def sine(seconds, freq=440.0, rate=16000, amplitude=0.5):
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_feature_folder(feature_root, tracks, fe=None, dtype="float16", policy="pad"):
    """Features as step 03 leaves them, for tests that make patches themselves: each
    {id: float array [n, *fe.patch_shape]} saved under <feature_root>/<fe.name>/, with the
    features.json record. -> the feature folder."""
    fe = fe or audio.VGGISH
    folder = Path(feature_root) / fe.name
    for vid, x in tracks.items():
        datafiles.save_npy(folder / (vid + ".npy"), np.asarray(x).astype(dtype))
    datafiles.write_text(folder / datafiles.FEATURES_RECORD,
                         json.dumps(datafiles.feature_record(fe, dtype, policy)))
    return folder
