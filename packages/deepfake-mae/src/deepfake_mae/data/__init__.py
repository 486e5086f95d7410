"""Data: FF++ layout, clip datasets, synthetic faces, preprocessing."""
