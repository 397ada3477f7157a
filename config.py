"""Every path and hyperparameter of the pipeline, in one place.

Edit this file for a lasting change; pass a flag (``--epochs 30``) or a YAML file of
overrides (``--config my_run.yaml``, keys as written here, case-insensitive) for a one-off.
Unknown keys and wrong types are errors (see ``soundtrack/cli.py``).

Axis order, stated once: an audio patch ("audio image") is ``[bands, frames]`` (the vggish
preset: ``[64 mel bands, 96 frames]``); a track's features are ``[n_patches, 64, 96]``, or
``[n_patches, C, 64, 96]`` with C = 3 (deltas), 2 (stereo) or 6 (both). VGGish itself takes
``[96 frames, 64 bands]``; ``network/vggish.py`` transposes.

Paths: an empty string means "derived" (see ``datafiles.Paths``); relative paths written here
or in a YAML file are taken from the repository root; a path typed as a flag
(``--video-root ../k600``) is taken from the working directory, as any path a user types.
Every comment below is also the ``--help`` of the key's flag.
"""

# ---------------------------------------------------------------- dataset and paths
DATASET = "demo"                 # name of the dataset: demo, k600, ...; names every output folder
DATA_ROOT = "data"               # generated media and features: <DATA_ROOT>/<DATASET>/...
OUTPUT_ROOT = ""                 # "" -> the repository: file_lists/ datalists/ npy_files/ runs/
                                 # video_classification_results/, each with a <DATASET>/ folder
VIDEO_ROOT = ""                  # "" -> <DATA_ROOT>/<DATASET>/videos; <root>/<split>/<class>/<id>.mp4
AUDIO_ROOT = ""                  # "" -> <DATA_ROOT>/<DATASET>/audio (PCM16 wavs, one folder per
                                 # rate and channel policy: 16000hz_mono/, 32000hz_mono/)
FEATURE_ROOT = ""                # "" -> <DATA_ROOT>/<DATASET>/features/<feature>/
SPLITS = ["train", "val"]        # splits that steps 01-05 process, in order
TRAIN_SPLIT = "train"            # split the classifiers learn from (classes.txt comes from it)
EVAL_SPLIT = "val"               # split that is scored and reported
VIDEO_EXTENSIONS = [".mp4", ".webm", ".avi", ".mkv", ".mov"]  # the files steps 01, 02, 08 look for

# ---------------------------------------------------------------- ffmpeg
FFMPEG = "imageio"               # "imageio": the pinned imageio-ffmpeg binary (same everywhere);
                                 # "system": ffmpeg on PATH; or a path to an ffmpeg binary
FFMPEG_TIMEOUT_SECONDS = 300     # per file; a hung decode is listed as failed, not waited on
FFMPEG_BATCH_FILES = 8           # step 02: files per ffmpeg process (its start-up is most of a
                                 # clip's cost); a batch that fails is redone file by file; 1 = off

# ---------------------------------------------------------------- audio front end
# One named preset fixes the sample rate, the channel policy, the analysis and the patch
# length (audio.PRESETS). Each key below defaults to None = "the preset's value"; a key that
# is set overrides it, is recorded in features.json, and names its own feature folder.
FRONT_END = "vggish"             # preset: vggish = 16 kHz mono, 25/10 ms, 512-pt FFT, 64 HTK
                                 # mel bands 125-7500 Hz, log(x + 0.01), 96-frame patches;
                                 # panns = 32 kHz, 1024/320 samples centred, power, 64 Slaney
                                 # mel bands 50-14000 Hz, dB, 1001-frame (10 s) patches
                                 # dcase2021 = 32 kHz stereo, 80/14 ms, 4096-pt FFT, 128
                                 # bands, 709-frame (10 s) patches (with DELTAS: 6 channels)
FEATURE = "mel"                  # filterbank: mel | gam (gammatone) | cqt (constant-Q)
DELTAS = False                   # add delta and delta-delta channels: [n, 3, bands, frames]
SAMPLE_RATE_HZ = None            # wavs (step 02) and analysis (step 03), Hz
AUDIO_CHANNELS = None            # mono (mix down) | first (channel 0) | stereo (keep two)
STFT_WINDOW_SECONDS = None       # periodic Hann window; a whole number of samples
STFT_HOP_SECONDS = None          # one frame
FFT_LENGTH = None                # >= the window in samples
NUM_BANDS = None                 # filterbank bands (the patches' height)
BAND_MIN_HZ = None               # mel: lower edge of the first band; gam: its centre
BAND_MAX_HZ = None               # mel: upper edge of the last band; gam: its centre
LOG_OFFSET = None                # log(x + LOG_OFFSET)
PATCH_FRAMES = None              # frames per patch (vggish: 96 = 0.96 s)
PATCH_HOP_FRAMES = None          # frames between patch starts; an incomplete last patch is dropped
CQT_MIN_HZ = None                # cqt: centre of the lowest band
CQT_BINS_PER_OCTAVE = None       # cqt: bands per octave
CQT_FILTER_SCALE = None          # cqt: band length as librosa's filter_scale (presets: 1; 2 = half as wide)
SPECTRUM = None                  # magnitude (vggish) | power (panns): what the filterbank weights
MEL_SCALE = None                 # htk (vggish) | slaney (panns, librosa's default)
MEL_NORM = None                  # none (vggish) | slaney (panns: each band's area 1)
LOG_SCALE = None                 # ln: log(x + LOG_OFFSET) (vggish) | db: 10 log10(max(x, LOG_FLOOR))
LOG_FLOOR = None                 # db: the floor (panns: 1e-10)
CENTRE_PADDING = None            # none: frames from sample 0 (vggish) | reflect: centred (panns)
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
MODEL = "slim_cnn"               # see network/__init__.py: slim_cnn, panns_like_cnn, resnet18,
                                 # residual_inception(_slim) (from scratch), panns_cnn14, vggish,
                                 # vggish_pca, torchvggish (published)
