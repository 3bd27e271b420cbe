// SPDX-License-Identifier: GPL-2.0
// A test SK_REUSEPORT program for the kernel backend's own tests, after the
// kernel selftest tools/testing/selftests/bpf/progs/test_migrate_reuseport.c:
// on migration, look the closing listener's cookie up in `migrate_map`,
// and select the listener at that index of `reuse_map`; an absent key is
// SK_DROP; a failed selection passes (the kernel falls back to the hash).
// Counts migrations per state of the migrating socket in `.bss` (global
// data: exercises BPF_PSEUDO_MAP_VALUE relocations) and plain selections
// (SYNs) in `selections`.
//
// Build: make -C sim-kernel/bpf; the .o is committed (CI has no clang).

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_REUSEPORT_SOCKARRAY);
	__uint(max_entries, 256);
	__type(key, int);
	__type(value, __u64);
} reuse_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u64);
	__type(value, int);
} migrate_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} selections SEC(".maps");

int migrated_at_close = 0;
int migrated_at_close_fastopen = 0;
int migrated_at_send_synack = 0;
int migrated_at_recv_ack = 0;

SEC("sk_reuseport/migrate")
int migrate_reuseport(struct sk_reuseport_md *reuse_md)
{
	int *key, flags = 0, state, err;
	__u64 cookie;

	if (!reuse_md->migrating_sk) {
		__u32 zero = 0;
		__u64 *n = bpf_map_lookup_elem(&selections, &zero);

		if (n)
			__sync_fetch_and_add(n, 1);
		return SK_PASS;
	}

	state = reuse_md->migrating_sk->state;
	cookie = bpf_get_socket_cookie(reuse_md->sk);

	key = bpf_map_lookup_elem(&migrate_map, &cookie);
	if (!key)
		return SK_DROP;

	err = bpf_sk_select_reuseport(reuse_md, &reuse_map, key, flags);
	if (err)
		return SK_PASS;

	switch (state) {
	case BPF_TCP_ESTABLISHED:
		__sync_fetch_and_add(&migrated_at_close, 1);
		break;
	case BPF_TCP_SYN_RECV:
		__sync_fetch_and_add(&migrated_at_close_fastopen, 1);
		break;
	case BPF_TCP_NEW_SYN_RECV:
		if (!reuse_md->len)
			__sync_fetch_and_add(&migrated_at_send_synack, 1);
		else
			__sync_fetch_and_add(&migrated_at_recv_ack, 1);
		break;
	}

	return SK_PASS;
}

char _license[] SEC("license") = "GPL";
