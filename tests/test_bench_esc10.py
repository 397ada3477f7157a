"""benchmarks/bench_esc10.py's data preparation on a 2-fold miniature of ESC-10, and the time
shift augmentation its recipe uses."""
import numpy as np
import soundfile
import torch

from soundtrack import audio
from soundtrack import datafiles
from AudioDataLoader import Datalist
from conftest import REPO, load_script, sine

from soundtrack.training import objectives

bench = load_script("bench_esc10")
CATEGORIES = {"dog": 500.0, "rain": 2000.0}          # category -> tone, Hz


def make_mini_esc(root):
    """2 folds x 2 categories x 2 clips of 2 s, 16 kHz FLAC, with an ESC-style meta.csv."""
    (root / "audio").mkdir(parents=True)
    lines = ["filename,fold,target,category,src_file,take"]
    for fold in (1, 2):
        for target, (category, hz) in enumerate(CATEGORIES.items()):
            for take in "AB":
                name = f"{fold}-{100 + target}-{take}-{target}.flac"
                soundfile.write(root / "audio" / name, sine(2.0, hz), 16000, format="FLAC")
                lines.append(f"{name},{fold},{target},{category},{100 + target},{take}")
    (root / "meta.csv").write_text("\n".join(lines) + "\n")


def test_prepare_writes_fold_datalists(tmp_path):
    make_mini_esc(tmp_path / "esc")
    common = ["--config", str(REPO / "recipes" / "esc10.yaml"),
              "--data-root", str(tmp_path / "data"), "--output-root", str(tmp_path)]
    paths, folds = bench.prepare(tmp_path / "esc", common)
    assert folds == [1, 2]
    assert datafiles.read_classes(paths.classes) == ["dog", "rain"]
    ids_of_fold = {f: [f"fold{f}/{c}/{f}-{100 + t}-{k}-{t}" for t, c in enumerate(CATEGORIES)
                       for k in "AB"] for f in (1, 2)}
    for k, other in ((1, 2), (2, 1)):
        test, trainset = (Datalist(paths.datalist(f"{s}_f{k}")) for s in ("test", "train"))
        assert test.ids == ids_of_fold[k] and trainset.ids == ids_of_fold[other]
        for dl in (test, trainset):
            assert [dl.ids[i].split("/")[1] for i in range(len(dl))] == \
                [["dog", "rain"][y] for y in dl.labels]
            assert dl.patch_shape == (64, 96) and list(dl.n_patches) == [2] * 4
    feature = paths.feature_dir / (ids_of_fold[1][0] + ".npy")
    x = np.load(feature)
    assert x.shape == (2, 64, 96) and x.dtype == np.float16
    # a 500 Hz tone: the loudest mel band is the one whose centre is nearest 500 Hz
    nearest = int(np.argmin(abs(audio.band_centres_hz(audio.VGGISH) - 500.0)))
    assert abs(int(np.argmax(x.astype(np.float32).mean(axis=(0, 2)))) - nearest) <= 1
    before = feature.stat().st_mtime_ns
    bench.prepare(tmp_path / "esc", common)                  # a rerun reuses the features
    assert feature.stat().st_mtime_ns == before


def test_missing_dataset_is_a_clean_skip(tmp_path, capsys):
    assert bench.main(["--esc10-root", str(tmp_path / "nothing")]) == 0
    assert capsys.readouterr().out.startswith("skipped: no ESC-10")


def test_time_shift_rolls_each_patch_by_its_own_amount():
    x = torch.arange(4 * 96, dtype=torch.float32).reshape(4, 1, 1, 96).expand(4, 1, 64, 96)
    out = objectives.time_shift(x.contiguous(), 10, torch.Generator().manual_seed(0))
    shifts = []
    for b in range(4):
        s = int((out[b, 0, 0, 0] - x[b, 0, 0, 0]).item()) % 96
        shifts.append((96 - s) % 96)  # out[t] = x[t - shift]
        assert torch.equal(out[b], torch.roll(x[b], shifts[-1], dims=-1))
    assert all(min(s, 96 - s) <= 10 for s in shifts) and len(set(shifts)) > 1


