"""benchmarks/bench_frontend.py end to end on a few short videos: it races like against like
(the same wavs from both sides) and every ratio it prints is the quotient of the times it
prints beside it, the right way up."""
import os
import re

import pytest

from conftest import load_script

bench = load_script("bench_frontend")
NUMBER = r"([0-9]+\.[0-9]+)"


@pytest.fixture(scope="module")
def printed():
    import contextlib
    import io
    buf = io.StringIO()
    workers = str(min(2, len(os.sched_getaffinity(0))))
    with contextlib.redirect_stdout(buf):
        bench.main(["--videos", "4", "--video-seconds", "2", "--repeats", "1",
                    "--workers", workers])
    return buf.getvalue()


def test_both_sides_wrote_the_same_wavs(printed):
    assert re.search(r"step 02 and the bare loop decoded the same samples into 4 wavs", printed)


def _close(ratio, a, b, half=0.005):
    """ratio (2 decimals) is a / b, for times a and b printed with 2 decimals: within the
    interval their rounding allows (an inverted ratio, b / a, falls far outside)."""
    low, high = (a - half) / (b + half), (a + half) / max(b - half, 1e-9)
    return low - half <= ratio <= high + half


def test_ratios_are_the_printed_times_divided_the_right_way(printed):
    bare = float(re.search(r"\(a\) bare ffmpeg loop, 1 file per ffmpeg +" + NUMBER, printed)[1])
    same = re.search(r"\(b\) step 02, 1 file per ffmpeg \(the loop's argv\) +" + NUMBER
                     + r" s .* ratio to \(a\) = " + NUMBER, printed)
    assert _close(float(same[2]), bare, float(same[1]))           # (a) / (b): > 1 = faster
    ours = float(re.search(r"\(c\) log-mel, ours +" + NUMBER, printed)[1])
    lib = re.search(r"librosa \+ log +" + NUMBER + r" s .* speed-up = " + NUMBER, printed)
    assert _close(float(lib[2]), float(lib[1]), ours)
    one = re.search(r"\(d\) step 02, 1 worker on 1 core " + NUMBER + r" s; \d+ workers on "
                    r"\d+ cores " + NUMBER + r" s  speed-up = " + NUMBER, printed)
    assert _close(float(one[3]), float(one[1]), float(one[2]))
    assert re.search(r"-> [0-9.]+ core-hours", printed)
