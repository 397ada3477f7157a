"""Atomic writes of a file several processes write at once (every shard writes a split's lists
and the stage's record when it ends): each writer's own temporary file, a whole file after
the last rename, the temporaries of killed writers removed."""
import multiprocessing
import subprocess
import sys

from soundtrack import atomic


def _write_many(path, k, n, start):
    start.wait()
    for j in range(n):
        # lengths differ per writer and per write, so a torn or mixed file cannot pass
        atomic.write_lines(path, [f"writer {k} write {j}"] * (1 + (k * 7 + j) % 50), shared=True)


def test_concurrent_shared_writes_leave_one_whole_file(tmp_path):
    path = tmp_path / "lists" / "train_audio.txt"
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    procs = [ctx.Process(target=_write_many, args=(path, k, 300, start)) for k in range(4)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    lines = path.read_text().splitlines()
    assert lines and len(set(lines)) == 1 and lines[0].startswith("writer ")
    k, j = (int(w) for w in lines[0].split()[1::2])
    assert len(lines) == 1 + (k * 7 + j) % 50
    assert not list(tmp_path.rglob("*.partial"))


def test_shared_write_removes_only_dead_writers_temporaries_of_this_host(tmp_path):
    path = tmp_path / "train_audio.txt"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    dead_tmp = path.with_name(f"{path.name}.{atomic._HOST}.{dead.pid}.partial")
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live_tmp = path.with_name(f"{path.name}.{atomic._HOST}.{live.pid}.partial")
        other_host = path.with_name(f"{path.name}.another-host.{dead.pid}.partial")
        for p in (dead_tmp, live_tmp, other_host):
            p.write_text("half")
        atomic.write_lines(path, ["a", "b"], shared=True)
        assert path.read_text() == "a\nb\n"
        assert not dead_tmp.exists() and live_tmp.exists() and other_host.exists()
    finally:
        live.kill()
        live.wait()


def test_unshared_writes_keep_the_plain_temporary_name(tmp_path):
    path = tmp_path / "clip.npy"
    assert atomic.partial_path(path).name == "clip.npy.partial"
    assert atomic.partial_path(path, shared=True).name.endswith(".partial")
    assert atomic.partial_path(path, shared=True) != atomic.partial_path(path)
