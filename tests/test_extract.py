"""Steps 01-04 on real mp4 files made with ffmpeg, including every kind of bad input."""
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, SHARED_DATA, load_script, make_video

step01 = load_script("01_make_file_lists")
step02 = load_script("02_extract_audio")
step03 = load_script("03_make_audio_images")
step04 = load_script("04_make_datalists")

ODD_NAMES = ["with space", "it's \"quoted\"", "ünïcødé_名前", "-leading-dash", "a:colon"]


@pytest.fixture(scope="module")
def bad_root(tmp_path_factory, ffmpeg):
    """A Kinetics-layout root whose val split holds one of each bad input."""
    root = tmp_path_factory.mktemp("videos")
    for c in ("tone", "noise"):
        for i in range(2):
            make_video(ffmpeg, root / "train" / c / f"t{i}.mp4", 1.5,
                       audio="sine" if c == "tone" else "noise")
    v = root / "val" / "tone"
    make_video(ffmpeg, v / "good.mp4", 2.0)
    make_video(ffmpeg, v / "stereo_44k.mp4", 2.0, rate=44100, channels=2)
    make_video(ffmpeg, v / "surround_48k.mp4", 2.0, rate=48000, channels=6)
    make_video(ffmpeg, v / "rate_8k.mp4", 2.0, rate=8000)
    make_video(ffmpeg, v / "rate_22k.mp4", 2.0, rate=22050)
    make_video(ffmpeg, v / "silent.mp4", 2.0, audio="silence")
    make_video(ffmpeg, v / "short.mp4", 2.0, audio_seconds=0.5)
    make_video(ffmpeg, v / "no_audio.mp4", 1.0, audio=None)
    for name in ODD_NAMES:
        make_video(ffmpeg, root / "val" / "noise" / f"{name}.mp4", 1.2, audio="noise")
    good = (v / "good.mp4").read_bytes()
    (root / "val" / "noise" / "truncated.mp4").write_bytes(good[: len(good) // 3])
    (root / "val" / "noise" / "empty.mp4").write_bytes(b"")
    (root / "val" / "noise" / "text.mp4").write_text("this is not a video\n")
    return root


def run_steps(video_root, out, *extra, steps=(step01, step02, step03)):
    common = ["--dataset", "t", "--video-root", str(video_root), "--data-root", str(out / "data"),
              "--output-root", str(out), *extra]
    return [s.main([*common] + (["--workers", "2"] if s is not step01 else [])) for s in steps]


def read_tsv(path):
    return dict(line.split("\t", 1) for line in path.read_text(encoding="utf-8").splitlines())


def test_bad_inputs_are_listed_with_reasons_and_counts_reconcile(bad_root, tmp_path, capsys):
    codes = run_steps(bad_root, tmp_path)
    assert codes == [None, 3, 0]        # step 02: some files failed (listed) -> exit 3
    lists = tmp_path / "file_lists" / "t"
    videos = [ln.split("\t")[0] for ln in (lists / "val_videos.txt").read_text().splitlines()]
    with_sound = (lists / "val_16000hz_mono_audio.txt").read_text().splitlines()
    no_audio = read_tsv(lists / "val_16000hz_mono_no_audio.txt")
    failed = read_tsv(lists / "val_16000hz_mono_failed.txt")
    assert len(videos) == len(with_sound) + len(no_audio) + len(failed) == 16
    assert no_audio == {"val/tone/no_audio": "no audio stream"}
    assert set(failed) == {"val/noise/truncated", "val/noise/empty", "val/noise/text"}
    assert failed["val/noise/empty"] == "empty file (0 bytes)"
    assert "not a readable media file" in failed["val/noise/text"]
    assert {f"val/noise/{n}" for n in ODD_NAMES} <= set(with_sound)
    out = capsys.readouterr().out
    assert "listed 16 = done 12 + exists 0 + no audio 1 + failed 3" in out

    audio = tmp_path / "data" / "t" / "audio" / "16000hz_mono"
    from soundtrack import media
    for name in ("stereo_44k", "surround_48k", "rate_8k", "rate_22k"):
        x, rate = media.read_wav(audio / "val" / "tone" / f"{name}.wav")
        assert rate == 16000 and x.ndim == 1 and abs(len(x) / rate - 2.0) < 0.1, name
    x, _ = media.read_wav(audio / "val" / "tone" / "silent.wav")
    assert not np.any(x)

    notes = read_tsv(lists / "val_vggish_mel_notes.txt")
    assert notes["val/tone/short"].startswith("padded")
    assert notes["val/tone/silent"].startswith("silent")
    feats = tmp_path / "data" / "t" / "features" / "vggish_mel"
    short = np.load(feats / "val" / "tone" / "short.npy")
    assert short.shape == (1, 64, 96) and short.dtype == np.float16
    assert np.load(feats / "val" / "tone" / "good.npy").shape == (2, 64, 96)
    silent = np.load(feats / "val" / "tone" / "silent.npy").astype(np.float32)
    assert np.allclose(silent, np.log(0.01), atol=1e-2)
    assert not list(tmp_path.rglob("*.partial"))


def test_rerun_skips_finished_and_drop_policy(bad_root, tmp_path, capsys):
    run_steps(bad_root, tmp_path)
    capsys.readouterr()
    codes = run_steps(bad_root, tmp_path, steps=(step02,))
    out = capsys.readouterr().out
    assert codes == [3]
    assert "listed 16 = done 0 + exists 12 + no audio 1 + failed 3" in out  # failures retried
    # drop policy: the short track gets no features and is listed with its reason
    code = step03.main(["--dataset", "t", "--data-root", str(tmp_path / "data"), "--output-root",
                        str(tmp_path), "--short-track-policy", "drop", "--feature-root",
                        str(tmp_path / "feat_drop"), "--splits", "val"])
    assert code == 0
    skipped = (tmp_path / "file_lists" / "t" / "val_vggish_mel_skipped.txt").read_text()
    assert "val/tone/short\tdropped\t0.50 s of audio" in skipped


def test_changed_front_end_settings_are_refused(bad_root, tmp_path):
    run_steps(bad_root, tmp_path, "--splits", "train")
    with pytest.raises(SystemExit, match="feature_dtype = 'float16'"):
        step03.main(["--dataset", "t", "--data-root", str(tmp_path / "data"), "--output-root",
                     str(tmp_path), "--splits", "train", "--feature-dtype", "float32"])


def test_shards_partition_the_work(bad_root, tmp_path, capsys):
    common = ["--dataset", "t", "--video-root", str(bad_root), "--data-root",
              str(tmp_path / "data"), "--output-root", str(tmp_path)]
    step01.main(common)
    common += ["--splits", "val"]
    step02.main(common + ["--shard", "1/2"])
    first = capsys.readouterr().out
    assert "pending" in first            # the lists show what other shards have yet to do
    step02.main(common + ["--shard", "2/2"])
    second = capsys.readouterr().out
    n1 = int(first.split("listed ")[1].split()[0])
    n2 = int(second.split("listed ")[1].split()[0])
    assert n1 + n2 == 16 and abs(n1 - n2) <= 1
    assert "pending" not in second.split("on disk")[1]


def test_datalists_index_every_track_by_id(bad_root, tmp_path):
    run_steps(bad_root, tmp_path)
    step04.main(["--dataset", "t", "--data-root", str(tmp_path / "data"), "--output-root",
                 str(tmp_path), "--packed"])
    d = np.load(tmp_path / "datalists" / "t" / "vggish_mel_val.npz")
    ids = d["ids"].tolist()
    assert ids == sorted(ids) and len(ids) == 12
    assert d["offsets"][-1] == d["n_patches"].sum()
    packed = np.load(tmp_path / "datalists" / "t" / "vggish_mel_val_patches.npy", mmap_mode="r")
    feats = tmp_path / "data" / "t" / "features" / "vggish_mel"
    for t in (0, 5, 11):
        a, b = d["offsets"][t], d["offsets"][t + 1]
        assert np.array_equal(packed[a:b], np.load(feats / (ids[t] + ".npy")))
    labels = dict(zip(ids, d["labels"].tolist()))
    assert labels["val/tone/good"] == 1 and labels["val/noise/with space"] == 0  # sorted classes


def _kill_while_writing(argv, workdir, pattern, suffix):
    """Run a step that SIGKILLs its own process group at a worker's 2nd output file (its temp
    file written, not yet renamed: deterministic, no timing). -> the temp files left."""
    env = dict(os.environ, SOUNDTRACK_KILL_AT_RENAME=f"{suffix}:2")
    proc = subprocess.run([sys.executable, *argv], cwd=REPO, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          start_new_session=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL
    return list(workdir.rglob(pattern))


@pytest.mark.parametrize("step", ["02_extract_audio", "03_make_audio_images"])
def test_kill_9_then_rerun_equals_uninterrupted_run(bad_root, tmp_path, step):
    def argv(out, script):
        return [str(REPO / "scripts" / f"{script}.py"), "--dataset", "t", "--video-root",
                str(bad_root), "--data-root", str(out / "data"), "--output-root", str(out),
                "--workers", "2"]

    ref, killed = tmp_path / "ref", tmp_path / "killed"
    for out in (ref, killed):
        step01.main(argv(out, "01")[1:-2])
    scripts = ["02_extract_audio"] + (["03_make_audio_images"] if step.startswith("03") else [])
    for s in scripts:
        subprocess.run([sys.executable, *argv(ref, s)], check=False, capture_output=True)
    if step.startswith("03"):
        subprocess.run([sys.executable, *argv(killed, scripts[0])], check=False,
                       capture_output=True)
    seen = _kill_while_writing(argv(killed, step), killed / "data", "*.partial",
                               ".wav" if step.startswith("02") else ".npy")
    assert seen, "no temporary file was left by the kill"
    subprocess.run([sys.executable, *argv(killed, step)], check=False, capture_output=True)
    assert not list(killed.rglob("*.partial"))
    sub = "audio" if step.startswith("02") else "features"
    suffix = ".wav" if step.startswith("02") else ".npy"
    ref_files = sorted(p.relative_to(ref) for p in (ref / "data").rglob(f"*{suffix}"))
    got_files = sorted(p.relative_to(killed) for p in (killed / "data").rglob(f"*{suffix}"))
    assert ref_files == got_files and any(sub in str(p) for p in ref_files)
    for rel in ref_files:
        assert (ref / rel).read_bytes() == (killed / rel).read_bytes(), rel


@pytest.mark.skipif(not (SHARED_DATA / "videos").is_dir(), reason="../shared/data absent")
def test_real_clips_and_edge_cases(tmp_path, capsys):
    root = tmp_path / "real"
    shutil.copytree(SHARED_DATA / "videos" / "kinetics_layout", root)
    edge = root / "val" / "dog"  # a class train has: labels come from train
    edge.mkdir(parents=True, exist_ok=True)
    for f in (SHARED_DATA / "videos" / "edge_cases").iterdir():
        shutil.copy(f, edge / f.name)
    run_steps(root, tmp_path)
    lists = tmp_path / "file_lists" / "t"
    videos = (lists / "val_videos.txt").read_text().splitlines()
    with_sound = (lists / "val_16000hz_mono_audio.txt").read_text().splitlines()
    no_audio = read_tsv(lists / "val_16000hz_mono_no_audio.txt")
    failed = read_tsv(lists / "val_16000hz_mono_failed.txt")
    assert len(videos) == len(with_sound) + len(no_audio) + len(failed)
    assert "val/dog/mmaction2_demo_kinetics_noaudio" in no_audio
    for name in ("mmaction2_test_mpeg4_mp3", "moviepy_bbb_1s_vp8_vorbis",
                 "moviepy_chaplin_h264_mp3"):
        assert f"val/dog/{name}" in with_sound, (name, failed)
    for vid in with_sound:  # every extracted track became patches (or a noted pad)
        assert (tmp_path / "data" / "t" / "features" / "vggish_mel" / (vid + ".npy")).exists()


def test_batched_ffmpeg_equals_one_process_per_file(bad_root, tmp_path):
    """Step 02 decodes several files per ffmpeg process; the wavs must not change by it."""
    one, many = tmp_path / "one", tmp_path / "many"
    for out, batch in ((one, "1"), (many, "8")):
        common = ["--dataset", "t", "--video-root", str(bad_root), "--data-root",
                  str(out / "data"), "--output-root", str(out)]
        step01.main(common)
        assert step02.main(common + ["--workers", "1", "--ffmpeg-batch-files", batch]) == 3
    wavs = sorted(p.relative_to(one) for p in one.rglob("*.wav"))
    assert len(wavs) == 16 and wavs == sorted(p.relative_to(many) for p in many.rglob("*.wav"))
    for rel in wavs:
        assert (one / rel).read_bytes() == (many / rel).read_bytes(), rel
    for name in ("no_audio", "failed"):
        assert ((one / "file_lists" / "t" / f"val_16000hz_mono_{name}.txt").read_text()
                == (many / "file_lists" / "t" / f"val_16000hz_mono_{name}.txt").read_text())


def test_decode_audio_batch_matches_single_decodes(bad_root):
    from soundtrack import media
    paths = sorted((bad_root / "val" / "tone").glob("[gsr]*.mp4"))
    batch = media.decode_audio_batch(paths, 16000)
    assert len(batch) == len(paths) >= 4
    for p, samples in zip(paths, batch):
        assert np.array_equal(samples, media.decode_audio(p, 16000)), p.name
    with pytest.raises(media.MediaError):
        media.decode_audio_batch(paths + [bad_root / "val" / "tone" / "no_audio.mp4"], 16000)
    with pytest.raises(ValueError, match="2 inputs but 1 outputs"):
        media.batch_audio_command("ffmpeg", paths[:2], 16000, ["a.wav"])
    argv = media.batch_audio_command("ffmpeg", paths[:2], 16000, ["a", "b"], fmt="wav")
    # inputs as absolute file: URLs, input i mapped to output i
    assert argv.count("-i") == 2
    assert argv[argv.index("-i") + 1] == "file:" + str(paths[0].resolve())
    second = argv[argv.index("a") + 1:]
    assert second[:2] == ["-map", "1:a:0"] and second[-1] == "b"


# ---------------------------------------------------------------- front ends through 02-04
def _common(video_root, out):
    return ["--dataset", "t", "--video-root", str(video_root), "--data-root", str(out / "data"),
            "--output-root", str(out)]


WORKERS = ["--workers", "1"]                # steps 02 and 03 take it; 01 and 04 refuse it


def test_yaml_front_end_override_changes_the_arrays_and_the_record(bad_root, tmp_path):
    """32 bands and a 1024-point FFT from a YAML file: the arrays are [n, 32, 96] and equal a
    direct computation from the wav; features.json and the datalist record what was done."""
    from soundtrack import audio
    from soundtrack import datafiles
    from soundtrack import media
    yaml_file = tmp_path / "custom.yaml"
    yaml_file.write_text("num_bands: 32\nfft_length: 1024\nepochs: 3\n")
    common = _common(bad_root, tmp_path) + ["--config", str(yaml_file), "--splits", "val"]
    step01.main(common)
    assert step02.main(common + WORKERS) == 3 and step03.main(common + WORKERS) == 0
    step04.main(common)
    fe = audio.front_end("vggish", num_bands=32, fft_length=1024)
    folder = tmp_path / "data" / "t" / "features" / fe.name
    record, recorded = datafiles.read_feature_record(folder)
    assert recorded == fe and record["front_end"]["num_bands"] == 32
    assert record["front_end"]["overrides"] == ["fft_length", "num_bands"]
    x, rate = media.read_wav(tmp_path / "data" / "t" / "audio" / "16000hz_mono" / "val" /
                             "tone" / "good.wav")
    got = np.load(folder / "val" / "tone" / "good.npy")
    frames = audio.frame(x.astype(np.float64), 400, 160) * audio.periodic_hann(400)
    mel = np.log(np.abs(np.fft.rfft(frames, 1024, axis=1))
                 @ audio.mel_matrix(32, 1024, 16000, 125.0, 7500.0) + 0.01)
    n = got.shape[0]
    assert got.shape == (n, 32, 96) and n >= 1
    np.testing.assert_allclose(got.astype(np.float32),
                               mel[:96 * n].reshape(n, 96, 32).transpose(0, 2, 1),
                               atol=2e-2)                      # float16 storage
    d = np.load(tmp_path / "datalists" / "t" / f"{fe.name}_val.npz")
    assert tuple(d["patch_shape"]) == (32, 96)
    assert audio.FrontEnd.from_dict(__import__("json").loads(str(d["front_end"]))) == fe
    # the default front end's folder was never touched
    assert not (tmp_path / "data" / "t" / "features" / "vggish_mel").exists()


def test_a_front_end_key_that_cannot_work_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        step03.main(["--dataset", "t", "--data-root", str(tmp_path), "--fft-length", "256"])
    assert "fft_length 256 is shorter than the window" in capsys.readouterr().err


def test_step_04_refuses_a_record_of_another_front_end(bad_root, tmp_path):
    import json
    common = _common(bad_root, tmp_path) + ["--splits", "train"]
    run_steps(bad_root, tmp_path, "--splits", "train")
    record = tmp_path / "data" / "t" / "features" / "vggish_mel" / "features.json"
    data = json.loads(record.read_text())
    data["front_end"]["log_offset"] = 0.001            # as if made by other settings
    record.write_text(json.dumps(data))
    with pytest.raises(SystemExit, match=r"log_offset: 0\.001 in .*features\.json but 0\.01 "
                                         r"in these settings"):
        step04.main(common)


def test_stereo_policy_keeps_two_channels_and_notes_duplicated_mono(bad_root, tmp_path):
    step01.main(_common(bad_root, tmp_path))
    common = _common(bad_root, tmp_path) + ["--audio-channels", "stereo", "--splits", "val"]
    assert step02.main(common) == 3 and step03.main(common) == 0
    from soundtrack import media
    wavs = tmp_path / "data" / "t" / "audio" / "16000hz_stereo" / "val" / "tone"
    x, _ = media.read_wav(wavs / "stereo_44k.wav")
    assert x.ndim == 2 and x.shape[1] == 2
    folder = next((tmp_path / "data" / "t" / "features").iterdir())
    assert np.load(folder / "val" / "tone" / "stereo_44k.npy").shape[1:] == (2, 64, 96)
    lists = tmp_path / "file_lists" / "t"
    notes = read_tsv(lists / f"val_{folder.name}_notes.txt")
    assert notes["val/tone/good"].startswith("mono: both channels identical")
    assert "val/tone/stereo_44k" not in notes


def test_a_32khz_preset_reads_32khz_wavs_and_refuses_16khz_ones(bad_root, tmp_path,
                                                                monkeypatch):
    from soundtrack import audio
    from soundtrack import media
    monkeypatch.setitem(audio.PRESETS, "test32k", dict(
        audio.PRESETS["vggish"], sample_rate_hz=32000, window_seconds=0.032,
        hop_seconds=0.01, fft_length=1024, band_min_hz=50.0, band_max_hz=14000.0))
    step01.main(_common(bad_root, tmp_path))
    common = _common(bad_root, tmp_path) + ["--front-end", "test32k", "--splits", "val"]
    assert step02.main(common) == 3
    wav = tmp_path / "data" / "t" / "audio" / "32000hz_mono" / "val" / "tone" / "good.wav"
    x, rate = media.read_wav(wav)
    assert rate == 32000 and abs(len(x) / rate - 2.0) < 0.1
    assert step03.main(common) == 0
    got = np.load(tmp_path / "data" / "t" / "features" / "test32k_mel" / "val" / "tone" /
                  "good.npy")
    fe = audio.front_end("test32k")
    np.testing.assert_allclose(got.astype(np.float32),
                               audio.features(x, 32000, fe).astype(np.float16), atol=0)
    # a wav of another rate in the folder is listed as failed, never resampled quietly
    x16, _ = media.read_wav(tmp_path / "data" / "t" / "audio" / "32000hz_mono" / "val" /
                            "noise" / "with space.wav")
    media.write_wav(wav, (x16[:16000] * 32767).astype(np.int16), 16000)
    (tmp_path / "data" / "t" / "features" / "test32k_mel" / "val" / "tone" / "good.npy").unlink()
    assert step03.main(common) == 3
    skipped = read_tsv(tmp_path / "file_lists" / "t" / "val_test32k_mel_skipped.txt")
    assert "failed\twav is 16000 Hz with 1 channel(s)" in skipped["val/tone/good"]


# ---------------------------------------------------------------- more paths that must hold
def test_a_hung_ffmpeg_is_listed_as_timed_out(bad_root, tmp_path):
    """An ffmpeg that never answers (a stand-in binary that waits for ever) is killed after
    FFMPEG_TIMEOUT_SECONDS and each of its videos listed as failed with that reason."""
    hang = tmp_path / "ffmpeg_that_hangs"
    hang.write_text("#!/bin/sh\nexec tail -f /dev/null\n")
    hang.chmod(0o755)
    common = _common(bad_root, tmp_path)
    step01.main(common + ["--splits", "train"])
    code = step02.main(common + ["--splits", "train", "--workers", "2", "--ffmpeg", str(hang),
                                 "--ffmpeg-timeout-seconds", "1"])
    assert code == 3
    failed = read_tsv(tmp_path / "file_lists" / "t" / "train_16000hz_mono_failed.txt")
    assert len(failed) == 4 and set(failed.values()) == {"ffmpeg timed out after 1 s"}


def test_a_class_folder_that_train_lacks_is_an_error(tmp_path, ffmpeg):
    make_video(ffmpeg, tmp_path / "v" / "train" / "dog" / "a.mp4", 1.0)
    make_video(ffmpeg, tmp_path / "v" / "val" / "cat" / "b.mp4", 1.0)
    with pytest.raises(SystemExit, match="val has class folders that train lacks: cat"):
        step01.main(["--dataset", "t", "--video-root", str(tmp_path / "v"), "--output-root",
                     str(tmp_path)])


def test_deltas_end_to_end(bad_root, tmp_path):
    """--deltas through steps 03-05: [n, 3, 64, 96] patches, a 3-channel model, the contract."""
    import json
    import torch
    import train
    common = _common(bad_root, tmp_path)
    step01.main(common)
    step02.main(common)
    deltas = common + ["--deltas"]
    assert step03.main(deltas) == 0
    step04.main(deltas)
    x = np.load(tmp_path / "data" / "t" / "features" / "vggish_mel_deltas" / "val" / "tone" /
                "good.npy")
    assert x.shape == (2, 3, 64, 96)
    train.main(deltas + ["--run", "d", "--epochs", "1", "--minival-fraction", "0"])
    ckpt = torch.load(tmp_path / "runs" / "t" / "d" / "last.pt", weights_only=False)
    assert ckpt["in_channels"] == 3 and ckpt["front_end"]["deltas"] is True
    assert ckpt["model"]["blocks.0.0.weight"].shape[1] == 3
    load_script("05_score_tracks").main(common + ["--run", "d"])
    report = json.loads((tmp_path / "npy_files" / "t" / "d" / "val_metrics.json").read_text())
    assert report["n_tracks"] == 12 and report["n_patches"] == np.load(
        tmp_path / "npy_files" / "t" / "d" / "val_patch_track.npy").size
