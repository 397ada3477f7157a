"""Train a classifier with the shared training loop, then score the evaluated split(s).

Reads  datalists/<dataset>/<name>_<split>.npz (step 04; <name> = the resolved front end's
       folder, e.g. vggish_mel), the feature files and features.json (step 03),
       file_lists/<dataset>/classes.txt
Writes runs/<dataset>/<run>/last.pt, best.pt   checkpoints holding the model, optimizer,
                                               scheduler, RNG and epoch state, the config,
                                               the front end (features.json's), the classes,
                                               git commit and package versions
       runs/<dataset>/<run>/log.csv            one row per epoch
       runs/<dataset>/<run>/tensorboard/       loss, lr, minival metrics, scored splits
       npy_files/<dataset>/<run>/              the output contract, per scored split, rows in
                                               <split>_ids.txt order (datalist order):
         <split>_scores.npy     float32 [n, n_classes]  mean of the patches' softmax
         <split>_logits.npy     float32 [n, n_classes]  mean of the patches' logits
         <split>_embedding.npy  float32 [n, d]          mean of the patches' embeddings
         <split>_labels.npy     int64 [n]               (-1 = unlabelled)
         <split>_ids.txt        one id per line
         <split>_patch_logits.npy  float32 [n_patches, n_classes]  per patch, tracks' patches
         <split>_patch_track.npy   int64 [n_patches]  row in <split>_ids.txt of each patch
         record.json            what made the folder (soundtrack/records.py): model, modality,
                                classes, front end or frame settings, and per split its
                                rows and the checkpoint that scored it ("best" / "last",
                                epoch, why); steps 05-07, 11, 12 and predict check it
       train.py is the one writer of these files; step 05 reads and reports them.

Visual models (MODEL = tv_*, see network/) train on step 08's frames instead
(file_lists/<dataset>/<split>_<S>px_<F>fps_frames.txt, <frame_root>/<S>px_<F>fps/<id>.npz and
its frames.json, refused if its settings are not these): one example per frame, with the
frame's video label; random resized crop (CROP_MIN_AREA) and flip; PRETRAINED_WEIGHTS starts
the body. The contract is the same with frames for patches (a video's score is the mean of
its frames' softmax; <split>_patch_* hold the frames, in time order), and --per-frame adds
         <split>_frame_pooled.npy  float32 [n_frames, pooled_dim]  the body's feature per frame
         <split>_frame_times.npy   float64 [n_frames]  seconds (rows as <split>_patch_track)

The loop (``soundtrack.training.loop.fit``) is shared by every modality: it takes a model, a
training loader and a *task* (``soundtrack.training.tasks.Task``: audio patches, video frames,
envelopes) that supplies the batch augmentation, the loss, the minival metric that picks the
"best" checkpoint and the scorer. This file is the entry point: parse, build the run for the
model's modality (``BUILDERS``), fit, score.
Each patch (frame) inherits its track's (video's) label. "best" is chosen on a minival carved
from TRAIN_SPLIT (MINIVAL_FRACTION of its tracks, per class), never on the evaluated split; EVAL_CHECKPOINT picks best or last.
INIT_CHECKPOINT starts the model's body from a checkpoint (its head, sized for these classes,
starts afresh); FREEZE_BODY_EPOCHS trains the head alone at first; BODY_LR_SCALE sets the
body's learning rate relative to the head's.

One CPU or GPU:  python train.py --dataset demo --feature mel --model slim_cnn --epochs 12 --run r1
Several GPUs:    torchrun --nproc_per_node=4 -- train.py ... (DDP, one process per GPU; the
                 "--" stops torchrun from reading train.py's --run as its own --run-path)
Resume:          the same command with --resume (continues from runs/<dataset>/<run>/last.pt)
Frozen embeddings of a pretrained model, sharded over machines (or over time: each shard is
                 a file, a rerun skips finished shards; the contract is written once all are):
                 python train.py --model panns_cnn14 --init-checkpoint Cnn14_mAP=0.431.pth
                   --front-end panns --epochs 0 --eval-splits train val --shard K/N
"""

import torch

import network
from soundtrack import cli
from soundtrack import datafiles
from soundtrack.envelope import task as envelope_task
from soundtrack.errors import StageError
from soundtrack.training import runs
from soundtrack.training.checkpoints import choose_checkpoint
from soundtrack.training.env import Dist
from soundtrack.training.loop import fit
from soundtrack.training.scoring import score

