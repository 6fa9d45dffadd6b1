#pragma once
// Status helpers. Debian's Abseil (20220623) has no ABSL_RETURN_IF_ERROR.

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/cord.h"

#define ASSAY_CONCAT_INNER_(a, b) a##b
#define ASSAY_CONCAT_(a, b) ASSAY_CONCAT_INNER_(a, b)

// Returns from the current function with the status if `expr` is not OK.
#define ASSAY_RETURN_IF_ERROR(expr)                \
  do {                                             \
    ::absl::Status assay_status_ = (expr);         \
    if (!assay_status_.ok()) return assay_status_; \
  } while (0)

// `ASSAY_ASSIGN_OR_RETURN(auto x, Foo());` evaluates Foo() (a StatusOr) and either
// binds its value or returns its status.
#define ASSAY_ASSIGN_OR_RETURN(lhs, expr) \
  ASSAY_ASSIGN_OR_RETURN_IMPL_(ASSAY_CONCAT_(assay_statusor_, __LINE__), lhs, expr)
#define ASSAY_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(tmp).value()

namespace assay {

// Marks `s` as holding text that must never reach a client (a database's own error message,
// a file path): HTTP answers it with a generic message and a request id, and the details go
// to the server log only. Returns `s` (OK stays OK, unmarked).
inline absl::Status MarkInternalDetail(absl::Status s) {
  if (!s.ok()) s.SetPayload("assay.internal-detail", absl::Cord("1"));
  return s;
}
inline bool HasInternalDetail(const absl::Status& s) {
  return s.GetPayload("assay.internal-detail").has_value();
}

}  // namespace assay
