// Result<T> and Error: how every library reports an expected failure (bad
// input, not found, conflict, unavailable). An Error carries a stable
// machine-readable code, which the local API and the CLI print as is, and a
// sentence for humans. Values are cheap to move; not thread-safe to share
// mutably, like any value type.
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace loyalty::core {

// Stable error codes. They are part of the API contract: add, never rename.
namespace code {
inline constexpr const char* kInvalidCard = "invalid_card";
inline constexpr const char* kInvalidRequest = "invalid_request";
inline constexpr const char* kInvalidProgramme = "invalid_programme";
inline constexpr const char* kInvalidOffer = "invalid_offer";
inline constexpr const char* kUnknownCard = "unknown_card";
inline constexpr const char* kNotFound = "not_found";
inline constexpr const char* kAlreadyEnrolled = "already_enrolled";
inline constexpr const char* kConflict = "conflict";
inline constexpr const char* kInsufficientPoints = "insufficient_points";
inline constexpr const char* kAlreadyReversed = "already_reversed";
inline constexpr const char* kTooLarge = "too_large";
inline constexpr const char* kUnavailable = "unavailable";
inline constexpr const char* kDiskFull = "disk_full";
// The database file is damaged (SQLite found it malformed): an operator's
// job (loyaltyctl doctor), not the request's.
inline constexpr const char* kDatabaseCorrupt = "database_corrupt";
inline constexpr const char* kInternal = "internal";
}  // namespace code

// Codes that say the storage failed, not the request: the work is to be
// retried (or repaired), never blamed on the input.
inline bool IsStorageFailure(const std::string& c) {
  return c == code::kInternal || c == code::kUnavailable || c == code::kDiskFull ||
         c == code::kDatabaseCorrupt;
}

struct [[nodiscard]] Error {
  std::string code;
  std::string message;
};

// Either a T or an Error. Result<void> is a plain status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}  // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & {
    assert(ok());
    return std::get<0>(v_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<0>(v_);
  }
  T&& value() && {
    assert(ok());
    return std::get<0>(std::move(v_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }

  const Error& error() const {
    assert(!ok());
    return std::get<1>(v_);
  }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const {
    assert(!ok_);
    return error_;
  }

 private:
  Error error_;
  bool ok_ = true;
};

using Status = Result<void>;

inline Error MakeError(std::string code, std::string message) {
  return Error{std::move(code), std::move(message)};
}

}  // namespace loyalty::core
