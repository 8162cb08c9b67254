// The one place where an SQLite result code becomes an absl::Status.
#ifndef CONTROLLER_STORE_SQLITE_STATUS_H_
#define CONTROLLER_STORE_SQLITE_STATUS_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace lab::controller {

// Returns a Status whose code follows the retry meaning of SQLite (extended) result code `rc`:
//   SQLITE_BUSY, SQLITE_LOCKED, SQLITE_PROTOCOL, SQLITE_SCHEMA     -> Unavailable (retry)
//   SQLITE_CONSTRAINT_PRIMARYKEY / _UNIQUE                        -> AlreadyExists
//   other SQLITE_CONSTRAINT_* (foreign key, not null, check, ...) -> FailedPrecondition
//   SQLITE_CANTOPEN                                               -> FailedPrecondition
//   SQLITE_PERM, SQLITE_AUTH, SQLITE_READONLY                     -> PermissionDenied
//   SQLITE_NOMEM, SQLITE_FULL, SQLITE_IOERR_NOMEM                 -> ResourceExhausted
//   SQLITE_CORRUPT, SQLITE_NOTADB                                 -> DataLoss
//   SQLITE_TOOBIG                                                 -> InvalidArgument
//   SQLITE_INTERRUPT                                              -> Cancelled
//   anything else (SQLITE_IOERR, SQLITE_MISUSE, ...)              -> Internal
// The message is "<what>: <detail> (sqlite error <rc>)"; `detail` is sqlite3_errmsg() or
// sqlite3_errstr(). `rc` must not be SQLITE_OK, SQLITE_ROW or SQLITE_DONE.
absl::Status SqliteStatus(int rc, absl::string_view what, absl::string_view detail);

}  // namespace lab::controller

#endif  // CONTROLLER_STORE_SQLITE_STATUS_H_
