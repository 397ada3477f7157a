"""The impacts demo (step 00 ``--dataset-kind impacts``): objects that hit, are dropped onto,
thrown against, collide with and bounce off things, with a short impact sound at each contact.

A clip is a list of *contacts* (time, speed) and a class that says how the object moves
between them; the picture and the sound are both made from that list, so the manifest of
events is the truth of both. Contact is visible only as motion: the object reaches the thing
it hits (the gap closes) and moves off or stops; no flash, no colour change.

Per clip (every draw from numpy generators seeded by (seed, split, class, item)):
  - 1 contact (60 %), 2 (25 %) or 3 (15 %), at least MIN_GAP_S apart, at random times and
    speeds SPEED_RANGE (frame widths per second); an impact's loudness is proportional to
    its speed (amplitude = speed / max speed);
  - background noise (coloured, random level below the silent floor of step 09);
  - nuisances, as in the seed's failure list: a camera *click* that no picture explains
    (CLICK_PROBABILITY), a *silent hit* (SILENT_HIT_PROBABILITY: one contact makes no sound;
    a one-contact clip then has no impact sound at all).
Event kinds in the manifest: ``hit`` (visible and heard), ``click`` (heard, not visible),
``silent_hit`` (visible, not heard).

Frames: 64 x 64 RGB at 12 fps, the object a disc (the hammer of ``hitting``: a bar), the
thing hit a grey block, floor or wall, on a textured background with pixel noise; colours
random per clip.
"""
import numpy as np

FRAME_SIZE_PIXELS = 64
FRAMES_PER_SECOND = 12
AUDIO_SAMPLE_RATE_HZ = 44100     # the seed's rate (its sigma of 200 samples is at 44.1 kHz)
CLIP_SECONDS = (3.0, 4.0)
SPEED_RANGE = (0.8, 2.4)         # frame widths per second at contact
MIN_GAP_S = 0.7                  # between contacts (and a click's distance to any contact)
EDGE_S = 0.45                    # no contact closer than this to either end of the clip
CONTACT_COUNTS = ((1, 0.6), (2, 0.25), (3, 0.15))
CLICK_PROBABILITY = 0.2
SILENT_HIT_PROBABILITY = 0.15
MAX_GAP = 0.55                   # frame widths: the object starts at most this far away
GRAVITY = 4.0                    # frame widths / s^2 (dropping, bouncing)
NOISE_RMS_RANGE = (0.002, 0.012)  # background noise, full scale 1 (step 09's floor: 0.05)

# class -> (axis of motion, how the object approaches, what it does after a contact)
#   approach: "linear" (constant speed) | "fall" (gravity from rest at the top of the fall)
#   after: rebound factor of the speed (0 = stays at rest, then is lifted slowly)
CLASSES = {
    "hitting_block":      dict(axis="down", approach="linear", rebound=0.5, shape="bar"),
    "dropping_onto_floor": dict(axis="down", approach="fall", rebound=0.0, shape="disc"),
    "throwing_against_wall": dict(axis="right", approach="linear", rebound=0.5, shape="disc"),
    "colliding_discs":    dict(axis="pair", approach="linear", rebound=0.6, shape="disc"),
    "bouncing_ball":      dict(axis="down", approach="fall", rebound=0.7, shape="disc"),
    "pushing_into_block": dict(axis="left", approach="linear", rebound=0.0, shape="disc"),
}
LIFT_SPEED = 0.25                # frame widths / s: a resting object is taken back slowly
REST_S = 0.25                    # ... after resting this long


def class_names():
    return list(CLASSES)


