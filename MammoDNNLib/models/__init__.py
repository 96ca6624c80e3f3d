"""Neural models: the four-view lesion detector (Faster R-CNN + fusion), test-time augmentation, ensembles and the
weight registry (safetensors + manifest + sha256).

Submodules import torch; this package's ``__init__`` does not, so ``import MammoDNNLib.models.config`` stays light.
"""
