// Internal to pki/: the files of a CA directory and their formats.
//   ca.pem       CA certificate            ca-key.pem  CA private key (0600)
//   crl.pem      current CRL               serial      next serial, decimal
//   crlnumber    next CRL number, decimal  index.tsv   one line per issued cert:
//     <serial>\t<kind>\t<id>\t<not_after unix s>\t<revoked_at unix s, 0 if valid>
// Callers hold a CaLock while they read-modify-write these files.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/result.h"
#include "pki/cert_builder.h"
#include "pki/identity.h"
#include "pki/openssl_handles.h"

namespace loyalty::pki {

struct IndexEntry {
  std::uint64_t serial = 0;
  Identity identity;
  std::int64_t not_after = 0;
  std::int64_t revoked_at = 0;  // 0: not revoked
};

struct LoadedCa {
  X509Ptr cert;
  EvpPkeyPtr key;
  std::string cert_pem;
};

core::Result<LoadedCa> LoadCa(const std::filesystem::path& dir);
core::Result<std::vector<IndexEntry>> ReadIndex(const std::filesystem::path& dir);
core::Status WriteIndex(const std::filesystem::path& dir, const std::vector<IndexEntry>& entries);
// Reads the counter in `dir/name`, stores counter + 1 and returns the old value.
core::Result<std::uint64_t> TakeCounter(const std::filesystem::path& dir, const char* name);
core::Status WriteCounter(const std::filesystem::path& dir, const char* name, std::uint64_t next);
// Re-signs crl.pem from the revoked entries of `entries`, valid from now for
// `validity`.
core::Status WriteCrl(const std::filesystem::path& dir, const LoadedCa& ca,
                      const std::vector<IndexEntry>& entries, std::chrono::seconds validity);

}  // namespace loyalty::pki
