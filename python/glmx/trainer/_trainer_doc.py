"""The argument-by-argument documentation of ``Trainer.__init__`` (what ``help(glmx.Trainer)``
and ``glmx.Trainer?`` show), kept here so the trainer's code stays short."""

INIT_DOC = """Configure a training run (Lightning's ``Trainer`` arguments; all keyword-only).

Args:
    max_steps: Stop after this many optimizer steps (``-1``: no step limit). With neither
        ``max_steps`` nor ``max_epochs`` set, training runs 1000 epochs, as in Lightning.
    max_epochs: Stop after this many epochs (``None``: 1000 unless ``max_steps`` is set;
        ``-1``: no epoch limit, then ``max_steps`` is required).
    min_epochs: Epochs to run before an early stop (``trainer.should_stop``) is honoured.
    accumulate_grad_batches: Batches whose gradients are summed before each optimizer step.
    gradient_clip_val: Clip gradients to this norm (or value); ``None`` or 0: no clipping.
    gradient_clip_algorithm: ``"norm"`` (global L2 norm) or ``"value"`` (element-wise).
    precision: ``"32-true"`` (also ``"32"`` / ``32``), ``"bf16-mixed"`` (CPU and CUDA) or
        ``"16-mixed"`` (CUDA only, with a gradient scaler).
    val_check_interval: Validate every N training batches (int) or after this fraction of
        each epoch (float, ``1.0``: once at the end of every epoch).
    check_val_every_n_epoch: Validate only in every N-th epoch; ``None`` counts
        ``val_check_interval`` across epochs.
    limit_train_batches: Batches per training epoch (int) or fraction of the loader (float).
    limit_val_batches: Same for validation (``0`` turns validation off).
    limit_test_batches: Same for ``test``.
    limit_predict_batches: Same for ``predict``.
    fast_dev_run: ``True`` or N: run N train/val/test batches (1 for ``True``) as a smoke
        test, with checkpointing, loggers, early stopping and job control off.
    overfit_batches: Train and validate on this many (or this fraction of) training batches.
    num_sanity_val_steps: Validation batches run before training to catch bugs early
        (``-1``: the whole validation set; ``0``: none). Their metrics are not logged.
    log_every_n_steps: Write step metrics every N optimizer steps (and at step 1).
    deterministic: Use torch's deterministic algorithms (warning where none exists).
    accelerator: ``"auto"``, ``"cpu"``, ``"gpu"``/``"cuda"`` or ``"mps"``.
    devices: ``"auto"``, a count, or a list of device indices.
    strategy: ``"auto"``, ``"ddp"``, ``"fsdp"`` or a strategy object (see
        :mod:`glmx.distributed`).
    num_nodes: Machines taking part (with ``torchrun`` or SLURM).
    sync_batchnorm: Convert BatchNorm layers to SyncBatchNorm under DDP.
    activation_checkpointing: Recompute activations in the backward pass to save memory
        (FSDP; see :mod:`glmx.distributed`).
    default_root_dir: Where checkpoints and logs go when callbacks/loggers name no directory
        (default: the current directory).
    callbacks: A callback or a list of them (``ModelCheckpoint``, ``EarlyStopping``,
        ``LearningRateMonitor``, ``ProgressBar``, ``RichProgressBar``, ``ModelSummary``, ...).
    logger: ``True``: JSON lines, CSV and TensorBoard in ``default_root_dir``; ``False``:
        none; or a logger / list of loggers (``CSVLogger``, ``TensorBoardLogger``,
        ``MLFlowLogger``, ``WandbLogger``, ...).
    enable_progress_bar: Show the progress bar (a terminal bar, an ipywidgets bar in
        Jupyter, plain lines every 5 s when piped) and the end-of-run summary (why it stopped,
        best and last checkpoint, output dir, wall time, tokens/s, test metrics).
    enable_checkpointing: Add a ``ModelCheckpoint`` unless one is given (the final state is
        always saved when training ends).
    enable_job_control: Let ``glmx control`` pause, checkpoint or stop this run.
    enable_model_summary: Print Lightning's model table (layers, parameters, trainable,
        train/eval mode, totals and size in MB) when ``fit`` starts.
    compile: ``torch.compile`` the module's forward before training.
    detect_nonfinite_loss: Stop with an error naming the step when the loss is NaN or inf
        (on CPU at once; on an accelerator every 50 steps, at log steps and before each
        checkpoint, so the host does not wait for the device every step).
    seed: Call ``seed_everything(seed)`` at the start of every ``fit``.

Raises:
    glmx.errors.TrainError: an invalid value (the message names the argument and what to do).
"""
