// JSON for protobuf messages, as the local API and config files use it.
//
// Parsing is protobuf's canonical JSON mapping (field names as written in the
// .proto, unknown fields rejected). Printing follows the same mapping with one
// deliberate difference for POS integrators: 64-bit integers are printed as
// JSON numbers, not strings (the parser accepts both, so output round-trips).
// Fields with default values are printed too, so every documented field is
// always present. Enums print as their names. Stateless and thread-safe.
#pragma once

#include <string>
#include <string_view>

#include <google/protobuf/message.h>

namespace loyalty::proto {

// Parses `json` into `*out` (cleared first). Returns an empty string on
// success, else a sentence saying what is wrong.
std::string ParseJson(std::string_view json, google::protobuf::Message* out);

// Serialises `message` as compact JSON.
std::string ToJson(const google::protobuf::Message& message);

// Appends `s` as a JSON string literal (with quotes) to `*out`.
void AppendJsonString(std::string_view s, std::string* out);

}  // namespace loyalty::proto
