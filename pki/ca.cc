#include "pki/ca.h"

#include <openssl/rand.h>

#include <algorithm>

#include "pki/bundle.h"
#include "pki/ca_dir.h"
#include "pki/errors.h"
#include "pki/files.h"

namespace loyalty::pki {
namespace {

using Clock = std::chrono::system_clock;

std::int64_t UnixSeconds(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

core::Status ValidateIdentity(const Identity& identity) {
  switch (identity.kind) {
    case IdentityKind::kServer:
      return ValidateHost(identity.id);
    case IdentityKind::kStore:
      return ValidateStoreId(identity.id);
    case IdentityKind::kAdmin:
      return ValidateAdminName(identity.id);
  }
  return core::MakeError(code::kInvalidIdentity, "unknown identity kind");
}

// The CA lock, or no_ca (rather than an I/O error) when `dir` holds no CA.
core::Result<CaLock> LockExistingCa(const std::filesystem::path& dir) {
  std::error_code ec;
  if (!std::filesystem::exists(dir / "ca.pem", ec)) {
    return core::MakeError(code::kNoCa, "no CA in " + dir.string() + " (run pki init first)");
  }
  return CaLock::Acquire(dir);
}

// Issues a certificate for `identity` and writes it into `out_bundle`,
// replacing its files only when `replace` is set. The caller holds the lock.
core::Result<IssuedCert> IssueLocked(const std::filesystem::path& dir, const Identity& identity,
                                     const std::filesystem::path& out_bundle,
                                     const IssueOptions& options, bool replace) {
  if (auto s = ValidateIdentity(identity); !s) return s.error();
  if (options.validity <= std::chrono::seconds(0)) {
    return core::MakeError(core::code::kInvalidRequest, "validity must be positive");
  }
  std::error_code ec;
  if (!replace && std::filesystem::exists(out_bundle / "cert.pem", ec)) {
    return core::MakeError(code::kBundleExists,
                           out_bundle.string() + " already holds a certificate; use renew");
  }
  auto ca = LoadCa(dir);
  if (!ca) return ca.error();
  auto entries = ReadIndex(dir);
  if (!entries) return entries.error();
  auto serial = TakeCounter(dir, "serial");
  if (!serial) return serial.error();
  auto key = GenerateKey();
  if (!key) return key.error();
  Clock::time_point not_before =
      options.not_before.value_or(Clock::now() - std::chrono::minutes(5));
  Clock::time_point not_after = not_before + options.validity;
  auto cert = BuildLeafCert(identity, key->get(), *serial, {not_before, not_after}, ca->cert.get(),
                            ca->key.get());
  if (!cert) return cert.error();
  auto cert_pem = CertToPem(cert->get());
  if (!cert_pem) return cert_pem.error();
  auto key_pem = KeyToPem(key->get());
  if (!key_pem) return key_pem.error();
  // Record before handing out: a certificate missing from the index could
  // never be revoked.
  entries->push_back({*serial, identity, UnixSeconds(not_after), 0});
  if (auto s = WriteIndex(dir, *entries); !s) return s.error();
  if (auto s = WriteBundle({out_bundle, ca->cert_pem, *cert_pem, *key_pem}, replace); !s) {
    return s.error();
  }
  // The programme-wide card-hash key travels with every bundle, so every
  // terminal and the server hash a card the same way.
  if (std::filesystem::exists(dir / kCardHashKeyFile, ec)) {
    auto card_key = ReadFile(dir / kCardHashKeyFile);
    if (!card_key) return card_key.error();
    if (auto s = WriteFileAtomic(out_bundle / kCardHashKeyFile, *card_key, 0600); !s) {
      return s.error();
    }
  }
  return IssuedCert{identity, *serial, not_after};
}

core::Result<IssuedCert> Issue(const std::filesystem::path& dir, const Identity& identity,
                               const std::filesystem::path& out_bundle,
                               const IssueOptions& options) {
  auto lock = LockExistingCa(dir);
  if (!lock) return lock.error();
  return IssueLocked(dir, identity, out_bundle, options, false);
}

}  // namespace

core::Status InitCa(const std::filesystem::path& dir, std::chrono::seconds validity) {
  std::error_code ec;
  if (std::filesystem::exists(dir / "ca.pem", ec) ||
      std::filesystem::exists(dir / "ca-key.pem", ec)) {
    return core::MakeError(code::kCaExists,
                           "a CA already exists in " + dir.string() + "; refusing to overwrite it");
  }
  if (auto s = EnsureDirectory(dir, 0700); !s) return s;
  auto lock = CaLock::Acquire(dir);
  if (!lock) return lock.error();
  auto key = GenerateKey();
  if (!key) return key.error();
  Clock::time_point now = Clock::now();
  // Serial 1 is the CA itself; leaf serials start at 2.
  auto cert = BuildCaCert(key->get(), 1, {now - std::chrono::minutes(5), now + validity});
  if (!cert) return cert.error();
  auto cert_pem = CertToPem(cert->get());
  if (!cert_pem) return cert_pem.error();
  auto key_pem = KeyToPem(key->get());
  if (!key_pem) return key_pem.error();
  // Everything else first and ca.pem last: ca.pem marks a complete CA.
  if (!std::filesystem::exists(dir / kCardHashKeyFile, ec)) {
    unsigned char card_key[32];
    if (RAND_bytes(card_key, sizeof card_key) != 1) {
      return core::MakeError(core::code::kInternal, "no randomness for the card-hash key");
    }
    if (auto s = WriteFileAtomic(dir / kCardHashKeyFile,
                                 std::string_view(reinterpret_cast<char*>(card_key), sizeof card_key),
                                 0600);
        !s) {
      return s;
    }
  }
  for (auto s :
       {WriteFileAtomic(dir / "ca-key.pem", *key_pem, 0600), WriteCounter(dir, "serial", 2),
        WriteCounter(dir, "crlnumber", 1), WriteIndex(dir, {})}) {
    if (!s) return s;
  }
  LoadedCa ca{std::move(*cert), std::move(*key), *cert_pem};
  if (auto s = WriteCrl(dir, ca, {}, kDefaultCrlValidity); !s) return s;
  return WriteFileAtomic(dir / "ca.pem", *cert_pem, 0644);
}

core::Result<IssuedCert> IssueServer(const std::filesystem::path& dir, const std::string& host,
                                     const std::filesystem::path& out_bundle,
                                     const IssueOptions& options) {
  return Issue(dir, {IdentityKind::kServer, host}, out_bundle, options);
}

core::Result<IssuedCert> IssueStore(const std::filesystem::path& dir, const std::string& store_id,
                                    const std::filesystem::path& out_bundle,
                                    const IssueOptions& options) {
  return Issue(dir, {IdentityKind::kStore, store_id}, out_bundle, options);
}

core::Result<IssuedCert> IssueAdmin(const std::filesystem::path& dir, const std::string& name,
                                    const std::filesystem::path& out_bundle,
                                    const IssueOptions& options) {
  return Issue(dir, {IdentityKind::kAdmin, name}, out_bundle, options);
}

core::Result<int> Revoke(const std::filesystem::path& dir, const std::string& store_id,
                         std::chrono::seconds crl_validity) {
  if (auto s = ValidateStoreId(store_id); !s) return s.error();
  auto lock = LockExistingCa(dir);
  if (!lock) return lock.error();
  auto ca = LoadCa(dir);
  if (!ca) return ca.error();
  auto entries = ReadIndex(dir);
  if (!entries) return entries.error();
  const Identity store{IdentityKind::kStore, store_id};
  bool known = false;
  int revoked = 0;
  std::int64_t now = UnixSeconds(Clock::now());
  for (IndexEntry& e : *entries) {
    if (e.identity != store) continue;
    known = true;
    if (e.revoked_at == 0) {
      e.revoked_at = now;
      ++revoked;
    }
  }
  if (!known) {
    return core::MakeError(core::code::kNotFound,
                           "this CA never issued a certificate to store " + store_id);
  }
  if (auto s = WriteIndex(dir, *entries); !s) return s.error();
  if (auto s = WriteCrl(dir, *ca, *entries, crl_validity); !s) return s.error();
  return revoked;
}

core::Status RefreshCrl(const std::filesystem::path& dir, std::chrono::seconds crl_validity) {
  auto lock = LockExistingCa(dir);
  if (!lock) return lock.error();
  auto ca = LoadCa(dir);
  if (!ca) return ca.error();
  auto entries = ReadIndex(dir);
  if (!entries) return entries.error();
  return WriteCrl(dir, *ca, *entries, crl_validity);
}

core::Result<IssuedCert> Renew(const std::filesystem::path& dir,
                               const std::filesystem::path& bundle_dir,
                               const IssueOptions& options) {
  auto bundle = LoadBundle(bundle_dir);
  if (!bundle) return bundle.error();
  auto cert = CertFromPem(bundle->cert_pem);
  if (!cert) return cert.error();
  auto identity = IdentityFromCertificate(cert->get());
  if (!identity) return identity.error();
  auto lock = LockExistingCa(dir);
  if (!lock) return lock.error();
  {
    auto ca = LoadCa(dir);
    if (!ca) return ca.error();
    if (X509_verify(cert->get(), X509_get0_pubkey(ca->cert.get())) != 1) {
      return core::MakeError(code::kBadBundle, OpenSslErrorText("bundle " + bundle_dir.string() +
                                                                " was not issued by this CA"));
    }
    auto entries = ReadIndex(dir);
    if (!entries) return entries.error();
    std::uint64_t serial = 0;
    ASN1_INTEGER_get_uint64(&serial, X509_get0_serialNumber(cert->get()));
    bool revoked = std::any_of(entries->begin(), entries->end(), [&](const IndexEntry& e) {
      return e.serial == serial && e.revoked_at != 0;
    });
    if (revoked) {
      return core::MakeError(code::kRevoked, "the certificate in " + bundle_dir.string() +
                                                 " was revoked; issue a new one deliberately");
    }
  }
  return IssueLocked(dir, *identity, bundle_dir, options, true);
}

}  // namespace loyalty::pki
