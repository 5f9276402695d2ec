"""kmnist's Hydra plugins: Hydra looks for plugins only in the hydra_plugins namespace."""
