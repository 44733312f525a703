"""MAE pretraining of the project's ViTs on the user's own data (``seisfm pretrain``).

``data``: training windows from cubes, image sets and synthetic surveys; ``trainer``: the
resumable loop; ``outputs``: the model, its card and the pictures; ``run``: the one call the CLI
and the dock make.
"""

CHECKPOINT = "checkpoint.pt"  # a run folder's resumable state (names without torch: the dock reads them at once)
MINUTES_PROBE = 5  # steps timed to turn a --minutes budget into a step count
