"""Scoring new media files with trained models: the classifiers behind scripts/predict.py.

``load_classifier(path)`` gives, for a train.py checkpoint, a ``Classifier`` (audio: the
checkpoint's own front end, as steps 02-03 and train.py score a track) or a
``VisualClassifier`` (its own frame settings, as step 08 and train.py score a video), and for
step 12's ``phase2_F<k>.pt`` a ``TwoPhaseClassifier`` (each recorded Phase I backbone, then
the Phase II model); ``FusedClassifier`` fuses an audio and a video checkpoint with step 07's
weights. Each has ``prepare(path, ffmpeg, timeout_s)`` (decoding, no model: predict.py runs
it in WORKERS threads) and ``finish(path, prepared)`` (the model) -> the file's top-5 and its
mean embedding, logits and scores as train.py's output contract holds them
(scripts/predict.py's docstring says what is written).
"""
import json
from pathlib import Path

import numpy as np
import torch

import network
from soundtrack import audio
from soundtrack import cli
from soundtrack import datafiles
from soundtrack import frames
from soundtrack import learned_fusion
from soundtrack import media
from soundtrack import metrics
from soundtrack import records

TOP_K = 5


read_checkpoint = datafiles.read_checkpoint


def outputs_of(model, batches, device):
    """One track's (video's) outputs from its patches (frames), as train.py's contract has
    them: {"scores": mean softmax [n_classes], "logits": mean logits [n_classes],
    "embedding": mean embedding [d]}."""
    logits, embedding = [], []
    with torch.no_grad():
        for x in batches:
            out = model(x.to(device))
            logits.append(out["logits"].float().cpu().numpy())
            embedding.append(out["embedding"].float().cpu().numpy())
    logits, embedding = np.concatenate(logits), np.concatenate(embedding)
    track = np.zeros(len(logits), np.int64)
    return {"scores": metrics.track_scores(logits, track, 1)[0],
            "logits": metrics.track_mean(logits, track, 1)[0],
            "embedding": metrics.track_mean(embedding, track, 1)[0]}


def scores_of(model, batches, device):
    """Mean softmax over the rows of every input batch -> [n_classes] (train.py's rule)."""
    return outputs_of(model, batches, device)["scores"]


def top5(classes, probs):
    top = np.argsort(-probs, kind="stable")[:TOP_K]
    return [[classes[i], round(float(probs[i]), 6)] for i in top]


class SingleModel:
    """What a train.py checkpoint's classifier does with a file, in two halves: ``prepare``
    (decoding, in a worker thread) and ``finish`` (the model, in the main thread)."""

    def file_outputs(self, path, ffmpeg, timeout_s):
        """-> (outputs_of's dict, prepare's info) of one media file."""
        inputs, info = self.prepare(path, ffmpeg, timeout_s)
        return self.outputs(inputs), info

    def finish(self, path, prepared):
        """prepare's result -> the dict of the JSON 'files' list (``_outputs``: the contract's
        arrays, not written to the JSON)."""
        inputs, info = prepared
        out = self.outputs(inputs)
        return {"path": str(path), **info, "top5": top5(self.classes, out["scores"]),
                "_outputs": out}

    def predict_file(self, path, ffmpeg, timeout_s):
        """-> the dict of the JSON 'files' list; raises media.MediaError or ValueError."""
        return self.finish(path, self.prepare(path, ffmpeg, timeout_s))


