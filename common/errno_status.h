// The one place where an errno value becomes an absl::Status.
#ifndef COMMON_ERRNO_STATUS_H_
#define COMMON_ERRNO_STATUS_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace lab {

// Returns a Status whose code follows the errno's retry meaning (EAGAIN/EINTR -> Unavailable,
// EACCES/EPERM -> PermissionDenied, EADDRINUSE -> AlreadyExists, EINVAL -> InvalidArgument,
// ENOBUFS/ENOMEM/EMFILE -> ResourceExhausted, ...) and whose message is
// "<what>: <strerror(err)> (errno <err>)". `err` must be non-zero.
absl::Status ErrnoToStatus(int err, absl::string_view what);

}  // namespace lab

#endif  // COMMON_ERRNO_STATUS_H_
