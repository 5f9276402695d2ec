#!/usr/bin/env bash
# Run here, once, before a GPU lease: what the device machine lacks travels with the call.
#   bash bench/gpu_prepare.sh
# 1. .whl/: wheels for the packages its image lacks (hydra-core, omegaconf, and antlr4-python3-runtime,
#    which pip builds from its sdist): pure Python, so they install on its Python 3.12;
# 2. data/kannada_mnist/: the CSVs from KMNIST_DATA (../shared does not travel; data/ is git-ignored).
# Then the device call:  run(command="bash bench/gpu_lease.sh", carry=[".whl", "data"], timeout_s=590)
set -eu
PY=${PYTHON:-python}
mkdir -p .whl data/kannada_mnist
version() { $PY -c "import importlib.metadata as m; print(m.version('$1'))"; }
$PY -m pip wheel -q --no-deps -w .whl "hydra-core==$(version hydra-core)" "omegaconf==$(version omegaconf)" \
  "antlr4-python3-runtime==$(version antlr4-python3-runtime)"
SRC=${KMNIST_DATA:?set KMNIST_DATA to the data folder}
for name in train test dig test_dev; do install -m 0644 "$SRC/$name.csv.gz" data/kannada_mnist/; done
ls -la .whl data/kannada_mnist
du -sh .whl data
