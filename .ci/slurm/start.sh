#!/usr/bin/env bash
# A one-machine SLURM cluster from Debian's packages (slurmctld, slurmd, munge), for the tests:
#   .ci/slurm/start.sh DIR     writes DIR/slurm.conf, starts munged, slurmctld and slurmd, waits for the node
#   .ci/slurm/stop.sh DIR      stops them again
# Two partitions on this machine's cores and memory: cpu (the default) and gpu (the same node, no GPUs:
# the GPU rules' partition in profiles/slurm). Accounting is off; finished jobs stay visible to squeue
# for MinJobAge seconds (the executor plugin's status command), and every job's end is written to
# DIR/jobcomp.log (jobcomp/filetxt), which the tests read. Needs root (munge key, daemons as root).
set -euo pipefail
dir=$(realpath -m "${1:?usage: start.sh DIR}")
for tool in munged slurmctld slurmd sbatch; do
    command -v "$tool" >/dev/null || { echo "start.sh: $tool not found (apt-get install slurmctld slurmd slurm-client munge)" >&2; exit 3; }
done
mkdir -p "$dir"/{state,spool,log,run}
host=$(hostname -s)
cpus=$(nproc)
mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 8 / 10 ))

# munge: one key, its own socket under DIR so a system munged (if any) is left alone
if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
mkdir -p /run/munge /var/lib/munge /var/log/munge
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
chmod 400 /etc/munge/munge.key
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    munged --force
    touch "$dir/run/munged.ours"  # stop.sh stops it again
fi
munge -n | unmunge >/dev/null

cat > "$dir/slurm.conf" <<CONF
ClusterName=eolabels
SlurmctldHost=$host
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmUser=root
SlurmdUser=root
SlurmctldPort=16817
SlurmdPort=16818
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/jobcomp.log
MinJobAge=600
ReturnToService=2
SchedulerParameters=sched_interval=1
SchedulerTimeSlice=5
MessageTimeout=30
KillWait=5
InactiveLimit=0
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=cpu Nodes=$host Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$host Default=NO MaxTime=INFINITE State=UP
CONF
# Snakemake's SLURM job steps drop every SLURM_* variable, SLURM_CONF included, so the clients inside a
# job read the default /etc/slurm/slurm.conf: a link to this one (a site's own file is never replaced)
if [ -e /etc/slurm/slurm.conf ] && ! grep -q '^ClusterName=eolabels$' /etc/slurm/slurm.conf; then
    echo "start.sh: /etc/slurm/slurm.conf belongs to another cluster; not replacing it" >&2
    exit 4
fi
mkdir -p /etc/slurm
ln -sfn "$dir/slurm.conf" /etc/slurm/slurm.conf
export SLURM_CONF="$dir/slurm.conf"
setsid slurmctld -f "$SLURM_CONF" </dev/null >"$dir/log/slurmctld.out" 2>&1
setsid slurmd -f "$SLURM_CONF" </dev/null >"$dir/log/slurmd.out" 2>&1
for _ in $(seq 60); do
    if sinfo -h -N -o '%T' 2>/dev/null | grep -qx idle; then
        echo "$SLURM_CONF"
        exit 0
    fi
    sleep 1
done
echo "start.sh: node $host not idle after 60 s; see $dir/log" >&2
sinfo -N >&2 || true
exit 1
