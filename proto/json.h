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
//
// Plain request bodies (see ParsePlainJson) are read by a lean reader; all
// others, and every error, go through protobuf's parser, so what is
// accepted and how a rejection is worded does not depend on the path.
std::string ParseJson(std::string_view json, google::protobuf::Message* out);

// The lean reader alone: true when `json` is plain (objects, arrays,
// strings of printable ASCII without escapes, canonical integers, booleans;
// snake_case field names, each once; no oneofs, maps, enums, floating point
// or well-known types) and `*out` now holds exactly what protobuf's parser
// would have produced. False, with `*out` cleared, for anything else: that
// is "not plain", not "invalid". Exposed for tests.
bool ParsePlainJson(std::string_view json, google::protobuf::Message* out);

// Serialises `message` as compact JSON.
std::string ToJson(const google::protobuf::Message& message);

// Appends `s` as a JSON string literal (with quotes) to `*out`.
void AppendJsonString(std::string_view s, std::string* out);

}  // namespace loyalty::proto
