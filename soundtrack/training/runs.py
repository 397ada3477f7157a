"""Assembling a run: each modality's builder reads and checks its data, then ``assemble`` does
what every modality shares, in one order (seed -> model -> INIT_CHECKPOINT and device ->
loader -> MIN_TRAIN_STEPS -> the run's record -> the log line), and returns a ``Run``."""
from dataclasses import dataclass
from typing import Callable

import torch

import network
from AudioDataLoader import Datalist, PatchDataset, minival_split
from soundtrack import cli
from soundtrack import datafiles
from soundtrack import frames
from soundtrack.errors import StageError
from soundtrack.training.checkpoints import init_from_checkpoint
from soundtrack.training.env import seed_everything
from soundtrack.training.loop import make_loader, settle_epochs
from soundtrack.training.tasks import AudioClassification, FrameSplit, VisualClassification


@dataclass
class Run:
    """A run's parts, ready for ``loop.fit`` and ``scoring.score``."""
    model: torch.nn.Module
    task: object                          # a tasks.Task
    loader: torch.utils.data.DataLoader
    sampler: object                       # set_epoch(epoch) before each epoch
    meta: dict                            # what every checkpoint carries besides the weights
    load_split: Callable[[str], object]   # split -> the dataset its task scores


def assemble(cfg, env, classes, train_set, make_model, make_task, load_split, modality, record,
             describe, front_end=None):
    """The part of building a run that every modality shares, in one order.

    Args:
      classes: the class names (classes.txt); train_set: the Dataset the loader draws from.
      make_model(): the model, called right after seeding (its initial weights are seeded).
      make_task(): the tasks.Task. load_split(split): the dataset that split is scored on.
      modality: "audio" | "visual" | "envelope"; record: the modality's own entries of the
        run's record (front end, frame settings, ...).
      describe(): the first line of the log, called once EPOCHS is settled.
      front_end: the features' audio.FrontEnd, checked against a train.py INIT_CHECKPOINT's.
    Returns: a Run. Raises StageError for a model that cannot be built or started.
    """
    seed_everything(cfg.seed)
    try:
        model = make_model()
    except ValueError as e:
        raise StageError(str(e)) from None
    init_note = start_model(model, cfg, env, front_end)
    loader, sampler = make_loader(train_set, cfg, env)
    epochs_note = settle_epochs(cfg, len(loader))
    meta = run_meta(cfg, classes, model, modality, **record)
    if env.main:
        print(describe() + "".join(f"\n[train] {n}" for n in (epochs_note, init_note) if n))
    return Run(model=model, task=make_task(), loader=loader, sampler=sampler, meta=meta,
               load_split=load_split)


def run_meta(cfg, classes, model, modality, **specific):
    """What every checkpoint carries besides the weights: the settings, classes, model,
    modality and head, provenance, and the modality's own record (`specific`)."""
    return {"config": dict(cfg), "classes": classes, "model_name": cfg.model,
            "modality": modality, "n_classes": len(classes), **specific,
            "head": list(network.head_prefixes(model)), **datafiles.provenance()}


