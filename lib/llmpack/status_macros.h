// Helpers for propagating absl::Status through the library. The library never
// exits or aborts on bad input; every fallible function returns a Status.
#ifndef LLMPACK_STATUS_MACROS_H_
#define LLMPACK_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define LLMPACK_CONCAT_INNER_(a, b) a##b
#define LLMPACK_CONCAT_(a, b) LLMPACK_CONCAT_INNER_(a, b)

// Returns from the enclosing function when `expr` yields a non-OK status.
#define RETURN_IF_ERROR(expr)                          \
  do {                                                 \
    ::absl::Status llmpack_status_ = (expr);           \
    if (!llmpack_status_.ok()) return llmpack_status_; \
  } while (0)

#define ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                           \
  if (!tmp.ok()) return tmp.status();          \
  lhs = std::move(tmp).value()

// `ASSIGN_OR_RETURN(auto x, Foo());` declares x from a StatusOr or returns.
#define ASSIGN_OR_RETURN(lhs, expr)                                         \
  ASSIGN_OR_RETURN_IMPL_(LLMPACK_CONCAT_(llmpack_statusor_, __LINE__), lhs, \
                         expr)

#endif  // LLMPACK_STATUS_MACROS_H_
