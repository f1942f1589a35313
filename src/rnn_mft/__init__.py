"""rnn_mft"""
