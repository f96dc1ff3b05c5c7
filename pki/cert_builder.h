// Internal to pki/: builds keys, certificates and CRLs with OpenSSL's X509
// API. Every certificate is X.509 v3, ECDSA P-256 with SHA-256. Pure
// functions over their arguments; thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

#include "core/result.h"
#include "pki/identity.h"
#include "pki/openssl_handles.h"

namespace loyalty::pki {

using TimePoint = std::chrono::system_clock::time_point;

struct Validity {
  TimePoint not_before;
  TimePoint not_after;
};

struct RevokedSerial {
  std::uint64_t serial = 0;
  std::int64_t revoked_at = 0;  // Unix seconds
};

core::Result<EvpPkeyPtr> GenerateKey();

// A self-signed CA certificate: CA:TRUE pathlen:0, keyCertSign + cRLSign.
core::Result<X509Ptr> BuildCaCert(EVP_PKEY* key, std::uint64_t serial, const Validity& validity);

// A leaf certificate for `identity` (subject as in identity.h) signed by the CA.
core::Result<X509Ptr> BuildLeafCert(const Identity& identity, EVP_PKEY* subject_key,
                                    std::uint64_t serial, const Validity& validity, X509* ca_cert,
                                    EVP_PKEY* ca_key);

// A v2 CRL listing `revoked`, with a CRL number and nextUpdate.
core::Result<X509CrlPtr> BuildCrl(const std::vector<RevokedSerial>& revoked,
                                  std::uint64_t crl_number, const Validity& validity, X509* ca_cert,
                                  EVP_PKEY* ca_key);

}  // namespace loyalty::pki
