"""``python -m glmx.eval ckpt_path=...``: compose ``configs/eval.yaml`` and test a checkpoint."""

from glmx.train import evaluate, main

main(task=evaluate, config_name="eval")