EPOCHS = 12                      # passes over the training patches (frames, clips)
MIN_TRAIN_STEPS = 0              # > 0: train at least this many optimizer steps; EPOCHS is raised to
                                 # ceil(MIN_TRAIN_STEPS / steps per epoch) on a small training set
                                 # (the raised value is what the checkpoint's config records)
BATCH_SIZE = 64                  # examples per optimizer step (split over the GPUs with torchrun)
OPTIMIZER = "adamw"              # adamw | adam | sgd
LEARNING_RATE = 2e-3             # the head's peak learning rate (the body: x BODY_LR_SCALE)
WEIGHT_DECAY = 1e-2              # the optimizer's own (adamw: decoupled; adam, sgd: coupled)
L2_LAMBDA = 0.0                  # > 0 adds L2_LAMBDA / 2 x the sum of squared trainable
                                 # weights to the loss (the two-phase paper's eq. 4, with adam)
MOMENTUM = 0.9                   # sgd only
SCHEDULE = "cosine"              # cosine | step
WARMUP_EPOCHS = 1.0              # linear warm-up of the learning rate, in epochs
STEP_EPOCHS = 10                 # step schedule: multiply by STEP_GAMMA every STEP_EPOCHS
STEP_GAMMA = 0.1                 # step schedule: the factor every STEP_EPOCHS
MIXUP_ALPHA = 0.0                # > 0 enables mixup (soft targets, KL-divergence loss)
SPEC_AUGMENT = True              # SpecAugment time and frequency masks
SPEC_AUGMENT_MASKS = 1           # time masks and band masks per patch (each that many)
TIME_MASK_FRAMES = 16            # SpecAugment: a time mask is at most this many frames
FREQ_MASK_BANDS = 8              # SpecAugment: a band mask is at most this many bands
TIME_SHIFT_FRAMES = 0            # > 0: roll each training patch by -N..N frames in time
                                 # (circular, per patch); 0 = off
LABEL_SMOOTHING = 0.0            # share of the target spread evenly over the classes
BALANCED_SAMPLING = False        # sample patches so each class is drawn equally often
MINIVAL_FRACTION = 0.1           # tracks carved from TRAIN_SPLIT to pick the "best" checkpoint
EVAL_CHECKPOINT = "best"         # best (by minival track top-1) | last: the checkpoint that scores
EMA_DECAY = 0.0                  # > 0 (e.g. 0.995): an exponential moving average of the weights,
                                 # updated every optimizer step, is what the minival and the
                                 # scoring use (the checkpoint keeps it beside the live weights)
INIT_CHECKPOINT = ""             # "" = random initialisation; a checkpoint whose body weights start
                                 # the model (the head, sized for these classes, starts afresh):
                                 # a train.py checkpoint, or a published file (panns_cnn14:
                                 # Cnn14_mAP=0.431.pth; vggish*: vggish-10086976.pth)
VGGISH_PCA_PARAMS = ""           # vggish_pca / torchvggish: the release's PCA file
                                 # (vggish_pca_params-970ea276.pth), read with INIT_CHECKPOINT
FREEZE_BODY_EPOCHS = 0           # train only the head for this many first epochs
BODY_LR_SCALE = 1.0              # the body's learning rate as a multiple of the head's
CHANNELS_LAST = True             # channels-last memory format (benchmarks/bench_train.py measures it)
AMP = True                       # automatic mixed precision (CUDA only)
LOADER_WORKERS = 0               # DataLoader worker processes
TORCH_THREADS = 0                # torch's CPU threads; 0 = torch's default (one per core). The
                                 # numbers a CPU run gives depend on it (summation order), so
                                 # a run that must repeat elsewhere fixes it (the demo: 2)
SEED = 0                         # every random draw: demo data (step 00), minival, training
DEVICE = "auto"                  # auto | cpu | cuda

# ---------------------------------------------------------------- linear probe (step 11)
PROBE_L2_GRID = [1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0]   # L2 penalties tried on the minival (the
                                 # mean cross-entropy + l2 / 2 |W|^2, standardised embeddings)

