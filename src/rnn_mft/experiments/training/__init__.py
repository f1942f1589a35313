"""The training experiments (Figures 1, 2, 4, 6, Table 2 and the "critical initialization for
your own model" chapter): they train networks, so they use profiles and the results store
(:class:`rnn_mft.train.ResultsStore`). Each module follows :mod:`rnn_mft.experiments.protocol`
(``config(profile)``, ``run(cfg, store=None)``, ``report(cfg, result)``) and lists its stored runs
with ``units(profile)`` for :mod:`rnn_mft.cluster`; :mod:`._common` holds what they share.
"""
MODULES = ("sequence_length", "trainability", "training_curves", "unrolled", "critical_init_your_model")

__all__ = list(MODULES)