def test_low_data_lists_train_on_one_fold_and_the_table_averages_over_parts(tmp_path):
    recipes = load_script("bench_recipes")
    make_mini_esc(tmp_path / "esc")
    common = ["--data-root", str(tmp_path / "data"), "--output-root", str(tmp_path)]
    paths, folds = recipes.prepare_esc(tmp_path / "esc", REPO / "recipes" / "esc10.yaml", common)
    for k, other in ((1, 2), (2, 1)):
        assert Datalist(paths.datalist(f"train_l{k}")).ids == [
            f"fold{k}/{c}/{k}-{100 + t}-{x}-{t}" for t, c in enumerate(CATEGORIES) for x in "AB"]
        assert all(i.startswith(f"fold{other}/") for i in
                   Datalist(paths.datalist(f"test_l{k}")).ids)
    runs = {"esc10_low/l1/s0": 50.0, "esc10_low/l2/s0": 70.0, "esc10_low/l1/s1": 40.0,
            "esc10_low/l2/s1": 40.0, "demo/val/s0": 80.0, "demo/val/s1": 90.0,
            "esc10_low/l1/s2": 99.0}               # a seed stopped after one rotation
    result = {"recipe": "x/old.yaml",
              "runs": {k: {"accuracy": v, "n": 8, "seconds": 2.0} for k, v in runs.items()}}
    rows, overall = recipes.summarise(result)
    assert rows["esc10_low"][:3] == (50.0, 20.0, 2)          # seeds: 60 and 40; s2 left out
    assert rows["esc10_low"][4] == 1 and rows["demo"][4] == 0
    assert rows["demo"][:3] == (85.0, 10.0, 2) and overall == 67.5
    assert "| old | 50.0 ± 10.0 (n=2 seeds, 2 s/run; 1 incomplete seed(s) left out)" in \
        recipes.table([result])
    # the last column averages only the tasks every row has
    other = {"recipe": "x/new.yaml", "runs": {"demo/val/s0": {"accuracy": 70.0, "n": 8,
                                                            "seconds": 1.0}}}
    text = recipes.table([result, other])
    assert "| mean over demo |" in text and text.splitlines()[2].endswith("| 85.0 |")
    assert text.splitlines()[3].startswith("| new | - | 70.0 ± 0.0") and \
        text.splitlines()[3].endswith("| 70.0 |")
    # the parts the runs planned, recorded in the file: one seed with 2 of 5 folds is no
    # whole seed, though no other seed has more
    partial = {"recipe": "x/cut.yaml", "parts": {"esc10": [f"f{k}" for k in range(1, 6)]},
               "runs": {f"esc10/f{k}/s0": {"accuracy": 90.0, "n": 8, "seconds": 1.0}
                        for k in (1, 2)}}
    assert "esc10" not in recipes.summarise(partial)[0]
    partial["parts"]["esc10"] = ["f1", "f2"]
    assert recipes.summarise(partial)[0]["esc10"][:3] == (90.0, 0.0, 1)


def make_mini_fsdd(root, takes=8):
    """2 digits x 2 speakers x `takes` takes of 0.4 s (shorter than a patch), FSDD's meta.csv
    (fold = speaker)."""
    (root / "audio").mkdir(parents=True)
    lines = ["filename,fold,target,category,speaker,take"]
    for fold, speaker in ((1, "anna"), (2, "ben")):
        for target, (category, hz) in enumerate({"zero": 400.0, "one": 1500.0}.items()):
            for take in range(takes):
                name = f"{target}_{speaker}_{take}.flac"
                soundfile.write(root / "audio" / name, sine(0.4, hz * fold), 16000,
                                format="FLAC")
                lines.append(f"{name},{fold},{target},{category},{speaker},{take}")
    (root / "meta.csv").write_text("\n".join(lines) + "\n")


