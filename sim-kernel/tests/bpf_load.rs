//! The BPF object loader against the kernel verifier.

mod common;

use sim_kernel::bpf::{self, LoadedObject, ProgType};

const MIGRATE: &[u8] = include_bytes!("../bpf/test_migrate.bpf.o");

#[test]
fn loads_xdp_and_sk_reuseport_objects() {
    let Some(_k) = common::kernel_or_skip("loads_xdp_and_sk_reuseport_objects") else {
        return;
    };
    let lo = LoadedObject::load(
        sim_kernel::lofilter::LO_FILTER_OBJECT,
        &[("lo_filter", ProgType::Xdp)],
    )
    .expect("XDP object loads");
    let rules = lo.map("rules").expect("BTF map `rules`");
    assert_eq!(
        (rules.map_type, rules.key_size, rules.value_size),
        (bpf::BPF_MAP_TYPE_ARRAY, 4, 40)
    );

    let m = LoadedObject::load(
        MIGRATE,
        &[(
            "migrate_reuseport",
            ProgType::SkReuseport {
                attach: bpf::BPF_SK_REUSEPORT_SELECT_OR_MIGRATE,
            },
        )],
    )
    .expect("SK_REUSEPORT object loads");
    let sa = m.map("reuse_map").unwrap();
    assert_eq!(sa.map_type, bpf::BPF_MAP_TYPE_REUSEPORT_SOCKARRAY);
    assert_eq!((sa.key_size, sa.value_size), (4, 8));
    let mm = m.map("migrate_map").unwrap();
    assert_eq!((mm.key_size, mm.value_size), (8, 4));
    let bss = m.map(".bss").expect("global data as a map");
    assert_eq!(bss.value_size, 16);

    // A program that does not exist, and bytes that are not an object.
    let e = LoadedObject::load(MIGRATE, &[("nope", ProgType::Xdp)]).unwrap_err();
    assert!(e.contains("no program `nope`"), "{e}");
    let e = LoadedObject::load(b"not an elf", &[("x", ProgType::Xdp)]).unwrap_err();
    assert!(e.contains("not an ELF object"), "{e}");
    // The verifier's refusal comes back with its log: an XDP program
    // loaded as SK_REUSEPORT reads a context it does not have.
    let e = LoadedObject::load(
        sim_kernel::lofilter::LO_FILTER_OBJECT,
        &[(
            "lo_filter",
            ProgType::SkReuseport {
                attach: bpf::BPF_SK_REUSEPORT_SELECT,
            },
        )],
    )
    .unwrap_err();
    assert!(e.contains("verifier log"), "{e}");
}
