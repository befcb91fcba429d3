#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
int main(int argc, char **argv) {
  long rate = atol(argv[1]), seconds = atol(argv[2]), senders = atol(argv[3]);
  int socks[256];
  for (int i = 0; i < senders; i++) {
    socks[i] = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in from = { .sin_family = AF_INET };
    char address[32];
    snprintf(address, sizeof address, "10.99.1.%d", i + 1);
    inet_pton(AF_INET, address, &from.sin_addr);
    if (bind(socks[i], (struct sockaddr *)&from, sizeof from) < 0) { perror(address); return 1; }
  }
  struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(27999) };
  inet_pton(AF_INET, "239.0.0.1", &to.sin_addr);
  const char *message = "v=1&ready=10&busy=3&port=80";
  size_t length = strlen(message);
  struct timespec next;
  clock_gettime(CLOCK_MONOTONIC, &next);
  long sent = 0, due = 0, total = rate * seconds;
  for (long tick = 1; sent < total; tick++) {
    due = rate * tick / 1000;
    if (due > total) due = total;
    while (sent < due) sendto(socks[sent % senders], message, length, 0, (struct sockaddr *)&to, sizeof to), sent++;
    next.tv_nsec += 1000000L;
    while (next.tv_nsec >= 1000000000L) { next.tv_nsec -= 1000000000L; next.tv_sec++; }
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
  }
  printf("%ld\n", sent);
  return 0;
}
