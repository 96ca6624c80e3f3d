"""Training loops: momentum SGD with warm-up and decay, resumable checkpoints (safetensors + JSON, no pickle),
DistributedDataParallel under ``torchrun``, random-partition ensembles and semi-supervised pseudo-labelling."""
