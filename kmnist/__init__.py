"""kmnist: Kannada-MNIST experiments on PyTorch Lightning and Hydra."""

__version__ = "0.1.0"

# The ten Kannada digits, 0..9: the one place the class count is written.
NUM_CLASSES = 10
