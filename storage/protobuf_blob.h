// Protobuf messages stored in BLOB columns, read back.
#pragma once

#include <string>
#include <string_view>

#include "core/result.h"

namespace loyalty::storage {

// `blob` parsed as a Message; "internal" ("corrupt <what>") when it is not one.
template <typename Message>
core::Result<Message> ParseBlob(std::string_view blob, const char* what) {
  Message m;
  if (!m.ParseFromArray(blob.data(), static_cast<int>(blob.size()))) {
    return core::MakeError(core::code::kInternal, std::string("corrupt ") + what);
  }
  return m;
}

}  // namespace loyalty::storage
