#include "pki/cert_builder.h"

#include <openssl/ec.h>

#include <string>

namespace loyalty::pki {
namespace {

bool SetTime(ASN1_TIME* t, TimePoint when) {
  return ASN1_TIME_set(t, std::chrono::system_clock::to_time_t(when)) != nullptr;
}

bool AddNameEntry(X509_NAME* name, const char* field, const std::string& value) {
  // V_ASN1_UTF8STRING rather than MBSTRING_UTF8: the latter enforces the
  // 64-character bound on CN, which "store:" plus a 64-character id exceeds.
  return X509_NAME_add_entry_by_txt(name, field, V_ASN1_UTF8STRING,
                                    reinterpret_cast<const unsigned char*>(value.data()),
                                    static_cast<int>(value.size()), -1, 0) == 1;
}

bool AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509ExtPtr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()));
  return ext && X509_add_ext(cert, ext.get(), -1) == 1;
}

// Common fields of every certificate; the caller adds the subject.
core::Result<X509Ptr> NewCert(EVP_PKEY* key, std::uint64_t serial, const Validity& validity) {
  X509Ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), X509_VERSION_3) != 1 ||
      ASN1_INTEGER_set_uint64(X509_get_serialNumber(cert.get()), serial) != 1 ||
      !SetTime(X509_getm_notBefore(cert.get()), validity.not_before) ||
      !SetTime(X509_getm_notAfter(cert.get()), validity.not_after) ||
      X509_set_pubkey(cert.get(), key) != 1) {
    return CryptoError("cannot fill certificate");
  }
  return cert;
}

}  // namespace

core::Result<EvpPkeyPtr> GenerateKey() {
  EvpPkeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return CryptoError("cannot generate P-256 key");
  return key;
}

core::Result<X509Ptr> BuildCaCert(EVP_PKEY* key, std::uint64_t serial, const Validity& validity) {
  auto cert = NewCert(key, serial, validity);
  if (!cert) return cert.error();
  X509* c = cert->get();
  X509_NAME* name = X509_get_subject_name(c);
  if (!AddNameEntry(name, "O", "Loyalty") || !AddNameEntry(name, "CN", "Loyalty Head Office CA") ||
      X509_set_issuer_name(c, name) != 1 ||
      !AddExtension(c, c, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") ||
      !AddExtension(c, c, NID_key_usage, "critical,keyCertSign,cRLSign") ||
      !AddExtension(c, c, NID_subject_key_identifier, "hash") ||
      X509_sign(c, key, EVP_sha256()) == 0) {
    return CryptoError("cannot build CA certificate");
  }
  return cert;
}

core::Result<X509Ptr> BuildLeafCert(const Identity& identity, EVP_PKEY* subject_key,
                                    std::uint64_t serial, const Validity& validity, X509* ca_cert,
                                    EVP_PKEY* ca_key) {
  auto cert = NewCert(subject_key, serial, validity);
  if (!cert) return cert.error();
  X509* c = cert->get();
  std::string kind(KindName(identity.kind));
  bool server = identity.kind == IdentityKind::kServer;
  std::string cn = server ? identity.id : kind + ":" + identity.id;
  X509_NAME* name = X509_get_subject_name(c);
  bool ok = AddNameEntry(name, "O", "Loyalty") && AddNameEntry(name, "OU", kind) &&
            AddNameEntry(name, "CN", cn) &&
            X509_set_issuer_name(c, X509_get_subject_name(ca_cert)) == 1 &&
            AddExtension(c, ca_cert, NID_basic_constraints, "critical,CA:FALSE") &&
            AddExtension(c, ca_cert, NID_key_usage, "critical,digitalSignature") &&
            AddExtension(c, ca_cert, NID_ext_key_usage, server ? "serverAuth" : "clientAuth") &&
            AddExtension(c, ca_cert, NID_subject_key_identifier, "hash") &&
            AddExtension(c, ca_cert, NID_authority_key_identifier, "keyid:always");
  if (ok && server) {
    std::string san = (IsIpLiteral(identity.id) ? "IP:" : "DNS:") + identity.id;
    ok = AddExtension(c, ca_cert, NID_subject_alt_name, san);
  }
  if (!ok || X509_sign(c, ca_key, EVP_sha256()) == 0) {
    return CryptoError("cannot build certificate for " + cn);
  }
  return cert;
}

core::Result<X509CrlPtr> BuildCrl(const std::vector<RevokedSerial>& revoked,
                                  std::uint64_t crl_number, const Validity& validity, X509* ca_cert,
                                  EVP_PKEY* ca_key) {
  X509CrlPtr crl(X509_CRL_new());
  Asn1TimePtr last(
      ASN1_TIME_set(nullptr, std::chrono::system_clock::to_time_t(validity.not_before)));
  Asn1TimePtr next(
      ASN1_TIME_set(nullptr, std::chrono::system_clock::to_time_t(validity.not_after)));
  Asn1IntegerPtr number(ASN1_INTEGER_new());
  if (!crl || !last || !next || !number || X509_CRL_set_version(crl.get(), 1) != 1 ||
      X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(ca_cert)) != 1 ||
      X509_CRL_set1_lastUpdate(crl.get(), last.get()) != 1 ||
      X509_CRL_set1_nextUpdate(crl.get(), next.get()) != 1 ||
      ASN1_INTEGER_set_uint64(number.get(), crl_number) != 1 ||
      X509_CRL_add1_ext_i2d(crl.get(), NID_crl_number, number.get(), 0, 0) != 1) {
    return CryptoError("cannot fill CRL");
  }
  for (const RevokedSerial& r : revoked) {
    X509RevokedPtr entry(X509_REVOKED_new());
    Asn1IntegerPtr serial(ASN1_INTEGER_new());
    Asn1TimePtr when(ASN1_TIME_set(nullptr, static_cast<time_t>(r.revoked_at)));
    if (!entry || !serial || !when || ASN1_INTEGER_set_uint64(serial.get(), r.serial) != 1 ||
        X509_REVOKED_set_serialNumber(entry.get(), serial.get()) != 1 ||
        X509_REVOKED_set_revocationDate(entry.get(), when.get()) != 1 ||
        X509_CRL_add0_revoked(crl.get(), entry.get()) != 1) {
      return CryptoError("cannot add CRL entry");
    }
    entry.release();  // now owned by the CRL
  }
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, ca_cert, nullptr, nullptr, crl.get(), 0);
  X509ExtPtr aki(X509V3_EXT_conf_nid(nullptr, &ctx, NID_authority_key_identifier, "keyid:always"));
  if (!aki || X509_CRL_add_ext(crl.get(), aki.get(), -1) != 1 || X509_CRL_sort(crl.get()) != 1 ||
      X509_CRL_sign(crl.get(), ca_key, EVP_sha256()) == 0) {
    return CryptoError("cannot sign CRL");
  }
  return crl;
}

}  // namespace loyalty::pki
