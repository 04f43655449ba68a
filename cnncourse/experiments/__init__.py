"""Training experiments: the training loop, results and their cache, the recipes and grids the
notebooks run, test-time augmentation, and data-parallel training."""
