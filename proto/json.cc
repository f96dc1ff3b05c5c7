#include "proto/json.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/util/json_util.h>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <unordered_map>
#include <vector>

namespace loyalty::proto {
namespace {

namespace pb = google::protobuf;
using FD = pb::FieldDescriptor;

// ------------------------------------------------------------- printing --

// What the printer needs of a message type, worked out once per type and
// thread: each field with its `"name":` prefix.
struct PrintField {
  const FD* field;
  std::string prefix;  // "\"name\":"
  bool skip_unset;     // oneof members and singular sub-messages are omitted when unset
  bool repeated;
  bool map;
};
using PrintLayout = std::vector<PrintField>;

const PrintLayout& LayoutOf(const pb::Descriptor* d) {
  // Per thread, so lookups take no lock; a few dozen message types at most.
  thread_local std::unordered_map<const pb::Descriptor*, PrintLayout> layouts;
  auto [it, inserted] = layouts.try_emplace(d);
  if (inserted) {
    for (int i = 0; i < d->field_count(); ++i) {
      const FD* f = d->field(i);
      PrintField pf{f, {}, false, f->is_repeated(), f->is_map()};
      AppendJsonString(f->name(), &pf.prefix);
      pf.prefix.push_back(':');
      pf.skip_unset = f->containing_oneof() != nullptr ||
                      (!f->is_repeated() && f->cpp_type() == FD::CPPTYPE_MESSAGE);
      it->second.push_back(std::move(pf));
    }
  }
  return it->second;
}

template <typename Int>
void AppendInt(Int value, std::string* out) {
  char buf[24];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
  out->append(buf, end);
}

void AppendMessage(const pb::Message& m, std::string* out);

void AppendDouble(double d, std::string* out) {
  if (!std::isfinite(d)) {  // JSON has no NaN or infinity; protobuf uses strings
    AppendJsonString(std::isnan(d) ? "NaN" : (d > 0 ? "Infinity" : "-Infinity"), out);
    return;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", d);
  out->append(buf);
}

void AppendScalar(const pb::Message& m, const pb::Reflection* r, const FD* f, int index,
                  std::string* out) {
  const bool rep = f->is_repeated();
  switch (f->cpp_type()) {
    case FD::CPPTYPE_INT32:
      AppendInt(rep ? r->GetRepeatedInt32(m, f, index) : r->GetInt32(m, f), out);
      break;
    case FD::CPPTYPE_INT64:
      AppendInt(rep ? r->GetRepeatedInt64(m, f, index) : r->GetInt64(m, f), out);
      break;
    case FD::CPPTYPE_UINT32:
      AppendInt(rep ? r->GetRepeatedUInt32(m, f, index) : r->GetUInt32(m, f), out);
      break;
    case FD::CPPTYPE_UINT64:
      AppendInt(rep ? r->GetRepeatedUInt64(m, f, index) : r->GetUInt64(m, f), out);
      break;
    case FD::CPPTYPE_DOUBLE:
      AppendDouble(rep ? r->GetRepeatedDouble(m, f, index) : r->GetDouble(m, f), out);
      break;
    case FD::CPPTYPE_FLOAT:
      AppendDouble(rep ? r->GetRepeatedFloat(m, f, index) : r->GetFloat(m, f), out);
      break;
    case FD::CPPTYPE_BOOL:
      out->append((rep ? r->GetRepeatedBool(m, f, index) : r->GetBool(m, f)) ? "true" : "false");
      break;
    case FD::CPPTYPE_ENUM: {
      const pb::EnumValueDescriptor* e =
          rep ? r->GetRepeatedEnum(m, f, index) : r->GetEnum(m, f);
      AppendJsonString(e->name(), out);
      break;
    }
    case FD::CPPTYPE_STRING: {
      std::string scratch;
      const std::string& s = rep ? r->GetRepeatedStringReference(m, f, index, &scratch)
                                 : r->GetStringReference(m, f, &scratch);
      AppendJsonString(s, out);
      break;
    }
    case FD::CPPTYPE_MESSAGE:
      AppendMessage(rep ? r->GetRepeatedMessage(m, f, index) : r->GetMessage(m, f), out);
      break;
  }
}

// Map entries are messages with fields "key" (1) and "value" (2).
void AppendMap(const pb::Message& m, const pb::Reflection* r, const FD* f, std::string* out) {
  const int n = r->FieldSize(m, f);
  out->push_back('{');
  for (int i = 0; i < n; ++i) {
    const pb::Message& entry = r->GetRepeatedMessage(m, f, i);
    const pb::Reflection* er = entry.GetReflection();
    const FD* key = entry.GetDescriptor()->field(0);
    const FD* value = entry.GetDescriptor()->field(1);
    if (i) out->push_back(',');
    if (key->cpp_type() == FD::CPPTYPE_STRING) {
      AppendScalar(entry, er, key, 0, out);
    } else {
      std::string k;
      AppendScalar(entry, er, key, 0, &k);
      AppendJsonString(k, out);
    }
    out->push_back(':');
    AppendScalar(entry, er, value, 0, out);
  }
  out->push_back('}');
}

void AppendMessage(const pb::Message& m, std::string* out) {
  const pb::Reflection* r = m.GetReflection();
  const PrintLayout& layout = LayoutOf(m.GetDescriptor());
  out->push_back('{');
  bool first = true;
  for (const PrintField& pf : layout) {
    const FD* f = pf.field;
    // Unset members of a oneof, and unset sub-messages, are omitted: their
    // absence is the information. Everything else is always printed.
    if (pf.skip_unset && !r->HasField(m, f)) continue;
    if (!first) out->push_back(',');
    first = false;
    out->append(pf.prefix);
    if (pf.map) {
      AppendMap(m, r, f, out);
    } else if (pf.repeated) {
      out->push_back('[');
      const int n = r->FieldSize(m, f);
      for (int j = 0; j < n; ++j) {
        if (j) out->push_back(',');
        AppendScalar(m, r, f, j, out);
      }
      out->push_back(']');
    } else {
      AppendScalar(m, r, f, 0, out);
    }
  }
  out->push_back('}');
}

// -------------------------------------------------------------- parsing --

// A strict reader for the plain JSON that POS software sends: objects,
// arrays, strings of printable ASCII without escapes, integers, booleans.
// It fills the message only when it understands every byte and the value
// is one protobuf's parser would accept to the same effect; on anything
// else (escapes, null, floats, quoted numbers, enums, camelCase names,
// repeated keys, out-of-range numbers, bad syntax) it gives up and
// ParseJson asks protobuf's parser, which also words the error.
class PlainJsonReader {
 public:
  explicit PlainJsonReader(std::string_view json)
      : p_(json.data()), end_(json.data() + json.size()) {}

  bool Read(pb::Message* out) {
    SkipSpace();
    if (!ReadMessage(out, 0)) return false;
    SkipSpace();
    return p_ == end_;
  }

 private:
  static constexpr int kMaxDepth = 16;

  void SkipSpace() {
    while (p_ != end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
  }

  bool Consume(char c) {
    SkipSpace();
    if (p_ == end_ || *p_ != c) return false;
    ++p_;
    return true;
  }

  // A string without escapes or non-printable bytes.
  bool ReadString(std::string_view* out) {
    if (p_ == end_ || *p_ != '"') return false;
    const char* start = ++p_;
    while (p_ != end_) {
      const auto c = static_cast<unsigned char>(*p_);
      if (c == '"') {
        *out = std::string_view(start, static_cast<size_t>(p_ - start));
        ++p_;
        return true;
      }
      if (c == '\\' || c < 0x20 || c > 0x7e) return false;
      ++p_;
    }
    return false;
  }

  // An integer in canonical form: no sign on zero, no leading zeros, no
  // fraction or exponent.
  bool ReadInt(bool allow_negative, uint64_t max_magnitude, bool* negative, uint64_t* magnitude) {
    *negative = false;
    if (p_ != end_ && *p_ == '-') {
      if (!allow_negative) return false;
      *negative = true;
      ++p_;
    }
    if (p_ == end_ || *p_ < '0' || *p_ > '9') return false;
    if (*p_ == '0' && (*negative || (p_ + 1 != end_ && p_[1] >= '0' && p_[1] <= '9'))) {
      return false;
    }
    uint64_t value = 0;
    while (p_ != end_ && *p_ >= '0' && *p_ <= '9') {
      const auto digit = static_cast<uint64_t>(*p_ - '0');
      if (value > (max_magnitude - digit) / 10) return false;
      value = value * 10 + digit;
      ++p_;
    }
    // A number must end here: "1.5" and "1e3" are protobuf's to judge.
    if (p_ != end_ && (*p_ == '.' || *p_ == 'e' || *p_ == 'E')) return false;
    *magnitude = value;
    return true;
  }

  bool ReadLiteral(std::string_view word) {
    if (static_cast<size_t>(end_ - p_) < word.size() || std::string_view(p_, word.size()) != word) {
      return false;
    }
    p_ += word.size();
    return true;
  }

  bool ReadMessage(pb::Message* m, int depth) {
    if (depth > kMaxDepth || p_ == end_ || *p_ != '{') return false;
    ++p_;
    const pb::Descriptor* d = m->GetDescriptor();
    const pb::Reflection* r = m->GetReflection();
    uint64_t seen_low = 0;  // fields 0..63 by index; more are rare and compared below
    std::vector<const FD*> seen_high;
    SkipSpace();
    if (p_ != end_ && *p_ == '}') {
      ++p_;
      return true;
    }
    for (;;) {
      SkipSpace();
      std::string_view key;
      if (!ReadString(&key)) return false;
      if (!Consume(':')) return false;
      const FD* f = d->FindFieldByName(std::string(key));
      if (f == nullptr || f->containing_oneof() != nullptr || f->is_map()) return false;
      // A key given twice is protobuf's to judge.
      if (f->index() < 64) {
        const uint64_t bit = uint64_t{1} << f->index();
        if (seen_low & bit) return false;
        seen_low |= bit;
      } else {
        for (const FD* s : seen_high) {
          if (s == f) return false;
        }
        seen_high.push_back(f);
      }
      SkipSpace();
      if (f->is_repeated()) {
        if (!ReadArray(m, r, f, depth)) return false;
      } else if (!ReadValue(m, r, f, depth)) {
        return false;
      }
      SkipSpace();
      if (p_ == end_) return false;
      if (*p_ == '}') {
        ++p_;
        return true;
      }
      if (*p_ != ',') return false;
      ++p_;
    }
  }

  bool ReadArray(pb::Message* m, const pb::Reflection* r, const FD* f, int depth) {
    if (p_ == end_ || *p_ != '[') return false;
    ++p_;
    SkipSpace();
    if (p_ != end_ && *p_ == ']') {
      ++p_;
      return true;
    }
    for (;;) {
      SkipSpace();
      if (!ReadValue(m, r, f, depth)) return false;
      SkipSpace();
      if (p_ == end_) return false;
      if (*p_ == ']') {
        ++p_;
        return true;
      }
      if (*p_ != ',') return false;
      ++p_;
    }
  }

  // One value of field `f` (an element when `f` is repeated).
  bool ReadValue(pb::Message* m, const pb::Reflection* r, const FD* f, int depth) {
    const bool rep = f->is_repeated();
    bool negative = false;
    uint64_t magnitude = 0;
    switch (f->cpp_type()) {
      case FD::CPPTYPE_STRING: {
        if (f->type() != FD::TYPE_STRING) return false;  // bytes are base64
        std::string_view s;
        if (!ReadString(&s)) return false;
        if (rep) {
          r->AddString(m, f, std::string(s));
        } else {
          r->SetString(m, f, std::string(s));
        }
        return true;
      }
      case FD::CPPTYPE_INT64: {
        constexpr uint64_t kMax = std::numeric_limits<int64_t>::max();
        if (!ReadInt(true, kMax, &negative, &magnitude)) return false;
        const int64_t v = negative ? -static_cast<int64_t>(magnitude) : static_cast<int64_t>(magnitude);
        rep ? r->AddInt64(m, f, v) : r->SetInt64(m, f, v);
        return true;
      }
      case FD::CPPTYPE_INT32: {
        constexpr uint64_t kMax = std::numeric_limits<int32_t>::max();
        if (!ReadInt(true, kMax, &negative, &magnitude)) return false;
        const auto v = static_cast<int32_t>(negative ? -static_cast<int64_t>(magnitude)
                                                     : static_cast<int64_t>(magnitude));
        rep ? r->AddInt32(m, f, v) : r->SetInt32(m, f, v);
        return true;
      }
      case FD::CPPTYPE_UINT64: {
        if (!ReadInt(false, std::numeric_limits<uint64_t>::max(), &negative, &magnitude)) {
          return false;
        }
        rep ? r->AddUInt64(m, f, magnitude) : r->SetUInt64(m, f, magnitude);
        return true;
      }
      case FD::CPPTYPE_UINT32: {
        if (!ReadInt(false, std::numeric_limits<uint32_t>::max(), &negative, &magnitude)) {
          return false;
        }
        const auto v = static_cast<uint32_t>(magnitude);
        rep ? r->AddUInt32(m, f, v) : r->SetUInt32(m, f, v);
        return true;
      }
      case FD::CPPTYPE_BOOL: {
        bool v = false;
        if (ReadLiteral("true")) {
          v = true;
        } else if (!ReadLiteral("false")) {
          return false;
        }
        rep ? r->AddBool(m, f, v) : r->SetBool(m, f, v);
        return true;
      }
      case FD::CPPTYPE_MESSAGE: {
        // Well-known types have JSON forms of their own.
        if (f->message_type()->file()->package() == "google.protobuf") return false;
        pb::Message* sub = rep ? r->AddMessage(m, f) : r->MutableMessage(m, f);
        return ReadMessage(sub, depth + 1);
      }
      default:  // enums, floating point: protobuf's parser
        return false;
    }
  }

  const char* p_;
  const char* end_;
};

}  // namespace

bool ParsePlainJson(std::string_view json, google::protobuf::Message* out) {
  out->Clear();
  PlainJsonReader reader(json);
  // Required fields (proto2) are protobuf's to check.
  if (reader.Read(out) && out->IsInitialized()) return true;
  out->Clear();
  return false;
}

std::string ParseJson(std::string_view json, google::protobuf::Message* out) {
  if (ParsePlainJson(json, out)) return {};
  out->Clear();
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), out, options);
  if (status.ok()) return {};
  std::string message(status.message());
  return message.empty() ? "malformed JSON" : message;
}

std::string ToJson(const google::protobuf::Message& message) {
  std::string out;
  out.reserve(512);
  AppendMessage(message, &out);
  return out;
}

namespace {

// True when one of the 8 bytes of `w` needs escaping: below 0x20, '"' or
// '\\' (bit tricks from "Bit Twiddling Hacks", hasless and hasvalue).
bool NeedsEscape(uint64_t w) {
  constexpr uint64_t kOnes = 0x0101010101010101ULL;
  constexpr uint64_t kHighs = 0x8080808080808080ULL;
  const auto has_zero = [](uint64_t v) { return (v - kOnes) & ~v & kHighs; };
  const uint64_t below_space = (w - kOnes * 0x20) & ~w & kHighs;
  return (below_space | has_zero(w ^ (kOnes * '"')) | has_zero(w ^ (kOnes * '\\'))) != 0;
}

}  // namespace

void AppendJsonString(std::string_view s, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  const char* run = s.data();  // start of the bytes not yet copied
  const char* const end = s.data() + s.size();
  const char* p = run;
  // Most text needs no escape: skip it eight bytes at a time.
  while (end - p >= 8) {
    uint64_t w;
    std::memcpy(&w, p, sizeof w);
    if (NeedsEscape(w)) break;
    p += 8;
  }
  for (; p != end; ++p) {
    const auto c = static_cast<unsigned char>(*p);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out->append(run, p);
    run = p + 1;
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      default:
        out->append("\\u00");
        out->push_back(kHex[c >> 4]);
        out->push_back(kHex[c & 0xf]);
    }
  }
  out->append(run, end);
  out->push_back('"');
}

}  // namespace loyalty::proto
