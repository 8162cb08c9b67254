// The one place where an errno value becomes an absl::Status.
#ifndef COMMON_ERRNO_STATUS_H_
#define COMMON_ERRNO_STATUS_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace lab {

// Returns a Status whose code follows the errno's retry meaning (EAGAIN/EINTR -> Unavailable,
// EACCES/EPERM -> PermissionDenied, EADDRINUSE -> AlreadyExists, EINVAL -> InvalidArgument,
// ENOBUFS/ENOMEM/EMFILE -> ResourceExhausted, ...) and whose message is
// "<what>: <strerror(err)> (errno <err>)". `err` must be non-zero. The errno itself travels as
// the payload kErrnoPayloadUrl, for callers that must tell errnos apart (ErrnoOf).
absl::Status ErrnoToStatus(int err, absl::string_view what);

inline constexpr char kErrnoPayloadUrl[] = "type.netlab/errno";
// The errno a Status from ErrnoToStatus carries; 0 for any other Status.
int ErrnoOf(const absl::Status& status);

}  // namespace lab

#endif  // COMMON_ERRNO_STATUS_H_
