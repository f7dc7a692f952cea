"""Built-in architectures; each module registers itself on import."""
