// The head-office certificate authority: a directory (see ca_dir.h for its
// files) holding an ECDSA P-256 CA, the certificates it issued and its CRL.
// Each function opens the directory, does one job under an exclusive lock on
// `<dir>/.lock` (so concurrent loyaltyctl runs are safe), and returns; there
// is no state in memory. The CA key is stored unencrypted with mode 0600:
// protect the directory. Errors are values with the codes in pki/errors.h.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>

#include "core/result.h"
#include "pki/identity.h"

namespace loyalty::pki {

inline constexpr std::chrono::seconds kDefaultCaValidity = std::chrono::days(3650);
inline constexpr std::chrono::seconds kDefaultLeafValidity = std::chrono::days(365);
// The server refuses every client once the CRL passes its nextUpdate, so a
// revoke (or RefreshCrl) must re-sign it within this period.
inline constexpr std::chrono::seconds kDefaultCrlValidity = std::chrono::days(30);

// The programme-wide card-hash key (32 random bytes, mode 0600): InitCa
// creates <dir>/card-hash.key, and every Issue* and Renew copies it into the
// bundle, where the agent and the server read it.
inline constexpr const char* kCardHashKeyFile = "card-hash.key";

struct IssueOptions {
  std::chrono::seconds validity = kDefaultLeafValidity;
  // Start of validity; default five minutes ago, to tolerate clock skew.
  // Tests set it in the past to produce expired certificates.
  std::optional<std::chrono::system_clock::time_point> not_before;
};

struct IssuedCert {
  Identity identity;
  std::uint64_t serial = 0;
  std::chrono::system_clock::time_point not_after;
};

// Creates the CA in `dir` (created 0700 if missing). Refuses with ca_exists
// if `dir` already holds ca.pem or ca-key.pem.
core::Status InitCa(const std::filesystem::path& dir,
                    std::chrono::seconds validity = kDefaultCaValidity);

// Each Issue* writes a new bundle folder `out_bundle` (see bundle.h) with a
// fresh key; refuses with bundle_exists if it already holds a certificate.
core::Result<IssuedCert> IssueServer(const std::filesystem::path& dir, const std::string& host,
                                     const std::filesystem::path& out_bundle,
                                     const IssueOptions& options = {});
core::Result<IssuedCert> IssueStore(const std::filesystem::path& dir, const std::string& store_id,
                                    const std::filesystem::path& out_bundle,
                                    const IssueOptions& options = {});
core::Result<IssuedCert> IssueAdmin(const std::filesystem::path& dir, const std::string& name,
                                    const std::filesystem::path& out_bundle,
                                    const IssueOptions& options = {});

// Revokes every certificate ever issued to `store_id` and re-signs crl.pem.
// not_found if the CA never issued one; returns how many were newly revoked
// (0 if all were already revoked).
core::Result<int> Revoke(const std::filesystem::path& dir, const std::string& store_id,
                         std::chrono::seconds crl_validity = kDefaultCrlValidity);

// Re-signs crl.pem with the same entries and a new nextUpdate.
core::Status RefreshCrl(const std::filesystem::path& dir,
                        std::chrono::seconds crl_validity = kDefaultCrlValidity);

// Issues a new key and certificate for the identity in `bundle`/cert.pem and
// replaces the bundle's files. Refuses with revoked if that certificate was
// revoked, and with bad_bundle if this CA did not issue it.
core::Result<IssuedCert> Renew(const std::filesystem::path& dir,
                               const std::filesystem::path& bundle,
                               const IssueOptions& options = {});

}  // namespace loyalty::pki
