"""Data: annotation readers (AGQA 2.0, NExT-QA, STAR, Env-QA), h5 feature files, synthetic data, splits."""
