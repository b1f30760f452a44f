"""Shop data: canonical schemas, loaders for real formats, cleaning, the synthetic shop."""