# ---------------------------------------------------------------- frames (step 08)
FRAME_ROOT = ""                  # "" -> <DATA_ROOT>/<DATASET>/frames; one folder per setting
FRAMES_PER_SECOND = "2"          # "native" (every frame, its own time) or a number as text:
                                 # frames at start + k / fps (the two-phase paper: 2)
FRAME_SIZE_PIXELS = 224          # short side scaled to this, then the centre square cropped
FRAME_JPEG_QSCALE = 3            # ffmpeg mjpeg -q:v, 2 (best) .. 31: ~5 KB per 224 px frame

# ---------------------------------------------------------------- visual classifier (train.py)
# MODEL = tv_resnet18 | tv_inception_v3 | tv_convnext_tiny | tv_mobilenet_v3_small |
# tv_efficientnet_b0 trains on step 08's frames (one example per frame; a video's score is
# the mean over its frames), with the keys above shared with the audio models.
PRETRAINED_WEIGHTS = "imagenet"  # visual models' body: imagenet (torchvision's weights, from the
                                 # torch hub cache) | none (random) | a state-dict file
CROP_MIN_AREA = 0.35             # random resized crop: share of the frame kept, at least
HUE_JITTER = 0.0                 # random hue shift of each training frame, up to +-this turn
                                 # (0 = off .. 0.5); the demo's colours are random per video
VIDEO_NAME = "video"             # steps 06-07: video_classification_results/<dataset>/
                                 # <VIDEO_NAME>_<split>_{scores,matched}.npy

# ---------------------------------------------------------------- fusion
FUSION_FOLDS = 5                 # k-fold cross-fitting of the fusion weight on the evaluated split
FUSION_GRID_STEPS = 101          # audio weights 0, 0.01, ..., 1
BOOTSTRAP_SAMPLES = 2000         # paired bootstrap resamples behind every 95 % interval

# ---------------------------------------------------------------- learned fusion (Phase II)
# The fusion layer + dense layer of soundtrack/learned_fusion.py, trained on frozen inputs: step 07 (score
# sources) and step 12 (the two-phase system's Phase II on the backbones' embeddings / logits).
LEARNED_FUSION_STEPS = 100       # Adam steps per fit (per fold when cross-fitted)
LEARNED_FUSION_BATCH_ROWS = 512  # rows per step; all rows (full batch) when fewer
LEARNED_FUSION_LR = 0.03         # Adam's learning rate for the fusion layers
LEARNED_FUSION_L2 = 1e-2         # x squared distance of the parameters from their init
LEARNED_FUSION_MIXUP_ALPHA = 0.0 # > 0: mixup of the inputs, Beta(alpha, alpha); 0 = off
TWO_PHASE_ROWS = "same"          # step 12: same = every backbone must hold the same ids (else an
                                 # error) | common = the ids all hold (the videos without sound,
                                 # or without frames, are dropped, counted and listed)

# ---------------------------------------------------------------- sound envelopes (steps 09-10)
ENVELOPE_ROOT = ""               # "" -> <DATA_ROOT>/<DATASET>/envelopes; one folder per setting
ENVELOPE_SIGMA_SECONDS = 200 / 44100   # Gaussian smoothing of |first channel| (the seed's 200
                                 # samples at 44.1 kHz = 4.54 ms), in seconds: any sample rate
ENVELOPE_SILENT_FLOOR = 0.05     # full scale 1: a clip whose envelope peaks below this is kept
                                 # unscaled and noted "silent" (scaling noise would teach noise)
ENVELOPE_FEATURES_RUN = "impacts_frames"   # the visual train.py run (--per-frame) whose
                                 # <split>_frame_pooled.npy are the envelope model's frozen input
ENVELOPE_LOSS_WEIGHT = 1.0       # envelope_lstm: weight of the masked BCE against the envelope
ENVELOPE_BACKBONE = "features"  # features (the frozen per-frame features of that run) | r3d_18 |
                                 # r2plus1d_18 (torchvision video ResNets, temporal stride removed,
                                 # on step 08's frames; for GPUs) | a tv_* model (fine-tuned per frame)
ENVELOPE_HIDDEN = 512            # envelope_lstm: the LSTM's width (the seed's 512; the demo's 32)
ENVELOPE_POOL = "mean"           # video ResNets: mean (spatial average per frame) | flatten (the
                                 # seed's 512 x 7 x 7 per frame at 112 px)
CLASS_LOSS_WEIGHT = 0.0          # envelope_lstm: weight of the clip's classification loss (the
                                 # auxiliary-task comparison: 1 with and without the envelope)
ONSET_TOLERANCE_FRAMES = 1       # step 10: a predicted and a true peak match within +-this
PEAK_HEIGHT = 0.3                # step 10's peak picker (both envelopes): a local maximum at least
PEAK_PROMINENCE = 0.2            # this high, standing this far above its surroundings (scipy's
                                 # prominence), peaks at least 2 frames apart
