"""How a run is asked to stop and how it says it stopped: the contract between the launchers and the runtime.

The Slurm target asks Slurm for WARNING_SIGNAL a while before the time limit; the runtime checkpoints on it (or
on SIGTERM) and exits with EXIT_STOPPED, which the submitit bridge reads as "stopped after a checkpoint, to be
continued" rather than as a failure.
"""

from __future__ import annotations

import signal

# The usual exit status of a process ended by SIGTERM: schedulers and shells read it as "stopped", not "failed".
EXIT_STOPPED = 128 + signal.SIGTERM
WARNING_SIGNAL = signal.SIGUSR1  # what the sbatch script asks Slurm to send before the time limit
STOP_SIGNALS = (signal.SIGTERM, WARNING_SIGNAL)
