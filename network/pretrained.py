"""Reading published pretrained weights (PANNs CNN14, VGGish and its PCA file) safely.

Every file goes through ``safe_load``: ``torch.load(weights_only=True)``, which runs no code
from the file. The published pickles also hold numpy arrays (the PCA parameters; the PANNs
checkpoint's sampler state), which that refuses unless their rebuilding functions are
allowlisted: ``NUMPY_GLOBALS`` names exactly those (``_reconstruct``, ``scalar``,
``ndarray``, ``dtype`` and the classes of the numeric dtypes), under numpy 1.x's module
names, as in the published files, and numpy 2's, as in files saved again since. Anything else is refused with its name and the file.

``init_state`` turns a loaded file into a state dict under the model's own keys:
* PANNs ``{"model": state_dict, "iteration": ..., "sampler": ...}``: the state dict, after
  checking its stored STFT and mel matrices (``spectrogram_extractor.*``,
  ``logmel_extractor.melW``) against the run's front end (soundtrack/audio.py computes the front end
  in step 03, so the model holds no such matrices);
* VGGish's release state dict: as is; a postprocessing model (``vggish_pca``) also takes
  the PCA file's means and eigenvectors;
then ``network.load_body`` loads it strictly. Failures name the file expected, where it is
published, and what was found instead.
"""
import pickle

import numpy as np
import torch
from numpy._core.multiarray import _reconstruct, scalar

from soundtrack import audio

# Plain numeric dtypes only (numpy 2 rebuilds a pickled dtype as an instance of its class,
# e.g. numpy.dtypes.Float64DType); an object array needs more and is refused.
NUMERIC_DTYPES = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                  "uint64", "float16", "float32", "float64")
NUMPY_GLOBALS = [(_reconstruct, "numpy.core.multiarray._reconstruct"),
                 (scalar, "numpy.core.multiarray.scalar"),
                 (_reconstruct, "numpy._core.multiarray._reconstruct"),
                 (scalar, "numpy._core.multiarray.scalar"),
                 np.ndarray, np.dtype, *(type(np.dtype(t)) for t in NUMERIC_DTYPES)]

PANNS_FRONT_END_KEYS = ("spectrogram_extractor.stft.conv_real.weight",
                        "spectrogram_extractor.stft.conv_imag.weight",
                        "logmel_extractor.melW")
PCA_KEYS = ("pca_eigen_vectors", "pca_means")
# The patch length may differ from the preset's (the models pool globally over time); the
# analysis may not.
PATCH_FIELDS = ("patch_frames", "patch_hop_frames")
MATRIX_TOLERANCE = 1e-5      # stored float32 STFT / mel matrices vs ours (values <= 1)


