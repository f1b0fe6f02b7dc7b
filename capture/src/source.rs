//! Any capture as one stream of records: Parallax captures (one file or
//! the segments of a rotated capture), GoReplay `.gor` and HAR files, the
//! format detected from the first bytes.
//!
//! Several files are read one after another. Segments of one capture keep
//! their common time base (files are ordered by capture start, then
//! segment); a file of another capture, or another format, continues
//! where the previous one ended.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use crate::format::{self, Meta, Record};
use crate::gor::GorReader;
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

/// Detects the format from the file's first bytes.
pub fn detect(path: &Path) -> Result<Format, Error> {
    let mut head = [0u8; 512];
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(Error::io(path, e)),
        }
    }
    let head = &head[..n];
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
        "{}: neither a Parallax capture (zstd), a GoReplay .gor file nor a HAR file",
        path.display()
    )))
}

enum Open {
    Parallax(Box<CaptureReader<File>>),
    Gor(GorReader<BufReader<File>>),
    Har(std::vec::IntoIter<format::Request>),
}

/// One file to read, with what is known before reading it.
struct Planned {
    path: PathBuf,
    format: Format,
    /// Parallax captures: the meta record.
    meta: Option<Meta>,
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
            let format = detect(path)?;
            let meta = match format {
                Format::Parallax => Some(CaptureReader::open(path)?.meta().clone()),
                _ => None,
            };
            planned.push(Planned {
                path: path.clone(),
                format,
                meta,
            });
        }
        // Segments of captures in capture order; other files keep their
        // place relative to each other after them.
        planned.sort_by_key(|p| match &p.meta {
            Some(m) => (0, m.started_at_unix_us, m.segment),
            None => (1, 0, 0),
        });
        let first_meta = planned.iter().find_map(|p| p.meta.clone());
        let formats = planned.iter().map(|p| p.format).collect();
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
                let f = File::open(&p.path).map_err(|e| Error::io(&p.path, e))?;
                Open::Gor(GorReader::new(BufReader::with_capacity(64 << 10, f)))
            }
            Format::Har => {
                let text = std::fs::read(&p.path).map_err(|e| Error::io(&p.path, e))?;
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
                Some(Open::Gor(r)) => r.next().map(Record::Request),
                Some(Open::Har(r)) => r.next().map(Record::Request),
            };
            match record {
                Some(Record::Meta(_)) => continue,
                Some(mut record) => {
                    format::shift(&mut record, self.shift_us);
                    self.last_us = self.last_us.max(record.at_us());
                    return Ok(Some(record));
                }
                None => {
                    if let Some(Open::Parallax(r)) = self.current.take() {
                        let path = self.current_path.take().unwrap_or_default();
                        self.tails.push((path, r.tail().clone()));
                    }
                    self.current = None;
                }
            }
        }
    }
}

impl Iterator for Source {
    type Item = Result<Record, Error>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_record().transpose()
    }
}
