/*
 * A UDP listener that does what APR does for mod_heartmonitor and nothing more: a plain socket
 * with SO_REUSEADDR only (never SO_REUSEPORT), bound to the port, joined to the group. For the
 * transport contract suite: an adapter must share a group's port with such a socket, in either
 * start order, since Linux shares a UDP port only between sockets that set the same option.
 *
 * Usage: reuseaddr-peer GROUP PORT. Prints "listening", then "FROM LENGTH TEXT" per datagram;
 * exits 3 with the error when it cannot bind.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: reuseaddr-peer GROUP PORT\n");
    return 2;
  }
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  int on = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
  address.sin_addr.s_addr = htonl(INADDR_ANY);
  if (bind(fd, (struct sockaddr *)&address, sizeof address) != 0) {
    perror("bind");
    return 3;
  }
  struct ip_mreq membership = {.imr_interface.s_addr = htonl(INADDR_ANY)};
  inet_pton(AF_INET, argv[1], &membership.imr_multiaddr);
  if (setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &membership, sizeof membership) != 0) {
    perror("IP_ADD_MEMBERSHIP");
    return 3;
  }
  printf("listening\n");
  fflush(stdout);
  char buffer[2048];
  for (;;) {
    struct sockaddr_in from;
    socklen_t length = sizeof from;
    ssize_t n = recvfrom(fd, buffer, sizeof buffer - 1, 0, (struct sockaddr *)&from, &length);
    if (n < 0) return 1;
    buffer[n] = 0;
    printf("%s %zd %s\n", inet_ntoa(from.sin_addr), n, buffer);
    fflush(stdout);
  }
}
