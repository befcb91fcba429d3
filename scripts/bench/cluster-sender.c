/*
 * For scripts/bench.ts --cluster: SERVERS distinct senders, each heartbeating once a second to
 * 239.0.0.1:27999 for SECONDS, spread evenly over each second. One socket sends them all, each
 * datagram from its own source address (IP_PKTINFO) in 10.98.0.0/16, which the bench makes local
 * to its namespace (`ip route add local 10.98.0.0/16 dev lo`), so no address need be added one
 * by one. Each server's ready moves a little from second to second, as a real one's would.
 * Usage: cluster-sender SERVERS SECONDS; prints the number of datagrams sent.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: cluster-sender SERVERS SECONDS\n");
    return 2;
  }
  long servers = atol(argv[1]), seconds = atol(argv[2]);
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  unsigned char ttl = 1;
  setsockopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof ttl);
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(27999)};
  inet_pton(AF_INET, "239.0.0.1", &to.sin_addr);
  char control[CMSG_SPACE(sizeof(struct in_pktinfo))];
  struct timespec next;
  clock_gettime(CLOCK_MONOTONIC, &next);
  long sent = 0;
  /* Every millisecond, the servers whose turn in this second has come. */
  for (long tick = 0; tick < seconds * 1000; tick++) {
    long second = tick / 1000, from = servers * (tick % 1000) / 1000,
         to_server = servers * (tick % 1000 + 1) / 1000;
    for (long i = from; i < to_server; i++) {
      char message[64];
      int length = snprintf(message, sizeof message, "v=1&ready=%ld&busy=%ld&port=80",
                            10 + (i + second) % 7, 2 + i % 3);
      struct iovec part = {.iov_base = message, .iov_len = length};
      struct msghdr header = {.msg_name = &to, .msg_namelen = sizeof to, .msg_iov = &part,
                              .msg_iovlen = 1, .msg_control = control,
                              .msg_controllen = sizeof control};
      struct cmsghdr *cmsg = CMSG_FIRSTHDR(&header);
      cmsg->cmsg_level = IPPROTO_IP;
      cmsg->cmsg_type = IP_PKTINFO;
      cmsg->cmsg_len = CMSG_LEN(sizeof(struct in_pktinfo));
      struct in_pktinfo *info = (struct in_pktinfo *)CMSG_DATA(cmsg);
      memset(info, 0, sizeof *info);
      info->ipi_spec_dst.s_addr = htonl((10u << 24) | (98u << 16) | (unsigned)(i + 1));
      if (sendmsg(fd, &header, 0) > 0) sent++;
    }
    next.tv_nsec += 1000000L;
    while (next.tv_nsec >= 1000000000L) {
      next.tv_nsec -= 1000000000L;
      next.tv_sec++;
    }
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
  }
  printf("%ld\n", sent);
  return 0;
}
