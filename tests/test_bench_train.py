"""benchmarks/bench_train.py --compare-recipes: each recipe's own step, and its epochs settled."""
import re

import pytest

from conftest import load_script

bench = load_script("bench_train")


def test_compare_recipes_times_each_and_settles_their_epochs(tmp_path, capsys):
    old = tmp_path / "old.yaml"
    old.write_text("model: slim_cnn\nepochs: 3\nbatch_size: 8\n")
    new = tmp_path / "new.yaml"
    new.write_text("model: slim_cnn\nepochs: 3\nmin_train_steps: 20\nbatch_size: 8\n"
                   "spec_augment_masks: 2\n")
    assert bench.main(["--compare-recipes", str(old), str(new), "--tracks", "8",
                       "--patches", "2", "--repeats", "1", "--torch-threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "a training set of 16 patches" in out
    # 16 patches / batch 8 = 2 steps per epoch: old 3 epochs, new ceil(20 / 2) = 10
    assert re.search(r"old: slim_cnn .* ratio to old 1\.00 .* x 3 epochs = .* \(1\.00 x old's\)",
                     out)
    assert re.search(r"new: slim_cnn .* x 10 epochs = ", out)


def test_compare_models_refuses_an_unknown_name(capsys):
    with pytest.raises(SystemExit):
        bench.main(["--compare-models", "slim_cnn", "no_such_model"])
    assert "unknown model(s) ['no_such_model']" in capsys.readouterr().err
