"""Command-line and YAML overrides of ``config.py``, shared by every script.

Precedence: ``config.py`` < ``--config FILE.yaml`` < flags. A flag is the config key in
lower case with dashes (``EPOCHS`` -> ``--epochs``, ``VIDEO_ROOT`` -> ``--video-root``);
booleans take ``--deltas`` / ``--no-deltas``; a key whose default is None ("the preset's
value", the front-end keys) takes the type of ``audio.OVERRIDE_KEYS``. Unknown YAML keys and
values of the wrong type are errors naming the file and the key; keys a script does not use
are accepted and logged as unused. A flag on the command line that the script does not take
is an error.

One meaning per flag: every config key is a flag of the same name in every script that reads
it, and a script's own flag may not take a config key's name (``parser`` refuses to build
such a parser); ``tests/test_cli.py`` checks that a flag name has one type in all scripts.

Usage in a script::

    parser = cli.parser(__doc__, ["FEATURE", "SPLITS"], shard=True)
    parser.add_argument("--only-lists", action="store_true", help="...")  # script's own
    cfg = cli.parse(parser, argv)
    cfg.feature, cfg.workers, cfg.shard  # -> "mel", 2, (1, 1)
"""
import argparse
import ast
import functools
import io
import sys
import tokenize
from pathlib import Path

import yaml
from tqdm import tqdm

from soundtrack.errors import ExitError, StageError, missing_message

from soundtrack import audio
import config

# The repository's root: config paths that are relative are taken from here.
REPO_ROOT = Path(__file__).resolve().parents[1]

# What names the dataset: every runbook script, train.py and predict.py takes these, so one set
# of dataset flags serves the whole runbook. The flags of the work itself (WORKERS, SPLITS,
# SHARD) are taken only by the scripts that use them: elsewhere they are refused, never
# silently ignored.
COMMON_KEYS = ["DATASET", "VIDEO_ROOT", "DATA_ROOT", "OUTPUT_ROOT", "VIDEO_EXTENSIONS",
               "TRAIN_SPLIT", "EVAL_SPLIT"]
# Keys that hold a path: typed as a flag, a relative path is taken from the working directory
# (as any path a user types); in config.py or a YAML file, from the repository root.
PATH_KEYS = ["DATA_ROOT", "OUTPUT_ROOT", "VIDEO_ROOT", "AUDIO_ROOT", "FEATURE_ROOT",
             "FRAME_ROOT", "ENVELOPE_ROOT", "INIT_CHECKPOINT", "VGGISH_PCA_PARAMS",
             "PRETRAINED_WEIGHTS", "FFMPEG"]
PATH_WORDS = {"FFMPEG": ("imageio", "system"), "PRETRAINED_WEIGHTS": ("imagenet", "none")}
# Everything that decides the audio images (audio.FrontEnd): steps 02-04, train.py.
FRONT_END_KEYS = ["FRONT_END", "FEATURE", "DELTAS", *audio.OVERRIDE_KEYS]
# Keys whose default is None: the type a set value must have.
NULLABLE_TYPES = {key: typ for key, (_, typ) in audio.OVERRIDE_KEYS.items()}

# Keys whose value must be one of a few words.
CHOICES = {
    "FRONT_END": sorted(audio.PRESETS),
    "AUDIO_CHANNELS": list(audio.CHANNEL_POLICIES),
    "FEATURE": list(audio.FEATURES),
    "SPECTRUM": list(audio.SPECTRA),
    "MEL_SCALE": list(audio.MEL_SCALES),
    "MEL_NORM": list(audio.MEL_NORMS),
    "LOG_SCALE": list(audio.LOG_SCALES),
    "CENTRE_PADDING": list(audio.CENTRE_PADDINGS),
    "FEATURE_DTYPE": ["float16", "float32"],
    "SHORT_TRACK_POLICY": ["pad", "drop"],
    "OPTIMIZER": ["adamw", "adam", "sgd"],
    "SCHEDULE": ["cosine", "step"],
    "DEVICE": ["auto", "cpu", "cuda"],
    "EVAL_CHECKPOINT": ["best", "last"],
    "TWO_PHASE_ROWS": ["same", "common"],
}


def config_keys():
    """The names of all settings in config.py (UPPER_CASE module constants)."""
    return [k for k in vars(config) if k.isupper() and not k.startswith("_")]


