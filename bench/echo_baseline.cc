// The baseline for the TCP echo benchmark (bench/traffic_bench): the least an epoll echo
// server does. One thread, level-triggered epoll, one 16 KiB buffer shared by every
// connection; accepts everything, writes back what it reads (blocking the loop until the
// whole chunk is written), closes on EOF or error. No framing, no counters, no timers.
//   usage: echo_baseline PORT   (binds 127.0.0.1, 0 = any; prints "listening PORT";
//                                runs until killed, SIGTERM's default action)
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

namespace {

// Writes all of data to fd. The socket is non-blocking: on EAGAIN (rare on loopback with
// request-sized chunks) it sleeps briefly and retries. False on error.
bool WriteAll(int fd, const char* data, ssize_t size) {
  while (size > 0) {
    const ssize_t n = send(fd, data, static_cast<size_t>(size), MSG_NOSIGNAL);
    if (n > 0) {
      data += n;
      size -= n;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && errno == EAGAIN) {
      usleep(50);
    } else {
      return false;
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s PORT\n", argv[0]);
    return 2;
  }
  // Same descriptor budget as labnet: raise the soft limit to the hard one.
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
  }
  const int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  const int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::atoi(argv[1])));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(lfd, SOMAXCONN) != 0) {
    std::perror("bind/listen");
    return 1;
  }
  socklen_t len = sizeof(addr);
  getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len);
  std::printf("listening %d\n", ntohs(addr.sin_port));
  std::fflush(stdout);

  const int ep = epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = lfd;
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);

  constexpr int kEvents = 256;
  epoll_event events[kEvents];
  static char buf[16 * 1024];
  while (true) {
    const int n = epoll_wait(ep, events, kEvents, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      std::perror("epoll_wait");
      return 1;
    }
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == lfd) {
        while (true) {
          const int c = accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (c < 0) break;  // EAGAIN, or EMFILE: try again on the next wakeup.
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
          epoll_event cev{};
          cev.events = EPOLLIN;
          cev.data.fd = c;
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
        }
        continue;
      }
      const ssize_t r = recv(fd, buf, sizeof(buf), 0);
      if (r > 0) {
        if (!WriteAll(fd, buf, r)) close(fd);
      } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
        close(fd);  // Closing removes it from the epoll set.
      }
    }
  }
}
