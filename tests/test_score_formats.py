"""Step 06 takes the score files users have: .npy (+ ids), .npz, .csv / .tsv and MMAction2's
.pkl dump give the same matched matrix; a pickle that names anything else is refused and
never run; a table whose header classes are not classes.txt's is refused, naming them."""
import pickle

import numpy as np
import pytest
import torch

from conftest import load_script
from soundtrack import datafiles
from soundtrack import score_files

match06 = load_script("06_match_video_to_audio")
CLASSES = ["abseiling", "air drumming", "zumba"]          # a class name with a space
NAMES = ["0wR5jVB-WPk_000417_000427", "3caPS4FHFF8_000036_000046", "b3d9_000010_000020",
         "zz_000001_000011"]
LABELS = [0, 1, 2, 1]


def video_ids():
    """Kinetics-style ids as step 01 makes them: <split>/<class folder>/<name>."""
    return [f"val/{CLASSES[y].replace(' ', '_')}/{n}" for n, y in zip(NAMES, LABELS)]


@pytest.fixture
def data(tmp_path):
    rng = np.random.default_rng(0)
    scores = rng.random((len(NAMES), len(CLASSES))).astype(np.float32)
    datafiles.write_lines(tmp_path / "classes.txt", CLASSES)
    audio = video_ids()[1:][::-1]                     # the first video has no sound track
    datafiles.write_lines(tmp_path / "audio_ids.txt", audio)
    expected = scores[[video_ids().index(i) for i in audio]]
    return tmp_path, scores, audio, expected


def run(tmp_path, scores_file, **kw):
    matched, ids, report, _ = match06.match(scores_file, tmp_path / "audio_ids.txt",
                                            tmp_path / "classes.txt", **kw)
    return matched, ids, report


def mmaction_list(path, with_frames=False):
    """MMAction2's annotation file: 'path label' or 'path n_frames label' per video."""
    lines = [f"{CLASSES[y].replace(' ', '_')}/{n}.mp4" + (" 300" if with_frames else "")
             + f" {y}" for n, y in zip(NAMES, LABELS)]
    datafiles.write_lines(path, lines)
    return path


def test_every_format_gives_the_same_matched_matrix(data):
    tmp, scores, audio, expected = data
    ids = video_ids()
    got = {}
    datafiles.save_npy(tmp / "v_scores.npy", scores)
    datafiles.write_lines(tmp / "v_ids.txt", ids)
    got["npy"] = run(tmp, tmp / "v_scores.npy", video_ids_path=tmp / "v_ids.txt")
    np.savez(tmp / "v.npz", scores=scores, ids=np.array(ids))
    got["npz"] = run(tmp, tmp / "v.npz")
    order = [2, 0, 1]                                  # the header in another column order
    for ext, sep in ((".csv", ","), (".tsv", "\t")):
        lines = [sep.join(["id"] + [CLASSES[c] for c in order])]
        lines += [sep.join([i] + [repr(float(scores[r, c])) for c in order])
                  for r, i in enumerate(ids)]
        (tmp / f"v{ext}").write_text("\n".join(lines) + "\n")
        got[ext] = run(tmp, tmp / f"v{ext}")
    # MMAction2 1.x: dicts with torch tensors; 1.0rc: pred_scores/item; 0.x: bare arrays
    dump = [{"pred_score": torch.from_numpy(scores[0]), "gt_label": torch.tensor([0])},
            {"pred_scores": {"item": torch.from_numpy(scores[1])}},
            scores[2].copy(), {"pred_score": scores[3].copy()}]
    with open(tmp / "results.pkl", "wb") as f:
        pickle.dump(dump, f)
    got["pkl"] = run(tmp, tmp / "results.pkl", match_ids="basename",
                     video_list_path=mmaction_list(tmp / "val_list.txt", with_frames=True))
    got["pkl 2 columns"] = run(tmp, tmp / "results.pkl", match_ids="basename",
                               video_list_path=mmaction_list(tmp / "val_list2.txt"))
    for name, (matched, out_ids, report) in got.items():
        assert out_ids == audio, name
        np.testing.assert_array_equal(matched, expected, err_msg=name)
        assert report["video_without_audio"]["count"] == 1, name