def plan_contacts(rng, seconds):
    """Contact times (sorted) and speeds, and the clip's nuisances.

    Returns:
      dict: contacts [(time s, speed)], silent (index of the silent contact or None),
      click (time s or None).
    """
    counts, probs = zip(*CONTACT_COUNTS)
    n = int(rng.choice(counts, p=probs))
    lo, hi = EDGE_S, seconds - EDGE_S
    n = min(n, int((hi - lo) // MIN_GAP_S) + 1)
    while True:
        times = np.sort(rng.uniform(lo, hi, n))
        if n == 1 or np.min(np.diff(times)) >= MIN_GAP_S:
            break
    speeds = rng.uniform(*SPEED_RANGE, n)
    silent = int(rng.integers(n)) if rng.uniform() < SILENT_HIT_PROBABILITY else None
    click = None
    if rng.uniform() < CLICK_PROBABILITY:
        for _ in range(50):
            t = rng.uniform(0.15, seconds - 0.15)
            if np.min(np.abs(times - t)) >= MIN_GAP_S:
                click = float(t)
                break
    return dict(contacts=[(float(t), float(v)) for t, v in zip(times, speeds)],
                silent=silent, click=click)


def events(plan):
    """The manifest's events of a plan, in time order: {time, kind, speed}."""
    out = [dict(time=round(t, 6), kind="silent_hit" if k == plan["silent"] else "hit",
                speed=round(v, 4)) for k, (t, v) in enumerate(plan["contacts"])]
    if plan["click"] is not None:
        out.append(dict(time=round(plan["click"], 6), kind="click", speed=0.0))
    return sorted(out, key=lambda e: e["time"])


# ---------------------------------------------------------------- motion

def _approach(tau, speed, how):
    """Gap before a contact, tau = seconds until it (>= 0)."""
    if how == "linear":
        return speed * tau
    apex = speed / GRAVITY           # falling from rest for `apex` seconds ends at `speed`
    t = np.minimum(tau, apex)
    return speed * t - 0.5 * GRAVITY * t ** 2


def _after(tau, speed, spec):
    """Gap after a contact, tau = seconds since it (>= 0)."""
    if spec["rebound"] == 0:
        return LIFT_SPEED * np.maximum(0.0, tau - REST_S)
    v = spec["rebound"] * speed
    if spec["approach"] == "fall":   # up to the arc's top, where a hand catches it
        t = np.minimum(tau, v / GRAVITY)
        return v * t - 0.5 * GRAVITY * t ** 2
    return v * tau


def gap(t, plan, spec):
    """The object's distance to what it hits at times t (seconds) -> [len(t)], frame widths.

    The nearest constraint wins: before each contact the approach, after it the move off
    (min over contacts), capped at MAX_GAP."""
    t = np.asarray(t, np.float64)
    g = np.full(t.shape, MAX_GAP)
    for tc, v in plan["contacts"]:
        before, after = t <= tc, t > tc
        g[before] = np.minimum(g[before], _approach(tc - t[before], v, spec["approach"]))
        g[after] = np.minimum(g[after], _after(t[after] - tc, v, spec))
    return np.clip(g, 0.0, MAX_GAP)


def make_frames(rng, class_name, plan, n_frames, size=FRAME_SIZE_PIXELS, fps=FRAMES_PER_SECOND):
    """uint8 [n_frames, size, size, 3] RGB: the scene of the class, the object at gap(t)."""
    spec = CLASSES[class_name]
    t = np.arange(n_frames) / fps
    g = gap(t, plan, spec)
    u = (np.arange(size) + 0.5) / size
    yy, xx = np.meshgrid(u, u, indexing="ij")                       # [H, W] frame units
    bg = rng.uniform(0.15, 0.85, 3)
    texture = 0.06 * np.sin(2 * np.pi * (rng.uniform(1, 3) * xx + rng.uniform(1, 3) * yy)
                            + rng.uniform(0, 6.3))
    obj = rng.uniform(0, 1, 3)
    while np.linalg.norm(obj - bg) < 0.4:
        obj = rng.uniform(0, 1, 3)
    grey = np.full(3, rng.uniform(0.35, 0.6))
    r = rng.uniform(0.07, 0.1)                                       # disc radius
    base = (bg + texture[..., None]).astype(np.float32)              # [H, W, 3]
    # the thing hit: a mask, and where its surface is
    axis = spec["axis"]
    if axis == "down":
        surface = rng.uniform(0.75, 0.85)
        block = yy >= surface
        if class_name == "hitting_block":
            block &= np.abs(xx - 0.5) < 0.2
        centre_fixed = rng.uniform(0.35, 0.65)
    elif axis == "right":
        surface = rng.uniform(0.78, 0.88)
        block = xx >= surface
        centre_fixed = rng.uniform(0.35, 0.65)
    elif axis == "left":
        surface = rng.uniform(0.12, 0.22)
        block = (xx <= surface) & (np.abs(yy - 0.6) < 0.15)
        centre_fixed = 0.6
    else:                                                            # two discs meet
        surface, block, centre_fixed = 0.5, np.zeros_like(xx, bool), rng.uniform(0.35, 0.65)
    base[block] = grey
    out = np.empty((n_frames, size, size, 3), np.float32)
    for k in range(n_frames):
        frame = base.copy()
        d = g[k]
        if axis == "down":
            if spec["shape"] == "bar":                              # a hammer head coming down
                mask = (np.abs(xx - 0.5) < 0.12) & (yy <= surface - d) & (yy >= surface - d - 0.12)
                mask |= (np.abs(xx - 0.5) < 0.025) & (yy < surface - d - 0.12)
            else:
                cy = surface - d - r
                mask = (xx - centre_fixed) ** 2 + (yy - cy) ** 2 <= r ** 2
        elif axis == "right":
            cx = surface - d - r
            mask = (xx - cx) ** 2 + (yy - centre_fixed) ** 2 <= r ** 2
        elif axis == "left":
            cx = surface + d + r
            mask = (xx - cx) ** 2 + (yy - centre_fixed) ** 2 <= r ** 2
        else:
            half = d / 2 + r
            mask = ((xx - 0.5 + half) ** 2 + (yy - centre_fixed) ** 2 <= r ** 2) | \
                   ((xx - 0.5 - half) ** 2 + (yy - centre_fixed) ** 2 <= r ** 2)
        frame[mask] = obj
        out[k] = frame
    out += rng.uniform(0.01, 0.04) * rng.standard_normal(out.shape, dtype=np.float32)
    return np.round(np.clip(out, 0, 1) * 255).astype(np.uint8)


# ---------------------------------------------------------------- sound

def impact_sound(rng, sr, amplitude):
    """A knock: a noise burst and a damped resonance, decaying in 15-60 ms. float [n]"""
    n = int(0.25 * sr)
    t = np.arange(n) / sr
    decay = rng.uniform(0.015, 0.06)
    env = np.exp(-t / decay) * np.minimum(1.0, t / 0.0005)
    f = rng.uniform(250.0, 2500.0)
    x = 0.6 * np.sin(2 * np.pi * f * t + rng.uniform(0, 6.3)) + 0.4 * rng.standard_normal(n)
    x *= env
    return amplitude * x / (np.abs(x).max() + 1e-12)


def click_sound(rng, sr, amplitude):
    """A camera click: two sharp broadband ticks 20-40 ms apart, each about 8 ms. float [n]"""
    n = int(0.06 * sr)
    x = np.zeros(n)
    for start in (0.0, rng.uniform(0.02, 0.04)):
        i, m = int(start * sr), int(0.008 * sr)
        x[i:i + m] += rng.standard_normal(m) * np.exp(-np.arange(m) / (0.004 * sr))
    return amplitude * x / (np.abs(x).max() + 1e-12)


def make_sound(rng, plan, seconds, sr=AUDIO_SAMPLE_RATE_HZ):
    """float32 [n_samples, 1] in [-1, 1]: an impact per heard contact, the click, noise."""
    n = int(round(seconds * sr))
    out = np.zeros(n)
    top = SPEED_RANGE[1]

    def add(t0, event):
        i = int(round(t0 * sr))
        m = min(len(event), n - i)
        if m > 0:
            out[i:i + m] += event[:m]
    for k, (tc, v) in enumerate(plan["contacts"]):
        sound = impact_sound(rng, sr, 0.85 * v / top)
        if k != plan["silent"]:
            add(tc, sound)
    if plan["click"] is not None:
        add(plan["click"], click_sound(rng, sr, rng.uniform(0.6, 1.0)))
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.maximum(np.fft.rfftfreq(n, 1 / sr), 20.0)
    noise = np.fft.irfft(spectrum / f ** (rng.uniform(0, 1.5) / 2), n)
    noise *= rng.uniform(*NOISE_RMS_RANGE) / (np.sqrt(np.mean(noise ** 2)) + 1e-12)
    return np.clip(out + noise, -1, 1).astype(np.float32)[:, None]
