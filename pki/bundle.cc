#include "pki/bundle.h"

#include "pki/errors.h"
#include "pki/files.h"
#include "pki/openssl_handles.h"

namespace loyalty::pki {

core::Result<Bundle> LoadBundle(const std::filesystem::path& dir) {
  auto key_mode = FileMode(dir / "key.pem");
  if (!key_mode) return key_mode.error();
  if ((*key_mode & 077) != 0) {
    return core::MakeError(
        code::kInsecureKeyFile,
        (dir / "key.pem").string() + " is readable by group or others; " + "chmod 600 it");
  }
  Bundle bundle{dir, {}, {}, {}};
  for (auto [name, field] :
       {std::pair{"ca.pem", &bundle.ca_pem}, std::pair{"cert.pem", &bundle.cert_pem},
        std::pair{"key.pem", &bundle.key_pem}}) {
    auto data = ReadFile(dir / name);
    if (!data) return data.error();
    *field = std::move(*data);
  }
  auto ca = CertFromPem(bundle.ca_pem);
  auto cert = CertFromPem(bundle.cert_pem);
  auto key = KeyFromPem(bundle.key_pem);
  if (!ca || !cert || !key) {
    return core::MakeError(code::kBadBundle, "bundle " + dir.string() + " has an unreadable PEM");
  }
  if (X509_check_private_key(cert->get(), key->get()) != 1) {
    return core::MakeError(code::kBadBundle,
                           OpenSslErrorText("key.pem does not match cert.pem in " + dir.string()));
  }
  if (X509_verify(cert->get(), X509_get0_pubkey(ca->get())) != 1) {
    return core::MakeError(code::kBadBundle,
                           OpenSslErrorText("cert.pem is not signed by ca.pem in " + dir.string()));
  }
  return bundle;
}

core::Status WriteBundle(const Bundle& bundle, bool replace) {
  std::error_code ec;
  if (!replace && std::filesystem::exists(bundle.dir / "cert.pem", ec)) {
    return core::MakeError(code::kBundleExists,
                           bundle.dir.string() + " already holds a certificate; use renew");
  }
  if (auto s = EnsureDirectory(bundle.dir, 0700); !s) return s;
  // Key first: a crash in between leaves a key with no matching cert, which
  // LoadBundle reports, never a cert paired with a stale key silently.
  if (auto s = WriteFileAtomic(bundle.dir / "key.pem", bundle.key_pem, 0600); !s) return s;
  if (auto s = WriteFileAtomic(bundle.dir / "cert.pem", bundle.cert_pem, 0644); !s) return s;
  return WriteFileAtomic(bundle.dir / "ca.pem", bundle.ca_pem, 0644);
}

core::Result<Identity> BundleIdentity(const Bundle& bundle) {
  auto cert = CertFromPem(bundle.cert_pem);
  if (!cert) return cert.error();
  return IdentityFromCertificate(cert->get());
}

core::Result<long> BundleDaysUntilExpiry(const Bundle& bundle,
                                         std::chrono::system_clock::time_point now) {
  auto cert = CertFromPem(bundle.cert_pem);
  if (!cert) return cert.error();
  return DaysUntilExpiry(cert->get(), now);
}

}  // namespace loyalty::pki
