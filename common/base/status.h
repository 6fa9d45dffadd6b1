#pragma once
// Status helpers. Debian's Abseil (20220623) has no ABSL_RETURN_IF_ERROR.

#include "absl/status/status.h"
#include "absl/status/statusor.h"

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
