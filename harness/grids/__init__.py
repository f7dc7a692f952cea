"""Grids: the shipped grid files (this folder's TOML), their rows (``variants``) and reading a grid file (``file``)."""
