#!/usr/bin/env bash
# Runs a command inside a memory cgroup capped at LIMIT_MB (anonymous memory
# and page cache together, as the kernel charges them), to show what a run
# needs on a machine with that much RAM: mapped file pages beyond the cap are
# evicted and read again rather than counted, anonymous memory beyond it is
# an OOM kill. Prints one line to stderr at the end:
#   mem_limit: limit_mb=N oom_kills=K
# and exits with the command's status (137 when the OOM killer ended it).
# Needs a writable cgroup hierarchy (v2 with the memory controller, or v1's
# memory controller): root in a container usually has one. No swap is used.
#
#   bash bench/mem_limit.sh LIMIT_MB -- CMD ARGS...
set -uo pipefail
[ $# -ge 3 ] && [ "$2" = -- ] || { echo "usage: mem_limit.sh LIMIT_MB -- CMD..." >&2; exit 2; }
limit_mb="$1"; shift 2
[[ "$limit_mb" =~ ^[0-9]+$ ]] && [ "$limit_mb" -gt 0 ] || { echo "mem_limit.sh: bad limit '$limit_mb'" >&2; exit 2; }
bytes=$(( limit_mb * 1024 * 1024 ))
name="cb-memlimit-$$"
if grep -qw memory /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
  cg="/sys/fs/cgroup/$name"; v=2
elif [ -d /sys/fs/cgroup/memory ]; then
  cg="/sys/fs/cgroup/memory/$name"; v=1
else
  echo "mem_limit.sh: no memory cgroup controller on this machine" >&2; exit 3
fi
mkdir "$cg" 2>/dev/null || { echo "mem_limit.sh: cannot create $cg (not root, or a read-only hierarchy)" >&2; exit 3; }
cleanup() { rmdir "$cg" 2>/dev/null; }
trap cleanup EXIT
if [ $v = 2 ]; then
  echo "$bytes" >"$cg/memory.max" && echo 0 >"$cg/memory.swap.max" 2>/dev/null
else
  echo "$bytes" >"$cg/memory.limit_in_bytes" && { echo "$bytes" >"$cg/memory.memsw.limit_in_bytes" 2>/dev/null || true; }
fi || { echo "mem_limit.sh: cannot set the limit in $cg" >&2; exit 3; }
# The child joins the cgroup before it execs the command, so all it allocates is charged there.
bash -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' _ "$cg" "$@"
rc=$?
if [ $v = 2 ]; then
  kills=$(awk '$1=="oom_kill"{print $2}' "$cg/memory.events")
else
  kills=$(awk '$1=="oom_kill"{print $2}' "$cg/memory.oom_control")
fi
echo "mem_limit: limit_mb=$limit_mb oom_kills=${kills:-0}" >&2
exit $rc
