"""Every path and hyperparameter of the pipeline, in one place.

Edit this file for a lasting change; pass a flag (``--epochs 30``) or a YAML file of
overrides (``--config my_run.yaml``, keys as written here, case-insensitive) for a one-off.
Unknown keys and wrong types are errors (see ``cli.py``).

Axis order, stated once: an audio patch ("audio image") is ``[64 mel bands, 96 frames]``;
a track's features are ``[n_patches, 64, 96]``, or ``[n_patches, 3, 64, 96]`` with deltas.
VGGish itself takes ``[96 frames, 64 bands]``; ``network/vggish.py`` transposes.

Paths: an empty string means "derived" (see ``datafiles.Paths``); relative paths are taken
from the repository root, never from the working directory.
"""

# ---------------------------------------------------------------- dataset and paths
DATASET = "demo"                 # name of the dataset: demo, k600, ...; names every output folder
DATA_ROOT = "data"               # generated media and features: <DATA_ROOT>/<DATASET>/...
OUTPUT_ROOT = ""                 # "" -> the repository: file_lists/ datalists/ npy_files/ runs/
                                 # video_classification_results/, each with a <DATASET>/ folder
VIDEO_ROOT = ""                  # "" -> <DATA_ROOT>/<DATASET>/videos; <root>/<split>/<class>/<id>.mp4
AUDIO_ROOT = ""                  # "" -> <DATA_ROOT>/<DATASET>/audio (16 kHz mono PCM16 wavs)
FEATURE_ROOT = ""                # "" -> <DATA_ROOT>/<DATASET>/features/<feature>/
SPLITS = ["train", "val"]        # splits that steps 01-05 process, in order
TRAIN_SPLIT = "train"            # split the classifiers learn from (classes.txt comes from it)
EVAL_SPLIT = "val"               # split that is scored and reported
VIDEO_EXTENSIONS = [".mp4", ".webm", ".avi", ".mkv", ".mov"]

# ---------------------------------------------------------------- ffmpeg
FFMPEG = "imageio"               # "imageio": the pinned imageio-ffmpeg binary (same everywhere);
                                 # "system": ffmpeg on PATH; or a path to an ffmpeg binary
FFMPEG_TIMEOUT_SECONDS = 300     # per file; a hung decode is listed as failed, not waited on
FFMPEG_BATCH_FILES = 8           # step 02: files per ffmpeg process (its start-up is most of a
                                 # clip's cost); a batch that fails is redone file by file; 1 = off

# ---------------------------------------------------------------- audio front end (VGGish)
SAMPLE_RATE_HZ = 16000           # tracks are stored and analysed at this rate, mono
STFT_WINDOW_SECONDS = 0.025      # 400 samples, periodic Hann
STFT_HOP_SECONDS = 0.010         # 160 samples
FFT_LENGTH = 512                 # VGGish: next power of two above the window
NUM_MEL_BANDS = 64
MEL_MIN_HZ = 125.0
MEL_MAX_HZ = 7500.0
LOG_OFFSET = 0.01                # log(mel + LOG_OFFSET)
PATCH_FRAMES = 96                # 0.96 s per patch
PATCH_HOP_FRAMES = 96            # non-overlapping patches; an incomplete last patch is dropped
FEATURE = "mel"                  # mel | gam | cqt
DELTAS = False                   # add delta and delta-delta channels: [n, 3, 64, 96]
FEATURE_DTYPE = "float16"        # float16 | float32 on disk (computed in float32)
SHORT_TRACK_POLICY = "pad"       # tracks shorter than one patch: "pad" (zero-pad to one patch) | "drop"

# ---------------------------------------------------------------- parallel work
WORKERS = 2                      # worker processes for steps 02-03 and frame decoding
SHARD = "1/1"                    # K/N: this machine does the K-th of N deterministic parts
STRICT = False                   # treat any skipped video (even "no audio stream") as an error
PACKED = False                   # step 04 also writes one memory-mapped patch array per split
PROGRESS_LOG_INTERVAL_S = 30.0   # progress bars redraw this seldom when stderr is a file

# ---------------------------------------------------------------- audio classifier (train.py)
RUN = "cnn_mel"                  # run name: runs/<DATASET>/<RUN>/ and npy_files/<DATASET>/<RUN>/
MODEL = "slim_cnn"               # see network/__init__.py: slim_cnn, panns_cnn, resnet18, vggish
EPOCHS = 12
BATCH_SIZE = 64
OPTIMIZER = "adamw"              # adamw | sgd
LEARNING_RATE = 2e-3
WEIGHT_DECAY = 1e-2
MOMENTUM = 0.9                   # sgd only
SCHEDULE = "cosine"              # cosine | step
WARMUP_EPOCHS = 1.0
STEP_EPOCHS = 10                 # step schedule: multiply by STEP_GAMMA every STEP_EPOCHS
STEP_GAMMA = 0.1
MIXUP_ALPHA = 0.0                # > 0 enables mixup (soft targets, KL-divergence loss)
SPEC_AUGMENT = True              # SpecAugment time and frequency masks
TIME_MASK_FRAMES = 16
FREQ_MASK_BANDS = 8
TIME_SHIFT_FRAMES = 0            # > 0: roll each training patch by -N..N frames in time
                                 # (circular, per patch); 0 = off
LABEL_SMOOTHING = 0.0
BALANCED_SAMPLING = False        # sample patches so each class is drawn equally often
MINIVAL_FRACTION = 0.1           # tracks carved from TRAIN_SPLIT to pick the "best" checkpoint
EVAL_CHECKPOINT = "best"         # best (by minival track top-1) | last: the checkpoint that scores
CHANNELS_LAST = True             # channels-last memory format: slim_cnn trains ~1.3x faster on this CPU
AMP = True                       # automatic mixed precision (CUDA only)
LOADER_WORKERS = 0               # DataLoader worker processes
SEED = 0
DEVICE = "auto"                  # auto | cpu | cuda

# ---------------------------------------------------------------- demo video classifier
VIDEO_MODEL = "tiny_video_cnn"   # network for scripts/train_demo_video_model.py
VIDEO_FRAME_SIZE_PIXELS = 32     # frames decoded at this height and width
VIDEO_FRAMES_PER_SECOND = 4
VIDEO_EPOCHS = 25
VIDEO_NAME = "demo_video_cnn"    # video_classification_results/<VIDEO_NAME>_<split>_scores.npy

# ---------------------------------------------------------------- fusion
FUSION_FOLDS = 5                 # k-fold cross-fitting of the fusion weight on the evaluated split
FUSION_GRID_STEPS = 101          # audio weights 0, 0.01, ..., 1
BOOTSTRAP_SAMPLES = 2000
