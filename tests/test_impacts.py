"""The impacts demo's generator: contacts are where the motion says, sounds where the
manifest says (silent hits silent, clicks heard), loudness follows speed; step 00's kind."""
import json

import numpy as np
import pytest

from soundtrack.envelope import target
from soundtrack.envelope import impacts
from conftest import load_script

step00 = load_script("00_make_demo_dataset")
PLAN = dict(contacts=[(0.8, 1.0), (2.0, 2.4)], silent=None, click=None)


@pytest.mark.parametrize("name", impacts.class_names())
def test_the_gap_closes_exactly_at_each_contact(name):
    spec = impacts.CLASSES[name]
    tc = np.array([t for t, _ in PLAN["contacts"]])
    assert np.allclose(impacts.gap(tc, PLAN, spec), 0.0)
    before = impacts.gap(tc - 0.15, PLAN, spec)
    assert np.all(before > 0.05)                  # it was moving in, visibly (frame widths)
    t = np.linspace(0, 3, 601)
    g = impacts.gap(t, PLAN, spec)
    approach = np.diff(g[(t > 0.5) & (t < 0.8)])
    assert np.all(approach <= 0) and np.all(approach[-10:] < 0)   # closing in on contact 1


def _level(x, sr, t):
    s = target.smoothed_magnitude(x[:, 0], sr, 200 / 44100)
    i = int(t * sr)
    return s[i:i + int(0.05 * sr)].max()


def test_sounds_follow_the_plan():
    sr = impacts.AUDIO_SAMPLE_RATE_HZ
    plan = dict(contacts=[(0.5, 0.8), (1.5, 2.4), (2.5, 2.4)], silent=2, click=3.2)
    x = impacts.make_sound(np.random.default_rng(0), plan, 3.6)
    noise = _level(x, sr, 0.1)
    soft, loud, silent, click = (_level(x, sr, t) for t in (0.5, 1.5, 2.5, 3.2))
    assert loud > 1.5 * soft > 3 * noise          # louder for the faster contact
    assert silent < 2 * noise                      # the silent hit makes no sound
    assert click > 3 * noise                       # the click does, with no picture
    events = impacts.events(plan)
    assert [e["kind"] for e in events] == ["hit", "hit", "silent_hit", "click"]


def test_step00_impacts_kind_writes_videos_and_the_events_manifest(tmp_path):
    step00.main(["--dataset-kind", "impacts", "--dataset", "imp", "--data-root", str(tmp_path),
                 "--videos-per-class", "1", "--workers", "2"])
    root = tmp_path / "imp" / "videos"
    manifest = json.loads((root / "impacts_manifest.json").read_text())
    assert len(manifest["videos"]) == 2 * len(impacts.class_names())
    for v in manifest["videos"]:
        assert (root / (v["id"] + ".mp4")).stat().st_size > 0
        assert all(0 < e["time"] < v["seconds"] for e in v["events"])
        assert sum(e["kind"] != "click" for e in v["events"]) >= 1
    first = (root / (manifest["videos"][0]["id"] + ".mp4")).read_bytes()
    (root / (manifest["videos"][0]["id"] + ".mp4")).unlink()
    step00.main(["--dataset-kind", "impacts", "--dataset", "imp", "--data-root", str(tmp_path),
                 "--videos-per-class", "1", "--workers", "1"])
    assert (root / (manifest["videos"][0]["id"] + ".mp4")).read_bytes() == first
