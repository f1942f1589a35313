"""Chapters that compute in seconds to minutes and keep no results store: the theory chapters
(Table 1, Figures 3, 5 and 7, the time-scale landscape, the LSTM's two states) and the tasks
page. Each module follows
:mod:`rnn_mft.experiments.protocol`; ``run(cfg, store=None)`` ignores ``store``.
"""
MODULES = ("architectures", "gru_signal_propagation", "jacobian", "lstm_cell_state", "lstm_two_states", "tasks",
           "timescale_landscape")

__all__ = list(MODULES)
