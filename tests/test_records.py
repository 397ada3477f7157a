"""records.check refuses a result whose record disagrees with what it is combined with, naming
both files, through the project's own front-end and frame-settings comparisons."""
import pytest

from soundtrack import audio
from soundtrack import frames
from soundtrack import records


def record(**kw):
    r = records.new("train.py", "audio", ["a", "b"], model="slim_cnn",
                    front_end=audio.VGGISH.to_dict(), **kw)
    r["splits"]["val"] = {"rows": 3}
    return r


def test_a_matching_record_passes_and_each_disagreement_is_named():
    fe = audio.VGGISH.to_dict()
    records.check(record(), "r.json", classes=["a", "b"], split="val", rows=3, front_end=fe,
                  settings_where="ckpt.pt")
    with pytest.raises(ValueError, match=r"r.json records 2 classes, classes.txt has 2; they "
                                         r"differ first at column 1 \('b' vs 'c'\)"):
        records.check(record(), "r.json", classes=["a", "c"])
    with pytest.raises(ValueError, match=r"r.json holds no 'test' split"):
        records.check(record(), "r.json", split="test")
    with pytest.raises(ValueError, match=r"split 'val' was written with 3 rows, .* hold 4"):
        records.check(record(), "r.json", split="val", rows=4)
    other = audio.front_end("vggish", log_offset=0.1).to_dict()
    with pytest.raises(ValueError, match=r"front ends differ: .*log_offset.*r.json.*ckpt.pt"):
        records.check(record(), "r.json", front_end=other, settings_where="ckpt.pt")
    two, four = frames.FrameSettings("2", 32, 3), frames.FrameSettings("4", 32, 3)
    visual = record(frames=two.to_dict())
    records.check(visual, "r.json", frames=two.to_dict(), settings_where="ckpt.pt")
    with pytest.raises(ValueError, match=r"frame settings differ: .*r.json.*ckpt.pt"):
        records.check(visual, "r.json", frames=four.to_dict(), settings_where="ckpt.pt")