@functools.lru_cache(maxsize=None)
def key_comments():
    """{KEY: its comment in config.py}: the comment on the key's line(s) and the indented
    comment lines right under it, as one line of text. config.py is the one source of every
    flag's help (tests/test_cli.py fails on a key without one)."""
    source = Path(config.__file__).read_text(encoding="utf-8")
    comments = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = (tok.start[1], tok.string.lstrip("#").strip())
    lines = source.splitlines()
    out = {}
    for node in ast.parse(source).body:
        if not (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id.isupper()):
            continue
        parts = [comments[r][1] for r in range(node.lineno, node.end_lineno + 1)
                 if r in comments and comments[r][0] > 0]
        row = node.end_lineno + 1
        while (row in comments and comments[row][0] > 0
               and not lines[row - 1][:comments[row][0]].strip()):
            parts.append(comments[row][1])
            row += 1
        out[node.targets[0].id] = " ".join(p for p in parts if p)
    return out


def flag_help(key):
    """--help text of a config key's flag: its config.py comment and its default."""
    default = getattr(config, key)
    shown = repr(default) if default is not None else "the FRONT_END preset's value"
    return f"{key_comments().get(key, '')} [default: {shown}]".strip()


class Settings(dict):
    """Resolved settings; attribute access by lower-case key (``cfg.video_root``)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        self[name] = value


def named_values(items, flag, bad_name=lambda name: None, value="VALUE"):
    """['a=x', 'b=y'] -> {'a': 'x', 'b': 'y'} in order (--scores, --kind, --sources). A
    ValueError names the flag and the item for a missing '=' or value, a name that
    bad_name(name) refuses (its text says why), or a name given twice."""
    out = {}
    for item in items:
        name, sep, v = item.partition("=")
        if not sep or not v:
            raise ValueError(f"{flag}: expected NAME={value}, got {item!r}")
        why = bad_name(name)
        if why:
            raise ValueError(f"{flag}: {why}")
        if name in out:
            raise ValueError(f"{flag}: {name!r} given twice")
        out[name] = v
    return out


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


def _choices(key):
    # presets are looked up when asked for, so that a preset added at run time (a test's) counts
    return sorted(audio.PRESETS) if key == "FRONT_END" else CHOICES.get(key)


def _check_type(key, value, where):
    """Return value converted to the type of config.KEY; ValueError naming `where` otherwise.

    A key whose default is None accepts None (the preset's value) or a NULLABLE_TYPES value."""
    default = getattr(config, key)
    if default is None:
        if value is None:
            return None
        want = NULLABLE_TYPES[key]
        default = want(0) if want is not str else ""
    want = type(default)
    ok = (isinstance(value, want) and not (want is int and isinstance(value, bool))) or (
        want is float and isinstance(value, int) and not isinstance(value, bool))
    if want is list:
        elem = type(default[0]) if default else str
        ok = isinstance(value, list) and all(isinstance(v, elem) for v in value)
    if not ok:
        raise ValueError(f"{where}: {key} must be {want.__name__} like {default!r}, "
                         f"got {value!r} ({type(value).__name__})")
    if _choices(key) and value not in _choices(key):
        raise ValueError(f"{where}: {key} must be one of {_choices(key)}, got {value!r}")
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


class Parser(argparse.ArgumentParser):
    """An ArgumentParser that refuses a script flag named like a config key: such a flag
    would silently replace the key's value with a meaning and default of its own."""

    def add_argument(self, *names, **kwargs):
        # config keys' flags are added to their argument group, which does not come here
        taken = {_flag(k): k for k in config_keys()}
        for name in names:
            key = taken.get(name) or taken.get(name.replace("--no-", "--", 1))
            if key:
                raise ValueError(f"script flag {name} would shadow config key {key}: list "
                                 "the key in cli.parser(doc, keys) instead, or name the flag "
                                 "otherwise")
        return super().add_argument(*names, **kwargs)


def parser(doc, keys=(), shard=False, eval_splits=False):
    """An ArgumentParser whose help is the script's docstring, with a flag per config key.

    Args:
      doc: the script's module docstring (its contract), shown by --help.
      keys: config keys this script reads, besides COMMON_KEYS (and SHARD if `shard`).
      eval_splits: the script scores or reports several splits: --eval-splits SPLIT ...
        (default: EVAL_SPLIT), one meaning in every script.
    """
    p = Parser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter,
               argument_default=argparse.SUPPRESS, allow_abbrev=False)
    p.add_argument("--config", metavar="FILE.yaml", default=None,
                   help="YAML file of config.py overrides (flags override it)")
    all_keys = list(dict.fromkeys(list(COMMON_KEYS) + (["SHARD"] if shard else [])
                                  + list(keys)))
    unknown = [k for k in all_keys if k not in config_keys()]
    if unknown:
        raise ValueError(f"cli.parser: {unknown} are not config.py keys")
    g = p.add_argument_group("settings (defaults from config.py)")
    for key in all_keys:
        default = getattr(config, key)
        kwargs = {"help": flag_help(key), "dest": key}
        if isinstance(default, bool):
            kwargs["action"] = argparse.BooleanOptionalAction
        elif isinstance(default, list):
            kwargs.update(nargs="+", type=type(default[0]) if default else str)
        else:
            kwargs["type"] = NULLABLE_TYPES[key] if default is None else type(default)
            if _choices(key):
                kwargs["choices"] = _choices(key)
            elif key == "MODEL":          # the registry's names (torch: only scripts that train)
                import network
                kwargs["choices"] = network.names()
        g.add_argument(_flag(key), **kwargs)
    if eval_splits:
        p.add_argument("--eval-splits", nargs="+", default=None, metavar="SPLIT",
                       help="the splits to score or report, in order (default: EVAL_SPLIT)")
    p.set_defaults(_keys=all_keys)
    return p


