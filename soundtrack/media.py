"""ffmpeg: which binary, and decoding sound tracks and frames from video files.

ffmpeg is called with an argv list (never a shell), its output piped through stdout (no
temporary files), and every failure becomes a ``MediaError`` whose ``kind`` says whether the
video simply has no sound (``no_audio``) or could not be read (``failed``), with a one-line
reason taken from ffmpeg's stderr.

Resampling and the channel policy happen inside ffmpeg (libswresample with its default
filter): "mono" mixes every channel down by ffmpeg's standard matrix, "first" keeps channel
0 alone (the pan filter), "stereo" keeps two channels (mono duplicated, 5.1 mixed down).
"""
import os
import re
import shutil
import struct
import subprocess
import threading
import wave
from functools import lru_cache
from pathlib import Path

import numpy as np


class MediaError(Exception):
    """A file that could not be decoded. kind: 'no_audio', 'no_video' or 'failed'; reason:
    one line."""

    def __init__(self, kind, reason):
        super().__init__(f"{kind}: {reason}")
        self.kind = kind
        self.reason = reason


@lru_cache(maxsize=None)
def ffmpeg_binary(setting="imageio"):
    """Path of the ffmpeg to run: 'imageio' (the pinned static build), 'system', or a path."""
    if setting == "imageio":
        import imageio_ffmpeg
        return imageio_ffmpeg.get_ffmpeg_exe()
    if setting == "system":
        found = shutil.which("ffmpeg")
        if not found:
            raise FileNotFoundError("FFMPEG='system' but no ffmpeg on PATH; "
                                    "install one or set FFMPEG='imageio'")
        return found
    if not Path(setting).is_file():
        raise FileNotFoundError(f"FFMPEG={setting!r} is not a file")
    return setting


QUIET = ["-nostdin", "-hide_banner", "-loglevel", "error"]   # every ffmpeg call of the project


def _input(path):
    # "file:" keeps names with ':' from being read as a protocol; the absolute path keeps
    # names starting with '-' from being read as options.
    return ["-i", "file:" + str(Path(path).resolve())]


def _input_args(path):
    return [*QUIET, *_input(path)]


CHANNEL_ARGS = {"mono": ["-ac", "1"], "first": ["-af", "pan=mono|c0=c0"],
                "stereo": ["-ac", "2"]}


def n_channels(channels):
    """Channels that a channel policy decodes to (CHANNEL_ARGS)."""
    if channels not in CHANNEL_ARGS:
        raise ValueError(f"unknown channel policy {channels!r}; choose one of "
                         f"{', '.join(CHANNEL_ARGS)}")
    return 2 if channels == "stereo" else 1


def _audio_output_args(input_index, sample_rate, channels, out, fmt="s16le"):
    """ffmpeg output options: the first audio stream of input `input_index`, PCM16 under a
    channel policy (CHANNEL_ARGS)."""
    n_channels(channels)
    return ["-map", f"{input_index}:a:0", "-vn", "-sn", "-dn", *CHANNEL_ARGS[channels],
            "-ar", str(sample_rate), "-c:a", "pcm_s16le", "-f", fmt, "-y", out]


def audio_command(ffmpeg, path, sample_rate, channels="mono", out="pipe:1", fmt="s16le"):
    """argv that decodes the first audio stream of `path` to PCM16 at `sample_rate`."""
    return batch_audio_command(ffmpeg, [path], sample_rate, [out], channels, fmt)


def batch_audio_command(ffmpeg, paths, sample_rate, outs, channels="mono", fmt="s16le"):
    """argv of ONE ffmpeg that decodes the first audio stream of each of `paths` to PCM16
    at `sample_rate` under a channel policy, input i to outs[i]."""
    if len(paths) != len(outs):
        raise ValueError(f"{len(paths)} inputs but {len(outs)} outputs")
    argv = [ffmpeg, *QUIET]
    for path in paths:
        argv += _input(path)
    for i, out in enumerate(outs):
        argv += _audio_output_args(i, sample_rate, channels, out, fmt)
    return argv


