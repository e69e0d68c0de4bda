#!/usr/bin/env python3
"""Runs a command and reports its peak memory, split by kind, as one JSON line.

    python3 bench/peak_mem.py OUT.json -- CMD ARGS...

rss_mb:  the kernel's high-water mark of resident memory (getrusage ru_maxrss,
         what GNU time %M reports): memory-mapped model pages count.
anon_mb: the largest RssAnon sampled every 50 ms from /proc/PID/status: memory
         only the process holds (heap, buffers); file_mb likewise RssFile:
         mapped file pages, which the kernel can evict and re-read under
         pressure. Children are summed. The exit code is the command's.
vram_mb: with nvidia-smi present, the peak of the first GPU's memory.used
         sampled every ~0.2 s, less its value before the command started
         (null without nvidia-smi). Everything the process holds on the
         device counts: the CUDA context, llama.cpp's buffers and pools.
"""
import json
import os
import resource
import shutil
import subprocess
import sys
import time


def status_kb(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []


def tree(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children(p))
    return out


def gpu_used_mb():
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10).stdout
        return int(out.split()[0])
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return None


def main():
    out_path, sep, cmd = sys.argv[1], sys.argv[2], sys.argv[3:]
    assert sep == "--" and cmd, __doc__
    gpu = shutil.which("nvidia-smi") is not None
    vram_base = gpu_used_mb() if gpu else None
    vram = 0
    t0 = time.time()
    proc = subprocess.Popen(cmd)
    anon = file = 0
    tick = 0
    while proc.poll() is None:
        pids = tree(proc.pid)
        anon = max(anon, sum(status_kb(p, "RssAnon") for p in pids))
        file = max(file, sum(status_kb(p, "RssFile") for p in pids))
        if vram_base is not None and tick % 4 == 0:
            vram = max(vram, (gpu_used_mb() or 0) - vram_base)
        tick += 1
        time.sleep(0.05)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    rss = usage.ru_maxrss
    with open(out_path, "w") as f:
        json.dump({"rss_mb": rss // 1024, "anon_mb": anon // 1024, "file_mb": file // 1024,
                   "vram_mb": vram if vram_base is not None else None,
                   "seconds": round(time.time() - t0, 2), "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
                   "exit": proc.returncode}, f)
    sys.exit(proc.returncode)


if __name__ == "__main__":
    main()