def _planted(path):
    """What a malicious pickle would run: it must never be called."""
    with open(path, "w") as f:
        f.write("ran")
    return [np.zeros(3)]


class Planted:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (_planted, (self.path,))


def test_a_pickle_naming_any_other_object_is_refused_and_never_run(data):
    tmp, _, _, _ = data
    marker = tmp / "ran.txt"
    with open(tmp / "evil.pkl", "wb") as f:
        pickle.dump([Planted(str(marker))], f)
    mmaction_list(tmp / "val_list.txt")
    with pytest.raises(ValueError, match=r"evil.pkl: refused to load .*_planted"):
        run(tmp, tmp / "evil.pkl", video_list_path=tmp / "val_list.txt", match_ids="basename")
    assert not marker.exists()
    with open(tmp / "evil2.pkl", "wb") as f:                 # a builtin is no better
        pickle.dump(eval, f)
    with pytest.raises(ValueError, match=r"refused to load builtins.eval"):
        score_files.read_pickle(tmp / "evil2.pkl")
    (tmp / "junk.pkl").write_bytes(b"not a pickle at all")
    with pytest.raises(ValueError, match=r"junk.pkl: not a readable pickle"):
        score_files.read_pickle(tmp / "junk.pkl")


def test_a_table_with_other_classes_is_refused_naming_them(data):
    tmp, scores, _, _ = data
    (tmp / "v.csv").write_text("id,abseiling,air_drumming,zumba,yodelling\n"
                               + "".join(f"{i},1,2,3,4\n" for i in video_ids()))
    with pytest.raises(ValueError, match=r"v.csv: its header's classes are not those of "
                                         r"classes.txt: 1 missing \(\['air drumming'\]\), 2 "
                                         r"not in classes.txt \(\['air_drumming', 'yodelling'\]"):
        run(tmp, tmp / "v.csv")


def test_format_errors_are_one_line_naming_the_file(data):
    tmp, scores, _, _ = data
    np.savez(tmp / "bad.npz", logits=scores)
    with pytest.raises(ValueError, match=r"bad.npz: an .npz of scores needs arrays 'scores' "
                                         r"\[n, n_classes\] and 'ids' \[n\]; it holds \['logits'\]"):
        run(tmp, tmp / "bad.npz")
    (tmp / "v.json").write_text("{}")
    with pytest.raises(ValueError, match=r"v.json: unknown score file type '.json'"):
        run(tmp, tmp / "v.json")
    with open(tmp / "short.pkl", "wb") as f:
        pickle.dump([{"pred_score": scores[0]}], f)
    mmaction_list(tmp / "val_list.txt")
    with pytest.raises(ValueError, match=r"short.pkl: 1 rows but the video list .*val_list.txt "
                                         r"has 4 videos"):
        run(tmp, tmp / "short.pkl", video_list_path=tmp / "val_list.txt", match_ids="basename")


def test_basename_matching_needs_unique_names(data):
    tmp, scores, _, _ = data
    ids = video_ids()
    ids[1] = "train/zumba/" + NAMES[0]                 # two videos named alike
    np.savez(tmp / "v.npz", scores=scores, ids=np.array(ids))
    with pytest.raises(ValueError, match=r"--match-ids basename: 1 file names stand on "
                                         r"several ids of .*v.npz.* \(4 ids, 3 names\)"):
        run(tmp, tmp / "v.npz", match_ids="basename")
    # exact matching is the default: names in other folders do not match
    np.savez(tmp / "w.npz", scores=scores, ids=np.array([f"x/{n}" for n in NAMES]))
    with pytest.raises(ValueError, match="none of the 3 audio ids"):
        run(tmp, tmp / "w.npz")
    matched, out_ids, _ = run(tmp, tmp / "w.npz", match_ids="basename")
    assert out_ids == datafiles.read_ids(tmp / "audio_ids.txt") and len(matched) == 3
