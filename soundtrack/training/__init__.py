"""train.py's library, one concern a module: ``env`` (device, torchrun, seeds), ``objectives``
(augmentation, targets, losses as pure functions), ``optim`` (optimiser, schedule, frozen
body), ``checkpoints``, ``loop`` (the loader and ``fit``), ``scoring`` (the output contract and
its record), ``tasks`` (the task protocol; audio and visual classification) and ``runs`` (one
``assemble`` that every modality's builder ends in)."""
