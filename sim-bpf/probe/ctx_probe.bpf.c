// SPDX-License-Identifier: MIT OR GPL-2.0
/* Records what a SK_REUSEPORT program sees on each call path (docs/linux-semantics/sk-reuseport-program-context.md). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct rec {
	__u32 calls, len, eth_protocol, eth_protocol_hi16, ip_protocol, bind_inany, hash_nonzero, data_len;
	__u32 sk_state, sk_family, sk_src_port, sk_protocol, sk_type, sk_src_ip4, sk_dst_ip4, sk_dst_port;
	__u32 m_state, m_family, m_src_port, m_dst_port, m_src_ip4, m_dst_ip4, m_src_ip6_3;
	__u32 sk_src_ip6_2, sk_src_ip6_3, m_src_ip6_2, m_dst_ip6_2, m_dst_ip6_3;
	__s32 load_bytes, load_rel_net, load_rel_mac;
	__u32 first4, net_first4;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, struct rec);
} rec SEC(".maps");

SEC("sk_reuseport/migrate")
int probe(struct sk_reuseport_md *md)
{
	struct bpf_sock *m = md->migrating_sk, *sk = md->sk;
	__u32 key = 0, first = 0, net = 0;
	struct rec *r;

	if (m)
		key = m->state == BPF_TCP_NEW_SYN_RECV ? (md->len ? 4 : 3) : (m->state == BPF_TCP_SYN_RECV ? 2 : 1);
	r = bpf_map_lookup_elem(&rec, &key);
	if (!r)
		return SK_PASS;
	r->calls++;
	r->len = md->len;
	r->eth_protocol = md->eth_protocol;
	{
		__u64 v;
		/* a real 2-byte context load at eth_protocol + 2 (clang would reuse the 4-byte load) */
		asm volatile("%0 = *(u16 *)(%1 + 22)" : "=r"(v) : "r"(md));
		r->eth_protocol_hi16 = v;
	}
	r->ip_protocol = md->ip_protocol;
	r->bind_inany = md->bind_inany;
	r->hash_nonzero = md->hash != 0;
	r->data_len = (long)md->data_end - (long)md->data;
	r->sk_state = sk->state;
	r->sk_family = sk->family;
	r->sk_src_port = sk->src_port;
	r->sk_protocol = sk->protocol;
	r->sk_type = sk->type;
	r->sk_src_ip4 = sk->src_ip4;
	r->sk_dst_ip4 = sk->dst_ip4;
	r->sk_dst_port = sk->dst_port;
	r->sk_src_ip6_2 = sk->src_ip6[2];
	r->sk_src_ip6_3 = sk->src_ip6[3];
	if (m) {
		r->m_state = m->state;
		r->m_family = m->family;
		r->m_src_port = m->src_port;
		r->m_dst_port = m->dst_port;
		r->m_src_ip4 = m->src_ip4;
		r->m_dst_ip4 = m->dst_ip4;
		r->m_src_ip6_3 = m->src_ip6[3];
		r->m_src_ip6_2 = m->src_ip6[2];
		r->m_dst_ip6_2 = m->dst_ip6[2];
		r->m_dst_ip6_3 = m->dst_ip6[3];
	}
	r->load_bytes = bpf_skb_load_bytes(md, 0, &first, 4);
	r->first4 = first;
	r->load_rel_net = bpf_skb_load_bytes_relative(md, 0, &net, 4, BPF_HDR_START_NET);
	r->net_first4 = net;
	r->load_rel_mac = bpf_skb_load_bytes_relative(md, 12, &net, 2, BPF_HDR_START_MAC);
	return SK_PASS;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
