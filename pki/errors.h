// Error codes specific to the PKI library, in addition to the shared ones in
// core/result.h (kInvalidRequest, kNotFound, kInternal). Stable: the CLI
// prints them as is. Add, never rename.
#pragma once

namespace loyalty::pki::code {
inline constexpr const char* kCaExists = "ca_exists";
inline constexpr const char* kNoCa = "no_ca";
inline constexpr const char* kBundleExists = "bundle_exists";
inline constexpr const char* kBadBundle = "bad_bundle";
inline constexpr const char* kInsecureKeyFile = "insecure_key_file";
inline constexpr const char* kInvalidIdentity = "invalid_identity";
inline constexpr const char* kRevoked = "revoked";
inline constexpr const char* kIoError = "io_error";
inline constexpr const char* kCryptoError = "crypto_error";
}  // namespace loyalty::pki::code
