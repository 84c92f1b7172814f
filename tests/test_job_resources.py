"""A stage's config section -> the resources its training rules ask a scheduler for."""

import pytest

from eolabels.workflow import job_resources


def test_cpu_stage_asks_for_memory_and_time_only():
    assert job_resources({"mem_mb": 3000, "runtime": 30, "gpu": 0, "cpus_per_gpu": 4}) == {"mem_mb": 3000, "runtime": 30}


def test_gpu_stage_uses_the_plugins_names():
    stage = {"mem_mb": 64000, "runtime": 2880, "gpu": 1, "cpus_per_gpu": 8, "gpu_model": "a100"}
    assert job_resources(stage) == {"mem_mb": 64000, "runtime": 2880, "gpu": 1, "cpus_per_gpu": 8, "gpu_model": "a100"}


def test_data_parallel_job_asks_for_one_task_per_process_and_starts_them_itself():
    cpu = job_resources({"mem_mb": 100, "runtime": 5, "gpu": 0, "cpus_per_gpu": 4}, processes=2)
    assert cpu == {"mem_mb": 100, "runtime": 5, "mpi": "srun", "tasks": 2}
    gpu = job_resources({"mem_mb": 100, "runtime": 5, "gpu": 4, "cpus_per_gpu": 4, "nodes": 2}, processes=4)
    assert gpu == {"mem_mb": 100, "runtime": 5, "gpu": 4, "cpus_per_gpu": 4, "mpi": "srun", "tasks": 4,
                   "tasks_per_gpu": 1, "nodes": 2}


def test_gpus_and_processes_must_agree():
    with pytest.raises(ValueError, match="gpu is 2 but processes is 4"):
        job_resources({"mem_mb": 100, "runtime": 5, "gpu": 2, "cpus_per_gpu": 4}, processes=4)
