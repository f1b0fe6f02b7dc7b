//! Any capture as one stream of records: Parallax captures (one file or
//! the segments of a rotated capture), GoReplay `.gor` and HAR files, the
//! format detected from the first bytes.
//!
//! Several files are read one after another. Segments of one capture keep
//! their common time base (files are ordered by capture start, then
//! segment), and so do the chunks GoReplay writes for one recording
//! (`NAME_0.gor`, `NAME_1.gor`, ..., read in index order as one stream,
//! whatever order a shell glob gave them in); a file of another capture,
//! or another format, continues where the previous one ended.
//!
//! GoReplay and HAR files may be gzip-compressed (GoReplay writes gzip
//! when its output file name ends in `.gz`); the format is detected in
//! what they hold.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use crate::format::{self, Meta, Record};
use crate::gor::{self, GorReader};
use crate::reader::{CaptureReader, Tail};
use crate::Error;

/// A capture file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The Parallax capture format (zstd).
    Parallax,
    /// GoReplay's text format.
    Gor,
    /// HAR 1.2 (JSON).
    Har,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Parallax => "parallax",
            Format::Gor => "gor",
            Format::Har => "har",
        }
    }
}

const GZIP_MAGIC: [u8; 2] = [0x1F, 0x8B];

/// Up to `head.len()` first bytes of `input`.
fn read_head(mut input: impl Read, head: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < head.len() {
        match input.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // A gzip stream cut short still shows its first bytes.
            Err(e) if n > 0 && e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Detects the format from the file's first bytes (of what a gzip file
/// holds, for a gzip-compressed one).
pub fn detect(path: &Path) -> Result<Format, Error> {
    sniff(path).map(|(format, _)| format)
}

/// The format, and whether the file is gzip-compressed.
fn sniff(path: &Path) -> Result<(Format, bool), Error> {
    let mut head = [0u8; 512];
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut f = BufReader::new(f);
    let n = read_head(&mut f, &mut head).map_err(|e| Error::io(path, e))?;
    if !head[..n].starts_with(&GZIP_MAGIC) {
        return detect_head(path, &head[..n]).map(|format| (format, false));
    }
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    let n = read_head(MultiGzDecoder::new(f), &mut head).map_err(|e| {
        Error::Format(format!(
            "{}: a gzip file that cannot be read ({e})",
            path.display()
        ))
    })?;
    match detect_head(path, &head[..n])? {
        Format::Parallax => Err(Error::Format(format!(
            "{}: a gzip-compressed Parallax capture; Parallax captures are read as the proxy writes them (zstd): gunzip it first",
            path.display()
        ))),
        format => Ok((format, true)),
    }
}

fn detect_head(path: &Path, head: &[u8]) -> Result<Format, Error> {
    if head.starts_with(&[0x28, 0xB5, 0x2F, 0xFD]) {
        return Ok(Format::Parallax);
    }
    let text = String::from_utf8_lossy(head);
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    if trimmed.starts_with('{') {
        return Ok(Format::Har);
    }
    let first = trimmed.lines().next().unwrap_or("");
    let mut fields = first.split_ascii_whitespace();
    if matches!(fields.next(), Some("1" | "2" | "3")) && fields.count() >= 2 {
        return Ok(Format::Gor);
    }
    Err(Error::Format(format!(
        "{}: neither a Parallax capture (zstd), a GoReplay .gor file nor a HAR file (the last two may be gzip-compressed)",
        path.display()
    )))
}

/// A file's bytes, gunzipped when it is gzip-compressed.
fn open_read(path: &Path, gzip: bool) -> Result<Box<dyn BufRead + Send>, Error> {
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    Ok(if gzip {
        Box::new(BufReader::with_capacity(64 << 10, MultiGzDecoder::new(f)))
    } else {
        Box::new(BufReader::with_capacity(64 << 10, f))
    })
}

/// GoReplay's chunk naming (`--output-file NAME.EXT` without
/// `--output-file-append` writes `NAME_0.EXT`, `NAME_1.EXT`, ...): the
/// name without its index, and the index.
fn gor_chunk(path: &Path) -> Option<(PathBuf, u64)> {
    let name = path.file_name()?.to_str()?;
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    };
    let (base, index) = stem.rsplit_once('_')?;
    // GoReplay writes the index in decimal without leading zeros (a date
    // in a name, `_05`, is not an index).
    if index.is_empty()
        || !index.bytes().all(|b| b.is_ascii_digit())
        || (index.len() > 1 && index.starts_with('0'))
    {
        return None;
    }
    Some((
        path.with_file_name(format!("{base}{ext}")),
        index.parse().ok()?,
    ))
}

enum Open {
    Parallax(Box<CaptureReader<File>>),
    Gor(Box<GorReader<Box<dyn BufRead + Send>>>),
    Har(std::vec::IntoIter<format::Request>),
}

/// One file to read, with what is known before reading it.
struct Planned {
    path: PathBuf,
    format: Format,
    gzip: bool,
    /// Parallax captures: the meta record.
    meta: Option<Meta>,
    /// GoReplay: the later chunks of the same recording, read on as one
    /// stream.
    chunks: Vec<(PathBuf, bool)>,
}

/// The records of one or more capture files, in order.
pub struct Source {
    files: std::vec::IntoIter<Planned>,
    current: Option<Open>,
    /// Added to the current file's times.
    shift_us: u64,
    /// The start of the current Parallax capture and the shift it got, so
    /// its later segments keep the same base.
    base: Option<(u64, u64)>,
    /// The last time returned.
    last_us: u64,
    tails: Vec<(PathBuf, Tail)>,
    current_path: Option<PathBuf>,
    first_meta: Option<Meta>,
    formats: Vec<Format>,
    /// GoReplay payloads the files read so far could not use.
    gor_skipped: gor::Skipped,
}

impl Source {
    /// Opens `paths` (each a capture file; a rotated capture is given as
    /// all its segments). Every file is checked before anything is read.
    pub fn open(paths: &[PathBuf]) -> Result<Self, Error> {
        if paths.is_empty() {
            return Err(Error::Format("no capture file given".into()));
        }
        let mut planned = Vec::with_capacity(paths.len());
        for path in paths {
            let (format, gzip) = sniff(path)?;
            let meta = match format {
                Format::Parallax => Some(CaptureReader::open(path)?.meta().clone()),
                _ => None,
            };
            planned.push(Planned {
                path: path.clone(),
                format,
                gzip,
                meta,
                chunks: Vec::new(),
            });
        }
        // Segments of captures in capture order; other files keep their
        // place relative to each other after them.
        planned.sort_by_key(|p| match &p.meta {
            Some(m) => (0, m.started_at_unix_us, m.segment),
            None => (1, 0, 0),
        });
        let planned = group_gor_chunks(planned);
        let first_meta = planned.iter().find_map(|p| p.meta.clone());
        let formats = planned
            .iter()
            .flat_map(|p| std::iter::repeat_n(p.format, 1 + p.chunks.len()))
            .collect();
        Ok(Self {
            files: planned.into_iter(),
            current: None,
            shift_us: 0,
            base: None,
            last_us: 0,
            tails: Vec::new(),
            current_path: None,
            first_meta,
            formats,
            gor_skipped: gor::Skipped::default(),
        })
    }

    /// The meta record of the first Parallax capture, if any.
    pub fn meta(&self) -> Option<&Meta> {
        self.first_meta.as_ref()
    }

    /// The formats of the files, in reading order.
    pub fn formats(&self) -> &[Format] {
        &self.formats
    }

    /// How each file read so far ended (Parallax captures only: the other
    /// formats are read leniently, a malformed entry skipped).
    pub fn tails(&self) -> &[(PathBuf, Tail)] {
        &self.tails
    }

    /// GoReplay payloads left out so far (malformed ones, responses whose
    /// request never came: GoReplay writes the response of a request it
    /// could not reassemble, e.g. one sent with `Expect: 100-continue`).
    pub fn gor_skipped(&self) -> gor::Skipped {
        let mut skipped = self.gor_skipped.clone();
        if let Some(Open::Gor(r)) = &self.current {
            skipped.malformed += r.skipped.malformed;
            skipped.responses_without_request += r.skipped.responses_without_request;
        }
        skipped
    }

    /// Whether any file read so far was truncated.
    pub fn truncated(&self) -> bool {
        self.tails
            .iter()
            .any(|(_, t)| matches!(t, Tail::Truncated { .. }))
    }

    fn next_file(&mut self) -> Result<bool, Error> {
        let Some(p) = self.files.next() else {
            return Ok(false);
        };
        // A new file continues after the last record, unless it is a later
        // segment of the capture being read.
        let next_shift = if self.last_us > 0 {
            self.last_us + 1
        } else {
            0
        };
        self.shift_us = next_shift;
        let open = match p.format {
            Format::Parallax => {
                let reader = CaptureReader::open(&p.path)?;
                let started = reader.meta().started_at_unix_us;
                match self.base {
                    Some((base, shift)) if started >= base && reader.meta().segment > 0 => {
                        self.shift_us = shift + (started - base);
                    }
                    _ => self.base = Some((started, next_shift)),
                }
                Open::Parallax(Box::new(reader))
            }
            Format::Gor => {
                let first = open_read(&p.path, p.gzip)?;
                let rest = p
                    .chunks
                    .into_iter()
                    .map(|(path, gzip)| open_read(&path, gzip));
                Open::Gor(Box::new(GorReader::chain(
                    std::iter::once(Ok(first)).chain(rest),
                )))
            }
            Format::Har => {
                let mut text = Vec::new();
                open_read(&p.path, p.gzip)?
                    .read_to_end(&mut text)
                    .map_err(|e| Error::io(&p.path, e))?;
                Open::Har(
                    crate::har::read(&text)
                        .map_err(|e| e.at(&p.path))?
                        .into_iter(),
                )
            }
        };
        self.current = Some(open);
        self.current_path = Some(p.path);
        Ok(true)
    }

    /// The next record; `Err` only when a later file cannot be opened.
    pub fn next_record(&mut self) -> Result<Option<Record>, Error> {
        loop {
            let record = match &mut self.current {
                None => {
                    if !self.next_file()? {
                        return Ok(None);
                    }
                    continue;
                }
                Some(Open::Parallax(r)) => r.next_record(),
                Some(Open::Gor(r)) => match r.next() {
                    Some(request) => Some(Record::Request(request)),
                    None => match r.take_error() {
                        Some(e) => return Err(e),
                        None => None,
                    },
                },
                Some(Open::Har(r)) => r.next().map(Record::Request),
            };
            match record {
                Some(Record::Meta(_)) => continue,
                Some(mut record) => {
                    format::shift(&mut record, self.shift_us);
                    self.last_us = self.last_us.max(record.at_us());
                    return Ok(Some(record));
                }
                None => match self.current.take() {
                    Some(Open::Parallax(r)) => {
                        let path = self.current_path.take().unwrap_or_default();
                        self.tails.push((path, r.tail().clone()));
                    }
                    Some(Open::Gor(r)) => {
                        self.gor_skipped.malformed += r.skipped.malformed;
                        self.gor_skipped.responses_without_request +=
                            r.skipped.responses_without_request;
                    }
                    _ => {}
                },
            }
        }
    }
}

/// Gathers the chunks of each GoReplay recording into its first file, in
/// index order; the recording takes the place of its first file given.
/// A GoReplay recording: its name without the chunk index, its place in
/// the reading order, its chunks with their index.
type Recording = (PathBuf, usize, Vec<(u64, Planned)>);

fn group_gor_chunks(planned: Vec<Planned>) -> Vec<Planned> {
    // `None`: the place of a recording, filled below.
    let mut out: Vec<Option<Planned>> = Vec::with_capacity(planned.len());
    let mut groups: Vec<Recording> = Vec::new();
    for p in planned {
        let chunk = match p.format {
            Format::Gor => gor_chunk(&p.path),
            _ => None,
        };
        let Some((name, index)) = chunk else {
            out.push(Some(p));
            continue;
        };
        match groups.iter_mut().find(|(n, _, _)| *n == name) {
            Some((_, _, chunks)) => chunks.push((index, p)),
            None => {
                groups.push((name, out.len(), vec![(index, p)]));
                out.push(None);
            }
        }
    }
    for (_, at, mut chunks) in groups {
        chunks.sort_by_key(|(index, _)| *index);
        let mut chunks = chunks.into_iter().map(|(_, p)| p);
        if let Some(mut first) = chunks.next() {
            first.chunks = chunks.map(|p| (p.path, p.gzip)).collect();
            out[at] = Some(first);
        }
    }
    out.into_iter().flatten().collect()
}

impl Iterator for Source {
    type Item = Result<Record, Error>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_record().transpose()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::write::GzEncoder;
    use flate2::Compression;

    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("plx-source-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    fn payload(kind: u8, id: &str, ts: u64, message: &str) -> String {
        format!("{kind} {id} {ts} 0\n{message}\n🐵🙈🙉\n")
    }

    fn requests(paths: &[PathBuf]) -> Vec<format::Request> {
        Source::open(paths)
            .unwrap()
            .map(|r| match r.unwrap() {
                Record::Request(r) => r,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn goreplay_gzip_chunks_read_as_one_recording_in_index_order() {
        // `--output-file x.gor.gz` writes x.gor_0.gz, x.gor_1.gz, ...: a
        // glob lists x.gor_10.gz before x.gor_2.gz.
        let d = dir("chunks");
        let mut paths = Vec::new();
        for i in 0..11u64 {
            let mut text = payload(
                1,
                "0000000100020003000000aa",
                1_000_000_000 + i * 1_000_000,
                &format!("GET /r/{i} HTTP/1.1\r\n\r\n"),
            );
            if i == 2 {
                // The response to the request of chunk 1.
                text += &payload(
                    2,
                    "0000000100020003000000aa",
                    1_001_500_000,
                    "HTTP/1.1 204 No Content\r\n\r\n",
                );
            }
            let p = d.join(format!("x.gor_{i}.gz"));
            std::fs::write(&p, gzip(text.as_bytes())).unwrap();
            paths.push(p);
        }
        paths.sort();
        assert_eq!(detect(&paths[0]).unwrap(), Format::Gor);
        let reqs = requests(&paths);
        let targets: Vec<_> = reqs.iter().map(|r| r.target.as_str()).collect();
        let expected: Vec<_> = (0..11).map(|i| format!("/r/{i}")).collect();
        assert_eq!(targets, expected);
        assert_eq!(reqs[10].at_us, 10_000, "one time base");
        // The same id on one connection: the response goes to the first
        // request still waiting for one.
        assert_eq!(reqs[0].status, Some(204));
        assert_eq!(Source::open(&paths).unwrap().formats().len(), 11);
    }

    #[test]
    fn a_gzipped_har_reads_and_other_names_keep_their_order() {
        let d = dir("names");
        let har = br#"{"log":{"version":"1.2","creator":{"name":"t","version":"1"},"entries":[
          {"startedDateTime":"2026-12-05T10:00:00Z","request":{"method":"GET","url":"http://h/har","headers":[]},"response":{"status":200}}]}}"#;
        let a = d.join("export.har.gz");
        std::fs::write(&a, gzip(har)).unwrap();
        // Not GoReplay's chunk names: a date, no index.
        let b = d.join("traffic_05.gor");
        std::fs::write(&b, payload(1, "a", 5, "GET /dated HTTP/1.1\r\n\r\n")).unwrap();
        let c = d.join("plain.gor");
        std::fs::write(&c, payload(1, "a", 5, "GET /plain HTTP/1.1\r\n\r\n")).unwrap();
        assert_eq!(detect(&a).unwrap(), Format::Har);
        let reqs = requests(&[c.clone(), a.clone(), b.clone()]);
        let targets: Vec<_> = reqs.iter().map(|r| r.target.as_str()).collect();
        assert_eq!(targets, ["/plain", "/har", "/dated"]);
        assert_eq!(gor_chunk(&b), None);
        assert_eq!(gor_chunk(&d.join("x_3")), Some((d.join("x"), 3)));
    }

    #[test]
    fn a_gzip_of_something_else_says_what_it_is() {
        let d = dir("other");
        let p = d.join("notes.gz");
        std::fs::write(&p, gzip(b"hello")).unwrap();
        let e = detect(&p).unwrap_err().to_string();
        assert!(e.contains("the last two may be gzip-compressed"), "{e}");
        let z = d.join("capture.plxcap.gz");
        std::fs::write(&z, gzip(&[0x28, 0xB5, 0x2F, 0xFD, 0, 0])).unwrap();
        let e = detect(&z).unwrap_err().to_string();
        assert!(e.contains("gunzip it first"), "{e}");
    }
}
