# The Berth checks run inside the guest (scripts/guest-test boots it), from the checkout.
#   in-guest.sh HOSTFWD_PORT [pytest args...]
# 1. what kind of host this is (cgroup v2 only, systemd PID 1, AppArmor);
# 2. a berthd on /scratch publishes a port; the host fetches it through qemu's hostfwd;
# 3. the guest subset of the integration tests (marker `guest`), data roots on /scratch.
set -u
FWD_PORT=$1; shift
export PATH=${BERTH_GUEST_PYDIR:+$BERTH_GUEST_PYDIR:}/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export TMPDIR=/scratch PYTHONDONTWRITEBYTECODE=1 PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
X=/guest-xfer
echo "--- guest: $(uname -r), PID 1 $(cat /proc/1/comm), nproc $(nproc)"
echo "--- guest: cgroup2 controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
echo "--- guest: apparmor enabled: $(cat /sys/module/apparmor/parameters/enabled 2>/dev/null || echo no)"
mount | grep -c ' type cgroup ' | grep -qx 0 || { echo "guest: a cgroup v1 hierarchy is mounted"; exit 3; }

# -- 2. a published port reached from the host ------------------------------------------
P=/scratch/portcheck; mkdir -p $P/www
echo "berth-guest-port-ok" > $P/www/index.html
python3 -m berth -H unix://$P/berth.sock --data-root $P/root --exec-root /run/berth-portcheck \
  --pidfile /run/berth-portcheck.pid --config-file $P/daemon.json > $P/berthd.log 2>&1 &
BPID=$!
export DOCKER_HOST=unix://$P/berth.sock
t0=$SECONDS
until [ -S $P/berth.sock ] && docker version >/dev/null 2>&1; do
  if ! kill -0 $BPID 2>/dev/null || [ $((SECONDS - t0)) -gt 300 ]; then
    echo "--- guest: FAIL berthd did not come up"; tail -30 $P/berthd.log; exit 4
  fi
  sleep 1
done
echo "--- guest: berthd up in $((SECONDS - t0))s: $(docker info -f '{{.CgroupVersion}}/{{.CgroupDriver}} runtime {{.DefaultRuntime}}')"
python3 -c 'import sys; from berth.tools import busybox; sys.stdout.buffer.write(busybox.save_tar("busybox:latest"))' \
  | docker load -q
prc=1
echo "--- guest: publishing a port"
if docker run -d --name web -p 8080:80 -v $P/www:/www busybox httpd -f -p 80 -h /www; then
  echo ready > $X/port-ready
  for _ in $(seq 240); do [ -e $X/port-result ] && break; sleep 0.5; done
  if [ "$(cat $X/port-result 2>/dev/null)" = "berth-guest-port-ok" ]; then
    echo "--- guest: the host fetched the published port (hostfwd 127.0.0.1:$FWD_PORT -> guest 8080 -> container 80)"
    prc=0
  else
    echo "--- guest: FAIL the host did not fetch the published port: $(cat $X/port-result 2>/dev/null || echo no answer)"
  fi
else
  echo "--- guest: FAIL docker run -p failed"; tail -20 $P/berthd.log
fi
docker rm -f web >/dev/null 2>&1
kill "$BPID"; wait "$BPID"
unset DOCKER_HOST

# -- 3. the guest subset ------------------------------------------------------------------
python3 -m pytest -q -p no:cacheprovider -m guest -o addopts=--import-mode=importlib "$@" tests/integration
trc=$?
echo "--- guest: port check rc=$prc, pytest rc=$trc"
[ $prc -eq 0 ] && [ $trc -eq 0 ]