TRAIN_KEYS = ["FEATURE_ROOT", *cli.FRONT_END_KEYS, "PACKED",
              "RUN", "MODEL", "EPOCHS", "MIN_TRAIN_STEPS", "BATCH_SIZE", "OPTIMIZER",
              "LEARNING_RATE", "WEIGHT_DECAY", "L2_LAMBDA", "MOMENTUM", "SCHEDULE",
              "WARMUP_EPOCHS", "STEP_EPOCHS", "STEP_GAMMA", "MIXUP_ALPHA", "SPEC_AUGMENT",
              "SPEC_AUGMENT_MASKS", "TIME_MASK_FRAMES", "FREQ_MASK_BANDS", "TIME_SHIFT_FRAMES",
              "LABEL_SMOOTHING", "BALANCED_SAMPLING", "MINIVAL_FRACTION",
              "EVAL_CHECKPOINT", "EMA_DECAY", "INIT_CHECKPOINT", "VGGISH_PCA_PARAMS",
              "FREEZE_BODY_EPOCHS", "BODY_LR_SCALE", "AMP", "CHANNELS_LAST", "LOADER_WORKERS",
              "TORCH_THREADS", "SEED",
              "DEVICE", "FRAME_ROOT", "FRAMES_PER_SECOND", "FRAME_SIZE_PIXELS",
              "FRAME_JPEG_QSCALE", "PRETRAINED_WEIGHTS", "CROP_MIN_AREA", "HUE_JITTER",
              # the envelope model (soundtrack/envelope/task.py)
              "ENVELOPE_ROOT", "ENVELOPE_SIGMA_SECONDS", "ENVELOPE_SILENT_FLOOR",
              "ENVELOPE_FEATURES_RUN", "ENVELOPE_LOSS_WEIGHT", "CLASS_LOSS_WEIGHT",
              "ENVELOPE_BACKBONE", "ENVELOPE_POOL", "ENVELOPE_HIDDEN"]


# The run's builder for each modality of the model registry (network.modality).
BUILDERS = {"audio": runs.build_audio, "visual": runs.build_visual,
            "envelope": envelope_task.build_envelope}


def build(cfg, env, paths):
    """The run's parts for the model's modality. -> training.runs.Run"""
    try:
        kind = network.modality(cfg.model)
    except ValueError as e:
        raise StageError(str(e)) from None
    return BUILDERS[kind](cfg, env, paths)


def parse_args(argv=None):
    parser = cli.parser(__doc__, TRAIN_KEYS, shard=True, eval_splits=True)
    parser.add_argument("--resume", action="store_true", default=False,
                        help="continue from runs/<dataset>/<run>/last.pt")
    parser.add_argument("--overwrite", action="store_true", default=False,
                        help="start afresh over an existing run of the same name (its "
                             "checkpoints, log and scores are replaced); without it, train.py "
                             "refuses to")
    parser.add_argument("--no-scoring", action="store_true", default=False,
                        help="train only: score no split (score later with --eval-only)")
    parser.add_argument("--eval-only", action="store_true", default=False,
                        help="skip training; score --eval-splits with the chosen checkpoint")
    parser.add_argument("--per-frame", action="store_true", default=False,
                        help="visual models: also write each frame's pooled feature and time")
    cfg = cli.parse(parser, argv)
    if cfg.no_scoring:
        cfg.eval_splits = []
    if cfg.shard != (1, 1) and not (cfg.eval_only or cfg.epochs == 0):
        parser.error("--shard K/N splits the scoring only: use it with --eval-only (score a "
                     "trained run) or --epochs 0 (frozen embeddings)")
    return cfg


def main(argv=None):
    cfg = parse_args(argv)
    threads = torch.get_num_threads()
    if cfg.torch_threads > 0:
        torch.set_num_threads(cfg.torch_threads)
    try:
        env = Dist(cfg.device)
        paths = datafiles.Paths(cfg)
        run = build(cfg, env, paths)
        writer = fit(run.model, run.task, run.loader, run.sampler, cfg, env, paths.run_dir(),
                     run.meta)
        chosen = choose_checkpoint(run.model, paths.run_dir(), cfg, env)
        score(run.model, run.task, cfg, env, paths, run.load_split, writer, chosen, run.meta)
        if writer is not None:
            writer.close()
        env.close()
    except StageError as e:
        cli.fail(cli.explain(e))
    finally:
        torch.set_num_threads(threads)     # an in-process caller (a test) keeps its own


if __name__ == "__main__":
    cli.run_script(main)
