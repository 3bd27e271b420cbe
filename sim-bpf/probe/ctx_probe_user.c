// SPDX-License-Identifier: MIT OR Apache-2.0
/* Loads ctx_probe.bpf.o, attaches it to a reuseport group of two listeners
 * on loopback, makes connections (listener selection), then closes the
 * listener that holds queued children (migration at close, by hash since the
 * program passes), and prints the records of each path. Usage: ctx_probe
 * OBJ [6] (IPv6 with "6"). Needs root (bpf()) and a loopback interface. */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct rec {
	unsigned calls, len, eth_protocol, eth_protocol_hi16, ip_protocol, bind_inany, hash_nonzero, data_len;
	unsigned sk_state, sk_family, sk_src_port, sk_protocol, sk_type, sk_src_ip4, sk_dst_ip4, sk_dst_port;
	unsigned m_state, m_family, m_src_port, m_dst_port, m_src_ip4, m_dst_ip4, m_src_ip6_3;
	unsigned sk_src_ip6_2, sk_src_ip6_3, m_src_ip6_2, m_dst_ip6_2, m_dst_ip6_3;
	int load_bytes, load_rel_net, load_rel_mac;
	unsigned first4, net_first4;
};

static int v6;
static struct sockaddr_storage addr;
static socklen_t alen;

static void set_addr(int port)
{
	memset(&addr, 0, sizeof(addr));
	if (v6) {
		struct sockaddr_in6 *a = (void *)&addr;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons(port);
		a->sin6_addr = in6addr_loopback;
		alen = sizeof(*a);
	} else {
		struct sockaddr_in *a = (void *)&addr;
		a->sin_family = AF_INET;
		a->sin_port = htons(port);
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		alen = sizeof(*a);
	}
}

static int listener(int prog)
{
	int one = 1, fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ||
	    (prog >= 0 && setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF, &prog, sizeof(prog))) ||
	    bind(fd, (void *)&addr, alen) || listen(fd, 16)) {
		perror("listener");
		exit(1);
	}
	return fd;
}

int main(int argc, char **argv)
{
	struct bpf_object *obj;
	int prog, map, l0, i, c[8];
	const char *names[] = {"syn", "close_established", "close_syn_recv", "synack_timer", "final_ack"};

	v6 = argc > 2 && argv[2][0] == '6';
	set_addr(40123);
	obj = bpf_object__open_file(argv[1], NULL);
	if (!obj || bpf_object__load(obj)) {
		fprintf(stderr, "load failed\n");
		return 1;
	}
	prog = bpf_program__fd(bpf_object__find_program_by_name(obj, "probe"));
	map = bpf_map__fd(bpf_object__find_map_by_name(obj, "rec"));
	l0 = listener(prog);
	listener(-1); /* a second member, so the closed one has a migration target */
	for (i = 0; i < 8; i++) {
		c[i] = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
		if (connect(c[i], (void *)&addr, alen)) {
			perror("connect");
			return 1;
		}
		if (write(c[i], "hello", 5) != 5)
			return 1;
	}
	usleep(100000);
	close(l0); /* its queued children migrate (the program is SELECT_OR_MIGRATE) */
	usleep(100000);
	for (i = 0; i < 5; i++) {
		unsigned key = i;
		struct rec r;
		if (bpf_map_lookup_elem(map, &key, &r) || !r.calls)
			continue;
		printf("%s: calls %u len %u eth_protocol %#x eth_protocol@22 %#x ip_protocol %u bind_inany %u "
		       "hash_nonzero %u data_len %u | sk: state %u family %u src_port %u protocol %u type %u "
		       "src_ip4 %#x dst_ip4 %#x dst_port %#x | migrating: state %u family %u src_port %u "
		       "dst_port %#x src_ip4 %#x dst_ip4 %#x src_ip6[3] %#x | load_bytes %d first4 %#x "
		       "rel_net %d net_first4 %#x rel_mac %d | sk src_ip6[2..3] %#x %#x | migrating src_ip6[2] %#x "
		       "dst_ip6[2..3] %#x %#x\n",
		       names[i], r.calls, r.len, r.eth_protocol, r.eth_protocol_hi16, r.ip_protocol, r.bind_inany,
		       r.hash_nonzero, r.data_len, r.sk_state, r.sk_family, r.sk_src_port, r.sk_protocol, r.sk_type,
		       r.sk_src_ip4, r.sk_dst_ip4, r.sk_dst_port, r.m_state, r.m_family, r.m_src_port, r.m_dst_port,
		       r.m_src_ip4, r.m_dst_ip4, r.m_src_ip6_3, r.load_bytes, r.first4, r.load_rel_net,
		       r.net_first4, r.load_rel_mac, r.sk_src_ip6_2, r.sk_src_ip6_3, r.m_src_ip6_2, r.m_dst_ip6_2,
		       r.m_dst_ip6_3);
	}
	return 0;
}
