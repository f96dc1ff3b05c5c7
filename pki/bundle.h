// A bundle is what a store agent, the server or an admin tool needs to speak
// mutual TLS: a folder (mode 0700) holding
//   ca.pem   the head-office CA certificate (the only trust anchor)
//   cert.pem this party's certificate
//   key.pem  this party's private key (mode 0600)
// LoadBundle reads the three files into memory and checks them, so callers
// (sync/tls.h) never touch the files again. Bundle is a value; thread-safe
// to read from many threads.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>

#include "core/result.h"
#include "pki/identity.h"

namespace loyalty::pki {

struct Bundle {
  std::filesystem::path dir;
  std::string ca_pem;
  std::string cert_pem;
  std::string key_pem;
};

// Reads and checks a bundle: key file not readable by group or others
// (insecure_key_file), key matches the certificate and the certificate is
// signed by ca.pem (bad_bundle), files readable (io_error).
core::Result<Bundle> LoadBundle(const std::filesystem::path& dir);

// Writes a bundle folder. Refuses (bundle_exists) if `dir` already holds a
// cert.pem unless `replace` is set; each file is replaced atomically.
core::Status WriteBundle(const Bundle& bundle, bool replace);

core::Result<Identity> BundleIdentity(const Bundle& bundle);
core::Result<long> BundleDaysUntilExpiry(
    const Bundle& bundle,
    std::chrono::system_clock::time_point now = std::chrono::system_clock::now());

}  // namespace loyalty::pki
