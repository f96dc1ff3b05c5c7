#include "sync/tls.h"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "pki/errors.h"
#include "pki/files.h"
#include "pki/identity.h"
#include "pki/openssl_handles.h"

namespace loyalty::sync {
namespace {

namespace ssl = boost::asio::ssl;

// TLS 1.2 suites for our ECDSA certificates; TLS 1.3 keeps OpenSSL's
// defaults (all AEAD).
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-CHACHA20-POLY1305";

core::Result<std::shared_ptr<ssl::context>> MakeContext(const pki::Bundle& bundle, bool server) {
  auto ctx =
      std::make_shared<ssl::context>(server ? ssl::context::tls_server : ssl::context::tls_client);
  SSL_CTX* native = ctx->native_handle();
  boost::system::error_code ec;
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                       ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                       ssl::context::no_compression | ssl::context::single_dh_use,
                   ec);
  SSL_CTX_set_options(native, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (ec || SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION) != 1 ||
      SSL_CTX_set_cipher_list(native, kTls12Ciphers) != 1) {
    return pki::CryptoError("cannot configure TLS context");
  }
  ctx->use_certificate_chain(boost::asio::buffer(bundle.cert_pem), ec);
  if (!ec) ctx->use_private_key(boost::asio::buffer(bundle.key_pem), ssl::context::pem, ec);
  if (!ec) ctx->add_certificate_authority(boost::asio::buffer(bundle.ca_pem), ec);
  if (ec) {
    return core::MakeError(pki::code::kBadBundle,
                           pki::OpenSslErrorText("cannot load bundle " + bundle.dir.string()));
  }
  ctx->set_verify_mode(
      server ? ssl::verify_peer | ssl::verify_fail_if_no_peer_cert : ssl::verify_peer, ec);
  X509_VERIFY_PARAM* param = SSL_CTX_get0_param(native);
  X509_VERIFY_PARAM_set_purpose(param, server ? X509_PURPOSE_SSL_CLIENT : X509_PURPOSE_SSL_SERVER);
  X509_VERIFY_PARAM_set_depth(param, 1);  // leaf directly under our CA
  return ctx;
}

}  // namespace

core::Result<std::shared_ptr<ssl::context>> MakeServerContext(
    const pki::Bundle& bundle, const std::filesystem::path& crl_file) {
  auto ctx = MakeContext(bundle, true);
  if (!ctx) return ctx;
  SSL_CTX* native = (*ctx)->native_handle();
  auto crl_pem = pki::ReadFile(crl_file);
  if (!crl_pem) return crl_pem.error();
  auto crl = pki::CrlFromPem(*crl_pem);
  if (!crl) return crl.error();
  X509_STORE* store = SSL_CTX_get_cert_store(native);
  if (X509_STORE_add_crl(store, crl->get()) != 1) {
    return pki::CryptoError("cannot add CRL " + crl_file.string());
  }
  X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(native), X509_V_FLAG_CRL_CHECK);
  // No resumption: a resumed session skips certificate verification, so a
  // client revoked since its first connection could come back.
  SSL_CTX_set_session_cache_mode(native, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_options(native, SSL_OP_NO_TICKET);
  SSL_CTX_set_num_tickets(native, 0);
  return ctx;
}

core::Result<std::shared_ptr<ssl::context>> MakeServerContextWithoutCrl(const pki::Bundle& bundle) {
  return MakeContext(bundle, true);
}

core::Result<std::shared_ptr<ssl::context>> MakeClientContext(const pki::Bundle& bundle) {
  return MakeContext(bundle, false);
}

bool ClientCertificateStillVerifies(X509* cert, boost::asio::ssl::context& ctx) {
  SSL_CTX* native = ctx.native_handle();
  std::unique_ptr<X509_STORE_CTX, decltype(&X509_STORE_CTX_free)> check(X509_STORE_CTX_new(),
                                                                        &X509_STORE_CTX_free);
  if (!check ||
      X509_STORE_CTX_init(check.get(), SSL_CTX_get_cert_store(native), cert, nullptr) != 1) {
    return true;
  }
  // The handshake's own rules: the context's flags (CRL checking) and the
  // client purpose.
  X509_VERIFY_PARAM_set1(X509_STORE_CTX_get0_param(check.get()), SSL_CTX_get0_param(native));
  return X509_verify_cert(check.get()) == 1;
}

core::Status SetExpectedHost(SSL* ssl, const std::string& host) {
  if (auto s = pki::ValidateHost(host); !s) return s;
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  bool ok = false;
  if (pki::IsIpLiteral(host)) {
    ok = X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str()) == 1;
  } else {
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    ok = SSL_set1_host(ssl, host.c_str()) == 1 && SSL_set_tlsext_host_name(ssl, host.c_str()) == 1;
  }
  if (!ok) return pki::CryptoError("cannot set expected host " + host);
  return {};
}

}  // namespace loyalty::sync
