/* For scripts/bench.ts: the C reference of monitor ingest, a blocking recv loop on the group
 * 239.0.0.1:27999 that does nothing with what it reads. */
#include <arpa/inet.h>
#include <stdio.h>
#include <sys/socket.h>
int main(void) {
  int sock = socket(AF_INET, SOCK_DGRAM, 0), on = 1;
  setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  struct sockaddr_in at = { .sin_family = AF_INET, .sin_port = htons(27999) };
  if (bind(sock, (struct sockaddr *)&at, sizeof at) < 0) { perror("bind"); return 1; }
  struct ip_mreq join;
  inet_pton(AF_INET, "239.0.0.1", &join.imr_multiaddr);
  inet_pton(AF_INET, "127.0.0.1", &join.imr_interface);
  if (setsockopt(sock, IPPROTO_IP, IP_ADD_MEMBERSHIP, &join, sizeof join) < 0) { perror("join"); return 1; }
  char buffer[2048];
  for (;;) recv(sock, buffer, sizeof buffer, 0);
}
