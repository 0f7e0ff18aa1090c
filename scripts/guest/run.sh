# Runs inside the guest as a systemd oneshot: network up, the command, its status to the host.
ip link set lo up
ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2
echo "=== berth-guest: command start"
rc=0
bash /guest-xfer/cmd </dev/null 2>&1 || rc=$?
echo "$rc" > /guest-xfer/rc
echo "=== berth-guest: exit $rc"
sync
exit 0