def safe_load(path, what):
    """torch.load(path, weights_only=True) with NUMPY_GLOBALS allowed.

    Raises ValueError naming `what`, the file and, for a refused pickle, the globals it
    needs that are not allowed."""
    try:
        with torch.serialization.safe_globals(NUMPY_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ValueError(f"{what} {path}: no such file") from None
    except pickle.UnpicklingError as e:
        allowed = {name for name in (g[1] if isinstance(g, tuple) else
                                     f"{g.__module__}.{g.__qualname__}"
                                     for g in NUMPY_GLOBALS)}
        try:
            refused = sorted(set(torch.serialization.get_unsafe_globals_in_checkpoint(path))
                             - allowed)
        except Exception:               # not even a readable torch file
            refused = []
        message = str(e)
        if "WeightsUnpickler error:" in message:   # torch's reason, without its advice
            message = message.split("WeightsUnpickler error:")[1].split("Check the doc")[0]
        detail = (f"it needs {', '.join(refused)}, which are not allowed (only tensors, "
                  f"plain containers and numeric numpy arrays are)" if refused else
                  " ".join(message.split()))
        raise ValueError(f"{what} {path}: refused by torch.load(weights_only=True): "
                         f"{detail}") from None
    except (OSError, RuntimeError, EOFError, ValueError) as e:
        raise ValueError(f"{what} {path}: cannot read as a torch file ({e})") from None


def describe(obj):
    """What a loaded file looks like, in words (for error messages)."""
    if not isinstance(obj, dict):
        return f"a {type(obj).__name__}, not a dict"
    keys = set(obj)
    if "model" in keys and isinstance(obj["model"], dict):
        inner = describe(obj["model"])
        extra = sorted(k for k in keys if k != "model")
        return f"a checkpoint {{'model': {inner}}}" + (f" with {extra}" if extra else "")
    if set(PCA_KEYS) <= keys:
        return "VGGish's PCA parameters (pca_eigen_vectors, pca_means)"
    if "conv_block1.conv1.weight" in keys:
        fc = obj.get("fc_audioset.weight")
        return ("a PANNs CNN state dict" + (f" with fc_audioset {tuple(fc.shape)}"
                                            if torch.is_tensor(fc) else ""))
    if "features.0.weight" in keys and "embeddings.0.weight" in keys:
        return "a VGGish state dict (features.*, embeddings.*)"
    names = sorted(map(str, keys))
    return f"a dict of {len(names)} keys ({', '.join(names[:5])}{', ...' if len(names) > 5 else ''})"


def expected(model):
    """'FILE (published at WHERE)' for the model's published weights, or ''."""
    published = getattr(type(model), "PUBLISHED", None)
    return f"{published[0]} (published at {published[1]})" if published else ""


def stft_matrices(window_length, fft_length):
    """The real and imaginary DFT rows times the periodic Hann window (centred in the frame),
    float64 [fft_length // 2 + 1, fft_length] each: what PANNs' STFT convolutions hold."""
    window = np.zeros(fft_length)
    start = (fft_length - window_length) // 2
    window[start:start + window_length] = audio.periodic_hann(window_length)
    angle = 2 * np.pi * np.outer(np.arange(fft_length // 2 + 1), np.arange(fft_length)) / fft_length
    return np.cos(angle) * window, -np.sin(angle) * window


def check_panns_front_end(state, front_end, path):
    """Compare a PANNs checkpoint's stored STFT / mel matrices with the run's front end.

    Raises ValueError naming the matrix, the largest difference and the file."""
    if front_end.feature != "mel" or front_end.centre_padding == "none":
        raise ValueError(f"{path} holds PANNs weights, trained on the panns front end; these "
                         f"features are {front_end.name} (run steps 02-04 with --front-end panns)")
    real, imag = stft_matrices(front_end.window_samples, front_end.fft_length)
    ours = {PANNS_FRONT_END_KEYS[0]: real[:, None, :], PANNS_FRONT_END_KEYS[1]: imag[:, None, :],
            PANNS_FRONT_END_KEYS[2]: audio.filterbank_matrix(front_end)}
    for key, want in ours.items():
        if key not in state:
            continue                    # a state dict saved without the front end is fine
        got = state[key].double().numpy()
        if got.shape != want.shape:
            raise ValueError(f"{path}: {key} is {got.shape}, the {front_end.name} front end's "
                             f"is {want.shape}: these weights were trained on another front end "
                             f"(rate, window or bands), which would make them useless here")
        scale = max(float(np.abs(want).max()), 1e-12)
        worst = float(np.abs(got - want).max()) / scale
        if worst > MATRIX_TOLERANCE:
            raise ValueError(f"{path}: {key} differs from the {front_end.name} front end's by "
                             f"{worst:.2e} (relative): these weights were trained on another "
                             f"front end")


def pca_state(path, model):
    """The PCA file's means [128, 1] and eigenvectors [128, 128] as float32 tensors."""
    what = f"VGGISH_PCA_PARAMS (expected {model.PCA_PUBLISHED[0]}, published at " \
           f"{model.PCA_PUBLISHED[1]})"
    if not path:
        raise ValueError(f"{type(model).__name__} postprocesses with the PCA parameters: "
                         f"set {what}")
    obj = safe_load(path, what)
    if not isinstance(obj, dict) or not set(PCA_KEYS) <= set(obj):
        raise ValueError(f"{what}: {path} is {describe(obj)}, not the PCA parameters")
    vectors = torch.as_tensor(np.asarray(obj["pca_eigen_vectors"]), dtype=torch.float32)
    means = torch.as_tensor(np.asarray(obj["pca_means"]), dtype=torch.float32).reshape(-1, 1)
    if vectors.shape != model.pca_eigen_vectors.shape or means.shape != model.pca_means.shape:
        raise ValueError(f"{what}: {path} has pca_eigen_vectors {tuple(vectors.shape)} and "
                         f"pca_means {tuple(means.shape)}, expected "
                         f"{tuple(model.pca_eigen_vectors.shape)} and "
                         f"{tuple(model.pca_means.shape)}")
    return {"pca_eigen_vectors": vectors, "pca_means": means}


def init_state(model, obj, path, front_end, pca_path=""):
    """A state dict under `model`'s keys from a loaded published file (or bare state dict).

    PANNs' {"model": ..., extra keys} is unwrapped and its front-end matrices checked and
    dropped; a model with published weights needs the front-end preset they were trained
    on, its analysis unchanged (the patch length may differ); a postprocessing VGGish takes its PCA tensors from `pca_path` unless the
    state has them. Raises ValueError naming the file expected and what was found."""
    state = obj.get("model", obj) if isinstance(obj, dict) else None
    want = expected(model)
    if not isinstance(state, dict) or not all(torch.is_tensor(v) or isinstance(v, np.ndarray)
                                              for v in state.values()):
        raise ValueError(f"INIT_CHECKPOINT {path} is {describe(obj)}: neither a train.py "
                         f"checkpoint nor a state dict of tensors"
                         + (f" (expected {want})" if want else ""))
    state = {k: torch.as_tensor(v) for k, v in state.items()}
    preset = getattr(type(model), "PRESET", None)
    changed = [k for k in front_end.overrides if k not in PATCH_FIELDS]
    if preset and (front_end.preset != preset or changed or front_end.deltas):
        raise ValueError(f"INIT_CHECKPOINT {path}: {type(model).__name__}'s published weights "
                         f"expect the {preset!r} front end's analysis unchanged; these "
                         f"features are {front_end.name} (preset {front_end.preset!r}"
                         + (f", overriding {', '.join(changed)}" if changed else "")
                         + (", with deltas" if front_end.deltas else "") + ")")
    if any(k in state for k in PANNS_FRONT_END_KEYS):
        check_panns_front_end(state, front_end, f"INIT_CHECKPOINT {path}")
        state = {k: v for k, v in state.items() if k not in PANNS_FRONT_END_KEYS}
    if getattr(model, "postprocess", False) and not set(PCA_KEYS) <= set(state):
        state.update(pca_state(pca_path, model))
    return state


def explain_misfit(model, obj, error):
    """load_body's error, with the file expected and what the file is."""
    want = expected(model)
    return (f"{error}. Found {describe(obj)}"
            + (f"; expected {want} or a train.py checkpoint of this model" if want else ""))
