"""What the entry points run: train, predict, export, the pipeline, a DDP rank."""
