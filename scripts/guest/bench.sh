# Inside the guest (scripts/guest-test --bench): Berth and Debian's dockerd (the host's
# docker.io, started here with its own containerd) side by side on this cgroup v2 +
# systemd host, through bench/engine_bench.py (requests interleaved, p50 ratios).
#   bench.sh N
set -u
N=${1:-20}
export PATH=${BERTH_GUEST_PYDIR:+$BERTH_GUEST_PYDIR:}/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export TMPDIR=/scratch PYTHONDONTWRITEBYTECODE=1 PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
B=/scratch/bench-berth D=/scratch/bench-dockerd
mkdir -p $B $D
echo '{}' > $D/daemon.json
python3 -m berth -H unix://$B/berth.sock --data-root $B/root --exec-root /run/berth-bench \
  --pidfile /run/berth-bench.pid --config-file $B/daemon.json > $B/berthd.log 2>&1 &
BPID=$!
dockerd -H unix://$D/docker.sock --data-root $D/root --exec-root /run/docker-bench \
  --pidfile /run/docker-bench.pid --config-file $D/daemon.json > $D/dockerd.log 2>&1 &
DPID=$!
python3 -c 'import sys; from berth.tools import busybox; sys.stdout.buffer.write(busybox.save_tar("busybox:latest"))' > /scratch/busybox.tar
for s in $B/berth.sock $D/docker.sock; do
  for _ in $(seq 600); do DOCKER_HOST=unix://$s docker version >/dev/null 2>&1 && break; sleep 0.5; done
  DOCKER_HOST=unix://$s docker load -q -i /scratch/busybox.tar
  DOCKER_HOST=unix://$s docker info -f '{{.Name}}: {{.ServerVersion}} cgroup {{.CgroupVersion}}/{{.CgroupDriver}} runtime {{.DefaultRuntime}}'
done
python3 bench/engine_bench.py $D/docker.sock $B/berth.sock --n "$N" --only create,run,run-bridge
rc=$?
kill $BPID $DPID; wait $BPID $DPID
exit $rc
