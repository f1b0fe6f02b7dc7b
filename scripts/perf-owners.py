#!/usr/bin/env python3
"""Who owns the CPU of an ingest twin: a perf profile's samples by owner.

Usage: scripts/perf-owners.py go|rust PERF_DATA [PERF_DATA ...]

`perf record -F 999 -g -p PID` of a twin under load (scripts/ingest-scale.sh
with PERF=SECS records one per run). Each sample goes to one owner:

rust: by thread first, since release builds keep no frame pointers and
  callchains are not trusted. librdkafka's own threads (`rdk:*`) and the
  producer's polling thread (delivery reports) are the Kafka client; on the
  tokio workers the leaf symbol decides: librdkafka / rdkafka crate
  (`rd_*`, `LZ4_*`, `rdkafka::`, the calls that enqueue records), the
  allocator (glibc, jemalloc, mimalloc), our crate, the HTTP server and
  runtime (hyper, axum, tokio), memcpy, kernel.
go: by the whole callchain (Go keeps frame pointers), first match wins:
  background GC, franz-go (everything under a franz-go frame, its
  allocations and syscalls included), the protobuf runtime, our package,
  net/http, the Go scheduler, kernel.

Prints each owner's share of the samples; the Kafka client's share is the
part of the twin's CPU-seconds that belongs to the client library.
"""

import collections
import re
import subprocess
import sys

ALLOC = re.compile(
    r"^(malloc|free|cfree|calloc|realloc|_int_malloc|_int_free|_int_realloc|unlink_chunk|"
    r"malloc_consolidate|tcache_|__libc_malloc|__libc_free|__GI___libc_free|__libc_calloc|"
    r"arena_|sysmalloc|_mid_memalign|__posix_memalign|je_|_rjem_|mi_|_mi_|"
    r"tikv_jemallocator|mimalloc|__rust_alloc|__rust_dealloc|__rust_realloc|__rdl_)"
)
KAFKA = re.compile(r"^(rd_|LZ4|crc32c|rdkafka|<rdkafka|rdk_|cnd_|mtx_|thrd_|tss_|snappy|ZSTD)")
OURS = re.compile(r"parallax_ingest|parallax_common")
HTTP = re.compile(r"hyper|axum|tokio|mio|http|tower|futures|bytes::|parking_lot|tracing")
COPY = re.compile(r"^__mem(move|cpy|set)|^memcpy|^memmove")


def samples(path):
    """(comm, frames leaf first) per sample; a frame is `symbol (dso)`."""
    args = ["perf", "script", "-i", path, "-F", "comm,ip,sym,dso"]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    comm, frames = None, []
    for line in out.splitlines():
        if not line.strip():
            if comm is not None:
                yield comm, frames or ["[unknown]"]
            comm, frames = None, []
        elif not line.startswith((" ", "\t")):
            comm, frames = line.strip(), []
        else:
            parts = line.strip().split(None, 1)
            frames.append(parts[1] if len(parts) > 1 else "[unknown]")
    if comm is not None:
        yield comm, frames or ["[unknown]"]


def rust_owner(comm, frames):
    sym = frames[0]
    if "kernel.kallsyms" in sym and not comm.startswith(("rdk:", "producer pol")):
        return "kernel"
    sym = sym.rsplit(" (", 1)[0]
    if comm.startswith("rdk:"):
        return "Kafka client: librdkafka threads (rdk:*)"
    if comm.startswith("producer pol"):
        return "Kafka client: delivery reports (polling thread)"
    if KAFKA.search(sym):
        return "Kafka client: enqueueing on request threads"
    if ALLOC.search(sym):
        return "allocator (all callers)"
    if COPY.search(sym):
        return "memcpy/memmove (all callers)"
    if OURS.search(sym):
        return "ours (decode, validate, records, handler)"
    if HTTP.search(sym):
        return "HTTP server + async runtime"
    if re.search(r"^<?(core|alloc|std)::", sym):
        return "ours: Rust std (UTF-8 checks, collections, hashing)"
    if re.search(r"pthread|clock_gettime|gettimeofday|futex|sched_yield", sym):
        return "libc: locks and clocks (mostly librdkafka's)"
    return "other: " + sym.split("(")[0][:60]


def go_owner(comm, frames):
    text = " ".join(frames)
    if re.search(r"runtime\.(gcBgMarkWorker|bgsweep|bgscavenge)", text):
        return "Go GC (background workers)"
    if "github.com/twmb/franz-go" in text:
        return "Kafka client: franz-go (its allocations and syscalls included)"
    if "google.golang.org/protobuf" in text:
        return "protobuf-go (decode; protowire calls in our encoder)"
    if "go-reference/internal/ingest" in text:
        return "ours (validate, records, handler)"
    if "net/http" in text or "internal/httpx" in text:
        return "HTTP server"
    if re.search(r"runtime\.(mcall|schedule|findRunnable|netpoll|park_m|goexit|mstart|sysmon|notesleep)", text):
        return "Go scheduler / netpoll"
    if "kernel.kallsyms" in frames[0]:
        return "kernel (no Go frame)"
    return "other: " + (frames[0][:60] if frames else "?")


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in ("go", "rust"):
        sys.exit(__doc__)
    lang = sys.argv[1]
    for path in sys.argv[2:]:
        counts = collections.Counter()
        for comm, frames in samples(path):
            counts[(rust_owner if lang == "rust" else go_owner)(comm, frames)] += 1
        total = sum(counts.values()) or 1
        print(f"{path}: {total} samples")
        for owner, n in counts.most_common(14):
            print(f"  {100 * n / total:5.1f} %  {owner}")


if __name__ == "__main__":
    main()
