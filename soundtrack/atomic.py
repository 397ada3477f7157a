"""Atomic writes: a temporary ``<name>.partial`` in the same folder, then a rename, so a killed
run never leaves a half-written file under a final name and a rerun resumes.

Every stage writes through these (``datafiles`` re-exports them beside the readers).
"""
import os
import signal
from pathlib import Path

import numpy as np

PARTIAL_SUFFIX = ".partial"
# Fault injection for the kill -9 tests: SOUNDTRACK_KILL_AT_RENAME="SUFFIX:N" SIGKILLs the
# whole process group at this process's N-th rename of a file ending in SUFFIX (its temp file
# written, not yet renamed; the test starts the run in a session of its own). Unset normally.
_KILL_SUFFIX, _, _KILL_N = os.environ.get("SOUNDTRACK_KILL_AT_RENAME", "").partition(":")
_renames = 0


def kill_run_if_asked(count, wanted):
    """SIGKILL this process group when count == wanted > 0 (the kill -9 tests' deterministic
    fault injection)."""
    if wanted and count == wanted:
        os.killpg(os.getpgrp(), signal.SIGKILL)


def partial_path(path):
    path = Path(path)
    return path.with_name(path.name + PARTIAL_SUFFIX)


def atomic_write(path, write):
    """Call write(tmp_path) then rename tmp_path to path; the temp file is removed on error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(path)
    try:
        write(tmp)
        if _KILL_SUFFIX and path.name.endswith(_KILL_SUFFIX):
            global _renames
            _renames += 1
            kill_run_if_asked(_renames, int(_KILL_N))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def write_text(path, text):
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
    return atomic_write(path, write)


def write_lines(path, lines):
    return write_text(path, "".join(f"{line}\n" for line in lines))


def save_npy(path, array):
    def write(tmp):
        with open(tmp, "wb") as f:
            np.save(f, array)
    return atomic_write(path, write)


def save_npz(path, **arrays):
    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    return atomic_write(path, write)
