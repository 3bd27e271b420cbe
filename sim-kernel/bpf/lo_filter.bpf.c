// SPDX-License-Identifier: GPL-2.0
// Packet filters on a namespace's loopback, the kernel backend's version of
// sim_core's PacketFilter for same-host traffic (which never crosses the
// user-space link emulator). Attached as XDP (generic mode) on `lo`, like
// the kernel selftest migrate_reuseport's drop_ack. Each rule of `rules`
// drops matching TCP segments while bpf_ktime_get_ns() (CLOCK_MONOTONIC) is
// in [from_ns, until_ns); user space writes the rules with absolute times
// once the run's start is known, so no toggling is needed at run time.
//
// Build: make -C sim-kernel/bpf (clang -O2 -target bpf); the .o is
// committed because CI has no clang.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define MAX_RULES 8

enum match_kind {
	MATCH_ANY = 0,
	MATCH_PURE_ACK = 1,
	MATCH_ACK_NO_SYN = 2,
	MATCH_SYN = 3,
	MATCH_SYN_ACK = 4,
	MATCH_RST = 5,
	MATCH_DATA = 6,
};

struct rule {
	__u64 from_ns;
	__u64 until_ns;
	__u32 enabled;
	__u32 match_kind;
	__u16 src_port; /* 0: any */
	__u16 dst_port; /* 0: any */
	__u32 pad;
	__u64 dropped;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_RULES);
	__type(key, __u32);
	__type(value, struct rule);
} rules SEC(".maps");

static __always_inline int matches(const struct rule *r, __u8 flags, __u32 payload)
{
	int ack = flags & 0x10, syn = flags & 0x02, rst = flags & 0x04;

	switch (r->match_kind) {
	case MATCH_ANY:
		return 1;
	case MATCH_PURE_ACK:
		return flags == 0x10 && payload == 0;
	case MATCH_ACK_NO_SYN:
		return ack && !syn;
	case MATCH_SYN:
		return syn && !ack;
	case MATCH_SYN_ACK:
		return syn && ack;
	case MATCH_RST:
		return rst != 0;
	case MATCH_DATA:
		return payload > 0;
	}
	return 0;
}

SEC("xdp")
int lo_filter(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct tcphdr *tcp;
	__u32 payload;

	if ((void *)(eth + 1) > end)
		return XDP_PASS;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		__u32 ihl;

		if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_TCP)
			return XDP_PASS;
		ihl = ip->ihl * 4;
		if (ihl < sizeof(*ip))
			return XDP_PASS;
		tcp = (void *)ip + ihl;
		if ((void *)(tcp + 1) > end)
			return XDP_PASS;
		payload = bpf_ntohs(ip->tot_len) - ihl - tcp->doff * 4;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > end || ip6->nexthdr != IPPROTO_TCP)
			return XDP_PASS;
		tcp = (void *)(ip6 + 1);
		if ((void *)(tcp + 1) > end)
			return XDP_PASS;
		payload = bpf_ntohs(ip6->payload_len) - tcp->doff * 4;
	} else {
		return XDP_PASS;
	}

	__u8 flags = ((__u8 *)tcp)[13] & 0x3f;
	__u16 sport = bpf_ntohs(tcp->source), dport = bpf_ntohs(tcp->dest);
	__u64 now = bpf_ktime_get_ns();

#pragma unroll
	for (__u32 i = 0; i < MAX_RULES; i++) {
		__u32 key = i;
		struct rule *r = bpf_map_lookup_elem(&rules, &key);

		if (!r || !r->enabled)
			continue;
		if (now < r->from_ns || now >= r->until_ns)
			continue;
		if (r->src_port && r->src_port != sport)
			continue;
		if (r->dst_port && r->dst_port != dport)
			continue;
		if (!matches(r, flags, payload))
			continue;
		__sync_fetch_and_add(&r->dropped, 1);
		return XDP_DROP;
	}
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
