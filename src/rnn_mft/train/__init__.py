"""Training engine: optimizers, learning-rate scans, ensembles, checkpoints and the results store.

>>> from rnn_mft import nets, train
>>> task = train.CopyMemoryTask(T=20, n_symbols=4)
>>> model = nets.make_classifier("gru", task.n_in, 16, task.n_out)
>>> res = train.fit(model, task, train.TrainConfig(steps=2, batch_size=8, progress=False))
>>> res.final["eval_acc"][0] >= 0
True
"""
from .._deps import require_torch

require_torch(__name__)      # without torch: an ImportError naming the extra [torch]

from .checkpoint import CheckpointError
from .engine import BudgetExhausted, TrainConfig, default_lrs, fit, pick_device
from .progress import progress_enabled
from .metrics import evaluate
from .sweep import ScanResult, lr_scan, sweep
from .optim import OPTIMIZERS, MemberOptimizer, clip_grad_norm_members_
from .results import ResultsStore, RunCheck, RunResult, StoredResultError, code_version, results_root, settings_key
from .datatask import DatasetTask
from .synthetic import CopyMemoryTask, TensorTask

__all__ = ["TrainConfig", "fit", "evaluate", "lr_scan", "ScanResult", "sweep", "default_lrs", "pick_device",
           "progress_enabled", "MemberOptimizer", "clip_grad_norm_members_", "OPTIMIZERS", "ResultsStore",
           "RunResult", "code_version", "results_root", "CopyMemoryTask", "TensorTask", "DatasetTask",
           "CheckpointError", "BudgetExhausted", "StoredResultError", "RunCheck", "settings_key"]
