"""Atomic writes: a temporary ``<name>.partial`` in the same folder, then a rename, so a killed
run never leaves a half-written file under a final name and a rerun resumes.

A file that several processes write by design (a split's lists and a stage's record, which
every ``--shard K/N`` writes when it ends, on one machine or several sharing a filesystem)
is written with ``shared=True``: each process then has its own temporary
``<name>.<host>.<pid>.partial``, so two writers never write into one temporary file (which
made the second rename fail, or could leave one writer's bytes over the other's), and the
last rename wins with a whole file. Such temporaries left by killed processes of this host
are removed by the next shared write of the same file.

Every stage writes through these (``datafiles`` re-exports them beside the readers).
"""
import glob
import os
import signal
import socket
from pathlib import Path

import numpy as np

PARTIAL_SUFFIX = ".partial"
_HOST = socket.gethostname().replace("/", "_") or "host"  # in shared temporaries' names
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


def partial_path(path, shared=False):
    """The temporary name `path` is written under: <name>.partial, or with shared=True this
    process's own <name>.<host>.<pid>.partial."""
    path = Path(path)
    if not shared:
        return path.with_name(path.name + PARTIAL_SUFFIX)
    return path.with_name(f"{path.name}.{_HOST}.{os.getpid()}{PARTIAL_SUFFIX}")


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def remove_stale_partials(path):
    """Remove the shared temporaries of `path` that processes of this host no longer write
    (their pid is gone); those of other hosts are left alone. -> the number removed."""
    path = Path(path)
    removed = 0
    prefix = f"{path.name}.{_HOST}."
    for tmp in path.parent.glob(glob.escape(prefix) + "*" + PARTIAL_SUFFIX):
        pid = tmp.name[len(prefix):-len(PARTIAL_SUFFIX)]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


def atomic_write(path, write, shared=False):
    """Call write(tmp_path) then rename tmp_path to path; the temp file is removed on error.
    shared=True: a file other processes may write at the same time (module docstring)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(path, shared)
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
    if shared:
        remove_stale_partials(path)
    return path


def write_text(path, text, shared=False):
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
    return atomic_write(path, write, shared)


def write_lines(path, lines, shared=False):
    return write_text(path, "".join(f"{line}\n" for line in lines), shared)


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
