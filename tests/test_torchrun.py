"""torchrun starts the ranks (kmnist's own launcher steps aside): one job, one run directory,
the same result as one process on test_ddp.py's equivalence setting; also as two "nodes" (two
torchrun launches rendezvousing on 127.0.0.1), as on a real multi-node cluster."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT
from scale_out import assert_same_run, env, free_port, run_dirs, slice_args

# The one-process reference is shared with test_slurm.py: one xdist worker computes it once.
pytestmark = pytest.mark.xdist_group("scale_out")

TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]  # torchrun, from this interpreter


@pytest.mark.slow
def test_torchrun_two_processes_match_one_process(data_dir, tmp_path, one_process_slice):
    done = subprocess.run(
        [
            *TORCHRUN,
            "--standalone",
            "--nproc_per_node=2",
            str(ROOT / "train.py"),
            "trainer=ddp",
            *slice_args(data_dir, f"paths.log_dir={tmp_path}"),
        ],
        cwd=tmp_path,
        env=env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    [run_dir] = run_dirs(tmp_path)  # one run directory: rank 1's Hydra folder is private and removed
    assert not (tmp_path / "outputs").exists()
    log = (run_dir / "train.log").read_text()
    assert (
        "GLOBAL_RANK: 0, MEMBER: 1/2" in log and "GLOBAL_RANK: 1" not in log
    )  # two ranks; rank 0 alone writes
    assert "DDP: starting ranks" not in log  # torchrun started rank 1, not kmnist
    print("torchrun vs one process:", assert_same_run(run_dir, one_process_slice))


@pytest.mark.slow
def test_two_torchrun_nodes_on_one_machine_match_one_process(data_dir, tmp_path, one_process_slice):
    port = free_port()
    nodes = [
        subprocess.Popen(
            [
                *TORCHRUN,
                "--nnodes=2",
                "--nproc_per_node=1",
                f"--node_rank={node}",
                "--master_addr=127.0.0.1",
                f"--master_port={port}",
                str(ROOT / "train.py"),
                "trainer=ddp",
                "trainer.devices=1",
                "trainer.num_nodes=2",
                *slice_args(data_dir, f"paths.log_dir={tmp_path}"),
            ],
            cwd=tmp_path,
            env=env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for node in (0, 1)
    ]
    outputs = [node.communicate(timeout=600)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    [run_dir] = run_dirs(tmp_path)
    log = (run_dir / "train.log").read_text()
    assert "GLOBAL_RANK: 0, MEMBER: 1/2" in log and "GLOBAL_RANK: 1" not in log
    print("2 torchrun nodes vs one process:", assert_same_run(run_dir, one_process_slice))
