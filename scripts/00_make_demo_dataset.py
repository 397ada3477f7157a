"""Step 00: make the demo dataset: small real mp4 files (H.264 video + AAC sound).

Writes <video_root>/<split>/<class>/<name>.mp4     for split in (train, val), Kinetics layout;
                                                   name like Kinetics: 11 random characters
                                                   (may start with '-') + _<start>_<end>
       <video_root>/demo_manifest.json             generator settings, the class table, the
                                                   special files, and one row per video
                                                   (id, class, seconds, cue values)
Reads  nothing. Video root: --video-root, else data/<dataset>/videos.

Each video: 64x64 RGB frames at 12 fps (H.264, yuv420p) and a 22.05 kHz mono AAC track,
3-6 s long (--clip-seconds). Everything is drawn from numpy generators seeded by
(--seed = SEED, split, class, item), so the same seed gives the same frames and samples whatever
the number of workers (the mp4 bytes may still differ between x264 builds).

How the classes differ (the point of the demo): 4 sound types and 4 picture types arranged
in a cycle. Class c has sound type c // 2 and picture type ((c + 1) % n) // 2, so classes
2k and 2k+1 share a sound and differ in picture, and classes 2k-1 and 2k share a picture and
differ in sound. Within a pair that shares a type, a weaker secondary cue (pitch, rhythm,
sweep speed or modulation rate for sounds; spatial scale for pictures) is drawn from
overlapping ranges, so one modality alone tells the pair apart only part of the time,
while sound and picture together name the class. Background noise at a random SNR, random
levels, colours, directions, phases and pixel noise are the same for every class.

Special files, for the pipeline's error handling (positions fixed; listed in the manifest):
  no_audio     video without an audio stream (2 in val, 1 in train)
  corrupt      an mp4 cut to 40 % of its bytes (the index at its end is missing), 1 in val
  short_audio  a video whose sound lasts 0.5 s (shorter than one 0.96 s patch), 1 in val
No class of val holds more than one special file (with >= 4 classes).

Files are written as <name>.mp4.partial and renamed when complete; a rerun skips files that
exist, and refuses a video root made with other settings (see the manifest).

--dataset-kind impacts (use another --dataset, e.g. impacts) makes the impacts demo instead
(soundtrack/envelope/impacts.py): 6 classes of objects that hit, are dropped onto, thrown against, collide with,
bounce off and are pushed into things, 64 px at 12 fps, 3-4 s, 44.1 kHz mono AAC, an impact
sound at each contact (loudness following the speed) over background noise, with the seed's
nuisances (camera clicks, two or three hits, silent hits). It writes
<video_root>/impacts_manifest.json: settings, classes, and per video its events
(time s, kind hit | click | silent_hit, speed), the truth of steps 09-10.
"""
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import fft, signal

from soundtrack import cli
from soundtrack import datafiles
from soundtrack.envelope import impacts
from soundtrack import media
from soundtrack.jobs import parallel

# ---------------------------------------------------------------- generator constants
SPLITS = ["train", "val"]
FRAME_SIZE_PIXELS = 64           # square frames; x264 with yuv420p needs an even size
FRAMES_PER_SECOND = 12
AUDIO_SAMPLE_RATE_HZ = 22050     # not 16 kHz, so that the pipeline's resampling is exercised
AUDIO_CHANNELS = 1               # 2 works too (panned, downmixed by the pipeline), but AAC
                                 # encoding of stereo takes about twice as long
SHORT_AUDIO_SECONDS = 0.5        # the short_audio special: less than one 0.96 s patch
CORRUPT_KEEP_FRACTION = 0.4      # the corrupt special keeps this share of its bytes
MANIFEST_NAME = "demo_manifest.json"
NAME_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

# Type names, and the words a class name uses for (low cue, high cue) within a type.
SOUND_TYPES = ["tones", "knocks", "chirps", "drones"]
PICTURE_TYPES = ["gratings", "rings", "blobs", "checkers"]
SOUND_WORDS = {"tones": ("humming", "singing"),       # low / high pitch
               "knocks": ("knocking", "drumming"),    # slow / fast rhythm
               "chirps": ("whistling", "chirping"),   # slow / fast sweeps
               "drones": ("purring", "buzzing")}      # slow / fast amplitude modulation
PICTURE_WORDS = {"gratings": ("waves", "stripes"),    # coarse / fine
                 "rings": ("rings", "ripples"),
                 "blobs": ("balloons", "bubbles"),    # large / small
                 "checkers": ("tiles", "checkers")}

