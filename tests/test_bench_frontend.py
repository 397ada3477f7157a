"""scripts/bench_frontend.py end to end on a few short videos: every timing it promises is
measured and printed as a ratio."""
import os
import re

from conftest import load_script

bench = load_script("bench_frontend")


def test_bench_frontend_prints_every_ratio(capsys):
    workers = str(min(2, len(os.sched_getaffinity(0))))
    bench.main(["--videos", "4", "--video-seconds", "2", "--repeats", "1", "--workers", workers])
    out = capsys.readouterr().out
    for label in ("(a) bare ffmpeg loop", "(b) step 02", "(c) log-mel, ours", "librosa + log",
                  "float64 FFTs alone", "(d) step 02, 1 worker on 1 core",
                  "bare ffmpeg, same batches", "(e) CPU-bound loop", "Kinetics-600 estimate"):
        assert label in out, label
    ratios = [float(r) for r in re.findall(r"(?:ratio to \(a\)|speed-up|ratio) = ([0-9.]+)", out)]
    assert len(ratios) >= 8 and all(r > 0 for r in ratios), out
    assert re.search(r"-> [0-9.]+ core-hours", out)
