"""Step 06: video scores are matched to audio tracks by id, never by row position."""
import json

import numpy as np
import pytest

from conftest import load_script

from soundtrack import datafiles

match06 = load_script("06_match_video_to_audio")

CLASSES = ["applause", "barking", "drumming", "engine"]
N_CLASSES = len(CLASSES)


def score_of(video_id):
    """A row that identifies its video: column c holds id_number * 10 + c."""
    k = int(video_id.rsplit("_", 1)[1])
    return np.arange(N_CLASSES, dtype=np.float32) + 10.0 * k


def setup(tmp_path, video_ids, audio_ids, classes=CLASSES, rows=None):
    """Write classes.txt, video scores + ids beside them, audio ids; return argv pieces."""
    datafiles.write_lines(tmp_path / "classes.txt", classes)
    scores = np.stack([score_of(i) for i in video_ids]) if rows is None else rows
    np.save(tmp_path / "video_scores.npy", scores)
    datafiles.write_lines(tmp_path / "video_ids.txt", video_ids)
    datafiles.write_lines(tmp_path / "audio_ids.txt", audio_ids)
    return ["--classes", str(tmp_path / "classes.txt"),
            "--video-scores", str(tmp_path / "video_scores.npy"),
            "--audio-ids", str(tmp_path / "audio_ids.txt"),
            "--out", str(tmp_path / "out" / "v_matched.npy")]


def read_out(tmp_path):
    out = tmp_path / "out" / "v_matched.npy"
    scores = np.load(out)
    ids = datafiles.read_ids(datafiles.ids_path_for(out))
    report = json.loads((tmp_path / "out" / "v_matched_match_report.json").read_text())
    return scores, ids, report


def ids(n, prefix="val/c/v"):
    return [f"{prefix}_{k}" for k in range(n)]


def test_shuffled_video_rows_are_matched_by_id(tmp_path):
    audio = ids(8)
    video = [audio[k] for k in np.random.default_rng(0).permutation(8)]
    assert video != audio  # positional matching would pair wrong rows
    match06.main(setup(tmp_path, video, audio))  # ids file found beside the scores
    scores, out_ids, report = read_out(tmp_path)
    assert out_ids == audio
    assert scores.dtype == np.float32 and scores.shape == (8, N_CLASSES)
    np.testing.assert_array_equal(scores, np.stack([score_of(i) for i in audio]))
    assert report["n_matched"] == 8 and report["audio_without_video"]["count"] == 0


def test_missing_audio_ids_are_an_error_unless_allowed(tmp_path):
    audio = ids(6)
    video = [audio[k] for k in (5, 3, 1, 0)] + ["val/c/v_9"]  # no 2, 4; one silent video
    argv = setup(tmp_path, video, audio)
    with pytest.raises(ValueError, match=r"2 of 6 audio ids.*v_2.*--allow-missing"):
        match06.main(argv)
    match06.main(argv + ["--allow-missing"])
    scores, out_ids, report = read_out(tmp_path)
    assert out_ids == [audio[k] for k in (0, 1, 3, 5)]
    np.testing.assert_array_equal(scores, np.stack([score_of(i) for i in out_ids]))
    assert report["dropped_audio_ids"] == ["val/c/v_2", "val/c/v_4"]
    assert report["video_without_audio"] == {"count": 1, "first": ["val/c/v_9"]}


def test_duplicate_ids_identical_rows_kept_once_else_error(tmp_path):
    audio = ids(4)
    video = [audio[3], audio[1], audio[0], audio[1], audio[2]]  # v_1 twice, same row
    match06.main(setup(tmp_path, video, audio))
    scores, out_ids, report = read_out(tmp_path)
    np.testing.assert_array_equal(scores, np.stack([score_of(i) for i in audio]))
    assert report["duplicate_video_ids"]["count"] == 1
    assert report["duplicate_video_ids"]["rows"] == {"val/c/v_1": [1, 3]}

    rows = np.stack([score_of(i) for i in video])
    rows[3] += 1  # the second v_1 row differs: which one is right?
    argv = setup(tmp_path, video, audio, rows=rows)
    with pytest.raises(ValueError, match=r"id 'val/c/v_1'.*rows \[1, 3\]"):
        match06.main(argv)