# The secondary cue of a video is q = (u + SEPARATION * cue) / (1 + SEPARATION), u ~ U(0, 1),
# cue in {0, 1}: the two classes of a pair overlap on [SEP, 1] / (1 + SEP), so an ideal
# observer of q alone is right 0.5 + SEP / 2 of the time.
AUDIO_CUE_SEPARATION = 0.65
PICTURE_CUE_SEPARATION = 0.4

# The special files: (split, kind), placed in this order by special_positions().
SPECIALS = [("val", "no_audio"), ("val", "corrupt"), ("val", "no_audio"),
            ("val", "short_audio"), ("train", "no_audio")]
SPECIAL_TEXT = {"no_audio": "no audio stream",
                "corrupt": f"mp4 cut to {CORRUPT_KEEP_FRACTION:.0%} of its bytes "
                           "(moov index missing)",
                "short_audio": f"sound track of {SHORT_AUDIO_SECONDS} s, shorter than one patch"}


# ---------------------------------------------------------------- classes and layout

def class_table(n_classes):
    """The classes of an n-class demo, in generator order (not the sorted label order).

    Returns:
      list of dicts: name, sound, sound_cue (0 low / 1 high), picture, picture_cue
      (0 coarse / 1 fine). Class c: sound type c // 2, picture type ((c + 1) % n) // 2.
    """
    if not 2 <= n_classes <= 2 * len(SOUND_TYPES):
        raise ValueError(f"classes must be between 2 and {2 * len(SOUND_TYPES)}, got {n_classes}")
    table = []
    for c in range(n_classes):
        sound = SOUND_TYPES[c // 2]
        sound_cue = c % 2
        picture = PICTURE_TYPES[((c + 1) % n_classes) // 2]
        picture_cue = ((c + 1) % n_classes) % 2
        name = f"{SOUND_WORDS[sound][sound_cue]}_on_{PICTURE_WORDS[picture][picture_cue]}"
        table.append(dict(name=name, sound=sound, sound_cue=sound_cue,
                          picture=picture, picture_cue=picture_cue))
    return table


def special_positions(n_classes, videos_per_class):
    """{(split, class_index, item_index): kind} for the special files.

    The k-th special of a split takes slot k * step (step = n_classes // 4, at least 1),
    slot s being class s % n_classes, item s // n_classes: with >= 4 classes, no class of
    val holds two special files.
    """
    step = max(1, n_classes // 4)
    out, count = {}, {}
    for split, kind in SPECIALS:
        k = count.get(split, 0)
        count[split] = k + 1
        slot = k * step if split == "val" else n_classes - 1 + k * n_classes
        c, item = slot % n_classes, slot // n_classes
        if item >= videos_per_class:
            raise ValueError(f"{videos_per_class} videos per class are too few to place the "
                             f"special files of {split} among {n_classes} classes")
        out[(split, c, item)] = kind
    return out


def video_name(rng, seconds):
    """A Kinetics-like file name: 11 characters, then the start and end second."""
    chars = "".join(NAME_ALPHABET[i] for i in rng.integers(0, len(NAME_ALPHABET), 11))
    start = int(rng.integers(0, 300))
    return f"{chars}_{start:06d}_{start + int(np.ceil(seconds)):06d}"


def cue_position(rng, cue, separation):
    """The secondary cue q in [0, 1]: U(0, 1) shifted by `separation` for cue 1, rescaled."""
    return float((rng.uniform() + separation * cue) / (1.0 + separation))


def log_lerp(lo, hi, q):
    """lo * (hi / lo) ** q: q in [0, 1] spread evenly on a log scale."""
    return float(lo * (hi / lo) ** q)


# ---------------------------------------------------------------- sound

def colored_noise(rng, n, exponent):
    """Noise with power spectrum ~ 1/f^exponent (0 white, 1 pink, 2 brown), unit RMS. [n]"""
    m = fft.next_fast_len(n, real=True)  # an FFT of n samples can be 10x slower
    spec = rng.normal(size=m // 2 + 1) + 1j * rng.normal(size=m // 2 + 1)
    f = np.arange(m // 2 + 1, dtype=np.float64)
    f[0] = 1.0
    x = fft.irfft(spec / f ** (exponent / 2), m)[:n]
    return x / (np.sqrt(np.mean(x ** 2)) + 1e-12)


def envelope(n, sr, attack_s, decay_s):
    """Linear attack then exponential decay (time constant decay_s), tapered to 0. [n]"""
    t = np.arange(n) / sr
    env = np.minimum(1.0, t / max(attack_s, 1e-4)) * np.exp(-np.maximum(t - attack_s, 0) / decay_s)
    tail = min(n, int(0.01 * sr))
    env[n - tail:] *= np.linspace(1, 0, tail)
    return env


def onsets(rng, seconds, rate_hz, jitter=1.0):
    """Event times in [0, seconds): exponential gaps (jitter=1) or regular ones +- jitter/2."""
    times, t = [], rng.uniform(0, 1.0 / rate_hz)
    while t < seconds:
        times.append(t)
        gap = rng.exponential(1.0 / rate_hz) if jitter >= 1.0 else \
            (1.0 / rate_hz) * rng.uniform(1 - jitter / 2, 1 + jitter / 2)
        t += gap
    return times or [rng.uniform(0, seconds / 2)]


def add_at(out, start_s, sr, event):
    i = int(start_s * sr)
    m = min(len(event), len(out) - i)
    if m > 0:
        out[i:i + m] += event[:m]


def sound_tones(rng, q, seconds, sr):
    """Harmonic tone bursts; the cue is the pitch (f0 about 180-1000 Hz on a log scale)."""
    n = int(seconds * sr)
    out = np.zeros(n)
    f0_mid = log_lerp(180.0, 1000.0, q)
    for t0 in onsets(rng, seconds, rng.uniform(1.2, 2.5)):
        dur = rng.uniform(0.15, 0.6)
        m = int(dur * sr)
        t = np.arange(m) / sr
        f0 = f0_mid * 2 ** rng.normal(0, 0.08)
        vib = 1 + 0.01 * np.sin(2 * np.pi * rng.uniform(4, 7) * t)
        phase = 2 * np.pi * f0 * np.cumsum(vib) / sr
        tilt = rng.uniform(0.5, 1.5)
        tone = np.zeros(m)
        for k in range(1, int(rng.integers(2, 8))):
            if k * f0 < 7000:
                tone += rng.uniform(0.3, 1.0) / k ** tilt * np.sin(k * phase + rng.uniform(0, 6.3))
        add_at(out, t0, sr, rng.uniform(0.4, 1.0) * tone *
               envelope(m, sr, rng.uniform(0.005, 0.04), rng.uniform(0.1, 0.5)))
    return out


def sound_knocks(rng, q, seconds, sr):
    """Band-passed noise bursts (knocks, claps) in a rhythm; the cue is the rate (1.5-6 /s)."""
    n = int(seconds * sr)
    excitation = np.zeros(n)
    for t0 in onsets(rng, seconds, log_lerp(1.5, 6.0, q), jitter=0.6):
        m = int(0.2 * sr)
        burst = rng.normal(size=m) * envelope(m, sr, 0.002, rng.uniform(0.01, 0.05))
        add_at(excitation, t0, sr, rng.uniform(0.4, 1.0) * burst)
    centre = log_lerp(400.0, 4000.0, rng.uniform())
    width = rng.uniform(0.5, 1.5)  # octaves
    band = [centre * 2 ** (-width / 2), min(centre * 2 ** (width / 2), 0.45 * sr)]
    sos = signal.butter(2, band, btype="bandpass", fs=sr, output="sos")
    return signal.sosfilt(sos, excitation) + 0.15 * excitation


def sound_chirps(rng, q, seconds, sr):
    """Exponential frequency sweeps up or down; the cue is the speed (1.5-6 octaves/s)."""
    n = int(seconds * sr)
    out = np.zeros(n)
    speed = log_lerp(1.5, 6.0, q)
    for t0 in onsets(rng, seconds, rng.uniform(1.0, 2.2)):
        dur = rng.uniform(0.25, 0.6)
        span = speed * dur * 2 ** rng.normal(0, 0.08)  # octaves
        direction = rng.choice([-1.0, 1.0])
        low = 250.0 * 2 ** rng.uniform(0, max(0.0, np.log2(6000.0 / 250.0) - span))
        f_start = low if direction > 0 else low * 2 ** span
        m = int(dur * sr)
        t = np.arange(m) / sr
        rate = direction * span / dur  # octaves per second, signed
        phase = 2 * np.pi * f_start * (2 ** (rate * t) - 1) / (rate * np.log(2))
        tone = np.sin(phase) + rng.uniform(0, 0.4) * np.sin(2 * phase)
        add_at(out, t0, sr, rng.uniform(0.4, 1.0) * tone *
               envelope(m, sr, 0.01, rng.uniform(0.2, 1.0)))
    return out


def sound_drones(rng, q, seconds, sr):
    """A long low buzz or band-noise drone, amplitude-modulated; the cue is the AM rate (2-10 Hz).

    Never silenced by the modulation (depth < 1) and lower than the tones' pitch, so that a
    slowly modulated drone does not turn into a train of tone bursts.
    """
    n = int(seconds * sr)
    t = np.arange(n) / sr
    if rng.uniform() < 0.5:
        f0 = log_lerp(55.0, 140.0, rng.uniform())
        carrier = sum(rng.uniform(0.5, 1.0) / k
                      * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 6.3))
                      for k in range(1, int(3000 // f0)))
    else:
        centre = log_lerp(200.0, 3000.0, rng.uniform())
        sos = signal.butter(2, [centre / 1.3, centre * 1.3], btype="bandpass", fs=sr, output="sos")
        carrier = signal.sosfilt(sos, rng.normal(size=n))
    rate = log_lerp(2.0, 10.0, q) * (1 + 0.05 * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t))
    depth = rng.uniform(0.5, 0.9)
    am = 1 - depth * (0.5 - 0.5 * np.cos(2 * np.pi * np.cumsum(rate) / sr + rng.uniform(0, 6.3)))
    # The drone covers one stretch of 60-100 % of the clip.
    cover = rng.uniform(0.6, 1.0) * seconds
    start = rng.uniform(0, seconds - cover)
    ramp = 0.03  # seconds of fade in and out
    gate = np.interp(t, [start, start + ramp, start + cover - ramp, start + cover], [0, 1, 1, 0])
    return carrier * am * gate


SOUNDS = {"tones": sound_tones, "knocks": sound_knocks, "chirps": sound_chirps,
          "drones": sound_drones}


def make_sound(rng, kind, q, seconds, sr=AUDIO_SAMPLE_RATE_HZ, channels=AUDIO_CHANNELS):
    """Events of one sound type over coloured background noise at a random SNR.

    Returns:
      float32 [n_samples, channels] in [-1, 1], n_samples = int(seconds * sr).
    """
    events = SOUNDS[kind](rng, q, seconds, sr)
    events /= np.sqrt(np.mean(events ** 2)) + 1e-12
    n = len(events)
    snr_db = rng.uniform(0.0, 18.0)
    exponent = rng.uniform(0.0, 2.0)
    common = colored_noise(rng, n, exponent)
    pan = rng.uniform(0.3, 0.7)
    chans = []
    for ch in range(channels):
        gain = (pan if ch == 0 else 1 - pan) * 2 if channels == 2 else 1.0
        noise = 0.7 * common + 0.3 * colored_noise(rng, n, exponent)
        chans.append(gain * events + 10 ** (-snr_db / 20) * noise)
    x = np.stack(chans, axis=1)
    x *= rng.uniform(0.1, 0.7) / (np.abs(x).max() + 1e-12)
    return x.astype(np.float32)


def write_wav(path, samples, sr):
    """float [n, channels] in [-1, 1] -> PCM16 wav (media.write_wav)."""
    media.write_wav(path, np.round(np.clip(samples, -1, 1) * 32767).astype("<i2"), sr)


# ---------------------------------------------------------------- pictures

def picture_gratings(rng, q, t, u, v):
    """Drifting sinusoidal gratings; the cue is the spatial frequency (2-6 cycles/frame)."""
    k = log_lerp(2.0, 6.0, q)
    theta = rng.uniform(0, 2 * np.pi) + rng.uniform(-0.2, 0.2) * t  # slowly turning
    speed = rng.uniform(0.2, 1.0)  # cycles per second
    x = u * np.cos(theta) + v * np.sin(theta)
    return 0.5 + 0.5 * np.sin(2 * np.pi * (k * x - speed * t) + rng.uniform(0, 6.3))


def picture_rings(rng, q, t, u, v):
    """Rings expanding from a drifting centre; the cue is the ring frequency (2-6 /frame)."""
    k = log_lerp(2.0, 6.0, q)
    c0, vel = rng.uniform(0.25, 0.75, 2), rng.uniform(-0.05, 0.05, 2)
    r = np.sqrt((u - c0[0] - vel[0] * t) ** 2 + (v - c0[1] - vel[1] * t) ** 2)
    return 0.5 + 0.5 * np.sin(2 * np.pi * (k * r - rng.uniform(0.3, 1.0) * t) + rng.uniform(0, 6.3))


def picture_blobs(rng, q, t, u, v):
    """Gaussian blobs moving on a torus; the cue is their size (sigma 0.16-0.05 of the frame)."""
    sigma = log_lerp(0.16, 0.05, q)
    total = np.zeros(np.broadcast_shapes(t.shape, u.shape, v.shape))
    for _ in range(int(rng.integers(3, 7))):
        s = sigma * 2 ** rng.normal(0, 0.15)
        pos, vel = rng.uniform(0, 1, 2), rng.uniform(-0.25, 0.25, 2)
        du = (u - pos[0] - vel[0] * t + 0.5) % 1.0 - 0.5
        dv = (v - pos[1] - vel[1] * t + 0.5) % 1.0 - 0.5
        total += rng.uniform(0.6, 1.0) * np.exp(-(du ** 2 + dv ** 2) / (2 * s ** 2))
    return np.clip(total, 0, 1)


def picture_checkers(rng, q, t, u, v):
    """A scrolling, slightly turned checkerboard; the cue is its frequency (2-5 /frame)."""
    k = log_lerp(2.0, 5.0, q)
    theta = rng.uniform(-0.4, 0.4)
    vel = rng.uniform(-0.3, 0.3, 2)
    x = u * np.cos(theta) - v * np.sin(theta) - vel[0] * t
    y = u * np.sin(theta) + v * np.cos(theta) - vel[1] * t
    sharp = rng.uniform(2.0, 6.0)  # soft edges: no aliasing at small sizes
    return 0.5 + 0.5 * np.tanh(sharp * np.sin(2 * np.pi * k * x) * np.sin(2 * np.pi * k * y))


PICTURES = {"gratings": picture_gratings, "rings": picture_rings, "blobs": picture_blobs,
            "checkers": picture_checkers}


def make_frames(rng, kind, q, n_frames, size=FRAME_SIZE_PIXELS, fps=FRAMES_PER_SECOND):
    """A moving pattern in two random colours, with flicker and pixel noise.

    Returns:
      uint8 [n_frames, size, size, 3] (RGB).
    """
    # float32 throughout: the frames become 8-bit anyway
    t = (np.arange(n_frames, dtype=np.float32) / fps)[:, None, None]  # [T, 1, 1] seconds
    u = (np.arange(size, dtype=np.float32) / size)[None, None, :]     # [1, 1, W] frame widths
    v = (np.arange(size, dtype=np.float32) / size)[None, :, None]     # [1, H, 1]
    pattern = PICTURES[kind](rng, q, t, u, v)       # [T, H, W] in [0, 1]
    while True:
        a, b = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
        if np.linalg.norm(a - b) > 0.35:
            break
    flicker = 1 + rng.uniform(0, 0.08) * np.sin(2 * np.pi * rng.uniform(0.2, 2) * t)
    frames = ((a + (b - a) * pattern[..., None]) * flicker[..., None]).astype(np.float32)
    frames += rng.uniform(0.02, 0.1) * rng.standard_normal(frames.shape, dtype=np.float32)
    return np.round(np.clip(frames, 0, 1) * 255).astype(np.uint8)


# ---------------------------------------------------------------- one video

def video_plan(seed, split, c, item, spec, seconds_range, separations):
    """Everything about one video that is drawn at random, from its own seed.

    Returns:
      dict: name, seconds, n_frames, sound_q, picture_q, and the seeds of its sound and frames.
    """
    ss = np.random.SeedSequence([seed, SPLITS.index(split), c, item])
    s_plan, s_sound, s_frames = ss.spawn(3)
    rng = np.random.default_rng(s_plan)
    lo, hi = seconds_range
    n_frames = int(round(rng.uniform(lo, hi) * FRAMES_PER_SECOND))
    seconds = n_frames / FRAMES_PER_SECOND
    return dict(name=video_name(rng, seconds), seconds=seconds, n_frames=n_frames,
                sound_q=cue_position(rng, spec["sound_cue"], separations[0]),
                picture_q=cue_position(rng, spec["picture_cue"], separations[1]),
                sound_seed=s_sound, frames_seed=s_frames)


def encode(ffmpeg, out_path, frames, sound=None, sr=AUDIO_SAMPLE_RATE_HZ):
    """One ffmpeg call: raw RGB frames on stdin (+ a temp wav) -> H.264/AAC mp4 at out_path."""
    n, h, w, _ = frames.shape
    argv = [ffmpeg, *media.QUIET, "-y",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
            "-framerate", str(FRAMES_PER_SECOND), "-i", "pipe:0"]
    wav = None
    try:
        if sound is not None:
            fd, wav = tempfile.mkstemp(suffix=".wav", prefix="demo_sound_")
            os.close(fd)
            write_wav(wav, sound, sr)
            argv += ["-i", "file:" + wav, "-map", "0:v:0", "-map", "1:a:0",
                     "-c:a", "aac", "-aac_coder", "fast", "-b:a", "96k"]
        else:
            argv += ["-map", "0:v:0"]
        argv += ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "20", "-pix_fmt", "yuv420p",
                 "-threads", "1", "-map_metadata", "-1", "-fflags", "+bitexact",
                 "-f", "mp4", "file:" + str(out_path)]
        try:
            media.run_ffmpeg(argv, input=frames.tobytes())
        except media.MediaError as e:
            raise RuntimeError(f"ffmpeg failed writing {out_path}: {e.reason}") from None
    finally:
        if wav is not None:
            os.unlink(wav)


def make_video(job):
    """Generate and encode one video (a worker's task). Returns (path, 'made' or 'exists')."""
    path, plan, spec, special, ffmpeg = (job[k] for k in
                                         ("path", "plan", "spec", "special", "ffmpeg"))
    path = Path(path)
    if path.exists():
        return str(path), "exists"
    sound = make_sound(np.random.default_rng(plan["sound_seed"]), spec["sound"],
                       plan["sound_q"], plan["seconds"])
    frames = make_frames(np.random.default_rng(plan["frames_seed"]), spec["picture"],
                         plan["picture_q"], plan["n_frames"])
    if special == "no_audio":
        sound = None
    elif special == "short_audio":
        sound = sound[:int(SHORT_AUDIO_SECONDS * AUDIO_SAMPLE_RATE_HZ)]

    def write(tmp):
        encode(ffmpeg, tmp, frames, sound)
        if special == "corrupt":
            size = os.path.getsize(tmp)
            os.truncate(tmp, int(size * CORRUPT_KEEP_FRACTION))

    datafiles.atomic_write(path, write)
    return str(path), "made"


# ---------------------------------------------------------------- the impacts kind

IMPACTS_MANIFEST_NAME = "impacts_manifest.json"


def make_impact_video(job):
    """Generate and encode one impacts video (a worker's task) -> (path, 'made' | 'exists')."""
    path = Path(job["path"])
    if path.exists():
        return str(path), "exists"
    plan, n_frames = job["plan"], job["n_frames"]
    frames = impacts.make_frames(np.random.default_rng(job["frames_seed"]), job["class_name"],
                                 plan, n_frames)
    sound = impacts.make_sound(np.random.default_rng(job["sound_seed"]), plan,
                               n_frames / impacts.FRAMES_PER_SECOND)
    datafiles.atomic_write(path, lambda tmp: encode(job["ffmpeg"], tmp, frames, sound,
                                                    impacts.AUDIO_SAMPLE_RATE_HZ))
    return str(path), "made"


def impact_jobs(cfg, video_root):
    """Videos of the impacts demo in (split, class, item) order, with manifest rows."""
    ffmpeg = media.ffmpeg_binary(cfg.ffmpeg)
    out, rows = [], []
    for split in SPLITS:
        for c, class_name in enumerate(impacts.class_names()):
            for item in range(cfg.videos_per_class):
                ss = np.random.SeedSequence([cfg.seed, SPLITS.index(split), c, item, 12])
                s_plan, s_sound, s_frames = ss.spawn(3)
                rng = np.random.default_rng(s_plan)
                n_frames = int(round(rng.uniform(*cfg.seconds_range)
                                     * impacts.FRAMES_PER_SECOND))
                seconds = n_frames / impacts.FRAMES_PER_SECOND
                plan = impacts.plan_contacts(rng, seconds)
                vid = f"{split}/{class_name}/{video_name(rng, seconds)}"
                out.append(dict(path=str(video_root / (vid + ".mp4")), plan=plan,
                                n_frames=n_frames, class_name=class_name, sound_seed=s_sound,
                                frames_seed=s_frames, ffmpeg=ffmpeg))
                rows.append(dict(id=vid, split=split, class_name=class_name, item=item,
                                 seconds=seconds, events=impacts.events(plan)))
    return out, rows


def main_impacts(cfg):
    """Step 00 --dataset-kind impacts: the videos and impacts_manifest.json."""
    video_root = datafiles.Paths(cfg).video_root
    if cfg.clip_seconds == [3.0, 6.0]:             # the demo's default: impacts' own instead
        cfg.seconds_range = impacts.CLIP_SECONDS
    settings = dict(kind="impacts", seed=cfg.seed, videos_per_class=cfg.videos_per_class,
                    seconds=list(cfg.seconds_range), classes=impacts.class_names(),
                    frame_size_pixels=impacts.FRAME_SIZE_PIXELS,
                    frames_per_second=impacts.FRAMES_PER_SECOND,
                    audio_sample_rate_hz=impacts.AUDIO_SAMPLE_RATE_HZ,
                    click_probability=impacts.CLICK_PROBABILITY,
                    silent_hit_probability=impacts.SILENT_HIT_PROBABILITY,
                    contact_counts=[list(c) for c in impacts.CONTACT_COUNTS])
    work, rows = impact_jobs(cfg, video_root)
    path = video_root / IMPACTS_MANIFEST_NAME
    if path.exists() and json.loads(path.read_text(encoding="utf-8")).get("settings") != settings:
        raise SystemExit(f"error: {path} was made with other settings; delete {video_root} "
                         "or choose another --video-root")
    datafiles.write_text(path, json.dumps(dict(generator="scripts/00_make_demo_dataset.py "
                                                         "--dataset-kind impacts",
                                               settings=settings, videos=rows), indent=1) + "\n")
    start, made = time.perf_counter(), 0
    bar = cli.progress(total=len(work), desc="[00] impact videos", unit="file")
    for _, what in parallel(make_impact_video, work, cfg.workers):
        made += what == "made"
        bar.update()
    bar.close()
    kinds = {}
    for r in rows:
        for e in r["events"]:
            kinds[e["kind"]] = kinds.get(e["kind"], 0) + 1
    print(f"[00] impacts dataset in {video_root}: {len(work)} videos ({made} made) in "
          f"{time.perf_counter() - start:.1f} s; {len(impacts.class_names())} classes x "
          f"{cfg.videos_per_class} per split; events: "
          + ", ".join(f"{v} {k}" for k, v in sorted(kinds.items())))
    print(f"[00] manifest: {path}")


# ---------------------------------------------------------------- main

def build_jobs(cfg, video_root, table, specials, separations):
    """The list of videos to make, in (split, class, item) order, with manifest rows."""
    jobs, rows = [], []
    ffmpeg = media.ffmpeg_binary(cfg.ffmpeg)
    for split in SPLITS:
        for c, spec in enumerate(table):
            names = set()
            for item in range(cfg.videos_per_class):
                plan = video_plan(cfg.seed, split, c, item, spec, cfg.seconds_range, separations)
                if plan["name"] in names:  # 64^11 names: never in practice, but be sure
                    raise RuntimeError(f"seed {cfg.seed} drew the name {plan['name']} twice")
                names.add(plan["name"])
                vid = f"{split}/{spec['name']}/{plan['name']}"
                special = specials.get((split, c, item))
                jobs.append(dict(path=str(video_root / (vid + ".mp4")), plan=plan, spec=spec,
                                 special=special, ffmpeg=ffmpeg))
                rows.append(dict(id=vid, split=split, class_name=spec["name"], item=item,
                                 seconds=plan["seconds"], sound_q=round(plan["sound_q"], 4),
                                 picture_q=round(plan["picture_q"], 4), special=special))
    return jobs, rows


def write_manifest(path, settings, table, rows):
    """Write the manifest; a different one already there is an error (mixed datasets)."""
    manifest = dict(
        generator="scripts/00_make_demo_dataset.py",
        settings=settings,
        classes=table,
        special_files=[dict(id=r["id"], kind=r["special"], what=SPECIAL_TEXT[r["special"]])
                       for r in rows if r["special"]],
        videos=rows)
    if path.exists():
        old = json.loads(path.read_text(encoding="utf-8"))
        if old.get("settings") != settings:
            raise SystemExit(f"error: {path} was made with other settings:\n"
                             f"  {old.get('settings')}\n  now {settings}\n"
                             f"Delete {path.parent} or choose another --video-root.")
    datafiles.write_text(path, json.dumps(manifest, indent=1) + "\n")
    return manifest


def main(argv=None):
    """Parse, plan the demo videos, render them in workers, write the manifest.

    Longer than ~60 lines on purpose: the plan of the dataset (classes, sizes, the videos
    without sound, the corrupt file) is easiest to check read in one place."""
    parser = cli.parser(__doc__, ["FFMPEG", "SEED", "WORKERS"])
    parser.add_argument("--num-classes", type=int, default=8,
                        help="number of classes, 2-8 (default 8)")
    parser.add_argument("--videos-per-class", type=int, default=24,
                        help="videos per class in each split (default 24)")
    parser.add_argument("--clip-seconds", type=float, nargs="+", default=[3.0, 6.0],
                        metavar="S", help="length of each video: MIN MAX (uniform) or one "
                        "fixed value (default 3 6)")
    parser.add_argument("--audio-cue-separation", type=float, default=AUDIO_CUE_SEPARATION,
                        help="0-1: how well the secondary sound cue splits a pair "
                        f"(default {AUDIO_CUE_SEPARATION})")
    parser.add_argument("--picture-cue-separation", type=float, default=PICTURE_CUE_SEPARATION,
                        help="0-1: the same for the secondary picture cue "
                        f"(default {PICTURE_CUE_SEPARATION})")
    parser.add_argument("--dataset-kind", choices=["demo", "impacts"], default="demo",
                        help="demo (default: the fusion demo) | impacts (the envelope demo, "
                        "soundtrack/envelope/impacts.py; give it its own --dataset)")
    cfg = cli.parse(parser, argv)
    if len(cfg.clip_seconds) not in (1, 2) or min(cfg.clip_seconds) < 1.0:
        parser.error(f"--clip-seconds takes MIN MAX or one value, each >= 1, got "
                     f"{cfg.clip_seconds}")
    cfg.seconds_range = (min(cfg.clip_seconds), max(cfg.clip_seconds))
    if cfg.videos_per_class < 1:
        parser.error(f"--videos-per-class must be >= 1, got {cfg.videos_per_class}")
    if cfg.dataset_kind == "impacts":
        return main_impacts(cfg)
    separations = (cfg.audio_cue_separation, cfg.picture_cue_separation)
    if not all(0.0 <= s <= 1.0 for s in separations):
        parser.error(f"cue separations must be in [0, 1], got {separations}")
    try:
        table = class_table(cfg.num_classes)
        specials = special_positions(cfg.num_classes, cfg.videos_per_class)
    except ValueError as e:
        parser.error(str(e))

    video_root = datafiles.Paths(cfg).video_root
    settings = dict(seed=cfg.seed, classes=cfg.num_classes, videos_per_class=cfg.videos_per_class,
                    seconds=list(cfg.seconds_range), audio_cue_separation=separations[0],
                    picture_cue_separation=separations[1], frame_size_pixels=FRAME_SIZE_PIXELS,
                    frames_per_second=FRAMES_PER_SECOND, audio_sample_rate_hz=AUDIO_SAMPLE_RATE_HZ,
                    audio_channels=AUDIO_CHANNELS)
    jobs, rows = build_jobs(cfg, video_root, table, specials, separations)
    manifest = write_manifest(video_root / MANIFEST_NAME, settings, table, rows)

    start = time.perf_counter()
    made = 0
    bar = cli.progress(total=len(jobs), desc="[00] videos", unit="file")
    for _, what in parallel(make_video, jobs, cfg.workers):
        made += what == "made"
        bar.update()
    bar.close()
    seconds = time.perf_counter() - start

    print(f"[00] demo dataset in {video_root}: {len(jobs)} videos ({made} made, "
          f"{len(jobs) - made} existed) in {seconds:.1f} s")
    print(f"[00] {cfg.num_classes} classes x {cfg.videos_per_class} videos per class in each of "
          f"{', '.join(SPLITS)}; seed {cfg.seed}")
    print(f"  {'class (sorted)':26s} {'sound (secondary cue)':24s} picture (secondary cue)")
    for spec in sorted(table, key=lambda s: s["name"]):
        sound = f"{spec['sound']} ({('low', 'high')[spec['sound_cue']]})"
        picture = f"{spec['picture']} ({('coarse', 'fine')[spec['picture_cue']]})"
        print(f"  {spec['name']:26s} {sound:24s} {picture}")
    specials_rows = manifest["special_files"]
    counts = {k: sum(r["kind"] == k for r in specials_rows) for k in SPECIAL_TEXT}
    print(f"[00] {len(specials_rows)} special files: "
          + ", ".join(f"{v} {k}" for k, v in counts.items()))
    for r in specials_rows:
        print(f"  {r['kind']:12s} {r['id']}: {r['what']}")
    print(f"[00] manifest: {video_root / MANIFEST_NAME}")


if __name__ == "__main__":
    cli.run_script(main)