def _samples(raw, channels):
    """Raw little-endian PCM16 -> int16 [n] (one channel) or [n, 2] (stereo)."""
    x = np.frombuffer(raw, dtype="<i2")
    return x if n_channels(channels) == 1 else x[: len(x) // 2 * 2].reshape(-1, 2)


def _reason(stderr):
    """One line that says why ffmpeg failed, from its stderr (with ``-loglevel level+...``,
    only its warning, error and fatal lines)."""
    lines = [ln.strip() for ln in stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    tagged = [ln for ln in lines if re.search(r"\[(warning|error|fatal|panic)\]", ln)]
    if tagged or any("[info]" in ln for ln in lines):
        lines = [re.sub(r"^(\[[^\]]*\] )+", "", ln) for ln in tagged]
    for ln in lines:
        if "moov atom not found" in ln:
            return "not a readable media file (mp4 index 'moov atom' missing: truncated or corrupt)"
    for ln in lines:
        if "Invalid data found" in ln:
            return "not a readable media file (invalid data)"
    return lines[0] if lines else "ffmpeg failed without a message"


def run_ffmpeg(argv, timeout_s=None, input=None):
    """Run an ffmpeg argv (never a shell string) that writes its own output file(s), feeding
    `input` bytes on stdin. -> its stdout bytes. Raises MediaError("failed", the reason from
    its stderr, or the time-out)."""
    try:
        proc = subprocess.run(argv, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise MediaError("failed", f"ffmpeg timed out after {timeout_s} s") from None
    if proc.returncode != 0:
        raise MediaError("failed", f"ffmpeg exit {proc.returncode}: {_reason(proc.stderr)}")
    return proc.stdout


def _run(argv, path, timeout_s):
    size = Path(path).stat().st_size if Path(path).exists() else None
    if size is None:
        raise MediaError("failed", "file does not exist")
    if size == 0:
        raise MediaError("failed", "empty file (0 bytes)")
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise MediaError("failed", f"ffmpeg timed out after {timeout_s} s") from None
    return proc


def decode_audio(path, sample_rate=16000, ffmpeg="imageio", timeout_s=300, channels="mono"):
    """The first audio stream of a media file as int16 samples at `sample_rate`.

    Returns:
      np.ndarray int16 [n_samples] (mono, first) or [n_samples, 2] (stereo).
    Raises:
      MediaError('no_audio', ...) when the file has no audio stream,
      MediaError('failed', ...) when it cannot be read.
    """
    proc = _run(audio_command(ffmpeg_binary(ffmpeg), path, sample_rate, channels), path,
                timeout_s)
    err = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        if "matches no streams" in err:
            raise MediaError("no_audio", "no audio stream")
        raise MediaError("failed", _reason(proc.stderr))
    samples = _samples(proc.stdout, channels)
    if samples.size == 0:
        # A stream that decodes to nothing (ffmpeg may still exit 0): say why if it said.
        raise MediaError("failed", "audio stream decodes to 0 samples"
                         + (f" ({_reason(proc.stderr)})" if err.strip() else ""))
    return samples


def decode_audio_batch(paths, sample_rate=16000, ffmpeg="imageio", timeout_s=300,
                       channels="mono"):
    """The first audio streams of several files from ONE ffmpeg process.

    ffmpeg's start-up (~35 ms for the static build, most of a 10 s clip's cost) is paid once
    per batch. Each output goes to its own pipe (read by a thread, so none can block the
    others); the samples are identical to decode_audio's, file by file.

    Returns:
      list of int16 arrays [n_samples] ([n_samples, 2] for stereo), one per path.
    Raises:
      MediaError('failed', reason) if ffmpeg fails for any of them (a missing audio stream
      included) or one decodes to nothing: the caller then decodes them one by one to learn
      which failed and why.
    """
    pipes = [os.pipe() for _ in paths]
    argv = batch_audio_command(ffmpeg_binary(ffmpeg), paths, sample_rate,
                               [f"pipe:{w}" for _, w in pipes], channels)
    chunks = [[] for _ in paths]

    def drain(i, fd):
        with os.fdopen(fd, "rb") as f:
            while block := f.read(1 << 16):
                chunks[i].append(block)

    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, pass_fds=[w for _, w in pipes])
    finally:
        for _, w in pipes:
            os.close(w)
    readers = [threading.Thread(target=drain, args=(i, r), daemon=True)
               for i, (r, _) in enumerate(pipes)]
    for t in readers:
        t.start()
    try:
        _, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise MediaError("failed", f"ffmpeg timed out after {timeout_s} s") from None
    finally:
        for t in readers:
            t.join()
    if proc.returncode != 0:
        raise MediaError("failed", _reason(err))
    out = [_samples(b"".join(c), channels) for c in chunks]
    if any(a.size == 0 for a in out):
        raise MediaError("failed", "an audio stream decoded to 0 samples")
    return out


def decode_frames(path, size_pixels, frames_per_second, ffmpeg="imageio", timeout_s=300):
    """Frames of the first video stream, resampled in time and scaled to a square.

    Returns:
      np.ndarray uint8 [n_frames, size_pixels, size_pixels, 3] (RGB).
    """
    s = int(size_pixels)
    argv = [ffmpeg_binary(ffmpeg), *_input_args(path), "-map", "0:v:0", "-an",
            "-vf", f"fps={frames_per_second},scale={s}:{s}:flags=area",
            "-pix_fmt", "rgb24", "-f", "rawvideo", "pipe:1"]
    proc = _run(argv, path, timeout_s)
    if proc.returncode != 0:
        if "matches no streams" in proc.stderr.decode("utf-8", "replace"):
            raise MediaError("failed", "no video stream")
        raise MediaError("failed", _reason(proc.stderr))
    frames = np.frombuffer(proc.stdout, dtype=np.uint8)
    if frames.size == 0 or frames.size % (s * s * 3):
        raise MediaError("failed", f"decoded {frames.size} bytes of video, not whole frames")
    return frames.reshape(-1, s, s, 3)


def frame_filter(size_pixels, frames_per_second):
    """ffmpeg's video filter chain of step 08: time resampling, short side to `size_pixels`,
    centre crop to a square, and showinfo (which logs each frame's presentation time).

    frames_per_second: a positive number, or None to keep every source frame (native rate).
    The fps filter emits, for each instant start + k / fps, the source frame shown then.
    """
    s = int(size_pixels)
    # eof_action=pass: a clip shorter than one frame interval still gives its frame
    chain = [] if frames_per_second is None else [f"fps={frames_per_second}:eof_action=pass"]
    chain += [f"scale={s}:{s}:force_original_aspect_ratio=increase:flags=area",
              f"crop={s}:{s}", "setsar=1", "showinfo"]
    return ",".join(chain)


def jpeg_frames_command(ffmpeg, path, size_pixels, frames_per_second, qscale, out="pipe:1"):
    """argv decoding the first video stream of `path` to a stream of JPEG images (MJPEG,
    quality -q:v `qscale`, full-range YUV 4:2:0), one per output frame, each frame's time
    logged by showinfo at level info (tagged lines, so errors stay separable)."""
    return [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "level+info", *_input(path),
            "-map", "0:v:0", "-an", "-sn", "-dn",
            "-vf", frame_filter(size_pixels, frames_per_second), "-fps_mode", "passthrough",
            "-c:v", "mjpeg", "-q:v", str(int(qscale)), "-f", "mjpeg", "-y", out]


_SHOWINFO = re.compile(rb"\[Parsed_showinfo_\d+ @ [^\]]*\] \[info\] n:\s*(\d+) pts:\s*(-?\d+)"
                       rb" pts_time:(\S+)")


def jpeg_offsets(data):
    """Byte offsets of the JPEG images concatenated in `data` -> int64 [n_images + 1].

    Walks each image's marker segments by their lengths up to the scan, then the scan up
    to its end-of-image marker (inside a scan, 0xFF is always followed by 0x00 or a
    restart marker), so bytes of tables never pass for a marker.
    Raises ValueError naming the offset where the stream stops being JPEG.
    """
    data = bytes(data)
    n, pos, offsets = len(data), 0, [0]
    while pos < n:
        if data[pos:pos + 2] != b"\xff\xd8":
            raise ValueError(f"no JPEG start-of-image marker at byte {pos} of {n}")
        i = pos + 2
        while True:                                 # marker segments up to start-of-scan
            if i + 4 > n or data[i] != 0xFF:
                raise ValueError(f"JPEG image at byte {pos}: bad marker at byte {i}")
            marker, length = data[i + 1], (data[i + 2] << 8) | data[i + 3]
            i += 2 + length
            if marker == 0xDA:
                break
        while True:                                 # the scan, up to end-of-image
            i = data.find(b"\xff", i)
            if i < 0 or i + 1 >= n:
                raise ValueError(f"JPEG image at byte {pos} has no end-of-image marker")
            if data[i + 1] == 0xD9:
                break
            i += 1 if data[i + 1] == 0xFF else 2    # fill byte; stuffing 0x00 or RSTn
        pos = i + 2
        offsets.append(pos)
    return np.asarray(offsets, dtype=np.int64)


def decode_jpeg_frames(path, size_pixels, frames_per_second, qscale=3, ffmpeg="imageio",
                       timeout_s=300):
    """Step 08's frames of one video: JPEG images and their presentation times.

    Times are seconds on ffmpeg's clock for the file (0 = the file's start, the clock
    step 02's wav samples are on), read from showinfo: for a resampled rate, the instant of
    each output frame; at the native rate (frames_per_second None), each source frame's own
    time, so a variable frame rate is kept.

    Returns:
      (jpeg uint8 [n_bytes] (the images back to back), offsets int64 [n_frames + 1],
       times float64 [n_frames])
    Raises:
      MediaError('no_video', ...) when the file has no video stream,
      MediaError('failed', ...) when it cannot be read or decodes to no frame.
    """
    argv = jpeg_frames_command(ffmpeg_binary(ffmpeg), path, size_pixels, frames_per_second,
                               qscale)
    proc = _run(argv, path, timeout_s)
    if proc.returncode != 0:
        if b"matches no streams" in proc.stderr:
            raise MediaError("no_video", "no video stream")
        raise MediaError("failed", _reason(proc.stderr))
    times = np.asarray([float(m.group(3)) for m in _SHOWINFO.finditer(proc.stderr)],
                       dtype=np.float64)
    if not proc.stdout:
        raise MediaError("failed", "video stream decodes to 0 frames"
                         + (f" ({_reason(proc.stderr)})" if _reason(proc.stderr) !=
                            "ffmpeg failed without a message" else ""))
    try:
        offsets = jpeg_offsets(proc.stdout)
    except ValueError as e:
        raise MediaError("failed", f"ffmpeg's MJPEG output: {e}") from None
    if len(offsets) - 1 != len(times):
        raise MediaError("failed", f"{len(offsets) - 1} JPEG frames but {len(times)} frame "
                         "times in ffmpeg's log")
    return np.frombuffer(proc.stdout, dtype=np.uint8), offsets, times


def write_wav(path, samples, sample_rate):
    """Write int16 samples [n] or [n, channels] as a PCM16 wav (caller makes it atomic)."""
    samples = np.asarray(samples)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1 if samples.ndim == 1 else samples.shape[1])
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(np.asarray(samples, dtype="<i2").tobytes())


def read_wav(path):
    """A PCM16 wav -> (float32 samples in [-1, 1] [n_samples] or [n_samples, channels], rate)."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: expected 16-bit PCM, got {8 * w.getsampwidth()}-bit")
        n_ch, rate = w.getnchannels(), w.getframerate()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    data = data.astype(np.float32) / 32768.0
    return (data if n_ch == 1 else data.reshape(-1, n_ch)), rate


# ---------------------------------------------------------------- one channel at its own rate

def first_channel_command(ffmpeg, path):
    """argv: the first audio stream's channel 0 at its own rate, as a PCM16 wav on stdout."""
    return [ffmpeg, *QUIET, "-i", "file:" + str(path), "-map", "0:a:0", "-vn", "-sn",
            "-dn", "-af", "pan=mono|c0=c0", "-c:a", "pcm_s16le", "-map_metadata", "-1",
            "-bitexact", "-f", "wav", "pipe:1"]


def parse_wav(data):
    """A PCM16 wav's bytes (sizes may be unset, as ffmpeg writes to a pipe) -> (float32
    [n_samples] of channel 0 in [-1, 1), rate Hz). ValueError if it is not such a wav."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a RIFF/WAVE stream")
    pos, rate, channels = 12, None, None
    while pos + 8 <= len(data):
        tag, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        if tag == b"fmt ":
            fmt, channels, rate, _, _, bits = struct.unpack("<HHIIHH", data[pos + 8:pos + 24])
            if fmt != 1 or bits != 16:
                raise ValueError(f"wav format {fmt} with {bits} bits, expected PCM16")
        elif tag == b"data":
            if rate is None:
                raise ValueError("wav data before its fmt chunk")
            raw = data[pos + 8:] if size in (0, 0xFFFFFFFF) else data[pos + 8:pos + 8 + size]
            x = np.frombuffer(raw[:len(raw) // (2 * channels) * 2 * channels], "<i2")
            return x[::channels].astype(np.float32) / 32768.0, int(rate)
        pos += 8 + size + (size & 1)
    raise ValueError("wav without a data chunk")


def read_first_channel(path, ffmpeg, timeout_s=300):
    """The original track's first channel at its own sample rate -> (float32 [n], rate Hz).

    Raises MediaError('no_audio' | 'failed', reason)."""
    argv = first_channel_command(ffmpeg, path)
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise MediaError("failed", f"ffmpeg timed out after {timeout_s} s") from None
    err = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        if "matches no streams" in err:
            raise MediaError("no_audio", "no audio stream")
        raise MediaError("failed", _reason(proc.stderr))
    try:
        x, rate = parse_wav(proc.stdout)
    except ValueError as e:
        raise MediaError("failed", f"ffmpeg's wav output: {e}") from None
    if not x.size:
        raise MediaError("failed", "the audio stream decodes to 0 samples")
    return x, rate
