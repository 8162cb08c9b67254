// An IPv4 or IPv6 socket address (value type, hashable, comparable).
#ifndef DATAPLANE_NET_SOCKET_ADDRESS_H_
#define DATAPLANE_NET_SOCKET_ADDRESS_H_

#include <sys/socket.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace lab::net {

class SocketAddress {
 public:
  SocketAddress() = default;

  // `host` is a numeric IPv4/IPv6 address or a name resolved with getaddrinfo (first result).
  // NotFound when the name does not resolve; InvalidArgument when `host` is empty.
  static absl::StatusOr<SocketAddress> Resolve(absl::string_view host, uint16_t port);
  // Parses "HOST:PORT" or "[V6ADDR]:PORT". InvalidArgument explains the expected form.
  static absl::StatusOr<SocketAddress> ParseHostPort(absl::string_view host_port);
  // From a kernel-filled sockaddr (AF_INET or AF_INET6; anything else gives an empty address).
  static SocketAddress FromSockaddr(const sockaddr* sa, socklen_t len);

  const sockaddr* data() const { return reinterpret_cast<const sockaddr*>(&storage_); }
  sockaddr* mutable_data() { return reinterpret_cast<sockaddr*>(&storage_); }
  socklen_t size() const { return size_; }
  int family() const { return storage_.ss_family; }
  uint16_t port() const;
  // "1.2.3.4:5" or "[::1]:5".
  std::string ToString() const;
  // The address without the port.
  std::string HostString() const;
  bool IsLoopback() const;

  friend bool operator==(const SocketAddress& a, const SocketAddress& b) {
    return a.size_ == b.size_ && std::memcmp(&a.storage_, &b.storage_, a.size_) == 0;
  }
  template <typename H>
  friend H AbslHashValue(H h, const SocketAddress& a) {
    return H::combine(
        H::combine_contiguous(std::move(h), reinterpret_cast<const unsigned char*>(&a.storage_),
                              a.size_),
        a.size_);
  }

 private:
  sockaddr_storage storage_{};
  socklen_t size_ = 0;
};

// The IPv4 address of the first interface that is up and not loopback, in getifaddrs()
// order (in a container: its address on its first network). NotFound when there is none.
absl::StatusOr<std::string> FirstNonLoopbackIpv4();

}  // namespace lab::net

#endif  // DATAPLANE_NET_SOCKET_ADDRESS_H_
