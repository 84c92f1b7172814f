"""How a data-parallel job starts: hand-written SLURM environments -> the launch command."""

import pytest

from eolabels.distributed import first_host, launch_command, parse_scontrol_job, slurm_allocation, slurm_environment

ENTRY = ["-m", "eolabels.launch", "/runs/a/settings.json"]


def test_outside_slurm_one_standalone_torchrun():
    cmd = launch_command(4, ENTRY, {"HOME": "/root"}, "/py")
    assert cmd == ["/py", "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=4", *ENTRY]


def test_a_one_task_slurm_job_also_runs_standalone():
    # e.g. the plugin's one-task job on a workstation-sized node, or an salloc shell
    env = {"SLURM_JOB_ID": "17", "SLURM_NTASKS": "1", "SLURM_JOB_NUM_NODES": "1", "SLURM_JOB_NODELIST": "n1"}
    assert slurm_allocation(env) is None
    assert "--standalone" in launch_command(2, ENTRY, env, "/py")


def test_two_nodes_four_tasks_one_agent_per_node_meeting_at_the_first():
    env = {"SLURM_JOB_ID": "123456", "SLURM_NTASKS": "4", "SLURM_JOB_NUM_NODES": "2",
           "SLURM_JOB_NODELIST": "gpu[07-08]", "SLURM_CPUS_ON_NODE": "32"}
    cmd = launch_command(4, ENTRY, env, "/py")
    # port 29500 + 123456 % 1000 = 29956
    assert cmd == ["srun", "--nodes=2", "--ntasks=2", "--ntasks-per-node=1", "--cpus-per-task=32",
                   "--kill-on-bad-exit=1", "/py", "-m", "torch.distributed.run", "--nnodes=2",
                   "--nproc_per_node=2", "--rdzv_backend=c10d", "--rdzv_endpoint=gpu07:29956",
                   "--rdzv_id=123456", *ENTRY]


def test_two_tasks_on_one_node_through_srun():
    env = {"SLURM_JOB_ID": "9", "SLURM_NTASKS": "2", "SLURM_NNODES": "1", "SLURM_JOB_NODELIST": "vm",
           "SLURM_CPUS_ON_NODE": "2"}
    cmd = launch_command(2, ENTRY, env, "/py")
    assert cmd[:6] == ["srun", "--nodes=1", "--ntasks=1", "--ntasks-per-node=1", "--cpus-per-task=2",
                       "--kill-on-bad-exit=1"]
    assert "--nproc_per_node=2" in cmd and "--rdzv_endpoint=vm:29509" in cmd and "--nnodes=1" in cmd


def test_task_count_must_match_the_processes_setting():
    env = {"SLURM_JOB_ID": "9", "SLURM_NTASKS": "2", "SLURM_JOB_NUM_NODES": "1", "SLURM_JOB_NODELIST": "vm"}
    with pytest.raises(ValueError, match="processes is 4 but SLURM job 9 holds 2 tasks"):
        launch_command(4, ENTRY, env, "/py")


def test_tasks_must_divide_evenly_over_nodes():
    env = {"SLURM_JOB_ID": "5", "SLURM_NTASKS": "3", "SLURM_JOB_NUM_NODES": "2", "SLURM_JOB_NODELIST": "a,b"}
    with pytest.raises(ValueError, match="3 tasks on 2 nodes"):
        slurm_allocation(env)


@pytest.mark.parametrize("nodelist, first", [
    ("vm", "vm"), ("node1,node2", "node1"), ("gpu[07-09,12],cpu1", "gpu07"), ("n[3,5]", "n3"),
    ("rack1-node[002-004]", "rack1-node002"),
])
def test_first_host_of_a_hostlist(nodelist, first):
    assert first_host(nodelist) == first


def test_scontrol_record_fills_in_what_the_executor_plugin_stripped():
    record = ("JobId=42 JobName=x UserId=root(0) NumNodes=2 NumCPUs=16 NumTasks=4 CPUs/Task=1 "
              "NodeList=gpu[01-02] BatchHost=gpu01\n")
    assert parse_scontrol_job(record) == {
        "SLURM_JOB_ID": "42", "SLURM_NTASKS": "4", "SLURM_JOB_NUM_NODES": "2",
        "SLURM_JOB_NODELIST": "gpu[01-02]", "SLURM_CPUS_ON_NODE": "8",
    }
    with pytest.raises(ValueError, match="NumTasks"):
        parse_scontrol_job("JobId=42 NumNodes=1 NumCPUs=2 NodeList=vm")


def test_environment_without_slurm_or_with_its_variables_is_left_alone():
    plain = {"HOME": "/root"}
    assert slurm_environment(plain) == plain
    full = {"SLURM_JOB_ID": "1", "SLURM_NTASKS": "2"}
    assert slurm_environment(full) == full
