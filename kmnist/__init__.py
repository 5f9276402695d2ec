"""kmnist: Kannada-MNIST experiments on PyTorch Lightning and Hydra."""

from kmnist.utils.resolvers import register_resolvers

__version__ = "0.1.0"

# The ten Kannada digits, 0..9: the one place the class count is written.
NUM_CLASSES = 10

# The notebook API (kmnist.tasks.notebook), imported on first use so `import kmnist` stays light.
NOTEBOOK_API = ("train", "predict", "show_batch", "show_report")

register_resolvers()  # ${first_file:...} in conf/: see kmnist/utils/resolvers.py


def __getattr__(name: str):
    if name in NOTEBOOK_API:
        from kmnist.tasks import notebook

        return getattr(notebook, name)
    raise AttributeError(f"module 'kmnist' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *NOTEBOOK_API])
