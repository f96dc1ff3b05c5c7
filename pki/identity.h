// Who a certificate speaks for. Every certificate the head-office CA issues
// names exactly one identity in its subject (O=Loyalty):
//
//   store  : CN=store:<store_id>, OU=store    (EKU clientAuth)
//   admin  : CN=admin:<name>,     OU=admin    (EKU clientAuth)
//   server : CN=<host>,           OU=server   (EKU serverAuth, SAN DNS/IP)
//
// Store ids and admin names match [A-Za-z0-9._-]{1,64}; server hosts are DNS
// names ([A-Za-z0-9.-], at most 253) or IP literals. IdentityFromCertificate
// reads only the subject: call it on a certificate that TLS has already
// verified against the pinned CA. Pure functions; thread-safe.
#pragma once

#include <openssl/x509.h>

#include <chrono>
#include <string>
#include <string_view>

#include "core/result.h"

namespace loyalty::pki {

enum class IdentityKind { kServer, kStore, kAdmin };

struct Identity {
  IdentityKind kind = IdentityKind::kStore;
  std::string id;  // store id, admin name or server host
  bool operator==(const Identity&) const = default;
};

std::string_view KindName(IdentityKind kind);  // "server", "store", "admin"

// invalid_identity unless `id` matches [A-Za-z0-9._-]{1,64}.
core::Status ValidateStoreId(std::string_view id);
// invalid_identity unless `name` is the same shape as a store id.
core::Status ValidateAdminName(std::string_view name);
// invalid_identity unless `host` is a DNS name or an IP literal.
core::Status ValidateHost(std::string_view host);
bool IsIpLiteral(std::string_view host);

// The identity in `cert`'s subject, or invalid_identity when the subject is
// not one of the three shapes above.
core::Result<Identity> IdentityFromCertificate(const X509* cert);

// Whole days from `now` until `cert` expires, rounded down; negative once it
// has expired.
long DaysUntilExpiry(const X509* cert,
                     std::chrono::system_clock::time_point now = std::chrono::system_clock::now());

}  // namespace loyalty::pki
