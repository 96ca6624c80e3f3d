"""Training data: one manifest format for every source, converters, loading, preprocessing caches, augmentation."""
