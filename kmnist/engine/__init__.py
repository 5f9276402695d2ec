"""The LightningModule and what runs it: optimiser building, the CUDA-graph step, DDP, inference."""
