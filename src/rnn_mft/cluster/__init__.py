"""Running a profile's training runs as jobs: in this process, on this machine's GPUs, or on SLURM.

Every training run of the book is independent, named by a hash of its settings and written
atomically to the results store (:class:`rnn_mft.train.ResultsStore`): the store is the only
meeting point. :func:`collect_runs` lists the runs a profile's chapters load, :func:`execute`
runs the missing ones with an executor (``inline``, ``local``, ``slurm`` through submitit), and
:func:`run_states` says where each run stands (``rnn-mft runs``). A run is a typed record,
:class:`RunUnit` (the experiment's function, its arguments and the settings it runs under).
submitit (the ``cluster`` extra) is imported only by the ``slurm`` executor. See README,
"Running on a cluster".
"""
from .executors import EXECUTORS, Report, SlurmSettings, execute, visible_gpus
from .runs import TRAINING_EXPERIMENTS, RunUnit, UnitFailed, collect_runs, jobs_dir, run_states, run_unit

__all__ = ["EXECUTORS", "Report", "SlurmSettings", "execute", "visible_gpus", "TRAINING_EXPERIMENTS", "UnitFailed",
           "RunUnit", "collect_runs", "jobs_dir", "run_states", "run_unit"]
