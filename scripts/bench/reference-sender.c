#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
static char body[1 << 16];
static int scoreboard(int port, int *ready, int *busy) {
  int sock = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(port) };
  inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
  if (connect(sock, (struct sockaddr *)&to, sizeof to) < 0) { close(sock); return -1; }
  const char *get = "GET /server-status?auto HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  write(sock, get, strlen(get));
  size_t n = 0; ssize_t got;
  while (n < sizeof body - 1 && (got = read(sock, body + n, sizeof body - 1 - n)) > 0) n += got;
  body[n] = 0;
  close(sock);
  char *board = strstr(body, "Scoreboard: ");
  if (!board) return -1;
  *ready = *busy = 0;
  for (board += 12; *board && *board != '\n' && *board != '\r'; board++) {
    if (*board == '_') (*ready)++;
    else if (!strchr(".SI", *board)) (*busy)++;
  }
  return 0;
}
int main(int argc, char **argv) {
  double interval = atof(argv[1]);
  int status_port = argc > 2 ? atoi(argv[2]) : 0;
  int port = argc > 3 ? atoi(argv[3]) : 27999;
  int sock = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(port) };
  inet_pton(AF_INET, "239.0.0.1", &to.sin_addr);
  char message[64];
  struct timespec next;
  clock_gettime(CLOCK_MONOTONIC, &next);
  long step = (long)(interval * 1e9);
  for (;;) {
    int ready = 10, busy = 0;
    if (!status_port || scoreboard(status_port, &ready, &busy) == 0) {
      int length = snprintf(message, sizeof message, "v=1&ready=%d&busy=%d", ready, busy);
      sendto(sock, message, length, 0, (struct sockaddr *)&to, sizeof to);
    }
    next.tv_nsec += step;
    while (next.tv_nsec >= 1000000000L) { next.tv_nsec -= 1000000000L; next.tv_sec++; }
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
  }
}
