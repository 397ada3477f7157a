"""Benchmark of steps 02-03 against baselines measured in the same run.

Makes N real 10 s mp4 files (H.264 + AAC, ffmpeg lavfi sources) in a temporary folder, then
times, each the median of --repeats runs:
  (a) a bare ffmpeg loop writing the same 16 kHz mono wavs, with the same binary, the same
      arguments as step 02 and the same number of worker processes;
  (b) step 02 (scripts/02_extract_audio.py, called in-process: per-file throughput is what
      matters at Kinetics scale, the interpreter start is paid once);
  (c) step 03's log-mel (audio.log_mel_patches) per track against
      librosa.feature.melspectrogram with the same parameters (512-point FFT, 400/160
      window/hop, 64 mels, 125-7500 Hz) plus the same log and patching, one process with
      one BLAS thread (as step 03's workers run); and the float64 FFTs alone, which any
      log-mel within 1e-4 of the float64 reference needs (librosa runs them too): librosa /
      FFTs alone is the most any implementation could gain;
  (d) step 02 with 1 worker on 1 core against --workers workers on as many cores (the
      processes confined with sched_setaffinity, ffmpeg's threads included), and 1 worker
      with every core (ffmpeg runs each input of a batch in its own threads, so one worker
      already uses more than one core); bare ffmpeg running step 02's batches and the bare
      loop, each on 1 and on N cores, for reference;
  (e) what the cores give when nothing else limits: a CPU-bound Python loop in 1 process
      against the same loop in each of --workers processes at once, measured between the
      runs of (d). Two vCPUs of a VM can be hyperthreads of one physical core; then (e) is
      well under 2 and bounds (d).
Step 02 is timed with one file per ffmpeg process (exactly the loop's arguments) and with its
default FFMPEG_BATCH_FILES files per process (one start-up for several files).
Prints the ratios and an estimate of core-hours for Kinetics-600 (~500k clips of 10 s).
Writes nothing outside its temporary folder.

  python benchmarks/bench_frontend.py --videos 96 --repeats 5 --workers 2
"""
import contextlib
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# One BLAS thread, as in step 03's workers, for both log-mel implementations in (c).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np

from soundtrack import audio
from soundtrack import cli
import config
from soundtrack import jobs
from soundtrack import media

VGGISH = audio.VGGISH

KINETICS_CLIPS = 500_000


def make_videos(root, n, seconds, ffmpeg, workers):
    argvs = []
    for i in range(n):
        out = root / "videos" / "c" / "cls" / f"v{i:04d}.mp4"
        out.parent.mkdir(parents=True, exist_ok=True)
        argvs.append([ffmpeg, *media.QUIET, "-f", "lavfi", "-i",
                      f"testsrc2=s=96x72:r=10:d={seconds}", "-f", "lavfi", "-i",
                      f"anoisesrc=r=44100:a=0.1:s={i}:d={seconds}", "-f", "lavfi", "-i",
                      f"sine=f={200 + 10 * i}:r=44100:d={seconds}", "-filter_complex",
                      "[1:a][2:a]amix=inputs=2[a]", "-map", "0:v", "-map", "[a]", "-ac", "2",
                      "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-y", str(out)])
    list(jobs.parallel(_check_call, argvs, workers))
    return sorted((root / "videos" / "c" / "cls").glob("*.mp4"))


def _check_call(argv):
    subprocess.run(argv, check=True)


@contextlib.contextmanager
def on_cpus(cpus):
    """Run the block (and every process it starts) on these CPUs only; None: leave as is."""
    allowed = os.sched_getaffinity(0)
    if cpus:
        os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, allowed)


def _bare(job):
    ffmpeg, videos, wavs = job
    # one file: exactly media.audio_command's argv (the same function builds both)
    argv = media.batch_audio_command(ffmpeg, videos, VGGISH.sample_rate_hz,
                                     [str(w) for w in wavs], fmt="wav")
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)


