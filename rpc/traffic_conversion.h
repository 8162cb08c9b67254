// Conversions between the traffic proto messages (proto/lab/v1/traffic.proto) and the data
// plane's options and samples, shared by the agent and the controller.
#ifndef RPC_TRAFFIC_CONVERSION_H_
#define RPC_TRAFFIC_CONVERSION_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "dataplane/traffic/interval.h"
#include "dataplane/traffic/tcp_client.h"
#include "dataplane/traffic/tcp_server.h"
#include "dataplane/traffic/udp_client.h"
#include "dataplane/traffic/udp_server.h"
#include "lab/v1/traffic.pb.h"

namespace lab::rpc {

// Options from a task, defaults for unset fields, validated: InvalidArgument names the field.
// Servers bind `default_bind` when the task names no address; `insecure` allows non-loopback.
absl::StatusOr<traffic::TcpServerOptions> FromProto(const lab::v1::TcpServerTask& task,
                                                    const std::string& default_bind, bool insecure);
absl::StatusOr<traffic::TcpClientOptions> FromProto(const lab::v1::TcpClientTask& task);
absl::StatusOr<traffic::UdpServerOptions> FromProto(const lab::v1::UdpServerTask& task,
                                                    const std::string& default_bind, bool insecure);
absl::StatusOr<traffic::UdpClientOptions> FromProto(const lab::v1::UdpClientTask& task);

void ToProto(const traffic::IntervalSample& sample, uint64_t seq, lab::v1::TrafficInterval* out);
traffic::IntervalSample FromProto(const lab::v1::TrafficInterval& interval);

}  // namespace lab::rpc

#endif  // RPC_TRAFFIC_CONVERSION_H_
