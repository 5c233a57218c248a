#!/bin/bash
# How long after `kill -9` of a VM's QEMU a new QEMU exists, while podman hangs (AGENT_PODMAN is a
# script that execs `sleep`). Measured from outside: /proc, every 50 ms. Usage:
#   bench/hanging-podman-restart.sh [ROUNDS]     (needs scripts/setup: var/images, a built dist/)
# Prints one line per round and the agent's time to exit on SIGTERM.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${1:-3}
D=$(mktemp -d /tmp/agent-hang-bench-XXXXXX)
AGENT_PID=
cleanup() {
  [ -n "$AGENT_PID" ] && kill -9 "$AGENT_PID" 2>/dev/null || true
  for p in /proc/[0-9]*; do
    if tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -q "$D"; then kill -9 "${p#/proc/}" 2>/dev/null || true; fi
  done
  rm -rf "$D"
}
trap cleanup EXIT
printf '#!/bin/bash\nexec -a %s/hung-podman sleep 100000\n' "$D" >"$D/podman"
chmod +x "$D/podman"
ln -s "$ROOT/var/images" "$D/images"
cat >"$D/svc.toml" <<TOML
name = "hangbench"
[[components]]
name = "c"
runtime = "container"
image = "localhost/agent-busybox:latest"
cmd = ["sleep", "3600"]
[[components]]
name = "vm"
runtime = "unikernel"
memory = 128
kernel = "vmlinux"
initrd = "initrd.gz"
TOML
# Every round kills the same VM: without stable_after_seconds = 0 the later rounds would measure
# the crash-loop backoff, not the restart.
printf 'stable_after_seconds = 0\n' >"$D/agent.toml"
export AGENT_ACCEL=tcg AGENT_PODMAN="$D/podman" AGENT_CONFIG="$D/agent.toml" AGENT_LOG_LEVEL=warn
agent() { node "$ROOT/bin/agent.js" --db "$D/agent.db" "$@"; }
agent apply -f "$D/svc.toml" >/dev/null
agent run --once 2>/dev/null   # podman cannot list (containers unknown); the VM is started
qemu_pid() { cat "$D/vm/hangbench-vm/qemu.pid" 2>/dev/null || true; }
live_qemu_other_than() {
  for p in /proc/[0-9]*; do
    local pid=${p#/proc/}
    [ "$pid" = "$1" ] && continue
    if tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -q "^qemu-system.*$D"; then echo "$pid"; return; fi
  done
}
node "$ROOT/bin/agent.js" --db "$D/agent.db" run 2>"$D/agent.log" &
AGENT_PID=$!
sleep 15   # past the agent's first pass (which waits up to podman's bound once)
for r in $(seq 1 "$ROUNDS"); do
  old=$(qemu_pid)
  t0=$(date +%s%N)
  kill -9 "$old"
  new=
  while [ -z "$new" ]; do
    new=$(live_qemu_other_than "$old")
    [ $(( ($(date +%s%N) - t0) / 1000000 )) -gt 180000 ] && { echo "round $r: no new QEMU after 180 s"; break; }
    [ -z "$new" ] && sleep 0.05
  done
  echo "round $r: new QEMU $new $(( ($(date +%s%N) - t0) / 1000000 )) ms after kill -9 of $old"
  # let it boot before the next round
  for _ in $(seq 1 60); do [ -f "$D/vm/hangbench-vm/ready" ] && break; sleep 0.5; done
  sleep 2
done
t0=$(date +%s%N)
kill -TERM "$AGENT_PID"
rc=0; wait "$AGENT_PID" || rc=$?
echo "SIGTERM -> agent exited rc $rc after $(( ($(date +%s%N) - t0) / 1000000 )) ms"
AGENT_PID=
left=0
for p in /proc/[0-9]*; do tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -q "$D/hung-podman" && left=$((left+1)); done
echo "stand-in podman processes left: $left"