def from_working_directory(key, value):
    """A path key's value typed on the command line: relative -> absolute from the working
    directory (config.py's and YAML's relative paths stay relative to the repository)."""
    if (key in PATH_KEYS and isinstance(value, str) and value
            and value not in PATH_WORDS.get(key, ()) and not Path(value).is_absolute()):
        return str(Path.cwd() / value)
    return value


def parse(p, argv=None, log_unused=True):
    """Parse argv; return Settings holding every config key (resolved) and the script's flags.

    YAML keys that the script does not read are logged (stderr) as unused, unless
    `log_unused` is False (a benchmark reading a recipe's paths that it hands whole to
    train.py). When the script reads the front-end keys, they must make a valid
    audio.FrontEnd (else a usage error)."""
    args = vars(p.parse_args(argv))
    keys = args.pop("_keys", [])
    yaml_path = args.pop("config", None)
    values = {k: getattr(config, k) for k in config_keys()}
    try:
        if yaml_path:
            from_yaml = load_yaml(yaml_path)
            values.update(from_yaml)
            unused = [k for k in from_yaml if k not in keys]
            if unused and log_unused:
                who = (p.prog if p.prog.endswith(".py") and p.prog != "__main__.py" else
                       (p.description or p.prog).strip().splitlines()[0].split(":")[0][:40])
                print(f"[config] {yaml_path}: keys that {who!r} does not use (accepted, "
                      f"ignored here): {', '.join(unused)}", file=sys.stderr)
        for key in keys:
            if key in args:
                values[key] = from_working_directory(key, _check_type(key, args.pop(key),
                                                                      _flag(key)))
    except (ValueError, OSError, yaml.YAMLError) as e:
        p.error(str(e))
    cfg = Settings({k.lower(): v for k, v in values.items()})
    cfg.update(args)  # the script's own flags (never a config key's name: see Parser)
    cfg.shard = parse_shard(cfg.shard)
    if "FRONT_END" in keys:
        try:
            audio.front_end_from_settings(cfg)
        except ValueError as e:
            p.error(f"the front-end settings are refused: {e}")
    return cfg


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
    return path if path.is_absolute() else REPO_ROOT / path


# ---------------------------------------------------------------- how scripts end

def explain(error):
    """The one line a user sees for an exception: a missing file names the step that makes
    it (errors.missing_message); anything else its own message."""
    if isinstance(error, FileNotFoundError) and error.filename:
        return missing_message(error.filename)
    return str(error)


def fail(message):
    """End the script on a user's mistake: one line ``error: <message>`` on stderr, exit
    status 2, no traceback (raises errors.ExitError)."""
    line = f"error: {message}"
    print(line, file=sys.stderr, flush=True)
    raise ExitError(line)


def run_script(main):
    """A script's entry point: exit with main()'s status (0 when it returns no number). A
    missing input, a file that cannot be read or a setting that cannot work ends it with one
    line naming the file (and, for a missing one, the step that makes it), status 2."""
    try:
        status = main()
    except StageError as e:
        fail(str(e))
    except (ValueError, OSError) as e:        # bad inputs: the message names the file
        fail(explain(e))
    sys.exit(status if isinstance(status, int) else 0)