class Classifier(SingleModel):
    """A checkpoint's model and front end: waveform -> class probabilities."""
    modality = "audio"

    def __init__(self, path, device="cpu", batch_size=128, ckpt=None):
        ckpt = read_checkpoint(path) if ckpt is None else ckpt
        missing = [k for k in ("model", "model_name", "classes", "front_end",
                               "short_track_policy") if k not in ckpt]
        if missing:
            raise ValueError(f"{path}: not a train.py checkpoint with a front-end record (no "
                             f"{', '.join(missing)}); retrain with this version")
        self.path, self.classes = Path(path), list(ckpt["classes"])
        self.model_name = ckpt["model_name"]
        self.front_end = audio.FrontEnd.from_dict(ckpt["front_end"], where=f"{path} front_end")
        self.policy = ckpt["short_track_policy"]
        # step 03 stored the training features in this dtype: round to it, as train.py saw them
        self.feature_dtype = ckpt.get("feature_dtype", "float32")
        if list(ckpt.get("patch_shape", [])) != list(self.front_end.patch_shape):
            raise ValueError(f"{path}: its model was trained on patches "
                             f"{ckpt.get('patch_shape')}, its front end makes "
                             f"{list(self.front_end.patch_shape)}")
        self.device, self.batch_size = torch.device(device), batch_size
        self.model = network.build_audio(self.model_name, len(self.classes),
                                         self.front_end.patch_shape)
        self.model.load_state_dict(datafiles.scored_weights(ckpt))
        self.model.to(self.device).eval()

    def patches(self, samples, sample_rate):
        """float waveform [n] or [n, channels] -> (audio images [n_patches, C, bands,
        frames] float32, note: "" or why the track was padded)."""
        samples, note = audio.pad_short_track(samples, sample_rate, self.front_end,
                                              self.policy)
        if samples is None:
            raise ValueError(f"dropped: {note}")
        x = audio.features(samples, sample_rate, self.front_end)
        x = x.astype(self.feature_dtype).astype(np.float32)
        return (x[:, None] if x.ndim == 3 else x), (f"padded: {note}" if note else "")

    def probabilities(self, patches):
        """audio images [n, C, 64, 96] -> [n_classes]: the mean of the patches' softmax."""
        return self.outputs(patches)["scores"]

    def outputs(self, patches):
        """audio images [n, C, bands, frames] -> ``outputs_of``'s dict."""
        return outputs_of(self.model, (torch.from_numpy(np.ascontiguousarray(
            patches[i:i + self.batch_size])) for i in range(0, len(patches), self.batch_size)),
            self.device)

    def prepare(self, path, ffmpeg, timeout_s):
        """Decode one media file and cut its audio images (no model: safe in a worker
        thread). -> (patches, {"seconds", "n_patches", "note"})."""
        fe = self.front_end
        rate = fe.sample_rate_hz
        samples = media.decode_audio(path, rate, ffmpeg, timeout_s, fe.channels)
        samples = samples.astype(np.float32) / 32768.0
        patches, note = self.patches(samples, rate)
        return patches, {"seconds": round(len(samples) / rate, 3),
                         "n_patches": int(len(patches)), "note": note}

    @property
    def record(self):
        return {"front_end": self.front_end.to_dict()}

    @property
    def input_name(self):
        return self.front_end.name



class VisualClassifier(SingleModel):
    """A visual checkpoint's model and frame settings: video -> class probabilities."""
    modality = "visual"

    def __init__(self, path, device="cpu", batch_size=128, ckpt=None):
        ckpt = read_checkpoint(path) if ckpt is None else ckpt
        missing = [k for k in ("model", "model_name", "classes", "frames") if k not in ckpt]
        if missing:
            raise ValueError(f"{path}: not a visual train.py checkpoint (no "
                             f"{', '.join(missing)})")
        self.path, self.classes = Path(path), list(ckpt["classes"])
        self.model_name = ckpt["model_name"]
        self.frames = frames.FrameSettings.from_dict(ckpt["frames"], f"{path} frames")
        self.device, self.batch_size = torch.device(device), batch_size
        self.model = network.build(self.model_name, n_classes=len(self.classes), weights="none")
        self.model.load_state_dict(datafiles.scored_weights(ckpt))
        self.model.to(self.device).eval()

    @property
    def record(self):
        return {"frames": self.frames.to_dict()}

    @property
    def input_name(self):
        return f"frames {self.frames.folder}"

    def prepare(self, path, ffmpeg, timeout_s):
        """Decode one video's frames as step 08 does (no model: safe in a worker thread).
        -> (images, {"seconds", "n_frames", "note"})."""
        f = self.frames
        jpeg, offsets, times = media.decode_jpeg_frames(path, f.size_pixels, f.rate,
                                                        f.jpeg_qscale, ffmpeg, timeout_s)
        images = [frames.decode(jpeg[a:b]) for a, b in zip(offsets[:-1], offsets[1:])]
        if not images:
            raise ValueError(f"{path}: no frames decoded")
        return images, {"seconds": round(float(times[-1]) if len(times) else 0.0, 3),
                        "n_frames": len(images), "note": ""}

    def outputs(self, images):
        """frames [n] of uint8 [3, S, S] -> ``outputs_of``'s dict."""
        return outputs_of(self.model, (torch.stack(images[i:i + self.batch_size])
                                       for i in range(0, len(images), self.batch_size)),
                          self.device)


