// Conversions between the time-sync proto messages and the data plane's types, shared by the
// agent and the controller (the data plane itself never sees a proto).
#ifndef RPC_TIMESYNC_CONVERSION_H_
#define RPC_TIMESYNC_CONVERSION_H_

#include "absl/status/statusor.h"
#include "dataplane/timesync/client_core.h"
#include "dataplane/timesync/scheme.h"
#include "lab/v1/timesync.pb.h"

namespace lab::rpc {

// The scheme and parameters, defaults for unset fields, validated (InvalidArgument says
// which parameter is wrong; SCHEME_UNSPECIFIED is an error).
absl::StatusOr<timesync::SchemeParams> FromProto(lab::v1::Scheme scheme,
                                                 const lab::v1::SchemeParams& params);
lab::v1::Scheme ToProto(timesync::Scheme scheme);
void ToProto(const timesync::PacketRecord& record, lab::v1::TimeSyncSample* out);

}  // namespace lab::rpc

#endif  // RPC_TIMESYNC_CONVERSION_H_
