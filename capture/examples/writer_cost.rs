//! What the proxy's recorder thread pays per record, by zstd level: the
//! records of a capture (e.g. one the proxy recorded in
//! `scripts/capture-bench.sh record`) written to a file the way the
//! recorder's writer does — `--gather-kib` (1024, as the recorder) of
//! encoded records at a time handed to `CaptureWriter::write_frames` —
//! with the thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`) summed over
//! those calls only (the gathering is the client path's copy, not timed
//! here).
//!
//! Between frames the thread walks a `--pollute-kib` buffer (default 8 MiB,
//! twice the L2 here), not timed: in the proxy the writer wakes every 20 ms
//! to caches the tokio worker has filled, and zstd's tables and window start
//! cold. `--pollute-kib 0` measures warm caches (what `zstd -b` shows).
//!
//! ```text
//! cargo run --release -p parallax-capture --example writer_cost -- \
//!     target/capture-bench/rec/rec.000000.plxcap --levels 1,-1,-3,-5,-7
//! ```
//! Prints one line per level and round (levels in the order given, then
//! reversed, each round: A B B A): ns of writer CPU per record, the
//! compression ratio (records' bytes over file bytes), MB/s.

use std::path::PathBuf;
use std::time::Duration;

use parallax_capture::format::{self, Meta, Record};
use parallax_capture::writer::CaptureWriter;
use parallax_capture::CaptureReader;

fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut path = None;
    let mut records = 50_000usize;
    let mut levels = vec![1, -1, -3, -5, -7];
    let mut pollute_kib = 8192usize;
    let mut rounds = 2;
    let mut min_ratio = 0.0;
    let mut out = std::env::temp_dir();
    let mut gather_kib = 1024usize;
    let mut params: Vec<(String, u32)> = Vec::new();
    while let Some(a) = args.next() {
        let mut v = || args.next().expect("a value after the flag");
        match a.as_str() {
            "--records" => records = v().parse().expect("a count"),
            "--levels" => {
                levels = v()
                    .split(',')
                    .map(|l| l.parse().expect("zstd levels, e.g. 1,-1,-3"))
                    .collect()
            }
            "--pollute-kib" => pollute_kib = v().parse().expect("KiB"),
            "--rounds" => rounds = v().parse().expect("a count"),
            "--min-ratio" => min_ratio = v().parse().expect("a ratio"),
            "--out" => out = PathBuf::from(v()),
            "--gather-kib" => gather_kib = v().parse().expect("KiB"),
            "--param" => {
                let p = v();
                let (k, x) = p.split_once('=').expect("--param name=value");
                params.push((k.into(), x.parse().expect("a number")));
            }
            _ if !a.starts_with("--") => path = Some(PathBuf::from(a)),
            _ => panic!("unknown flag {a}; see the top of writer_cost.rs"),
        }
    }
    let path = path.expect("a capture file to take the records from");
    let mut reader = CaptureReader::open(&path).expect("a readable capture");
    // Frames' worth of records: (bytes, records).
    let mut frames: Vec<(Vec<u8>, u64)> = Vec::new();
    let mut cur = (Vec::new(), 0);
    let mut n = 0u64;
    let mut raw = 0usize;
    while let Some(r) = reader.next_record() {
        if n == records as u64 {
            break;
        }
        if !matches!(r, Record::Request(_) | Record::Ws(_)) {
            continue;
        }
        format::encode(&r, &mut cur.0);
        cur.1 += 1;
        n += 1;
        if cur.0.len() >= gather_kib << 10 {
            raw += cur.0.len();
            frames.push(std::mem::take(&mut cur));
        }
    }
    let n: u64 = frames.iter().map(|f| f.1).sum();
    eprintln!(
        "{n} records of {} B on average from {}, frames of {gather_kib} KiB, pollute {pollute_kib} KiB, load {}",
        raw as u64 / n.max(1),
        path.display(),
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
    );
    let mut pollute = vec![0u8; pollute_kib << 10];
    let file = out.join(format!("writer-cost-{}.plxcap", std::process::id()));
    let mut order = levels.clone();
    order.extend(levels.iter().rev());
    for round in 0..rounds {
        for &level in &order {
            let f = std::fs::File::create(&file).expect("a writable --out");
            let mut w = CaptureWriter::with_level(f, &Meta::new("writer_cost", 0), level)
                .expect("a writer");
            w.set_min_ratio(min_ratio);
            for (k, v) in &params {
                use zstd::zstd_safe::CParameter as P;
                let p = match k.as_str() {
                    "windowlog" => P::WindowLog(*v),
                    "hashlog" => P::HashLog(*v),
                    "minmatch" => P::MinMatch(*v),
                    _ => panic!("--param {k}: windowlog, hashlog or minmatch"),
                };
                w.compressor().set_parameter(p).expect("a valid parameter");
            }
            let mut cpu = Duration::ZERO;
            let mut sink = 0u8;
            for (bytes, records) in &frames {
                for i in (0..pollute.len()).step_by(64) {
                    pollute[i] = pollute[i].wrapping_add(1);
                    sink ^= pollute[i];
                }
                let t0 = thread_cpu();
                w.write_frames(bytes, *records).expect("write");
                cpu += thread_cpu() - t0;
            }
            w.finish().expect("finish");
            let size = std::fs::metadata(&file).map_or(1, |m| m.len());
            let _ = std::fs::remove_file(&file);
            println!(
                "round {round} level {level:>4} {params:?}: {:>6.0} ns/record  ratio {:>5.2}  {:>5.0} MB/s{}",
                cpu.as_nanos() as f64 / n as f64,
                raw as f64 / size as f64,
                raw as f64 / cpu.as_secs_f64() / 1e6,
                if sink == 1 { " " } else { "" }
            );
        }
    }
}
