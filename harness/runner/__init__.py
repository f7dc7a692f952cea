"""The shared runner: one training loop for every (architecture, loss, augmentation, features, seed)."""
