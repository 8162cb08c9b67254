// The one place where absl::Status and grpc::Status are converted into each other. Both use
// the same canonical codes (the gRPC codes), so the conversion keeps code and message.
#ifndef RPC_STATUS_CONVERSION_H_
#define RPC_STATUS_CONVERSION_H_

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace lab::rpc {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace lab::rpc

#endif  // RPC_STATUS_CONVERSION_H_
