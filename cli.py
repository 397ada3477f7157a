"""Command-line and YAML overrides of ``config.py``, shared by every script.

Precedence: ``config.py`` < ``--config FILE.yaml`` < flags. A flag is the config key in
lower case with dashes (``EPOCHS`` -> ``--epochs``, ``VIDEO_ROOT`` -> ``--video-root``);
booleans take ``--deltas`` / ``--no-deltas``. Unknown YAML keys and values of the wrong type
are errors naming the file and the key.

Usage in a script::

    parser = cli.parser(__doc__, ["FEATURE", "SPLITS"], shard=True)
    parser.add_argument("--only-lists", action="store_true", help="...")  # script's own
    cfg = cli.parse(parser, argv)
    cfg.feature, cfg.workers, cfg.shard  # -> "mel", 2, (1, 1)
"""
import argparse
import importlib.util
import sys
from pathlib import Path

import yaml
from tqdm import tqdm

import config

# Every script understands these (SHARD only where the work can be split).
COMMON_KEYS = ["DATASET", "VIDEO_ROOT", "DATA_ROOT", "OUTPUT_ROOT", "WORKERS"]

# Keys whose value must be one of a few words.
CHOICES = {
    "FEATURE": ["mel", "gam", "cqt"],
    "FEATURE_DTYPE": ["float16", "float32"],
    "SHORT_TRACK_POLICY": ["pad", "drop"],
    "OPTIMIZER": ["adamw", "sgd"],
    "SCHEDULE": ["cosine", "step"],
    "DEVICE": ["auto", "cpu", "cuda"],
    "EVAL_CHECKPOINT": ["best", "last"],
}


def config_keys():
    """The names of all settings in config.py (UPPER_CASE module constants)."""
    return [k for k in vars(config) if k.isupper() and not k.startswith("_")]


class Settings(dict):
    """Resolved settings; attribute access by lower-case key (``cfg.video_root``)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        self[name] = value


def parse_shard(text):
    """'K/N' -> (K, N) with 1 <= K <= N; ValueError otherwise."""
    try:
        k, n = (int(x) for x in str(text).split("/"))
    except ValueError:
        raise ValueError(f"shard must look like K/N (e.g. 2/8), got {text!r}") from None
    if not 1 <= k <= n:
        raise ValueError(f"shard {text!r}: need 1 <= K <= N")
    return k, n


def _flag(key):
    return "--" + key.lower().replace("_", "-")


def _check_type(key, value, where):
    """Return value converted to the type of config.KEY; ValueError naming `where` otherwise."""
    default = getattr(config, key)
    want = type(default)
    ok = (isinstance(value, want) and not (want is int and isinstance(value, bool))) or (
        want is float and isinstance(value, int) and not isinstance(value, bool))
    if want is list:
        elem = type(default[0]) if default else str
        ok = isinstance(value, list) and all(isinstance(v, elem) for v in value)
    if not ok:
        raise ValueError(f"{where}: {key} must be {want.__name__} like {default!r}, "
                         f"got {value!r} ({type(value).__name__})")
    if key in CHOICES and value not in CHOICES[key]:
        raise ValueError(f"{where}: {key} must be one of {CHOICES[key]}, got {value!r}")
    if key == "SHARD":
        try:
            parse_shard(value)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
    return float(value) if want is float else value


def load_yaml(path):
    """Overrides from a YAML mapping of config keys; errors name the file and key."""
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of config keys, got {type(data).__name__}")
    known = set(config_keys())
    out = {}
    for raw_key, value in data.items():
        key = str(raw_key).upper()
        if key not in known:
            raise ValueError(f"{path}: unknown key {raw_key!r} (config.py has: "
                             f"{', '.join(sorted(known))})")
        out[key] = _check_type(key, value, str(path))
    return out


def parser(doc, keys=(), shard=False):
    """An ArgumentParser whose help is the script's docstring, with a flag per config key.

    Args:
      doc: the script's module docstring (its contract), shown by --help.
      keys: config keys this script reads, besides COMMON_KEYS (and SHARD if `shard`).
    """
    p = argparse.ArgumentParser(description=doc,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                argument_default=argparse.SUPPRESS)
    p.add_argument("--config", metavar="FILE.yaml", default=None,
                   help="YAML file of config.py overrides (flags override it)")
    all_keys = list(COMMON_KEYS) + (["SHARD"] if shard else []) + [
        k for k in keys if k not in COMMON_KEYS]
    g = p.add_argument_group("settings (defaults from config.py)")
    for key in all_keys:
        default = getattr(config, key)
        kwargs = {"help": f"default: {default!r}", "dest": key}
        if isinstance(default, bool):
            kwargs["action"] = argparse.BooleanOptionalAction
        elif isinstance(default, list):
            kwargs.update(nargs="+", type=type(default[0]) if default else str)
        else:
            kwargs["type"] = type(default)
            if key in CHOICES:
                kwargs["choices"] = CHOICES[key]
        g.add_argument(_flag(key), **kwargs)
    p.set_defaults(_keys=all_keys)
    return p


def parse(p, argv=None):
    """Parse argv; return Settings holding every config key (resolved) and the script's flags."""
    args = vars(p.parse_args(argv))
    keys = args.pop("_keys", [])
    yaml_path = args.pop("config", None)
    values = {k: getattr(config, k) for k in config_keys()}
    try:
        if yaml_path:
            values.update(load_yaml(yaml_path))
        for key in keys:
            if key in args:
                values[key] = _check_type(key, args.pop(key), _flag(key))
    except (ValueError, OSError, yaml.YAMLError) as e:
        p.error(str(e))
    cfg = Settings({k.lower(): v for k, v in values.items()})
    cfg.update(args)  # the script's own flags
    cfg.shard = parse_shard(cfg.shard)
    return cfg


def settings(**overrides):
    """Settings from config.py with keyword overrides (lower-case keys), for tests and notebooks."""
    cfg = Settings({k.lower(): getattr(config, k) for k in config_keys()})
    for key, value in overrides.items():
        if key.upper() not in config_keys():
            raise ValueError(f"unknown setting {key!r}")
        cfg[key] = _check_type(key.upper(), value, "settings()") if key != "shard" else value
    cfg.shard = parse_shard(cfg.shard) if isinstance(cfg.shard, str) else tuple(cfg.shard)
    return cfg


def load_script(name):
    """scripts/<name>.py as a module, to call a step's main() in-process (their names start
    with digits, so `import` cannot). One module object per script, registered in
    sys.modules so that worker processes can unpickle its functions by name."""
    key = f"script_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, repo_path("scripts") / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


def progress(iterable=None, **kwargs):
    """A tqdm progress bar on stderr: redrawn every 0.5 s on a terminal, every
    config.PROGRESS_LOG_INTERVAL_S seconds when stderr goes to a file (a job's log keeps one
    line per interval, not thousands of carriage-return updates). kwargs go to tqdm."""
    try:
        terminal = sys.stderr.isatty()
    except (AttributeError, ValueError):
        terminal = False
    kwargs.setdefault("mininterval", 0.5 if terminal else config.PROGRESS_LOG_INTERVAL_S)
    kwargs.setdefault("dynamic_ncols", terminal)
    return tqdm(iterable, file=sys.stderr, **kwargs)


def repo_path(path):
    """A config path made absolute: relative paths are taken from the repository root."""
    path = Path(path)
    return path if path.is_absolute() else Path(__file__).resolve().parent / path
