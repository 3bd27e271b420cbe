//! The run's taps: the JSON-lines trace and the packet capture. A sink:
//! it records what it is given and calls nobody.

use crate::backend::{Fate, PacketTap};
use serde::Serialize;
use sim_core::{Packet, SimTime};
use std::io::Write;
use std::net::SocketAddr;

/// The trace and capture of a run, and the first write error.
pub(super) struct Tap<'a> {
    trace: Option<&'a mut dyn Write>,
    pcap: Option<&'a mut dyn PacketTap>,
    io_error: Option<std::io::Error>,
}

/// One trace line (`docs/report-format.md`).
#[derive(Serialize)]
struct TraceRec<'a> {
    t_ns: u64,
    event: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    src: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dst: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    flags: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ack: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    len: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
}

impl TraceRec<'_> {
    fn new(t: SimTime, event: &str) -> TraceRec<'_> {
        TraceRec {
            t_ns: t.as_nanos(),
            event,
            src: None,
            dst: None,
            flags: None,
            seq: None,
            ack: None,
            len: None,
            detail: None,
        }
    }
}

impl<'a> Tap<'a> {
    /// Taps writing to `trace` and `pcap`, either of which may be absent.
    pub(super) fn new(
        trace: Option<&'a mut dyn Write>,
        pcap: Option<&'a mut dyn PacketTap>,
    ) -> Self {
        Tap {
            trace,
            pcap,
            io_error: None,
        }
    }

    /// True if the run is traced (so that details are worth formatting).
    #[inline]
    pub(super) fn tracing(&self) -> bool {
        self.trace.is_some()
    }

    /// Captures `pkt` as it leaves its host at `t`, marked with its fate
    /// in the network.
    #[inline]
    pub(super) fn capture(&mut self, t: SimTime, pkt: &Packet, fate: Fate<'_>) {
        if let Some(p) = self.pcap.as_deref_mut() {
            p.packet(t, pkt, fate);
        }
    }

    /// Records a packet event; `detail` is only computed when tracing.
    #[inline]
    pub(super) fn trace_packet(
        &mut self,
        t: SimTime,
        event: &str,
        pkt: &Packet,
        detail: impl FnOnce() -> Option<String>,
    ) {
        if let Some(w) = self.trace.as_deref_mut() {
            let detail = detail();
            let rec = TraceRec {
                src: Some(pkt.src),
                dst: Some(pkt.dst),
                flags: Some(pkt.flags.to_string()),
                seq: Some(pkt.seq),
                ack: Some(pkt.ack),
                len: Some(pkt.payload_len),
                detail,
                ..TraceRec::new(t, event)
            };
            write_trace(w, &rec, &mut self.io_error);
        }
    }

    /// Records an event that is not a packet.
    pub(super) fn trace_event(&mut self, t: SimTime, event: &str, detail: String) {
        if let Some(w) = self.trace.as_deref_mut() {
            let rec = TraceRec {
                detail: Some(detail),
                ..TraceRec::new(t, event)
            };
            write_trace(w, &rec, &mut self.io_error);
        }
    }

    /// Flushes the trace; the first error of any write so far.
    pub(super) fn finish(&mut self) -> Result<(), std::io::Error> {
        if let Some(e) = self.io_error.take() {
            return Err(e);
        }
        if let Some(w) = self.trace.as_deref_mut() {
            w.flush()?;
        }
        Ok(())
    }
}

fn write_trace(w: &mut dyn Write, rec: &TraceRec, err: &mut Option<std::io::Error>) {
    let r = serde_json::to_writer(&mut *w, rec)
        .map_err(std::io::Error::from)
        .and_then(|_| w.write_all(b"\n"));
    if let Err(e) = r {
        err.get_or_insert(e);
    }
}