def start_model(model, cfg, env, fe=None):
    """INIT_CHECKPOINT (if set; a train.py checkpoint's front end is checked against `fe`), then
    the device and memory format. -> a note for the log."""
    init_note = ""
    if cfg.init_checkpoint:
        try:
            init_note = init_from_checkpoint(
                model, cli.repo_path(cfg.init_checkpoint), cfg.model, fe,
                cli.repo_path(cfg.vggish_pca_params) if cfg.vggish_pca_params else "")
        except ValueError as e:
            raise StageError(str(e)) from None
    model.to(env.device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    return init_note


def build_audio(cfg, env, paths):
    """An audio run: step 04's datalists and step 03's features, checked against the
    features' own record (features.json) and these settings. -> Run"""
    classes = datafiles.read_classes(paths.classes)
    try:
        train_list = Datalist(paths.datalist(cfg.train_split))
        record, fe = datafiles.read_feature_record(paths.feature_dir)
        record_path = str(paths.feature_dir / datafiles.FEATURES_RECORD)
        datafiles.check_front_end(train_list.front_end, fe, str(train_list.path), record_path)
        datafiles.check_front_end(fe, paths.front_end, record_path, "these settings")
    except (OSError, ValueError) as e:
        raise StageError(str(e)) from None
    if train_list.labels.size and train_list.labels.max() >= len(classes):
        raise StageError(f"{train_list.path} has labels >= {len(classes)} (classes.txt)")
    packed = paths.packed(cfg.train_split) if cfg.packed else None
    full_train = PatchDataset(train_list, paths.feature_dir, packed=packed)
    fit_rows, minival_rows = minival_split(train_list.labels, cfg.minival_fraction, cfg.seed)
    train_set = PatchDataset(train_list, paths.feature_dir, fit_rows, packed)

    def load_split(split):
        try:
            dl = Datalist(paths.datalist(split))
            datafiles.check_front_end(dl.front_end, fe, str(dl.path), "the trained model's")
        except (OSError, ValueError) as e:
            raise StageError(str(e)) from None
        return PatchDataset(dl, paths.feature_dir,
                            packed=paths.packed(split) if cfg.packed else None)

    return assemble(
        cfg, env, classes, train_set,
        make_model=lambda: network.build_audio(cfg.model, len(classes), fe.patch_shape),
        make_task=lambda: AudioClassification(cfg, len(classes), full_train, minival_rows),
        load_split=load_split, modality="audio", front_end=fe,
        record=dict(in_channels=fe.in_channels, patch_shape=list(fe.patch_shape),
                    front_end=fe.to_dict(), feature=paths.feature_name,
                    feature_dtype=record["feature_dtype"],
                    short_track_policy=record["short_track_policy"]),
        describe=lambda: (
            f"[train] {cfg.model} on {env.device} x{env.world}: {len(train_set)} patches "
            f"{list(fe.patch_shape)} ({fe.name}) from {len(fit_rows)} tracks (minival "
            f"{len(minival_rows)} tracks), {len(classes)} classes, {cfg.epochs} epochs -> "
            f"{paths.run_dir()}"))


def frame_split(paths, split, settings):
    """Step 08's videos with frames of one split, checked against frames.json. -> FrameSplit"""
    try:
        found = frames.read_record(paths.frame_dir)
        frames.check_settings(found, settings, str(paths.frame_dir / frames.RECORD),
                              "these settings")
        ids = datafiles.read_ids(paths.frame_list(split))
        labels = datafiles.labels_for(paths.video_list(split), ids)
    except (OSError, ValueError) as e:
        raise StageError(str(e)) from None
    return FrameSplit(ids, labels, paths.frame_dir)


def build_visual(cfg, env, paths):
    """A visual run: step 08's frames, checked against frames.json and these settings. -> Run"""
    try:
        settings = paths.frame_settings
        augment = frames.train_augment(settings.size_pixels, cfg.crop_min_area, cfg.hue_jitter)
    except ValueError as e:   # FRAMES_PER_SECOND, FRAME_SIZE_PIXELS, CROP_MIN_AREA, HUE_JITTER
        raise StageError(str(e)) from None
    classes = datafiles.read_classes(paths.classes)
    size = settings.size_pixels
    train_split = frame_split(paths, cfg.train_split, settings)
    if train_split.labels.size and train_split.labels.max() >= len(classes):
        raise StageError(f"{paths.frame_list(cfg.train_split)} has labels >= {len(classes)}")
    fit_rows, minival_rows = minival_split(train_split.labels, cfg.minival_fraction, cfg.seed)
    train_set = train_split.subset(fit_rows, augment)
    smallest = network.model_class(cfg.model).MIN_INPUT_PIXELS
    if size < smallest:
        raise StageError(f"{cfg.model} needs frames of at least {smallest} px; "
                         f"FRAME_SIZE_PIXELS is {size}")
    weights = (str(cli.repo_path(cfg.pretrained_weights))
               if cfg.pretrained_weights not in ("imagenet", "none") else cfg.pretrained_weights)
    return assemble(
        cfg, env, classes, train_set,
        make_model=lambda: network.build(cfg.model, n_classes=len(classes), weights=weights),
        make_task=lambda: VisualClassification(cfg, len(classes), train_split, minival_rows,
                                               cfg.per_frame),
        load_split=lambda split: frame_split(paths, split, settings), modality="visual",
        record=dict(in_channels=3, frames=settings.to_dict(),
                    pretrained_weights=cfg.pretrained_weights),
        describe=lambda: (
            f"[train] {cfg.model} ({cfg.pretrained_weights} weights) on {env.device} "
            f"x{env.world}: {len(train_set)} frames {size} px from {len(fit_rows)} videos "
            f"(minival {len(minival_rows)} videos), {len(classes)} classes, {cfg.epochs} "
            f"epochs -> {paths.run_dir()}"))
