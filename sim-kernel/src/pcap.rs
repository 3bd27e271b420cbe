//! A pcap file of the real packets a run moved: classic pcap, nanosecond
//! timestamps (scenario time, i.e. since the run's start, like the
//! simulator's pcap), `LINKTYPE_RAW`. Written to a temporary file renamed
//! into place at the end, so a failed run never leaves a half-written file
//! over a good one.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use sim_core::pcap::{LINKTYPE_RAW, PCAP_SNAPLEN};
use sim_core::SimTime;

/// Magic number of a nanosecond-resolution classic pcap file. (The
/// simulator writes pcapng, to mark packets lost in its network; this
/// capture has no such packets and stays classic pcap.)
const PCAP_MAGIC_NANOS: u32 = 0xa1b2_3c4d;
/// Major version written in the global header.
const PCAP_VERSION_MAJOR: u16 = 2;
/// Minor version written in the global header.
const PCAP_VERSION_MINOR: u16 = 4;

/// Writes raw IP packets.
#[derive(Debug)]
pub struct RawPcap {
    out: BufWriter<File>,
    tmp: PathBuf,
    dest: PathBuf,
    packets: u64,
}

impl RawPcap {
    /// Creates `<dest>.tmp` and writes the global header.
    pub fn create(dest: &Path) -> io::Result<Self> {
        let mut tmp = dest.as_os_str().to_owned();
        tmp.push(format!(".tmp{}", std::process::id()));
        let tmp = PathBuf::from(tmp);
        let mut out = BufWriter::new(File::create(&tmp)?);
        let mut h = [0u8; 24];
        h[0..4].copy_from_slice(&PCAP_MAGIC_NANOS.to_le_bytes());
        h[4..6].copy_from_slice(&PCAP_VERSION_MAJOR.to_le_bytes());
        h[6..8].copy_from_slice(&PCAP_VERSION_MINOR.to_le_bytes());
        h[16..20].copy_from_slice(&PCAP_SNAPLEN.to_le_bytes());
        h[20..24].copy_from_slice(&LINKTYPE_RAW.to_le_bytes());
        out.write_all(&h)?;
        Ok(RawPcap {
            out,
            tmp,
            dest: dest.to_owned(),
            packets: 0,
        })
    }

    /// Writes one packet seen at `t`.
    pub fn write(&mut self, t: SimTime, ip: &[u8]) -> io::Result<()> {
        let ns = t.as_nanos();
        let incl = ip.len().min(PCAP_SNAPLEN as usize);
        let mut rec = [0u8; 16];
        rec[0..4].copy_from_slice(&((ns / 1_000_000_000) as u32).to_le_bytes());
        rec[4..8].copy_from_slice(&((ns % 1_000_000_000) as u32).to_le_bytes());
        rec[8..12].copy_from_slice(&(incl as u32).to_le_bytes());
        rec[12..16].copy_from_slice(&(ip.len() as u32).to_le_bytes());
        self.out.write_all(&rec)?;
        self.out.write_all(&ip[..incl])?;
        self.packets += 1;
        Ok(())
    }

    /// Records written.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Flushes and renames into place.
    pub fn finish(mut self) -> io::Result<u64> {
        self.out.flush()?;
        std::fs::rename(&self.tmp, &self.dest)?;
        Ok(self.packets)
    }
}

impl Drop for RawPcap {
    fn drop(&mut self) {
        // Not finished (error or panic): remove the temporary file.
        let _ = std::fs::remove_file(&self.tmp);
    }
}
