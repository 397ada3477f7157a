"""The one exception the library raises for a problem with the user's inputs or settings, how a
script ends on one, and which step makes a missing file."""
import re
from pathlib import Path


class StageError(Exception):
    """A missing or mismatched input, or a setting that cannot work: the message is for the
    user as it stands (which file, what was found, what was expected, what to do). Library
    code raises it; only a script's ``main`` turns it into ``error: <message>`` and an exit
    status."""


class ExitError(SystemExit):
    """How a script ends on a user's mistake: ``error: <message>`` already on stderr, exit
    status 2 (as argparse's usage errors), no traceback. ``str()`` is the message, so an
    in-process caller (a test) can read it."""

    def __init__(self, message, status=2):
        super().__init__(status)
        self.message = message

    def __str__(self):
        return self.message


# ---------------------------------------------------------------- which step makes a file

# (a path's tail, the step that writes it); the dataset is the first group, a run the second
PRODUCERS = [
    (r"file_lists/([^/]+)/classes\.txt$", "scripts/01_make_file_lists.py"),
    (r"file_lists/([^/]+)/[^/]+_videos\.txt$", "scripts/01_make_file_lists.py"),
    (r"file_lists/([^/]+)/[^/]+hz_[a-z]+_(audio|no_audio|failed)\.txt$",
     "scripts/02_extract_audio.py"),
    (r"file_lists/([^/]+)/[^/]+px_[^/]+fps_(frames|no_video|failed)\.txt$",
     "scripts/08_extract_frames.py"),
    (r"file_lists/([^/]+)/[^/]+_envelopes\.txt$", "scripts/09_make_envelopes.py"),
    (r"datalists/([^/]+)/", "scripts/04_make_datalists.py"),
    (r"([^/]+)/features/[^/]+/", "scripts/03_make_audio_images.py"),
    (r"([^/]+)/audio/[^/]+/", "scripts/02_extract_audio.py"),
    (r"([^/]+)/frames/[^/]+/", "scripts/08_extract_frames.py"),
    (r"([^/]+)/envelopes/[^/]+/", "scripts/09_make_envelopes.py"),
    (r"npy_files/([^/]+)/fusion/", "scripts/07_fuse.py"),
    (r"npy_files/([^/]+)/two_phase/", "scripts/12_two_phase.py"),
    (r"npy_files/([^/]+)/([^/]+)_probe/", "scripts/11_linear_probe.py --run {run}"),
    (r"npy_files/([^/]+)/([^/]+)/", "train.py --run {run}"),
    (r"runs/([^/]+)/([^/]+)/", "train.py --run {run}"),
    (r"video_classification_results/([^/]+)/[^/]+_(matched|all)", "scripts/06_match_video_to_audio.py"),
]


def missing_message(path):
    """'<path> not found: run <the step that writes it> --dataset <name> first', or just
    '<path> not found' for a file no step writes (a user's own)."""
    text = Path(path).as_posix()
    for pattern, step in PRODUCERS:
        m = re.search(pattern, text)
        if m:
            run = m.group(2) if m.lastindex and m.lastindex >= 2 else ""
            command = step.format(run=run)
            return f"{path} not found: run {command} --dataset {m.group(1)} first"
    return f"{path} not found"
