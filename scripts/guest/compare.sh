# Inside the guest (scripts/guest-test --compare): Berth and Debian's dockerd (the host's
# docker.io, started here with its own containerd) side by side on this cgroup v2 +
# systemd host; bench/cgroup_compare.py runs the same `docker run` flags, update, stats,
# OOM, pause and top on both and prints every difference. The full results are kept in
# the run directory (compare.json; BERTH_GUEST_KEEP=1 to keep it).
#   compare.sh [--ref-src DIR] [--cand-src DIR] [--only NAME,...]
# --cand-src: Berth from another tree's src/; --ref-src: the reference is a Berth from that
# src/ instead of dockerd (an old Berth against this one).
set -u
CSRC=$PWD/src RSRC=
while [ $# -gt 1 ]; do
  case $1 in --cand-src) CSRC=$2 ;; --ref-src) RSRC=$2 ;; *) break ;; esac; shift 2
done
export PATH=${BERTH_GUEST_PYDIR:+$BERTH_GUEST_PYDIR:}/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export TMPDIR=/scratch PYTHONDONTWRITEBYTECODE=1 PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
B=/scratch/cmp-berth D=/scratch/cmp-dockerd
mkdir -p $B $D
echo '{"runtimes": {"crun": {"path": "/usr/bin/crun"}}}' > $D/daemon.json
# one daemon after the other: both starting at once under emulation only slows each
if [ -n "$RSRC" ]; then
  PYTHONPATH=$RSRC${PYTHONPATH:+:$PYTHONPATH} python3 -m berth -H unix://$D/docker.sock --data-root $D/root \
    --exec-root /run/docker-cmp --pidfile /run/docker-cmp.pid --config-file $D/daemon.json > $D/dockerd.log 2>&1 &
else
  dockerd -H unix://$D/docker.sock --data-root $D/root --exec-root /run/docker-cmp \
    --pidfile /run/docker-cmp.pid --config-file $D/daemon.json > $D/dockerd.log 2>&1 &
fi
DPID=$!
for _ in $(seq 600); do DOCKER_HOST=unix://$D/docker.sock docker version >/dev/null 2>&1 && break; sleep 0.5; done
PYTHONPATH=$CSRC${PYTHONPATH:+:$PYTHONPATH} python3 -m berth -H unix://$B/berth.sock --data-root $B/root --exec-root /run/berth-cmp \
  --pidfile /run/berth-cmp.pid --config-file $B/daemon.json > $B/berthd.log 2>&1 &
BPID=$!
python3 -c 'import sys; from berth.tools import busybox; sys.stdout.buffer.write(busybox.save_tar("busybox:latest"))' > /scratch/busybox.tar
for s in $D/docker.sock $B/berth.sock; do
  for _ in $(seq 600); do DOCKER_HOST=unix://$s docker version >/dev/null 2>&1 && break; sleep 0.5; done
  DOCKER_HOST=unix://$s docker version >/dev/null 2>&1 || { echo "--- guest: no daemon on $s"; tail -30 $B/berthd.log $D/dockerd.log; exit 4; }
  DOCKER_HOST=unix://$s docker load -q -i /scratch/busybox.tar
  DOCKER_HOST=unix://$s docker info -f '{{.Name}}: {{.ServerVersion}} cgroup {{.CgroupVersion}}/{{.CgroupDriver}} runtime {{.DefaultRuntime}}'
done
echo "--- guest: block devices: $(ls /dev/vd* 2>/dev/null | tr '\n' ' ')"
python3 bench/cgroup_compare.py $D/docker.sock $B/berth.sock --json /guest-xfer/compare.json "$@"
rc=$?
kill $BPID $DPID; wait $BPID $DPID
grep -iE 'error|traceback' $B/berthd.log | tail -20
exit $rc