def test_fsdd_protocols_few_shot_many_classes_and_held_out_speakers(tmp_path):
    recipes = load_script("bench_recipes")
    make_mini_fsdd(tmp_path / "fsdd")
    common = ["--data-root", str(tmp_path / "data"), "--output-root", str(tmp_path)]
    recipe = REPO / "recipes" / "audio_scratch.yaml"
    paths, _ = recipes.prepare_fsdd(tmp_path / "fsdd", "fsdd_fewshot", recipe, common)
    assert datafiles.read_classes(paths.classes) == ["one_anna", "one_ben", "zero_anna",
                                                     "zero_ben"]
    train, test = Datalist(paths.datalist("train_fs")), Datalist(paths.datalist("test_fs"))
    takes = lambda dl: sorted({int(i.rsplit("_", 1)[1]) for i in dl.ids})   # noqa: E731
    assert takes(train) == list(range(6)) and takes(test) == [6, 7]
    assert len(train) == 4 * 6 and len(test) == 4 * 2 and list(set(train.n_patches)) == [1]
    assert recipes.parts("fsdd_fewshot", [1, 2]) == [("fs", "fsdd_fewshot", "train_fs",
                                                      "test_fs")]
    paths, folds = recipes.prepare_fsdd(tmp_path / "fsdd", "fsdd_speaker", recipe, common)
    assert datafiles.read_classes(paths.classes) == ["one", "zero"] and folds == [1, 2]
    held_out = Datalist(paths.datalist("test_f2"))
    assert {i.split("/")[0] for i in held_out.ids} == {"fold2"} and len(held_out) == 16
    assert all("_ben_" in i for i in held_out.ids)
    assert [p[0] for p in recipes.parts("fsdd_speaker", folds, speakers=[2])] == ["sp2"]


def test_bench_recipes_reuses_runs_of_the_same_settings_only():
    recipes = load_script("bench_recipes")
    settings = {"MODEL": "vgg_strided", "EPOCHS": 40}
    old = {"settings": dict(settings), "recipe_text": "# old comment\nmodel: vgg_strided\n",
           "overrides": []}
    assert recipes.reusable(old, dict(settings), "# new comment\nmodel: vgg_strided\n", [])
    assert not recipes.reusable(old, {**settings, "MODEL": "slim_cnn"}, "", [])
    assert not recipes.reusable(old, dict(settings), "", ["--epochs", "80"])
    assert not recipes.reusable({}, dict(settings), "", [])
    older = {"recipe_text": "model: slim_cnn\n", "overrides": []}    # before settings were kept
    assert recipes.reusable(older, {}, "model: slim_cnn\n", [])
    assert not recipes.reusable(older, {}, "model: slim_cnn  # a comment\n", [])


def test_bench_recipes_save_keeps_the_runs_another_seed_wrote_meanwhile(tmp_path):
    """Two processes of one recipe (--seeds 0 and --seeds 1 side by side) share its result
    file: each save merges the runs on disk of the same settings, its own winning a clash."""
    recipes = load_script("bench_recipes")
    import json
    settings, text, out = {"MODEL": "vgg_strided"}, "model: vgg_strided\n", tmp_path / "r.json"

    def result(runs, overrides=()):
        return {"settings": dict(settings), "recipe_text": text, "overrides": list(overrides),
                "runs": dict(runs)}

    recipes.save(out, result({"t/p/s0": {"accuracy": 1.0}}), settings, text, [])
    recipes.save(out, {**result({"t/p/s1": {"accuracy": 2.0}}), "parts": {"t": ["p", "q"]}},
                 settings, text, [])
    assert json.loads(out.read_text())["runs"] == {"t/p/s0": {"accuracy": 1.0},
                                                   "t/p/s1": {"accuracy": 2.0}}
    recipes.save(out, {**result({}), "parts": {"t": ["p"], "u": ["r"]}}, settings, text, [])
    assert json.loads(out.read_text())["parts"] == {"t": ["p", "q"], "u": ["r"]}
    recipes.save(out, result({"t/p/s1": {"accuracy": 3.0}}), settings, text, [])
    assert json.loads(out.read_text())["runs"]["t/p/s1"] == {"accuracy": 3.0}
    # another recipe's runs (other overrides) are not merged in: the file becomes this one's
    recipes.save(out, result({"t/p/s2": {"accuracy": 4.0}}, ["--epochs", "80"]), settings,
                 text, ["--epochs", "80"])
    assert json.loads(out.read_text())["runs"] == {"t/p/s2": {"accuracy": 4.0}}


