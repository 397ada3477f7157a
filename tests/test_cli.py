"""Overrides of config.py: precedence, unknown keys and wrong types are errors."""
import sys

import pytest

import cli
import config


def parse(argv, keys=("EPOCHS", "DELTAS", "SPLITS", "FEATURE", "LEARNING_RATE"), shard=True):
    return cli.parse(cli.parser("doc", list(keys), shard=shard), argv)


def test_defaults_come_from_config():
    cfg = parse([])
    assert cfg.epochs == config.EPOCHS and cfg.dataset == config.DATASET
    assert cfg.shard == (1, 1)


def test_precedence_config_then_yaml_then_flags(tmp_path):
    y = tmp_path / "o.yaml"
    y.write_text("epochs: 7\nlearning_rate: 1\nDELTAS: true\nsplits: [val]\n")
    cfg = parse(["--config", str(y), "--epochs", "3"])
    assert cfg.epochs == 3                     # flag beats YAML
    assert cfg.learning_rate == 1.0 and isinstance(cfg.learning_rate, float)  # int ok for float
    assert cfg.deltas is True and cfg.splits == ["val"]
    assert parse(["--config", str(y), "--no-deltas"]).deltas is False


@pytest.mark.parametrize("text, message", [
    ("epoch: 3\n", "unknown key 'epoch'"),
    ("epochs: three\n", "EPOCHS must be int"),
    ("epochs: 2.5\n", "EPOCHS must be int"),
    ("deltas: 1\n", "DELTAS must be bool"),
    ("feature: mfcc\n", "FEATURE must be one of"),
    ("shard: 3/2\n", "need 1 <= K <= N"),
    ("- a list\n", "expected a mapping"),
])
def test_bad_yaml_is_an_error_naming_file_and_key(tmp_path, capsys, text, message):
    y = tmp_path / "bad.yaml"
    y.write_text(text)
    with pytest.raises(SystemExit):
        parse(["--config", str(y)])
    err = capsys.readouterr().err
    assert message in err and "bad.yaml" in err


def test_bad_flags_are_errors(capsys):
    for argv in (["--epochs", "x"], ["--feature", "mfcc"], ["--shard", "0/2"], ["--nope", "1"]):
        with pytest.raises(SystemExit):
            parse(argv)


def test_common_flags_everywhere():
    cfg = cli.parse(cli.parser("doc", []), ["--dataset", "k600", "--video-root", "/v",
                                            "--workers", "8"])
    assert (cfg.dataset, cfg.video_root, cfg.workers) == ("k600", "/v", 8)


def test_shard_parsing():
    assert cli.parse_shard("2/8") == (2, 8)
    for bad in ("0/1", "3/2", "a/b", "1"):
        with pytest.raises(ValueError):
            cli.parse_shard(bad)


class _Stream:
    def __init__(self, terminal):
        self.terminal, self.text = terminal, []

    def isatty(self):
        return self.terminal

    def write(self, text):
        self.text.append(text)

    def flush(self):
        pass


@pytest.mark.parametrize("terminal, interval", [(True, 0.5),
                                                (False, config.PROGRESS_LOG_INTERVAL_S)])
def test_progress_redraws_seldom_into_files(monkeypatch, terminal, interval):
    stream = _Stream(terminal)
    monkeypatch.setattr(sys, "stderr", stream)
    bar = cli.progress(range(3), desc="x")
    assert bar.mininterval == interval
    assert list(bar) == [0, 1, 2]
    assert "x" in "".join(stream.text)          # the bar went to stderr
