//! The simulator's capture (`--pcap`): a pcapng file whose packets lost
//! inside the simulated network are on their own interface with a comment,
//! read back with the `pcap-file` crate.

mod common;

use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketOption;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::{Block, PcapNgReader};
use sim_core::pcap::{IF_LOST, IF_WIRE, LOST_COMMENT};
use sim_core::PcapWriter;
use sim_reuseport::backend::{run, RunOptions};

/// One captured packet: interface, time, bytes, comment.
struct Captured {
    interface: u32,
    t_ns: u128,
    data: Vec<u8>,
    comment: Option<String>,
}

/// One's-complement sum of big-endian words, folded.
fn ones_sum(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for w in &mut chunks {
        acc += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc
}

/// Checks the IPv4 header and TCP checksums of a whole captured packet.
fn checksums_valid(p: &[u8]) -> bool {
    assert_eq!(p[0] >> 4, 4, "the scenario is IPv4");
    let tcp = &p[20..];
    let pseudo = ones_sum(0, &p[12..20]) + 6 + tcp.len() as u32;
    ones_sum(0, &p[..20]) == 0xffff && ones_sum(pseudo, tcp) == 0xffff
}

/// Source and destination (addresses, ports), sequence number and flags.
fn identity(p: &[u8]) -> (&[u8], &[u8], u8) {
    (&p[12..20], &p[20..28], p[33])
}

/// Reads a capture back: its interfaces' names and its packets.
fn read_back(bytes: &[u8]) -> (Vec<String>, Vec<Captured>) {
    let mut reader = PcapNgReader::new(bytes).unwrap();
    let mut names = Vec::new();
    let mut packets = Vec::new();
    while let Some(block) = reader.next_block() {
        match block.unwrap() {
            Block::InterfaceDescription(idb) => {
                assert_eq!(u32::from(idb.linktype), 101, "LINKTYPE_RAW");
                assert!(idb
                    .options
                    .contains(&InterfaceDescriptionOption::IfTsResol(9)));
                names.extend(idb.options.iter().find_map(|o| match o {
                    InterfaceDescriptionOption::IfName(n) => Some(n.to_string()),
                    _ => None,
                }));
            }
            Block::EnhancedPacket(epb) => {
                let comment = epb.options.iter().find_map(|o| match o {
                    EnhancedPacketOption::Comment(c) => Some(c.to_string()),
                    _ => None,
                });
                assert_eq!(epb.data.len() as u32, epb.original_len, "small packets");
                packets.push(Captured {
                    interface: epb.interface_id,
                    t_ns: epb.timestamp.as_nanos(),
                    data: epb.data.into_owned(),
                    comment,
                });
            }
            other => panic!("unexpected block {other:?}"),
        }
    }
    (names, packets)
}

#[test]
fn lost_packets_are_marked_and_every_packet_is_valid() {
    // 2 % loss per packet on a 200 ms RTT path: many losses, and the
    // retransmissions that follow them.
    let scn = common::scenario("reload-high-rtt.json", false);
    let mut w = PcapWriter::new(Vec::new()).unwrap();
    let result = run(
        &scn,
        RunOptions {
            tap: Some(&mut w),
            ..Default::default()
        },
    )
    .unwrap();
    let net = &result.report.network;
    assert_eq!(w.packets(), net.sent);
    assert_eq!(w.lost(), net.lost + net.link_down + net.filtered);
    assert!(net.lost > 100, "the scenario loses packets: {net:?}");
    let (names, packets) = read_back(&w.into_inner().unwrap());
    assert_eq!(names, ["sim-wire", "sim-lost"]);
    assert_eq!(packets.len() as u64, net.sent);

    let mut lost_by_loss = 0;
    let mut retransmitted = 0;
    for (i, p) in packets.iter().enumerate() {
        assert!(checksums_valid(&p.data), "packet {i}: checksums");
        if i > 0 {
            assert!(packets[i - 1].t_ns <= p.t_ns, "packet {i}: time order");
        }
        assert!(p.t_ns <= 12_000_000_000, "packet {i}: within the run");
        match p.interface {
            IF_WIRE => assert_eq!(p.comment, None, "packet {i}"),
            IF_LOST => {
                let c = p.comment.as_deref().expect("a lost packet has a comment");
                let why = c.strip_prefix(LOST_COMMENT).expect(c);
                assert!(["loss", "link_down"].contains(&why) || why.starts_with("filter"));
                lost_by_loss += u64::from(why == "loss");
                // The same segment sent again later: a retransmission, which
                // a reader can now tell from a spurious one.
                let id = identity(&p.data);
                if packets[i + 1..].iter().any(|q| identity(&q.data) == id) {
                    retransmitted += 1;
                }
            }
            other => panic!("packet {i}: interface {other}"),
        }
    }
    assert_eq!(lost_by_loss, net.lost);
    assert!(
        retransmitted * 2 > net.lost,
        "most lost segments are sent again: {retransmitted} of {}",
        net.lost
    );
}
