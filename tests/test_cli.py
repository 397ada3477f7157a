"""Overrides of config.py: precedence, unknown keys and wrong types are errors."""
import argparse
import sys

import pytest

from soundtrack import cli
import config
import train
from conftest import REPO, load_script


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


@pytest.mark.parametrize("argv, message", [
    (["--epochs", "x"], "--epochs: invalid int value: 'x'"),
    (["--feature", "mfcc"], "--feature: invalid choice: 'mfcc'"),
    (["--shard", "0/2"], "shard '0/2': need 1 <= K <= N"),
    (["--nope", "1"], "unrecognized arguments: --nope 1"),
    (["--num-bands", "32.5"], "--num-bands: invalid int value: '32.5'"),
    (["--fft-length", "256"], "fft_length 256 is shorter than the window"),
])
def test_bad_flags_are_errors_that_say_why(capsys, argv, message):
    with pytest.raises(SystemExit) as e:
        parse(argv, keys=("EPOCHS", "FEATURE", *cli.FRONT_END_KEYS))
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_front_end_keys_default_to_the_preset_and_take_a_typed_value(tmp_path):
    keys = cli.FRONT_END_KEYS
    cfg = parse([], keys=keys)
    assert cfg.num_bands is None and cfg.front_end == "vggish"
    y = tmp_path / "fe.yaml"
    y.write_text("num_bands: 32\nband_max_hz: 7000\naudio_channels: null\n")
    cfg = parse(["--config", str(y)], keys=keys)
    assert cfg.num_bands == 32 and cfg.band_max_hz == 7000.0 and cfg.audio_channels is None
    y.write_text("num_bands: 32.5\n")
    with pytest.raises(SystemExit):
        parse(["--config", str(y)], keys=keys)
    y.write_text("audio_channels: left\n")
    with pytest.raises(SystemExit):
        parse(["--config", str(y)], keys=keys)


def test_yaml_keys_a_script_does_not_use_are_logged(tmp_path, capsys):
    y = tmp_path / "o.yaml"
    y.write_text("epochs: 7\nmixup_alpha: 0.2\n")
    cfg = cli.parse(cli.parser("Step 99: demo", ["EPOCHS"]), ["--config", str(y)])
    assert cfg.epochs == 7
    err = capsys.readouterr().err
    assert "keys that 'Step 99' does not use (accepted, ignored here): MIXUP_ALPHA" in err
    # a benchmark reading only a recipe's paths (it hands the recipe whole to train.py)
    cfg = cli.parse(cli.parser("Step 99: demo", ["EPOCHS"]), ["--config", str(y)],
                    log_unused=False)
    assert cfg.epochs == 7 and capsys.readouterr().err == ""


def test_a_script_flag_may_not_shadow_a_config_key():
    p = cli.parser("doc", ["EPOCHS"])
    for flag in ("--seed", "--splits", "--batch-size", "--no-deltas"):
        with pytest.raises(ValueError, match=f"script flag {flag} would shadow config key"):
            p.add_argument(flag, default=None)
    p.add_argument("--my-own", default=None)            # any other name is fine


def test_common_flags_everywhere():
    cfg = cli.parse(cli.parser("doc", ["WORKERS"]), ["--dataset", "k600", "--video-root", "/v",
                                                     "--workers", "8"])
    assert (cfg.dataset, cfg.video_root, cfg.workers) == ("k600", "/v", 8)


def test_a_work_flag_a_script_does_not_use_is_refused(capsys):
    with pytest.raises(SystemExit):
        cli.parse(cli.parser("doc", []), ["--workers", "8"])
    assert "unrecognized arguments: --workers 8" in capsys.readouterr().err


def test_every_config_key_has_a_comment_and_it_is_the_flags_help():
    comments = cli.key_comments()
    assert [k for k in cli.config_keys() if not comments.get(k)] == []
    assert comments["MIN_TRAIN_STEPS"].startswith("> 0: train at least this many optimizer "
                                                  "steps; EPOCHS is raised to ceil(")
    helps = {a.dest: a.help for a in cli.parser("doc", ["MIN_TRAIN_STEPS", "FEATURE"])._actions}
    assert helps["MIN_TRAIN_STEPS"] == comments["MIN_TRAIN_STEPS"] + " [default: 0]"
    assert helps["FEATURE"].startswith("filterbank: mel | gam (gammatone) | cqt")


