//! `parallax capture info FILE...`: what a capture holds — a Parallax
//! capture (all segments of a rotated one may be given), a GoReplay `.gor`
//! file or a HAR file, the format detected — in one streaming pass.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use parallax_capture::summary::Summary;
use parallax_capture::Source;

#[derive(Debug, Subcommand)]
pub enum Capture {
    /// Summarise a capture: duration, requests per route (ids collapsed),
    /// statuses, WebSocket sessions, gaps, rate over time.
    Info(InfoArgs),
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Capture files (.plxcap segments, .gor, .har), read in order.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

pub fn run(capture: &Capture) -> anyhow::Result<()> {
    match capture {
        Capture::Info(args) => {
            let mut source = Source::open(&args.files)?;
            let summary = Summary::of(&mut source)?;
            // A reader that stops early (`| head`) is not an error.
            match std::io::stdout()
                .lock()
                .write_all(summary.render(&source).as_bytes())
            {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                other => Ok(other?),
            }
        }
    }
}
