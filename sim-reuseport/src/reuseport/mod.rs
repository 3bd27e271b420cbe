//! The reuseport kernel layer: what `net/core/sock_reuseport.c` and the
//! `SK_REUSEPORT` program hooks do. [`group`] holds the groups (`struct
//! sock_reuseport`), selection (§4.2) and migration target selection
//! (§4.3); [`incoming_cpu`] the `SO_INCOMING_CPU` preference in
//! selection; [`policy`] the declarative policies standing in for eBPF
//! programs (§2.7). It plugs into `sim-tcp` through `ReuseportHooks` and
//! knows nothing of scenarios, backends or reports.

pub mod bpf;
pub mod group;
pub mod incoming_cpu;
pub mod policy;