def test_bench_recipes_table_names_a_renamed_result_file():
    recipes = load_script("bench_recipes")
    run = {"recipe": "recipes/audio_scratch.yaml", "overrides": [],
           "runs": {"demo/val/s0": {"accuracy": 80.0, "seconds": 1.0}}}
    kept = recipes.table([run, dict(run)], ["x/audio_scratch.json", "x/audio_scratch.v1.json"])
    rows = [line for line in kept.splitlines() if line.startswith("| audio_scratch")]
    assert rows[0].startswith("| audio_scratch |")
    assert rows[1].startswith("| audio_scratch [audio_scratch.v1.json] |")
    over = dict(run, overrides=["--model", "vgg_plain"])
    name = recipes.result_name("recipes/audio_scratch.yaml", over["overrides"])
    assert "[" not in recipes.table([over], [f"{name}.json"])


def test_bench_recipes_parts_runs_a_screen_and_records_the_whole_task(tmp_path, monkeypatch):
    """--parts l1 l3 trains those two rotations only (train.py faked here), the result file
    records all the task's rotations, so the screen is no whole seed in the table."""
    import json
    import subprocess
    import types
    recipes = load_script("bench_recipes")
    trained, real_run = [], subprocess.run

    def fake_train(argv, **kwargs):                 # train.py faked; git (provenance) real
        if "--train-split" not in argv:
            return real_run(argv, **kwargs)
        trained.append(argv[argv.index("--train-split") + 1])
        return subprocess.CompletedProcess(argv, 0, "")

    monkeypatch.setattr(recipes, "prepare_esc", lambda *a, **k: (None, [1, 2, 3]))
    monkeypatch.setattr(recipes.subprocess, "run", fake_train)
    monkeypatch.setattr(recipes, "accuracy", lambda paths, run, split: (75.0, 8))
    (tmp_path / "esc").mkdir()
    (tmp_path / "esc" / "meta.csv").write_text("filename,fold,target,category\n")
    args = types.SimpleNamespace(output_root=str(tmp_path), esc10_root=tmp_path / "esc",
                                 fsdd_speakers=None, parts=["l1", "l3"], run_prefix="t",
                                 torch_threads=1, workers=None)
    result = recipes.run_recipe(REPO / "recipes" / "esc10.yaml", ["esc10_low"], [0], args,
                                ["--epochs", "1"], [])
    assert trained == ["train_l1", "train_l3"]
    assert sorted(result["runs"]) == ["esc10_low/l1/s0", "esc10_low/l3/s0"]
    saved = json.loads(next((tmp_path / "npy_files" / "bench_recipes").glob("*.json")).read_text())
    assert saved["parts"] == {"esc10_low": ["l1", "l2", "l3"]}
    assert "esc10_low" not in recipes.summarise(saved)[0]


def test_bench_recipes_prepares_under_a_lock_another_process_waits_for(tmp_path, monkeypatch):
    """Two benchmark processes side by side once collided preparing ESC-10 (both wrote
    classes.txt.partial, one renamed the other's away): steps 00-04 now run under an
    exclusive lock, which another open file of the lock cannot take meanwhile."""
    import fcntl
    import subprocess
    import types
    recipes = load_script("bench_recipes")
    lock = tmp_path / "npy_files" / "bench_recipes" / "prepare.lock"
    held = []

    def prepare(*a, **k):
        with open(lock) as other:
            try:
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held.append(False)
            except BlockingIOError:
                held.append(True)
        return None, [1, 2]

    monkeypatch.setattr(recipes, "prepare_esc", prepare)
    monkeypatch.setattr(recipes.subprocess, "run",
                        lambda argv, **k: subprocess.CompletedProcess(argv, 0, ""))
    monkeypatch.setattr(recipes, "accuracy", lambda paths, run, split: (75.0, 8))
    monkeypatch.setattr(recipes.datafiles, "provenance", lambda: {})
    (tmp_path / "esc").mkdir()
    (tmp_path / "esc" / "meta.csv").write_text("filename,fold,target,category\n")
    args = types.SimpleNamespace(output_root=str(tmp_path), esc10_root=tmp_path / "esc",
                                 fsdd_speakers=None, parts=None, run_prefix="t",
                                 torch_threads=1, workers=None)
    result = recipes.run_recipe(REPO / "recipes" / "esc10.yaml", ["esc10_low", "esc10"], [0],
                                args, [], [])
    assert held == [True]                  # prepared once, for both tasks, under the lock
    assert sorted(result["runs"]) == ["esc10/f1/s0", "esc10/f2/s0", "esc10_low/l1/s0",
                                      "esc10_low/l2/s0"]
    with open(lock) as other:              # and released after
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
