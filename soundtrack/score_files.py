"""Reading the score files a video model leaves, in the formats users already have (step 06).

  .npy        float [n, n_classes]; the row ids beside it (x.npy -> x_ids.txt) or the rows
              in the order of a video list
  .npz        arrays ``scores`` float [n, n_classes] and ``ids`` str [n]
  .csv, .tsv  a header, then one row per video: the first column the id, then one column per
              class, headed by the class name (the columns are put in classes.txt order by
              name; a header whose classes are not classes.txt's is refused, naming them)
  .pkl        MMAction2's ``tools/test.py --dump results.pkl``: a list, one entry per video in
              the order of the annotation file, each a dict with ``pred_score`` [n_classes]
              (or ``pred_scores`` with ``item``, MMAction2 1.0rc), or an array (MMAction2
              0.x ``--out``); the ids come from that annotation file (``--video-list``)

A pickle can run code when it is loaded: ``read_pickle`` unpickles with an allow-list of the
plain containers and the numpy and torch array types such a dump holds, and refuses anything
else, naming it, before it is ever called. A torch storage inside is read with torch's own
weights-only loader.

Every format error is one ValueError naming the file and what was expected.
"""
import collections
import csv
import io
import pickle
from pathlib import Path

import numpy as np

FORMATS = (".npy", ".npz", ".csv", ".tsv", ".pkl", ".pickle")
MATCH_IDS = ("exact", "basename")


# ---------------------------------------------------------------- the safe unpickler

def _torch_storage_from_bytes(data):
    """torch.storage._load_from_bytes, but through torch's weights-only loader."""
    import torch
    return torch.load(io.BytesIO(data), weights_only=True)


def _allowed():
    """{(module, name): object} that a dump of scores may name; nothing else is loaded."""
    from numpy._core import multiarray
    allowed = {("collections", "OrderedDict"): collections.OrderedDict}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = multiarray._reconstruct
        allowed[(mod, "scalar")] = multiarray.scalar
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
    for name in ("Float64DType", "Float32DType", "Float16DType", "Int64DType", "Int32DType",
                 "BoolDType"):
        if hasattr(np.dtypes, name):
            allowed[("numpy.dtypes", name)] = getattr(np.dtypes, name)
    try:
        import torch
        import torch._utils
    except ImportError:       # a numpy-only dump still loads
        return allowed
    allowed[("torch._utils", "_rebuild_tensor_v2")] = torch._utils._rebuild_tensor_v2
    allowed[("torch.storage", "_load_from_bytes")] = _torch_storage_from_bytes
    return allowed


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that finds only the allowed globals (containers, numpy arrays, torch
    tensors) and refuses every other one: nothing named in the file is imported or called
    unless it is on the list."""

    def __init__(self, file, where):
        super().__init__(file)
        self.where, self.allowed = where, _allowed()

    def find_class(self, module, name):
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"{self.where}: refused to load {module}.{name}: a score dump holds only "
                f"lists, dicts, numbers, strings and numpy / torch arrays, and nothing else "
                f"in a pickle is run") from None

    def persistent_load(self, pid):
        raise pickle.UnpicklingError(f"{self.where}: refused a persistent id {pid!r}")


def read_pickle(path):
    """The object in a pickle file, loaded with SafeUnpickler. ValueError if it names
    anything outside the allow-list, or is not a pickle."""
    try:
        with open(path, "rb") as f:
            return SafeUnpickler(f, str(path)).load()
    except pickle.UnpicklingError as e:
        raise ValueError(str(e) if str(e).startswith(str(path)) else
                         f"{path}: not a readable pickle ({e})") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError) as e:
        raise ValueError(f"{path}: not a readable pickle ({type(e).__name__}: {e})") from None


def _as_vector(value, where):
    if hasattr(value, "detach"):                      # a torch tensor
        value = value.detach().cpu().numpy()
    a = np.asarray(value)
    if a.dtype.kind not in "fiu" or a.ndim != 1:
        raise ValueError(f"{where}: expected a vector of class scores, got "
                         f"{a.dtype} {a.shape}")
    return a.astype(np.float64)


def mmaction_scores(obj, path):
    """An MMAction2 dump's rows -> float32 [n, n_classes]."""
    if not isinstance(obj, (list, tuple)) or not obj:
        raise ValueError(f"{path}: expected MMAction2's dump, a non-empty list with one entry "
                         f"per video; got {type(obj).__name__}")
    rows = []
    for i, entry in enumerate(obj):
        where = f"{path}: entry {i}"
        if isinstance(entry, dict):
            if "pred_score" in entry:
                value = entry["pred_score"]
            elif isinstance(entry.get("pred_scores"), dict) and "item" in entry["pred_scores"]:
                value = entry["pred_scores"]["item"]
            else:
                raise ValueError(f"{where} has no 'pred_score' (nor 'pred_scores' with "
                                 f"'item'); its keys: {sorted(map(str, entry))[:10]}")
        else:
            value = entry
        rows.append(_as_vector(value, where))
    widths = {len(r) for r in rows}
    if len(widths) != 1:
        raise ValueError(f"{path}: the entries hold {sorted(widths)} class scores; expected "
                         f"one count")
    return np.stack(rows).astype(np.float32)