def test_permuted_video_classes_are_reordered_by_name(tmp_path):
    audio = ids(5)
    perm = [2, 0, 3, 1]  # video column j holds class CLASSES[perm[j]]
    rows = np.stack([score_of(i) for i in audio])  # class c's value in column c ...
    video_rows = np.empty_like(rows)                # ... moved to the column naming c
    for j, c in enumerate(perm):
        video_rows[:, j] = rows[:, c]
    argv = setup(tmp_path, audio[::-1], audio, rows=video_rows[::-1].copy())
    datafiles.write_lines(tmp_path / "video_classes.txt", [CLASSES[c] for c in perm])
    match06.main(argv + ["--video-classes", str(tmp_path / "video_classes.txt")])
    scores, out_ids, _ = read_out(tmp_path)
    np.testing.assert_array_equal(scores, rows)  # columns back in classes.txt order

    bad = [CLASSES[c] for c in perm[:-1]] + ["yodelling"]
    datafiles.write_lines(tmp_path / "video_classes.txt", bad)
    with pytest.raises(ValueError, match=r"video_classes.txt:4: class 'yodelling'"):
        match06.main(argv + ["--video-classes", str(tmp_path / "video_classes.txt")])
    with pytest.raises(ValueError, match=r"has 4 columns"):
        datafiles.write_lines(tmp_path / "video_classes.txt", CLASSES[:3])
        match06.main(argv + ["--video-classes", str(tmp_path / "video_classes.txt")])


def test_video_list_order_mode(tmp_path):
    """Without an ids file, row k is the k-th video of --video-list (upstream's layout)."""
    listed = ids(6)
    audio = [listed[k] for k in (4, 0, 2, 5)]  # tracks in another order, 1 and 3 silent
    argv = setup(tmp_path, listed, audio)
    (tmp_path / "video_ids.txt").unlink()
    datafiles.write_lines(tmp_path / "val_videos.txt", [f"{i}\t0" for i in listed])
    argv += ["--video-list", str(tmp_path / "val_videos.txt")]
    match06.main(argv)
    scores, out_ids, report = read_out(tmp_path)
    assert out_ids == audio
    np.testing.assert_array_equal(scores, np.stack([score_of(i) for i in audio]))
    assert "order of" in report["video_ids"]
    assert report["video_without_audio"]["count"] == 2

    datafiles.write_lines(tmp_path / "val_videos.txt", [f"{i}\t0" for i in listed[:5]])
    with pytest.raises(ValueError, match=r"6 rows but the video list .*val_videos.txt has 5"):
        match06.main(argv)


def test_errors_name_the_file_and_row(tmp_path):
    audio = ids(3)
    argv = setup(tmp_path, audio, audio)
    bad = np.stack([score_of(i) for i in audio])
    bad[1, 2] = np.nan
    np.save(tmp_path / "video_scores.npy", bad)
    with pytest.raises(ValueError, match=r"video_scores.npy: non-finite value .* row 1"):
        match06.main(argv)

    np.save(tmp_path / "video_scores.npy", np.zeros((3, N_CLASSES + 1), np.float32))
    with pytest.raises(ValueError, match=r"video_scores.npy: 5 columns but .*classes.txt "
                                         r"has 4 classes"):
        match06.main(argv)

    (tmp_path / "video_scores.npy").write_bytes(b"not an npy file")
    with pytest.raises(ValueError, match=r"video_scores.npy: cannot read"):
        match06.main(argv)

    np.save(tmp_path / "video_scores.npy", np.zeros((2, N_CLASSES), np.float32))
    with pytest.raises(ValueError, match=r"video_scores.npy: 2 rows but .*video_ids.txt has 3"):
        match06.main(argv)

    setup(tmp_path, audio, [])
    with pytest.raises(ValueError, match=r"none of the 0 audio ids"):
        match06.main(argv)
