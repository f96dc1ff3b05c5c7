#include "pki/identity.h"

#include <arpa/inet.h>

#include <algorithm>
#include <optional>

#include "pki/errors.h"
#include "pki/openssl_handles.h"

namespace loyalty::pki {
namespace {

bool IsIdChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

core::Status ValidateIdShape(std::string_view id, std::string_view what) {
  if (id.empty() || id.size() > 64 || !std::all_of(id.begin(), id.end(), IsIdChar)) {
    return core::MakeError(code::kInvalidIdentity, std::string(what) +
                                                       " must match [A-Za-z0-9._-]{1,64}, got \"" +
                                                       std::string(id.substr(0, 80)) + "\"");
  }
  return {};
}

// The single entry `nid` of `name` as UTF-8, or nullopt if absent or repeated.
std::optional<std::string> SingleEntry(const X509_NAME* name, int nid) {
  int index = X509_NAME_get_index_by_NID(name, nid, -1);
  if (index < 0 || X509_NAME_get_index_by_NID(name, nid, index) >= 0) return std::nullopt;
  const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, index));
  unsigned char* utf8 = nullptr;
  int len = ASN1_STRING_to_UTF8(&utf8, data);
  if (len < 0) return std::nullopt;
  std::string text(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(len));
  OPENSSL_free(utf8);
  return text;
}

core::Error BadSubject(std::string_view why) {
  return core::MakeError(code::kInvalidIdentity,
                         "certificate subject is not a loyalty identity: " + std::string(why));
}

}  // namespace

std::string_view KindName(IdentityKind kind) {
  switch (kind) {
    case IdentityKind::kServer:
      return "server";
    case IdentityKind::kStore:
      return "store";
    case IdentityKind::kAdmin:
      return "admin";
  }
  return "unknown";
}

core::Status ValidateStoreId(std::string_view id) { return ValidateIdShape(id, "store id"); }

core::Status ValidateAdminName(std::string_view name) {
  return ValidateIdShape(name, "admin name");
}

bool IsIpLiteral(std::string_view host) {
  std::string text(host);
  unsigned char buf[16];
  return inet_pton(AF_INET, text.c_str(), buf) == 1 || inet_pton(AF_INET6, text.c_str(), buf) == 1;
}

core::Status ValidateHost(std::string_view host) {
  if (IsIpLiteral(host)) return {};
  bool chars_ok = std::all_of(host.begin(), host.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-';
  });
  if (host.empty() || host.size() > 253 || !chars_ok || host.front() == '.' ||
      host.front() == '-' || host.find("..") != std::string_view::npos) {
    return core::MakeError(code::kInvalidIdentity,
                           "host must be a DNS name or an IP address, got \"" +
                               std::string(host.substr(0, 80)) + "\"");
  }
  return {};
}

core::Result<Identity> IdentityFromCertificate(const X509* cert) {
  if (cert == nullptr) return BadSubject("no certificate");
  const X509_NAME* subject = X509_get_subject_name(cert);
  std::optional<std::string> ou = SingleEntry(subject, NID_organizationalUnitName);
  std::optional<std::string> cn = SingleEntry(subject, NID_commonName);
  if (!ou || !cn) return BadSubject("needs exactly one OU and one CN");
  if (*ou == "server") {
    if (auto s = ValidateHost(*cn); !s) return BadSubject(s.error().message);
    return Identity{IdentityKind::kServer, *cn};
  }
  for (IdentityKind kind : {IdentityKind::kStore, IdentityKind::kAdmin}) {
    std::string prefix = std::string(KindName(kind)) + ":";
    if (*ou != KindName(kind)) continue;
    if (cn->rfind(prefix, 0) != 0) return BadSubject("CN must start with \"" + prefix + "\"");
    std::string id = cn->substr(prefix.size());
    if (auto s = ValidateIdShape(id, "id"); !s) return BadSubject(s.error().message);
    return Identity{kind, id};
  }
  return BadSubject("unknown OU \"" + *ou + "\"");
}

long DaysUntilExpiry(const X509* cert, std::chrono::system_clock::time_point now) {
  Asn1TimePtr now_asn1(ASN1_TIME_set(nullptr, std::chrono::system_clock::to_time_t(now)));
  int days = 0;
  int seconds = 0;
  if (!now_asn1 || ASN1_TIME_diff(&days, &seconds, now_asn1.get(), X509_get0_notAfter(cert)) != 1) {
    return -1;
  }
  // ASN1_TIME_diff gives days and seconds with the same sign; round down.
  return seconds < 0 ? days - 1 : days;
}

}  // namespace loyalty::pki
