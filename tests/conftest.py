"""Shared test helpers: load the numbered scripts and benchmarks, make media."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

from soundtrack import audio
from soundtrack import datafiles
from soundtrack import media


def load_script(name):
    """scripts/<name>.py (or benchmarks/<name>.py) as a module, to call a step's main()
    in-process (their names start with digits, so `import` cannot). One module object per
    script, registered in sys.modules so that worker processes can unpickle its functions by
    name. A benchmark's folder goes on sys.path, as when Python runs it (its sibling module
    esc10.py)."""
    key = f"script_{name}"
    if key not in sys.modules:
        path = REPO / "scripts" / f"{name}.py"
        if not path.exists():
            path = REPO / "benchmarks" / f"{name}.py"
            if str(path.parent) not in sys.path:
                sys.path.append(str(path.parent))
        spec = importlib.util.spec_from_file_location(key, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


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
