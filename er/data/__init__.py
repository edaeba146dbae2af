"""Data preparation: dataset presets, Dataset Decomposition, TAIL synthetic traces."""
