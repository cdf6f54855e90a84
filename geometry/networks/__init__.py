"""Networks and how they are loaded: architecture specs and their schemas, the canonical Network, checkpoints
(read without running code), runs, datasets, training, devices and the shared torch plumbing."""
