//! The Fast Open queue limit (`tcp_fastopen_queue_check`,
//! `reqsk_fastopen_remove`): a listener's `TCP_FASTOPEN` qlen bounds its
//! pending Fast Open children. Measured on Linux 6.18:
//! `tools/kernel-probes/fastopen_queue.py`
//! (`tools/kernel-probes/results/fastopen_queue.txt`, experiments E0–E3b;
//! `docs/linux-semantics/fastopen-queue.md`).

use super::harness::*;
use crate::{ListenerOptions, TFO_SERVER_COOKIE_NOT_REQD, TFO_SERVER_ENABLE};

fn tfo_server() -> Srv {
    Srv::new(sysctls(&[(
        "tcp_fastopen",
        u64::from(TFO_SERVER_ENABLE | TFO_SERVER_COOKIE_NOT_REQD),
    )]))
}

/// A listener with `TCP_FASTOPEN` = 2, as in the probe.
fn qlen2(srv: &mut Srv) -> crate::ListenerId {
    srv.listener_opts(
        16,
        ListenerOptions {
            fastopen_qlen: 2,
            ..Default::default()
        },
    )
}

fn syn_data(port: u16) -> sim_core::Packet {
    seg(port, SYN, cisn(port), 0, 10)
}

/// The ack number of the SYN-ACK last sent to `port`.
fn synack_ack(srv: &Srv, port: u16) -> u32 {
    srv.out
        .sent
        .iter()
        .rev()
        .find(|s| s.pkt.flags == SYNACK && s.pkt.dst.port() == port)
        .expect("a SYN-ACK")
        .pkt
        .ack
}

#[test]
fn past_the_qlen_a_fast_open_syn_is_a_normal_request_e0() {
    // E0: SYNs 1-2 make Fast Open children (data acknowledged in the
    // SYN-ACK); SYNs 3-4 have their data ignored (SYN-ACK acks ISN+1) and
    // become requests. FastOpenPassive 2, FastOpenListenOverflow 2.
    let mut srv = tfo_server();
    let l = qlen2(&mut srv);
    for port in 5001..=5004 {
        srv.recv(ms(0), syn_data(port));
    }
    assert_eq!(synack_ack(&srv, 5001), cisn(5001) + 11);
    assert_eq!(synack_ack(&srv, 5002), cisn(5002) + 11);
    assert_eq!(synack_ack(&srv, 5003), cisn(5003) + 1, "data ignored");
    assert_eq!(synack_ack(&srv, 5004), cisn(5004) + 1, "data ignored");
    assert_eq!(srv.qs(l), (2, 2, 2), "two requests, two children");
    let c = &srv.stack.counters;
    assert_eq!(
        (
            c.TcpExtTCPFastOpenPassive,
            c.TcpExtTCPFastOpenListenOverflow
        ),
        (2, 2)
    );
    assert_eq!(srv.l(l).fastopen_pending, 2);
}

#[test]
fn accept_does_not_free_a_slot_the_final_ack_does_e1_e2() {
    let mut srv = tfo_server();
    let l = qlen2(&mut srv);
    srv.recv(ms(0), syn_data(5001));
    srv.recv(ms(0), syn_data(5002));
    let isn1 = srv.server_isn(5001);
    // E1: both accepted (still SYN_RECV): a 3rd SYN overflows.
    srv.stack.accept(l).unwrap().unwrap();
    srv.stack.accept(l).unwrap().unwrap();
    srv.recv(ms(1), syn_data(5003));
    assert_eq!(synack_ack(&srv, 5003), cisn(5003) + 1);
    assert_eq!(srv.stack.counters.TcpExtTCPFastOpenListenOverflow, 1);
    // E2: client 1 completes its handshake: its slot is free.
    srv.recv(ms(2), seg(5001, ACK | PSH, cisn(5001) + 11, isn1 + 1, 10));
    assert_eq!(srv.l(l).fastopen_pending, 1);
    srv.recv(ms(3), syn_data(5005));
    assert_eq!(synack_ack(&srv, 5005), cisn(5005) + 11, "a Fast Open child");
    assert_eq!(srv.stack.counters.TcpExtTCPFastOpenPassive, 3);
}

#[test]
fn a_reset_child_frees_its_slot_unless_it_was_accepted_then_after_60_s_e3() {
    // E3a: client 1 resets before its child is accepted: slot free at once.
    let mut srv = tfo_server();
    let l = qlen2(&mut srv);
    srv.recv(ms(0), syn_data(5001));
    srv.recv(ms(0), syn_data(5002));
    srv.recv(ms(1), seg(5001, RST, cisn(5001) + 11, 0, 0));
    assert_eq!(srv.l(l).fastopen_pending, 1);
    srv.recv(ms(2), syn_data(5003));
    assert_eq!(synack_ack(&srv, 5003), cisn(5003) + 11);

    // E3b: both accepted, client 1 resets: its slot is held 60 s
    // (`rskq_rst_head`), so a SYN at once overflows, one 61 s later gets
    // a Fast Open child.
    let mut srv = tfo_server();
    let l = qlen2(&mut srv);
    srv.recv(ms(0), syn_data(5001));
    srv.recv(ms(0), syn_data(5002));
    srv.stack.accept(l).unwrap().unwrap();
    srv.stack.accept(l).unwrap().unwrap();
    srv.recv(ms(1), seg(5001, RST, cisn(5001) + 11, 0, 0));
    assert_eq!(srv.l(l).fastopen_pending, 2, "held for 60 s");
    srv.recv(ms(2), syn_data(5003));
    assert_eq!(synack_ack(&srv, 5003), cisn(5003) + 1, "overflow");
    srv.recv(secs(61), syn_data(5004));
    assert_eq!(synack_ack(&srv, 5004), cisn(5004) + 11, "slot released");
    let c = &srv.stack.counters;
    assert_eq!(
        (
            c.TcpExtTCPFastOpenPassive,
            c.TcpExtTCPFastOpenListenOverflow
        ),
        (3, 1)
    );
}

#[test]
fn a_child_that_dies_unanswered_frees_its_slot_e4() {
    // E4: tcp_synack_retries 1: the children resend their SYN-ACK at 1 and
    // 3 s (retries + 1) and die; then a SYN is a Fast Open child again.
    let mut srv = Srv::new(sysctls(&[
        (
            "tcp_fastopen",
            u64::from(TFO_SERVER_ENABLE | TFO_SERVER_COOKIE_NOT_REQD),
        ),
        ("tcp_synack_retries", 1),
    ]));
    let l = qlen2(&mut srv);
    srv.recv(ms(0), syn_data(5001));
    srv.recv(ms(0), syn_data(5002));
    srv.advance(secs(8));
    assert_eq!(srv.stack.child_count(), 0);
    assert_eq!(srv.l(l).fastopen_pending, 0);
    srv.recv(secs(8), syn_data(5003));
    assert_eq!(synack_ack(&srv, 5003), cisn(5003) + 11);
}
