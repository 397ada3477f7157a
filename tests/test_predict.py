"""scripts/predict.py: a train.py checkpoint applied to real media files and a folder."""
import json

import numpy as np
import pytest
import torch

from soundtrack import audio
from soundtrack import datafiles
from soundtrack import media
from soundtrack import metrics
from conftest import load_script, make_video, sine, write_feature_folder

import train
from soundtrack import inference

predict = load_script("predict")
step04 = load_script("04_make_datalists")
CLASSES = ["high", "low", "mid"]            # sorted, as step 01 numbers them
TONE_HZ = {"low": 300.0, "mid": 1000.0, "high": 3000.0}


def noisy_tone(seconds, hz, rng):
    return sine(seconds, hz * (1 + 0.03 * rng.standard_normal()), amplitude=0.3) + \
        rng.normal(0, 0.01, int(seconds * 16000)).astype(np.float32)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """best.pt of a slim_cnn that train.py taught to tell three tones apart."""
    root = tmp_path_factory.mktemp("tones")
    rng = np.random.default_rng(0)
    lists = root / "file_lists" / "tones"
    rows, tracks = [], {}
    for label, name in enumerate(CLASSES):
        for i in range(8):
            vid = f"train/{name}/clip{i}"
            tracks[vid] = audio.log_mel_patches(noisy_tone(2.0, TONE_HZ[name], rng), 16000)
            rows.append((vid, label))
    write_feature_folder(root / "data" / "tones" / "features", tracks)
    datafiles.write_lines(lists / "classes.txt", CLASSES)
    datafiles.write_lines(lists / "train_videos.txt", [f"{v}\t{c}" for v, c in rows])
    datafiles.write_lines(lists / "train_16000hz_mono_audio.txt", [v for v, _ in rows])
    common = ["--dataset", "tones", "--data-root", str(root / "data"),
              "--output-root", str(root)]
    step04.main(common + ["--splits", "train"])
    train.main(common + ["--run", "r", "--epochs", "10", "--batch-size", "8",
                         "--learning-rate", "0.003", "--minival-fraction", "0",
                         "--no-scoring"])
    return root / "runs" / "tones" / "r" / "best.pt"


def test_top5_of_video_wav_and_folder(checkpoint, ffmpeg, tmp_path, capsys):
    rng = np.random.default_rng(1)
    media_dir = tmp_path / "media"
    video = make_video(ffmpeg, media_dir / "a" / "high.mp4", seconds=2.0, freq=3000)
    low = media_dir / "b" / "low.wav"
    wav = media_dir / "b" / "c" / "short.wav"         # 0.5 s: shorter than one patch
    wav.parent.mkdir(parents=True)
    media.write_wav(low, (noisy_tone(2.0, 300.0, rng) * 32767).astype(np.int16), 16000)
    media.write_wav(wav, (noisy_tone(0.5, 1000.0, rng) * 32767).astype(np.int16), 16000)
    (media_dir / "b" / "broken.mp4").write_bytes(b"not a video at all")
    (media_dir / "b" / "notes.txt").write_text("not media")   # not searched for
    out = tmp_path / "p.json"

    rc = predict.main([str(checkpoint), str(media_dir), str(tmp_path / "gone.wav"),
                       "--out", str(out)])
    assert rc == predict.EXIT_SOME_FAILED
    result = json.loads(out.read_text())
    files = {r["path"]: r for r in result["files"]}
    assert set(files) == {str(video), str(low), str(wav)} and result["classes"] == CLASSES
    for r in files.values():
        probs = [p for _, p in r["top5"]]
        assert len(r["top5"]) == len(CLASSES) and probs == sorted(probs, reverse=True)
        assert sum(probs) == pytest.approx(1.0, abs=1e-4)
    assert files[str(video)]["top5"][0][0] == "high" and files[str(video)]["n_patches"] == 2
    assert files[str(low)]["top5"][0][0] == "low"
    assert files[str(wav)]["n_patches"] == 1 and files[str(wav)]["note"].startswith("padded")
    failed = {f["path"]: f for f in result["failed"]}
    assert set(failed) == {str(media_dir / "b" / "broken.mp4"), str(tmp_path / "gone.wav")}
    assert "not a readable media file" in failed[str(media_dir / "b" / "broken.mp4")]["reason"]
    assert failed[str(tmp_path / "gone.wav")]["reason"] == "file does not exist"
    printed = capsys.readouterr().out
    assert "FAILED" in printed and "high" in printed

    # The same numbers by another road: the wav read directly, padded, the model's softmax.
    clf = inference.Classifier(checkpoint)
    x, rate = media.read_wav(wav)
    x = np.pad(x, (0, audio.VGGISH.one_patch_samples - len(x)))
    with torch.no_grad():
        logits = clf.model(torch.from_numpy(audio.log_mel_patches(x, rate))[:, None])["logits"]
    want = metrics.softmax(logits.numpy()).mean(0)
    got = dict(files[str(wav)]["top5"])
    assert [got[c] for c in CLASSES] == pytest.approx(want.tolist(), abs=1e-5)


def test_checkpoint_without_a_fitting_front_end_is_refused(checkpoint, tmp_path):
    ckpt = torch.load(checkpoint, weights_only=False)
    no_record = {k: v for k, v in ckpt.items() if k != "front_end"}
    torch.save(no_record, tmp_path / "old.pt")
    with pytest.raises(ValueError, match="no front_end"):
        inference.Classifier(tmp_path / "old.pt")
    # a record whose patches are not what the model was trained on
    misfit = dict(ckpt, front_end=audio.front_end("vggish", num_bands=32).to_dict())
    torch.save(misfit, tmp_path / "misfit.pt")
    with pytest.raises(ValueError, match=r"trained on patches \[64, 96\], its front end makes "
                                         r"\[32, 96\]"):
        inference.Classifier(tmp_path / "misfit.pt")
    with pytest.raises(SystemExit):
        predict.main([str(tmp_path / "misfit.pt"), str(tmp_path)])


def test_predict_uses_the_checkpoints_front_end_not_config(checkpoint, tmp_path, monkeypatch):
    """A checkpoint of another front end (here: log offset 0.1, stereo first channel) is
    applied with ITS front end, whatever config.py says."""
    import config
    other = audio.front_end("vggish", log_offset=0.1, channels="first")
    ckpt = torch.load(checkpoint, weights_only=False)
    torch.save(dict(ckpt, front_end=other.to_dict()), tmp_path / "other.pt")
    monkeypatch.setattr(config, "LOG_OFFSET", 0.5)          # must not matter
    clf = inference.Classifier(tmp_path / "other.pt")
    assert clf.front_end == other
    rng = np.random.default_rng(3)
    stereo = np.stack([noisy_tone(2.0, 300.0, rng), noisy_tone(2.0, 3000.0, rng)], axis=1)
    patches, note = clf.patches(stereo, 16000)
    # rounded to the dtype step 03 stored the training features in (recorded in the checkpoint)
    assert clf.feature_dtype == "float16"
    np.testing.assert_array_equal(patches[:, 0], audio.features(stereo[:, 0], 16000, other)
                                  .astype(np.float16).astype(np.float32))
    assert note == "" and not np.allclose(patches[:, 0],
                                          audio.log_mel_patches(stereo[:, 0], 16000))