def test_model_lists_the_registry_and_a_typed_path_is_from_the_working_directory(
        tmp_path, monkeypatch, capsys):
    import network
    p = cli.parser("doc", ["MODEL", "INIT_CHECKPOINT"])
    model = next(a for a in p._actions if a.dest == "MODEL")
    assert list(model.choices) == network.names() and "slim_cnn" in model.choices
    with pytest.raises(SystemExit):
        cli.parse(p, ["--model", "slimcnn"])
    assert "invalid choice: 'slimcnn'" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)
    cfg = cli.parse(cli.parser("doc", ["INIT_CHECKPOINT"]),
                    ["--video-root", "videos", "--init-checkpoint", "w/best.pt",
                     "--output-root", "/abs/out"])
    assert cfg.video_root == str(tmp_path / "videos")
    assert cfg.init_checkpoint == str(tmp_path / "w" / "best.pt")
    assert cfg.output_root == "/abs/out" and cfg.data_root == config.DATA_ROOT   # config's own


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


# ---------------------------------------------------------------- every script's flags
SCRIPTS = sorted(p.stem for p in (REPO / "scripts").glob("*.py"))
RUNBOOK = [s for s in SCRIPTS if s[:2].isdigit()] + ["train", "predict"]


class _Built(Exception):
    def __init__(self, parser):
        self.parser = parser


def built_parser(monkeypatch, name):
    """The ArgumentParser a script's main() builds, caught before it parses anything."""
    def catch(self, *args, **kwargs):
        raise _Built(self)
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", catch)
    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", catch)
    module = train if name == "train" else load_script(name)
    with pytest.raises(_Built) as e:
        module.main([])
    return e.value.parser


def flag_meanings(parser):
    """{option string: (type, nargs, choices, action kind)} of a parser."""
    out = {}
    for a in parser._actions:
        for opt in a.option_strings:
            out[opt] = (getattr(a.type, "__name__", a.type), a.nargs,
                        tuple(a.choices) if a.choices else None, type(a).__name__)
    return out


def test_every_flag_name_means_one_thing_in_every_script(monkeypatch):
    seen = {}
    for name in SCRIPTS + ["train"]:
        for opt, meaning in flag_meanings(built_parser(monkeypatch, name)).items():
            seen.setdefault(opt, {}).setdefault(meaning, []).append(name)
    clashes = {opt: m for opt, m in seen.items() if len(m) > 1 and opt not in ("-h", "--help")}
    assert not clashes, clashes
    assert "--classes" in seen and "--num-classes" in seen    # a file, and a count


def test_common_flags_are_accepted_by_the_whole_runbook(monkeypatch):
    common = {cli._flag(k) for k in cli.COMMON_KEYS} | {"--config"}
    for name in RUNBOOK:
        missing = common - set(flag_meanings(built_parser(monkeypatch, name)))
        assert not missing, (name, missing)


def test_every_recipe_in_the_repository_is_valid_and_the_default_differs_as_documented():
    """Each recipes/**.yaml names config keys with their types; the from-scratch default is
    the old ESC-10 recipe plus its floor of optimizer steps on the model vgg_plain_half, the
    fast option and the previous default the same on slim_cnn and vgg_strided (docs/benchmarks.md)."""
    recipes = sorted((REPO / "recipes").rglob("*.yaml"))
    assert len(recipes) >= 10
    loaded = {p.relative_to(REPO / "recipes").as_posix(): cli.load_yaml(p) for p in recipes}
    old, new = loaded["esc10.yaml"], loaded["audio_scratch.yaml"]
    changed = {k for k in set(old) | set(new) if old.get(k) != new.get(k)}
    assert changed == {"MIN_TRAIN_STEPS", "SPEC_AUGMENT_MASKS", "MODEL"}
    assert new["SPEC_AUGMENT_MASKS"] == config.SPEC_AUGMENT_MASKS == 1
    assert new["MIN_TRAIN_STEPS"] > 0 and new["MODEL"] == "vgg_plain_half"
    assert loaded["audio_scratch_slim.yaml"] == {**new, "MODEL": "slim_cnn"}
    assert loaded["variants/scratch_strided.yaml"] == {**new, "MODEL": "vgg_strided"}


def test_named_values_keep_order_and_name_the_bad_item():
    assert cli.named_values(["b=2", "a=1"], "--x") == {"b": "2", "a": "1"}
    for items, message in ((["a"], "--x: expected NAME=VALUE, got 'a'"),
                           (["a="], "--x: expected NAME=VALUE, got 'a='"),
                           (["a=1", "a=2"], "--x: 'a' given twice"),
                           (["bad!=1"], "--x: no bad!")):
        with pytest.raises(ValueError) as e:
            cli.named_values(items, "--x", lambda n: "no bad!" if "!" in n else None)
        assert str(e.value) == message
    step12 = load_script("12_two_phase")
    with pytest.raises(ValueError, match=r"--sources: expected NAME=RUN, got 'aud_mel'"):
        step12.parse_sources(["aud_mel"])
    with pytest.raises(ValueError, match=r"--sources: source name 'mel' must start with aud_"):
        step12.parse_sources(["mel=r"])
    with pytest.raises(ValueError, match=r"--scores: bad source name 'fused'"):
        load_script("07_fuse").parse_sources(["audio:fused=x.npy"])
