#include "pki/openssl_handles.h"

#include <openssl/err.h>
#include <openssl/pem.h>

#include "pki/errors.h"

namespace loyalty::pki {
namespace {

BioPtr MemoryBio(std::string_view data) {
  return BioPtr(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

template <typename Write>
core::Result<std::string> ToPem(Write write, std::string_view what) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || write(bio.get()) != 1) return CryptoError(what);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(len));
}

}  // namespace

std::string OpenSslErrorText(std::string_view what) {
  std::string text(what);
  char buf[256];
  while (unsigned long e = ERR_get_error()) {
    ERR_error_string_n(e, buf, sizeof(buf));
    text += text.size() == what.size() ? ": " : "; ";
    text += buf;
  }
  return text;
}

core::Error CryptoError(std::string_view what) {
  return core::MakeError(code::kCryptoError, OpenSslErrorText(what));
}

core::Result<X509Ptr> CertFromPem(std::string_view pem) {
  BioPtr bio = MemoryBio(pem);
  X509Ptr cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!cert) return CryptoError("cannot parse PEM certificate");
  return cert;
}

core::Result<EvpPkeyPtr> KeyFromPem(std::string_view pem) {
  BioPtr bio = MemoryBio(pem);
  EvpPkeyPtr key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!key) return CryptoError("cannot parse PEM private key");
  return key;
}

core::Result<X509CrlPtr> CrlFromPem(std::string_view pem) {
  BioPtr bio = MemoryBio(pem);
  X509CrlPtr crl(bio ? PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!crl) return CryptoError("cannot parse PEM CRL");
  return crl;
}

core::Result<std::string> CertToPem(X509* cert) {
  return ToPem([cert](BIO* b) { return PEM_write_bio_X509(b, cert); }, "cannot write certificate");
}

core::Result<std::string> KeyToPem(EVP_PKEY* key) {
  return ToPem(
      [key](BIO* b) {
        return PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr);
      },
      "cannot write private key");
}

core::Result<std::string> CrlToPem(X509_CRL* crl) {
  return ToPem([crl](BIO* b) { return PEM_write_bio_X509_CRL(b, crl); }, "cannot write CRL");
}

}  // namespace loyalty::pki
