"""The results store: one folder per run and an index over all of them."""
