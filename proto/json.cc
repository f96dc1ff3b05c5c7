#include "proto/json.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/util/json_util.h>

#include <cmath>
#include <cstdio>

namespace loyalty::proto {
namespace {

namespace pb = google::protobuf;
using FD = pb::FieldDescriptor;

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

void AppendScalar(const pb::Message& m, const FD* f, int index, std::string* out) {
  const pb::Reflection* r = m.GetReflection();
  const bool rep = f->is_repeated();
  switch (f->cpp_type()) {
    case FD::CPPTYPE_INT32:
      out->append(std::to_string(rep ? r->GetRepeatedInt32(m, f, index) : r->GetInt32(m, f)));
      break;
    case FD::CPPTYPE_INT64:
      out->append(std::to_string(rep ? r->GetRepeatedInt64(m, f, index) : r->GetInt64(m, f)));
      break;
    case FD::CPPTYPE_UINT32:
      out->append(std::to_string(rep ? r->GetRepeatedUInt32(m, f, index) : r->GetUInt32(m, f)));
      break;
    case FD::CPPTYPE_UINT64:
      out->append(std::to_string(rep ? r->GetRepeatedUInt64(m, f, index) : r->GetUInt64(m, f)));
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
void AppendMap(const pb::Message& m, const FD* f, std::string* out) {
  const pb::Reflection* r = m.GetReflection();
  const int n = r->FieldSize(m, f);
  out->push_back('{');
  for (int i = 0; i < n; ++i) {
    const pb::Message& entry = r->GetRepeatedMessage(m, f, i);
    const FD* key = entry.GetDescriptor()->field(0);
    const FD* value = entry.GetDescriptor()->field(1);
    if (i) out->push_back(',');
    if (key->cpp_type() == FD::CPPTYPE_STRING) {
      AppendScalar(entry, key, 0, out);
    } else {
      std::string k;
      AppendScalar(entry, key, 0, &k);
      AppendJsonString(k, out);
    }
    out->push_back(':');
    AppendScalar(entry, value, 0, out);
  }
  out->push_back('}');
}

void AppendMessage(const pb::Message& m, std::string* out) {
  const pb::Descriptor* d = m.GetDescriptor();
  const pb::Reflection* r = m.GetReflection();
  out->push_back('{');
  bool first = true;
  for (int i = 0; i < d->field_count(); ++i) {
    const FD* f = d->field(i);
    // Unset members of a oneof, and unset sub-messages, are omitted: their
    // absence is the information. Everything else is always printed.
    if (f->containing_oneof() && !r->HasField(m, f)) continue;
    if (!f->is_repeated() && f->cpp_type() == FD::CPPTYPE_MESSAGE && !r->HasField(m, f)) continue;
    if (!first) out->push_back(',');
    first = false;
    AppendJsonString(f->name(), out);
    out->push_back(':');
    if (f->is_map()) {
      AppendMap(m, f, out);
    } else if (f->is_repeated()) {
      out->push_back('[');
      const int n = r->FieldSize(m, f);
      for (int j = 0; j < n; ++j) {
        if (j) out->push_back(',');
        AppendScalar(m, f, j, out);
      }
      out->push_back(']');
    } else {
      AppendScalar(m, f, 0, out);
    }
  }
  out->push_back('}');
}

}  // namespace

std::string ParseJson(std::string_view json, google::protobuf::Message* out) {
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
  out.reserve(256);
  AppendMessage(message, &out);
  return out;
}

void AppendJsonString(std::string_view s, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      default:
        if (c < 0x20) {
          out->append("\\u00");
          out->push_back(kHex[c >> 4]);
          out->push_back(kHex[c & 0xf]);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

}  // namespace loyalty::proto
