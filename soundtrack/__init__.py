"""soundtrack: the library behind the numbered scripts (``scripts/NN_*.py``) and ``train.py``.

Each module has one concern; imports run one way (``tests/test_layout.py`` fails on a cycle
or on a module that imports a script):

  audio             the front ends: presets, log-mel / gammatone / CQT maths, patches
  media             every ffmpeg call: decode audio and frames, probe, write wavs
  atomic            atomic writes (temp file + rename), the kill -9 test hooks
  errors            StageError, how a script ends on a user's mistake, which step makes a file
  cli               config.py + YAML + flags -> settings; progress bars; repository paths
  datafiles         where each stage's files live; ids, lists, score files, records
  records           the record beside every result folder, written and checked
  frames            step 08's frame settings, files and the frame dataset
  frame_extraction  step 08's work on one video
  jobs              worker pools, --shard, status files and skip lists of steps 02/03/08/09
  metrics           softmax, track means, top-k, the binomial test, the paired bootstrap
  join              joining score sources by id, the policy named by the caller
  score_files       a video model's scores as users have them: npy, npz, csv, MMAction2 pkl
  kinetics          the official Kinetics annotation CSVs (step 01)
  report            markdown tables, the provenance footer, headless plots
  learned_fusion    the F1-F6 fusion layers (step 07's learned fusion, step 12's Phase II)
  linear_probe      a logistic regression on frozen embeddings (step 11)
  inference         the classifiers of predict.py: checkpoints -> scores of new files
  training/         train.py's library: the loop, the objectives, the tasks, scoring
  envelope/         the envelope-from-vision task: target, task, evaluation, impacts data
"""
