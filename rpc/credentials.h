// The single factory for transport credentials, so TLS (with client certificates, see
// DESIGN.md "Security") can arrive in one place. Today only plaintext exists, and it is
// allowed beyond loopback only when the user says --insecure.
#ifndef RPC_CREDENTIALS_H_
#define RPC_CREDENTIALS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/client_context.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"

namespace lab::rpc {

struct TransportOptions {
  // Plaintext beyond loopback. Without it, a non-loopback address is refused.
  bool insecure = false;
};

// Credentials for a server listening on `address` ("HOST:PORT"). InvalidArgument, with the
// flag to use, when the address is not loopback and options.insecure is false.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentialsFor(
    const std::string& address, const TransportOptions& options);
// Credentials for a channel to `address`, under the same rule.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentialsFor(
    const std::string& address, const TransportOptions& options);

// True for 127.0.0.0/8, ::1 and "localhost" (any port). The host part only is examined.
bool IsLoopbackAddress(const std::string& address);

// Sets `context`'s deadline to now + `timeout`. Every client call sets one.
void SetDeadline(grpc::ClientContext& context, absl::Duration timeout);

}  // namespace lab::rpc

#endif  // RPC_CREDENTIALS_H_