def backbone(path, device="cpu", ckpt=None):
    """The Classifier or VisualClassifier of a train.py checkpoint (by its "modality")."""
    ckpt = read_checkpoint(path) if ckpt is None else ckpt
    kind = VisualClassifier if ckpt.get("modality") == "visual" else Classifier
    return kind(path, device, ckpt=ckpt)


def prepare_sources(models, path, ffmpeg, timeout_s):
    """Every model's ``prepare`` of one file. -> ({name: inputs}, {"seconds", "n_parts":
    {name: n}, "note"})."""
    inputs, parts, notes, seconds = {}, {}, [], 0.0
    for name, m in models.items():
        inputs[name], info = m.prepare(path, ffmpeg, timeout_s)
        parts[name] = info.get("n_patches", info.get("n_frames"))
        seconds = max(seconds, info["seconds"])
        if info["note"]:
            notes.append(f"{name}: {info['note']}")
    return inputs, {"seconds": seconds, "n_parts": parts, "note": "; ".join(notes)}


class TwoPhaseClassifier:
    """The two-phase system from files: each Phase I backbone (its own front end or frames)
    gives a file's embedding and logits as train.py's contract has them, then step 12's
    Phase II model (phase2_F<k>.pt, protocol (a)) fuses them."""
    modality = "two_phase"

    def __init__(self, path, paths, device="cpu", saved=None):
        self.path = Path(path)
        self.model, self.record = learned_fusion.load_model(path)
        self.predict_saved = learned_fusion.predict_saved
        self.classes = list(self.record["classes"])
        self.model_name = f"two-phase {self.record['phase2_layer']}"
        self.what = learned_fusion.PHASE2_LAYERS[self.record["phase2_layer"]][0]
        self.backbones, self.npy_dirs = {}, {}
        for name in self.record["names"]:
            src = self.record["sources"][name]
            if not src["checkpoint"]:
                raise ValueError(f"{path}: source {name} has no checkpoint recorded")
            ckpt_path = resolve_recorded(paths, src["checkpoint"])
            self.backbones[name] = backbone(ckpt_path, device)
            if self.backbones[name].classes != self.classes:
                raise ValueError(f"{ckpt_path}: its classes are not those of {path}")
            self.npy_dirs[name] = resolve_recorded(paths, src["npy_dir"])

    def check_source(self, name, npy_dir, split):
        """The contract compared with must be the one this backbone wrote: its record's
        classes, front end (or frames) and the checkpoint that scored `split` are this
        backbone's, else ValueError naming both files."""
        where = records.folder_record(npy_dir)
        record = records.read(where)
        b = self.backbones[name]
        records.check(record, where, classes=b.classes, classes_where=str(b.path), split=split,
                      front_end=b.record.get("front_end"), frames=b.record.get("frames"),
                      settings_where=str(b.path))
        recorded = records.checkpoint_of(record, split, where)["path"]
        if Path(recorded).name != b.path.name or Path(recorded).parent.name != b.path.parent.name:
            raise ValueError(f"{where}: split {split!r} was scored with {recorded}, this "
                             f"backbone is {b.path}: the comparison would be meaningless")

    @property
    def record_out(self):
        return {"phase2": {k: self.record[k] for k in ("phase2_layer", "protocol", "layer",
                                                       "names", "kinds", "dataset")},
                "sources": self.record["sources"]}

    @property
    def input_name(self):
        return ", ".join(f"{k}: {b.input_name}" for k, b in self.backbones.items())

    def prepare(self, path, ffmpeg, timeout_s):
        """Each backbone's decoding of one file (worker thread). -> ({source: inputs},
        {"seconds", "n_parts": {source: n}, "note"})."""
        return prepare_sources(self.backbones, path, ffmpeg, timeout_s)

    def finish(self, path, prepared):
        inputs, info = prepared
        outs = {k: self.backbones[k].outputs(x) for k, x in inputs.items()}
        probs = self.predict_saved(self.model, self.record,
                                   {k: o[self.what][None] for k, o in outs.items()})[0]
        return {"path": str(path), **info, "top5": top5(self.classes, probs),
                "sources_top5": {k: top5(self.classes, o["scores"]) for k, o in outs.items()},
                "_outputs": outs, "_probs": probs}

    def predict_file(self, path, ffmpeg, timeout_s):
        return self.finish(path, self.prepare(path, ffmpeg, timeout_s))

    def compare(self, vid, result, split, step12_dir):
        """How far this file's recomputed backbone outputs (and fused probabilities) are
        from the contract rows Phase II read for id `vid`: max |difference| per source and
        array; None if some source's `split` does not hold the id."""
        diffs = {}
        for name, d in self.npy_dirs.items():
            self.check_source(name, d, split)
            ids = datafiles.read_ids(d / f"{split}_ids.txt")
            if vid not in ids:
                return None
            row = ids.index(vid)
            diffs[name] = {what: float(np.abs(np.load(d / f"{split}_{what}.npy",
                                                      mmap_mode="r")[row]
                                              - result["_outputs"][name][what]).max())
                           for what in ("embedding", "logits", "scores")}
        fused = None
        scores = step12_dir / f"{split}_{self.record['phase2_layer']}_a_scores.npy"
        ids_path = step12_dir / f"{split}_two_phase_ids.txt"
        if scores.exists() and ids_path.exists():
            ids = datafiles.read_ids(ids_path)
            if vid in ids:
                fused = float(np.abs(np.load(scores)[ids.index(vid)] - result["_probs"]).max())
        return {"id": vid, "split": split, "max_abs_diff": diffs,
                "phase2_probs_max_abs_diff": fused}