def bare_loop(videos, out, ffmpeg, workers, batch=1, cpus=None):
    """Seconds for plain ffmpeg processes (`batch` files each, step 02's argv) run by a
    pool of `workers`; cpus: confine them to these CPUs."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    jobs = [(ffmpeg, videos[i:i + batch], [out / (v.stem + ".wav") for v in videos[i:i + batch]])
            for i in range(0, len(videos), batch)]
    with on_cpus(cpus):
        t0 = time.perf_counter()
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            pool.map(_bare, jobs, chunksize=max(1, len(jobs) // (workers * 8)))
        return time.perf_counter() - t0


def run_step(script, argv):
    """Run scripts/<script>.py as a user does (its own process); a non-zero exit is an error."""
    proc = subprocess.run([sys.executable, str(cli.REPO_ROOT / "scripts" / f"{script}.py"), *argv],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    if proc.returncode:
        sys.exit(f"{script} failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}")


def step02(root, workers, batch, cpus=None):
    """Seconds for step 02, in its own process as a user runs it (the interpreter's start
    included); cpus: run it (and the processes it starts) on these CPUs only."""
    data = root / "data"
    shutil.rmtree(data / "bench" / "audio", ignore_errors=True)
    argv = ["--dataset", "bench", "--video-root", str(root / "videos"), "--data-root",
            str(data), "--output-root", str(root), "--workers", str(workers), "--splits", "c",
            "--ffmpeg-batch-files", str(batch)]
    with on_cpus(cpus):
        t0 = time.perf_counter()
        run_step("02_extract_audio", argv)
        return time.perf_counter() - t0


def _same_samples(a, b):
    """Two (samples, rate) from media.read_wav hold the same audio."""
    return a[1] == b[1] and a[0].shape == b[0].shape and np.array_equal(a[0], b[0])


def librosa_patches(x, sr):
    import librosa
    mel = librosa.feature.melspectrogram(
        y=x, sr=sr, n_fft=VGGISH.fft_length, win_length=VGGISH.window_samples,
        hop_length=VGGISH.hop_samples, window="hann", center=False, power=1.0,
        n_mels=VGGISH.num_bands, fmin=VGGISH.band_min_hz, fmax=VGGISH.band_max_hz, htk=True)
    logmel = np.log(mel + VGGISH.log_offset)
    n = logmel.shape[1] // VGGISH.patch_frames
    return logmel[:, : n * VGGISH.patch_frames].reshape(64, n, 96).transpose(1, 0, 2)


def fft_only(tracks):
    """Only the float64 FFTs of every frame, blocked as in audio.stft_magnitude (frames
    copied into a zero-padded block, no window, no magnitude, no filterbank): the floor
    under any log-mel that matches the float64 reference."""
    rows, fft = audio.STFT_BLOCK_FRAMES, VGGISH.fft_length
    padded = np.zeros((rows, fft))
    spectrum = np.empty((rows, fft // 2 + 1), np.complex128)
    for x, _ in tracks:
        frames = audio.frame(x, VGGISH.window_samples, VGGISH.hop_samples)
        for start in range(0, len(frames), rows):
            block = frames[start:start + rows]
            n = len(block)
            padded[:n, :VGGISH.window_samples] = block
            np.fft.rfft(padded[:n], axis=1, out=spectrum[:n])


def _spin(n):
    s = 0
    for i in range(n):
        s += i
    return s


def cpu_scaling(workers, n=4_000_000):
    """Throughput of `workers` processes each running the same CPU-bound loop, over one."""
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(workers) as pool:
        pool.map(_spin, [1000] * workers)              # start the processes first
        t0 = time.perf_counter()
        pool.map(_spin, [n])
        one = time.perf_counter() - t0
        t0 = time.perf_counter()
        pool.map(_spin, [n] * workers, chunksize=1)
        many = time.perf_counter() - t0
    return workers * one / many


def main(argv=None):
    """Make the test videos, then time each configuration interleaved, print the table.

    Longer than ~60 lines on purpose: the order of the timed runs (interleaved, repeated) is
    the method of the benchmark and is kept in one place."""
    p = cli.parser(__doc__, ["FFMPEG", "WORKERS"])
    p.add_argument("--videos", type=int, default=96, help="number of test videos")
    p.add_argument("--video-seconds", type=float, default=10.0,
                   help="length of each test video (default 10)")
    p.add_argument("--repeats", type=int, default=5, help="runs per timing (median)")
    args = cli.parse(p, argv)
    ffmpeg = media.ffmpeg_binary(args.ffmpeg)
    with tempfile.TemporaryDirectory(prefix="bench_frontend_") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        videos = make_videos(root, args.videos, args.video_seconds, ffmpeg, args.workers)
        print(f"made {len(videos)} videos of {args.video_seconds:.0f} s in "
              f"{time.perf_counter() - t0:.1f} s; ffmpeg {ffmpeg}")
        run_step("01_make_file_lists", ["--dataset", "bench", "--video-root", str(root / "videos"),
                     "--output-root", str(root), "--splits", "c", "--train-split", "c"])
        med = statistics.median
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) < args.workers:
            sys.exit(f"--workers {args.workers} but only {len(cpus)} CPUs are available")
        one_cpu, n_cpus = set(cpus[:1]), set(cpus[:args.workers])
        (bare, bare1, same, same1, ours, one, one_core, n_cores, ceiling, bare_core,
         bare_cores) = ([] for _ in range(11))
        for _ in range(args.repeats):  # interleaved, so drift hits all alike
            bare.append(bare_loop(videos, root / "bare", ffmpeg, args.workers))
            bare1.append(bare_loop(videos, root / "bare", ffmpeg, 1))
            same.append(step02(root, args.workers, 1))
            ours.append(step02(root, args.workers, config.FFMPEG_BATCH_FILES))
            one.append(step02(root, 1, config.FFMPEG_BATCH_FILES))
            same1.append(step02(root, 1, 1))
            one_core.append(step02(root, 1, config.FFMPEG_BATCH_FILES, one_cpu))
            n_cores.append(step02(root, args.workers, config.FFMPEG_BATCH_FILES, n_cpus))
            ceiling.append(cpu_scaling(args.workers))
            bare_core.append(bare_loop(videos, root / "bare", ffmpeg, 1,
                                       config.FFMPEG_BATCH_FILES, one_cpu))
            bare_cores.append(bare_loop(videos, root / "bare", ffmpeg, args.workers,
                                        config.FFMPEG_BATCH_FILES, n_cpus))
        wavs = sorted((root / "data" / "bench" / "audio").rglob("*.wav"))
        # a fair race: the bare loop (ffmpeg's wav muxer) and step 02 (raw PCM piped, then
        # Python's wave module) must have decoded the same samples at the same rate
        same_output = len(wavs) == len(videos) and all(
            _same_samples(media.read_wav(w), media.read_wav(root / "bare" / w.name))
            for w in wavs)
        if not same_output:
            sys.exit("error: step 02's wavs differ from the bare ffmpeg loop's: the timings "
                     "would compare different work")
        tracks = [media.read_wav(w) for w in wavs]
        librosa_patches(*tracks[0])  # warm-up (imports, caches) for both sides
        audio.log_mel_patches(*tracks[0])
        ours_mel, lib_mel, fft_mel = [], [], []
        for _ in range(args.repeats):
            # 8 tracks at a time, the three in turn: drift in the machine's speed hits all
            # alike, and each keeps its caches warm over a few tracks as in step 03's loop
            spent = np.zeros(3)
            for i in range(0, len(tracks), 8):
                chunk = tracks[i:i + 8]
                for k, run in enumerate((lambda: [audio.log_mel_patches(*t) for t in chunk],
                                         lambda: [librosa_patches(*t) for t in chunk],
                                         lambda: fft_only(chunk))):
                    t0 = time.perf_counter()
                    run()
                    spent[k] += time.perf_counter() - t0
            ours_mel.append(spent[0])
            lib_mel.append(spent[1])
            fft_mel.append(spent[2])

    n = len(videos)
    w, b = args.workers, config.FFMPEG_BATCH_FILES
    print(f"\n{n} videos x {args.video_seconds:.0f} s, {w} workers, median of {args.repeats}; "
          f"step 02 and the bare loop decoded the same samples into {len(wavs)} wavs")
    print(f"(a) bare ffmpeg loop, 1 file per ffmpeg  {med(bare):6.2f} s {n / med(bare):6.1f} files/s")
    print(f"(b) step 02, 1 file per ffmpeg (the loop's argv) {med(same):6.2f} s "
          f"{n / med(same):6.1f} files/s  ratio to (a) = {med(bare) / med(same):.2f}")
    print(f"    step 02, default {b} files per ffmpeg   {med(ours):6.2f} s {n / med(ours):6.1f} "
          f"files/s  ratio to (a) = {med(bare) / med(ours):.2f} (goal >= 0.9)")
    print(f"    on {w} cores: bare ffmpeg with the same batches {med(bare_cores):.2f} s, step 02 "
          f"{med(n_cores):.2f} s  ratio = {med(bare_cores) / med(n_cores):.2f}")
    print(f"(c) log-mel, ours        {med(ours_mel):6.2f} s {n / med(ours_mel):7.1f} tracks/s")
    print(f"    librosa + log        {med(lib_mel):6.2f} s {n / med(lib_mel):7.1f} tracks/s"
          f"  speed-up = {med(lib_mel) / med(ours_mel):.2f} x (goal >= 2)")
    print(f"    float64 FFTs alone   {med(fft_mel):6.2f} s"
          f"  librosa / FFTs alone = {med(lib_mel) / med(fft_mel):.2f} x (the most possible)")
    print(f"(d) step 02, 1 worker on 1 core {med(one_core):.2f} s; {w} workers on {w} cores "
          f"{med(n_cores):.2f} s  speed-up = {med(one_core) / med(n_cores):.2f} x "
          f"(goal >= 1.5 with 2 workers)")
    print(f"    bare ffmpeg, same batches: 1 core {med(bare_core):.2f} s; {w} cores "
          f"{med(bare_cores):.2f} s  speed-up = {med(bare_core) / med(bare_cores):.2f} x "
          f"(what ffmpeg itself gains)")
    print(f"    step 02, no confinement: 1 worker {med(one):.2f} s; {w} workers {med(ours):.2f} s"
          f"  speed-up = {med(one) / med(ours):.2f} x (one worker's ffmpeg already runs "
          f"on several cores)")
    print(f"    step 02, 1 file per ffmpeg: 1 worker {med(same1):.2f} s; {w} workers "
          f"{med(same):.2f} s  speed-up = {med(same1) / med(same):.2f} x")
    print(f"    bare loop, 1 file per ffmpeg: 1 worker {med(bare1):.2f} s; {w} workers "
          f"{med(bare):.2f} s  speed-up = {med(bare1) / med(bare):.2f} x")
    print(f"(e) CPU-bound loop, 1 process vs {w} at once: throughput {med(ceiling):.2f} x "
          f"(what the cores give)")
    # core-seconds: step 02 confined to one core, plus the log-mel (one process)
    core_s = med(one_core) / n + med(ours_mel) / n
    print(f"Kinetics-600 estimate: {core_s * 1000:.0f} core-ms per 10 s clip "
          f"(extraction + log-mel) -> {core_s * KINETICS_CLIPS / 3600:.1f} core-hours for "
          f"{KINETICS_CLIPS:,} clips")


if __name__ == "__main__":
    main()
