#!/usr/bin/env python3
"""Where a proxy's CPU goes: a perf profile's samples by kernel family and user-space owner.

Usage: scripts/perf-kernel-share.py PERF_DATA [PERF_DATA ...]

For `perf record -g -p PID` of a proxy under load (scripts/proxy-floor.sh
with MAX=1 PERF=1 writes target/proxy-floor/perf-PATH.data per path).
Kernel samples are grouped by what they do for the request (TCP/IP and
loopback delivery, waking the reader, the scheduler, system call entry),
user-space samples by owner (allocator, memmove, clock, the rest). The
kernel's share times the run's CPU per request is the part of a request
no user-space change can remove: issue 16's floor (docs/benchmarks.md,
"Quiet rerun, session 7").
"""
import subprocess, sys, re, collections
def rows(f):
    out = subprocess.run(["perf","report","-i",f,"--no-children","--sort","dso,sym","-g","none","--stdio"],capture_output=True,text=True).stdout
    for line in out.splitlines():
        m = re.match(r"\s+([\d.]+)%\s+(\S+)\s+\[(.)\]\s+(.*)", line)
        if m: yield float(m.group(1)), m.group(2), m.group(3), m.group(4).strip()
groups = [
 ("kernel: waking a reader (spin_unlock_irqrestore)", lambda d,s: d.startswith("[kernel") and "raw_spin_unlock_irqrestore" in s),
 ("kernel: scheduler (finish_task_switch, __schedule)", lambda d,s: d.startswith("[kernel") and re.search(r"finish_task_switch|__schedule|schedule|pick_next|update_curr|enqueue|dequeue|psi_", s)),
 ("kernel: epoll", lambda d,s: d.startswith("[kernel") and "ep_" in s),
 ("kernel: TCP/IP, skb, loopback", lambda d,s: d.startswith("[kernel") and re.search(r"tcp|skb|ip_|inet|loopback|net_|dev_|sock|bbr|__alloc_skb|kfree|datagram|copy_(to|from)_iter|__check_object|virt_addr|slab|kmem|release_sock|lock_sock", s)),
 ("kernel: syscall entry/exit, fd lookup", lambda d,s: d.startswith("[kernel") and re.search(r"syscall|fdget|entry_|__sys_|fput|ksys|exit_to_user", s)),
 ("kernel: other", lambda d,s: d.startswith("[kernel")),
 ("glibc malloc/free", lambda d,s: re.search(r"malloc|free|cfree|realloc", s) and "libc" in d),
 ("memmove/memcpy/memset", lambda d,s: re.search(r"mem(move|cpy|set)", s)),
 ("clock (vdso)", lambda d,s: "vdso" in d),
 ("user: other libc", lambda d,s: "libc" in d),
 ("user: the proxy's own code (tokio, parallax, httparse...)", lambda d,s: True),
]

for f in sys.argv[1:]:
    acc = collections.Counter()
    for p, d, k, s in rows(f):
        for name, pred in groups:
            if pred(d, s):
                acc[name] += p
                break
    print("==", f, "total %.1f" % sum(acc.values()))
    for name, _ in groups:
        print("  %-60s %5.1f %%" % (name, acc[name]))
    kernel = sum(v for n, v in acc.items() if n.startswith("kernel"))
    print("  %-60s %5.1f %%" % ("kernel, all", kernel))
