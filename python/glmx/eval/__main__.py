"""``python -m glmx.eval ckpt_path=...``: compose ``configs/eval.yaml`` and test a checkpoint.

A glmx error (a config mistake, a missing checkpoint) is one line on stderr and exit code 2, as
for ``python -m glmx.train``; ``HYDRA_FULL_ERROR=1`` or ``GLMX_FULL_ERROR=1`` shows the full
traceback instead.
"""

from glmx.train import evaluate, main, run_console

if __name__ == "__main__":
    run_console(lambda: main(task=evaluate, config_name="eval"), "glmx.eval")
