#!/usr/bin/env bash
# Stop what .ci/slurm/start.sh DIR started (by the PIDs in its pid files: slurmd, slurmctld, and munged
# when start.sh started it) and remove its /etc/slurm/slurm.conf link.
set -uo pipefail
dir=$(realpath -m "${1:?usage: stop.sh DIR}")
for daemon in slurmd slurmctld; do
    pidfile="$dir/run/$daemon.pid"
    [ -s "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || continue
    for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
done
if [ -e "$dir/run/munged.ours" ] && [ -s /run/munge/munged.pid ]; then
    kill "$(cat /run/munge/munged.pid)" 2>/dev/null || true
    rm -f "$dir/run/munged.ours"
fi
if [ "$(readlink /etc/slurm/slurm.conf 2>/dev/null)" = "$dir/slurm.conf" ]; then
    rm -f /etc/slurm/slurm.conf
fi
exit 0
