#include "rpc/credentials.h"

#include <arpa/inet.h>

#include <chrono>

#include "absl/strings/str_cat.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"

namespace lab::rpc {

namespace {

// The host part of "HOST:PORT", "[V6]:PORT" or a bare host.
std::string HostOf(const std::string& address) {
  if (!address.empty() && address.front() == '[') {
    const auto close = address.find(']');
    return address.substr(1, close == std::string::npos ? std::string::npos : close - 1);
  }
  const auto colon = address.rfind(':');
  if (colon != std::string::npos && address.find(':') == colon) return address.substr(0, colon);
  return address;  // bare host or bare IPv6
}

absl::Status CheckTransport(const std::string& address, const TransportOptions& options,
                            const char* what) {
  if (IsLoopbackAddress(address) || options.insecure) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("refusing to ", what, " ", address,
                   " in plaintext: it is not a loopback address and TLS is not available yet; "
                   "pass --insecure to allow it on a network you trust"));
}

}  // namespace

bool IsLoopbackAddress(const std::string& address) {
  const std::string host = HostOf(address);
  if (host == "localhost") return true;
  in_addr v4;
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6;
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) return IN6_IS_ADDR_LOOPBACK(&v6);
  return false;
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentialsFor(
    const std::string& address, const TransportOptions& options) {
  if (absl::Status s = CheckTransport(address, options, "listen on"); !s.ok()) return s;
  return grpc::InsecureServerCredentials();
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentialsFor(
    const std::string& address, const TransportOptions& options) {
  if (absl::Status s = CheckTransport(address, options, "connect to"); !s.ok()) return s;
  return grpc::InsecureChannelCredentials();
}

void SetDeadline(grpc::ClientContext& context, absl::Duration timeout) {
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::nanoseconds(absl::ToInt64Nanoseconds(timeout)));
}

}  // namespace lab::rpc
