#include "controller/store/sqlite_status.h"

#include <sqlite3.h>

#include "gtest/gtest.h"

namespace lab::controller {
namespace {

absl::StatusCode CodeOf(int rc) { return SqliteStatus(rc, "op", "detail").code(); }

TEST(SqliteStatusTest, MapsResultCodesByRetryMeaning) {
  EXPECT_EQ(CodeOf(SQLITE_BUSY), absl::StatusCode::kUnavailable);
  EXPECT_EQ(CodeOf(SQLITE_BUSY_SNAPSHOT), absl::StatusCode::kUnavailable);
  EXPECT_EQ(CodeOf(SQLITE_LOCKED), absl::StatusCode::kUnavailable);
  EXPECT_EQ(CodeOf(SQLITE_CONSTRAINT_PRIMARYKEY), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(CodeOf(SQLITE_CONSTRAINT_UNIQUE), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(CodeOf(SQLITE_CONSTRAINT_FOREIGNKEY), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(CodeOf(SQLITE_CONSTRAINT_NOTNULL), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(CodeOf(SQLITE_CANTOPEN), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(CodeOf(SQLITE_READONLY), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(CodeOf(SQLITE_FULL), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(CodeOf(SQLITE_IOERR_NOMEM), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(CodeOf(SQLITE_CORRUPT), absl::StatusCode::kDataLoss);
  EXPECT_EQ(CodeOf(SQLITE_NOTADB), absl::StatusCode::kDataLoss);
  EXPECT_EQ(CodeOf(SQLITE_IOERR_WRITE), absl::StatusCode::kInternal);
  EXPECT_EQ(CodeOf(SQLITE_MISUSE), absl::StatusCode::kInternal);
}

TEST(SqliteStatusTest, MessageSaysWhatFailedWhyAndTheCode) {
  EXPECT_EQ(
      SqliteStatus(SQLITE_BUSY, "append samples in /tmp/r.db", "database is locked").message(),
      "append samples in /tmp/r.db: database is locked (sqlite error 5)");
}

}  // namespace
}  // namespace lab::controller
