//! Packet-level unit tests of the TCP model, one per rule of
//! `docs/model.md` (cited by §) and per RST/drop cause.
//!
//! The tests read like packet scripts: `srv.recv(t, syn(port))` delivers a
//! segment at time `t` after firing every timer due by then, and
//! `srv.drain()` returns what the stack sent as `(time, flags, client port,
//! rst cause)` tuples. See [`harness`].

mod harness;
mod pair;

mod app_close;
mod client;
mod close;
mod deadline;
mod defer_accept;
mod fastopen;
mod fastopen_queue;
mod link;
mod listener_segment;
mod request;
mod rst_validation;
mod rtt_metrics;
mod syn_queue;
mod syn_schedule;
mod synack_timer;
mod time_wait;
