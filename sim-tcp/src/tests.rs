//! Packet-level unit tests of the TCP model, one per rule of
//! `docs/model.md` (cited by §) and per RST/drop cause.
//!
//! The tests read like packet scripts: `srv.recv(t, syn(port))` delivers a
//! segment at time `t` after firing every timer due by then, and
//! `srv.drain()` returns what the stack sent as `(time, flags, client port,
//! rst cause)` tuples. See [`harness`].

mod harness;

mod client;
mod close;
mod fastopen;
mod link;
mod listener_segment;
mod request;
mod syn_queue;
mod synack_timer;
