// Internal to pki/ and sync/: owning handles over OpenSSL objects
// (std::unique_ptr with the matching *_free), PEM conversion helpers, and a
// function that drains OpenSSL's thread-local error queue into a sentence.
// Handles are plain move-only values; OpenSSL objects are not shared here.
#pragma once

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <string>
#include <string_view>

#include "core/result.h"

namespace loyalty::pki {

template <typename T, void (*Free)(T*)>
struct OpenSslDeleter {
  void operator()(T* p) const { Free(p); }
};

using BioPtr = std::unique_ptr<BIO, OpenSslDeleter<BIO, BIO_free_all>>;
using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, OpenSslDeleter<EVP_PKEY, EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, OpenSslDeleter<X509, X509_free>>;
using X509CrlPtr = std::unique_ptr<X509_CRL, OpenSslDeleter<X509_CRL, X509_CRL_free>>;
using X509ExtPtr =
    std::unique_ptr<X509_EXTENSION, OpenSslDeleter<X509_EXTENSION, X509_EXTENSION_free>>;
using X509RevokedPtr =
    std::unique_ptr<X509_REVOKED, OpenSslDeleter<X509_REVOKED, X509_REVOKED_free>>;
using Asn1TimePtr = std::unique_ptr<ASN1_TIME, OpenSslDeleter<ASN1_TIME, ASN1_TIME_free>>;
using Asn1IntegerPtr =
    std::unique_ptr<ASN1_INTEGER, OpenSslDeleter<ASN1_INTEGER, ASN1_INTEGER_free>>;

// "what: <OpenSSL's reasons>", clearing the thread's error queue.
std::string OpenSslErrorText(std::string_view what);
// An Error with code "crypto_error" and OpenSslErrorText(what).
core::Error CryptoError(std::string_view what);

core::Result<X509Ptr> CertFromPem(std::string_view pem);
core::Result<EvpPkeyPtr> KeyFromPem(std::string_view pem);
core::Result<X509CrlPtr> CrlFromPem(std::string_view pem);
core::Result<std::string> CertToPem(X509* cert);
core::Result<std::string> KeyToPem(EVP_PKEY* key);  // unencrypted PKCS#8
core::Result<std::string> CrlToPem(X509_CRL* crl);

}  // namespace loyalty::pki
