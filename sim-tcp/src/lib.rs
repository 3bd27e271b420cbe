//! Sans-I/O model of the Linux TCP endpoints that decide whether a connection
//! survives a listener restart: client sockets, listeners, request sockets
//! (`NEW_SYN_RECV`), the SYN queue, the accept queue, the SYN-ACK timer
//! (`reqsk_timer_handler`) and every RST and silent drop on the way.
//!
//! Nothing here owns a clock, an RNG or I/O: each handler takes `now` and a
//! segment or a timer expiry and reports what to send, which timers to set and
//! what happened through an output trait ([`ServerOutput`], [`ClientOutput`]).
//! Reuseport groups and migration decisions are delegated to a
//! [`ReuseportHooks`] implementation (the `sim-reuseport` crate), so that this
//! crate stays free of group logic. Section numbers (§) refer to
//! `docs/model.md`.
#![warn(missing_docs)]

mod cause;
mod client;
mod counters;
mod flow;
mod hooks;
mod ids;
mod listener;
mod metrics;
mod rtt;
mod server;
mod sysctl;
#[cfg(test)]
mod tests;
mod timewait;

pub use cause::{ClientRstCause, DropCause, MigrationPath, RstCause};
pub use client::TCP_TIMEOUT_FALLBACK;
pub use client::{
    closed_port_reply, ClientConfig, ClientEnv, ClientOutcome, ClientOutput, ClientSocket,
    ClientState,
};
pub use counters::Counters;
pub use flow::{reciprocal_scale, FlowHasher};
pub use hooks::{MigrateFailure, MigrateOutcome, MigratingSock, ReuseportHooks, Selection};
pub use ids::{ChildKey, ListenerId, ReqKey};
pub use listener::{secs_to_retrans, Listener, ListenerOptions, ListenerState};
pub use metrics::{TcpMetrics, TCP_METRICS_TIMEOUT};
pub use rtt::{tcp_model_timeout, RttEstimator};
pub use server::{
    AcceptError, AppClose, ChildInfo, ChildState, ListenError, ServerEvent, ServerOutput,
    ServerStack, ServerTimer,
};
pub use server::{
    TCP_INVALID_RATELIMIT, TCP_RTO_MAX, TCP_RTO_MIN, TCP_SYNCOOKIE_VALID, TCP_TIMEOUT_INIT,
    TIMER_HORIZON,
};
pub use sysctl::{
    Sysctls, TFO_CLIENT_ENABLE, TFO_CLIENT_NO_COOKIE, TFO_SERVER_COOKIE_NOT_REQD, TFO_SERVER_ENABLE,
};
pub use timewait::{TimeWaitSock, TimeWaitTable, TwKey, TwVerdict, TCP_TIMEWAIT_LEN};
