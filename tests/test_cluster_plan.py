"""The cluster plan from a dry run's declared resources, on a hand-written dry run."""

from eolabels.cluster_plan import Job, gpu_wall_hours, plan_table, planned_jobs

DRY_RUN = """
rule pretrain_encoder:
    output: a
    resources: tmpdir=<TBD>, runtime=60, gpu=4, cpus_per_gpu=12, mpi=srun, tasks=4, mem_mb=100
rule pretrain_encoder:
    resources: tmpdir=<TBD>, runtime=60, gpu=4, cpus_per_gpu=12, mem_mb=100
rule train_epitome:
    resources: tmpdir=<TBD>, runtime=120, gpu=1, cpus_per_gpu=8, mem_mb=100
localrule all:
    input: a
    resources: tmpdir=/tmp
rule write_datacard:
    resources: tmpdir=<TBD>, mem_mb=2000, runtime=20
"""


def test_jobs_with_their_gpus_and_limits():
    assert planned_jobs(DRY_RUN) == [Job("pretrain_encoder", 4, 60), Job("pretrain_encoder", 4, 60),
                                     Job("train_epitome", 1, 120), Job("write_datacard", 0, 20)]


def test_wall_time_packs_the_gpu_jobs_longest_first():
    jobs = planned_jobs(DRY_RUN)
    # 4 GPUs: the 2-h one-GPU job on GPU 0, then each 4-GPU job once all four are free: 2-3 h, 3-4 h
    assert gpu_wall_hours(jobs, 4) == 4.0
    # 5 GPUs: the one-GPU job beside them on the fifth: 0-1 h, 1-2 h
    assert gpu_wall_hours(jobs, 5) == 2.0


def test_table_totals_gpu_hours():
    table = plan_table(planned_jobs(DRY_RUN), 5)
    assert "| pretrain_encoder | 2 | 4 | 1 | 8 |" in table and "| train_epitome | 1 | 1 | 2 | 2 |" in table
    assert "| **total** | 4 | | | 10 |" in table and "2 h wall time" in table
