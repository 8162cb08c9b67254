// Early-return helpers for absl::Status / absl::StatusOr, the shape of the macros Abseil
// gained after 20220623 (which this project builds against).
//
//   LAB_RETURN_IF_ERROR(DoThing());             // returns the Status if not OK
//   LAB_ASSIGN_OR_RETURN(auto fd, OpenThing()); // returns the Status, else assigns the value
#ifndef COMMON_STATUS_MACROS_H_
#define COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define LAB_RETURN_IF_ERROR(expr)              \
  do {                                         \
    ::absl::Status lab_status_ = (expr);       \
    if (!lab_status_.ok()) return lab_status_; \
  } while (false)

#define LAB_STATUS_CONCAT_INNER_(a, b) a##b
#define LAB_STATUS_CONCAT_(a, b) LAB_STATUS_CONCAT_INNER_(a, b)

#define LAB_ASSIGN_OR_RETURN(lhs, expr) \
  LAB_ASSIGN_OR_RETURN_IMPL_(LAB_STATUS_CONCAT_(lab_statusor_, __LINE__), lhs, expr)

#define LAB_ASSIGN_OR_RETURN_IMPL_(var, lhs, expr) \
  auto var = (expr);                               \
  if (!var.ok()) return std::move(var).status();   \
  lhs = *std::move(var)

#endif  // COMMON_STATUS_MACROS_H_