# ---------------------------------------------------------------- npz and tables

def read_npz(path):
    """-> (scores float32 [n, C], ids [n])."""
    try:
        with np.load(path, allow_pickle=False) as z:
            names = sorted(z.files)
            if "scores" not in names or "ids" not in names:
                raise ValueError(f"{path}: an .npz of scores needs arrays 'scores' "
                                 f"[n, n_classes] and 'ids' [n]; it holds {names}")
            scores, ids = z["scores"], z["ids"]
    except (OSError, EOFError) as e:
        raise ValueError(f"{path}: cannot read as .npz ({e})") from None
    except ValueError as e:
        if str(e).startswith(str(path)):
            raise
        raise ValueError(f"{path}: cannot read as .npz without pickles ({e})") from None
    if scores.ndim != 2 or ids.ndim != 1 or len(ids) != len(scores):
        raise ValueError(f"{path}: 'scores' is {scores.shape} and 'ids' {ids.shape}; expected "
                         f"[n, n_classes] and [n]")
    if ids.dtype.kind not in "US":
        raise ValueError(f"{path}: 'ids' must be strings, got {ids.dtype}")
    return scores.astype(np.float32), [str(i) for i in ids]


def read_table(path, classes):
    """A .csv / .tsv of scores -> (float32 [n, C] in classes.txt column order, ids)."""
    delimiter = "\t" if Path(path).suffix.lower() == ".tsv" else ","
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter=delimiter))
    if len(rows) < 2:
        raise ValueError(f"{path}: expected a header (id, then one column per class) and "
                         f"one row per video")
    header = [h.strip() for h in rows[0]]
    names = header[1:]
    missing = [c for c in classes if c not in names]
    extra = [n for n in names if n not in classes]
    if missing or extra or len(set(names)) != len(names):
        raise ValueError(f"{path}: its header's classes are not those of classes.txt: "
                         f"{len(missing)} missing ({missing[:10]}), {len(extra)} not in "
                         f"classes.txt ({extra[:10]})"
                         + ("; a class is named twice" if len(set(names)) != len(names) else ""))
    order = [names.index(c) for c in classes]
    ids, values = [], []
    for line, row in enumerate(rows[1:], 2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise ValueError(f"{path}:{line}: {len(row)} columns, the header has {len(header)}")
        try:
            v = np.asarray([float(x) for x in row[1:]])
        except ValueError:
            raise ValueError(f"{path}:{line}: a score that is not a number: {row[1:][:5]}") \
                from None
        ids.append(row[0].strip())
        values.append(v[order])
    return np.asarray(values, np.float32), ids


# ---------------------------------------------------------------- ids

def read_any_video_list(path):
    """Ids of a video list, in its order: this project's ``id<TAB>label`` lines, or
    MMAction2's annotation lines ``path label`` / ``path n_frames label`` (the id is the path
    without its extension)."""
    ids = []
    for line_no, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        if "\t" in line:
            ids.append(line.split("\t", 1)[0])
            continue
        parts = line.split()
        if len(parts) not in (2, 3):
            raise ValueError(f"{path}:{line_no}: expected 'id<TAB>label', 'path label' or "
                             f"'path n_frames label', got {line!r}")
        p = parts[0]
        ids.append(str(Path(p).with_suffix("")) if Path(p).suffix else p)
    return ids


def basename(video_id):
    """A video id's file name without folders: 'val/abseiling/xyz' -> 'xyz'."""
    return video_id.replace("\\", "/").rsplit("/", 1)[-1]


def rename_by_basename(video_ids, audio_ids, video_where, audio_where):
    """--match-ids basename: the video ids renamed to the audio id of the same file name.
    Names must be unique on both sides (else a ValueError with the counts). Video ids whose
    name no audio id has keep their own id."""
    for ids, where in ((video_ids, video_where), (audio_ids, audio_where)):
        names = collections.Counter(basename(i) for i in ids)
        twice = [n for n, k in names.items() if k > 1]
        if twice:
            raise ValueError(f"--match-ids basename: {len(twice)} file names stand on several "
                             f"ids of {where} ({len(ids)} ids, {len(names)} names), e.g. "
                             f"{twice[:5]}: match exact ids instead")
    audio_of = {basename(i): i for i in audio_ids}
    return [audio_of.get(basename(i), i) for i in video_ids]
