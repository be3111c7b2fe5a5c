"""Data contract, sources, synthetic generator, point-in-time features, labels and training sets."""
