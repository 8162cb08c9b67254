// The physical-limit baseline for the time server benchmark: the least a UDP responder can
// do with batched I/O. Receives up to 64 datagrams per recvmmsg (blocking until one
// arrives) and answers each with its first 56 bytes (the size of a time-sync reply) in one
// sendmmsg. No parsing, no state, no timestamps.
//   usage: baseline_responder PORT   (binds 127.0.0.1; prints "listening PORT"; runs until killed)
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s PORT\n", argv[0]);
    return 2;
  }
  constexpr int kBatch = 64;
  constexpr int kMaxBytes = 128;
  constexpr int kReplyBytes = 56;
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  const int buf = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::atoi(argv[1])));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    std::perror("bind");
    return 1;
  }
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  std::printf("listening %d\n", ntohs(addr.sin_port));
  std::fflush(stdout);

  std::vector<char> data(kBatch * kMaxBytes);
  std::vector<sockaddr_in> peers(kBatch);
  std::vector<iovec> iov(kBatch);
  std::vector<mmsghdr> in(kBatch), out(kBatch);
  while (true) {
    for (int i = 0; i < kBatch; ++i) {
      iov[i] = {&data[i * kMaxBytes], kMaxBytes};
      in[i].msg_hdr = {};
      in[i].msg_hdr.msg_name = &peers[i];
      in[i].msg_hdr.msg_namelen = sizeof(sockaddr_in);
      in[i].msg_hdr.msg_iov = &iov[i];
      in[i].msg_hdr.msg_iovlen = 1;
    }
    const int n = recvmmsg(fd, in.data(), kBatch, MSG_WAITFORONE, nullptr);
    if (n <= 0) continue;
    for (int i = 0; i < n; ++i) {
      iov[i].iov_len = kReplyBytes;
      out[i].msg_hdr = in[i].msg_hdr;
      out[i].msg_hdr.msg_iov = &iov[i];
    }
    for (int sent = 0; sent < n;) {
      const int m = sendmmsg(fd, out.data() + sent, n - sent, 0);
      if (m <= 0) break;
      sent += m;
    }
  }
}