def resolve_recorded(paths, recorded):
    """A path as step 12 recorded it (relative to the output root, else the repository)."""
    p = Path(recorded)
    if p.is_absolute():
        return p
    for root in (cli.repo_path(paths.cfg.output_root or "."), cli.repo_path(".")):
        if (root / p).exists():
            return root / p
    raise ValueError(f"recorded path {recorded} is under neither the output root nor the "
                     f"repository")


def is_phase2_model(path):
    """True for step 12's phase2_F<k>.pt (a record + state file), False for train.py's."""
    return Path(path).is_file() and Path(path).name.startswith("phase2_F")


def load_classifier(path, device="cpu", paths=None):
    """The Classifier, VisualClassifier or (a step 12 phase2_F<k>.pt) TwoPhaseClassifier."""
    if is_phase2_model(path):
        return TwoPhaseClassifier(path, paths, device)
    return backbone(path, device)


class FusedClassifier:
    """Several train.py checkpoints (an audio and a video model) fused with the weights step
    07 chose (its weights.json: sources, their normalisation kinds and weights): each file's
    fused top-5, as step 07 --apply fuses score files."""
    modality = "fused"

    def __init__(self, weights_path, checkpoints, device="cpu"):
        import fusion
        self.fusion = fusion
        with open(weights_path, encoding="utf-8") as f:
            self.chosen = json.load(f)
        names = list(self.chosen.get("sources", []))
        if set(names) != set(checkpoints):
            raise ValueError(f"{weights_path} holds weights for sources {names}; checkpoints "
                             f"were given for {sorted(checkpoints)}")
        self.models = {k: backbone(Path(checkpoints[k]), device) for k in names}
        self.classes = self.models[names[0]].classes
        for k, m in self.models.items():
            if m.classes != self.classes or len(self.classes) != self.chosen["n_classes"]:
                raise ValueError(f"{checkpoints[k]} ({k}): its {len(m.classes)} classes are "
                                 f"not those of {checkpoints[names[0]]} and {weights_path}")
        self.path, self.weights = Path(weights_path), self.chosen["weights"]
        self.model_name = " + ".join(f"{k} {m.model_name} x {self.weights[k]:.3g}"
                                     for k, m in self.models.items())

    @property
    def input_name(self):
        return ", ".join(f"{k}: {m.input_name}" for k, m in self.models.items())

    @property
    def record(self):
        return {"fused": {"weights_file": str(self.path), "weights": self.weights,
                          "kinds": self.chosen["kinds"],
                          "checkpoints": {k: str(m.path) for k, m in self.models.items()}}}

    def prepare(self, path, ffmpeg, timeout_s):
        return prepare_sources(self.models, path, ffmpeg, timeout_s)

    def finish(self, path, prepared):
        inputs, info = prepared
        outs = {k: self.models[k].outputs(x) for k, x in inputs.items()}
        probs = {k: self.fusion.normalize(o["scores"][None], self.chosen["kinds"][k], k)[0]
                 for k, o in outs.items()}
        fused = self.fusion.fuse(probs, self.weights)[0]
        return {"path": str(path), **info, "top5": top5(self.classes, fused),
                "sources_top5": {k: top5(self.classes, o["scores"]) for k, o in outs.items()},
                "_outputs": {"scores": fused}, "_probs": fused}

    def predict_file(self, path, ffmpeg, timeout_s):
        return self.finish(path, self.prepare(path, ffmpeg, timeout_s))
