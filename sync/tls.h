// TLS contexts for the sync transport, built from a pki::Bundle held in
// memory. Both sides: TLS 1.2 minimum (1.3 is negotiated when both can),
// ECDHE + AEAD ciphers only, no compression, no renegotiation, the bundle's
// CA as the only trust anchor (default verify paths are never loaded), and
// verify_peer.
//
// Server: verify_fail_if_no_peer_cert (mutual TLS), client-purpose check on
// the peer's certificate, and CRL checking against `crl_file`. Session
// resumption is off, so every connection is verified against the CRL the
// context was built with. To reload the CRL, build a new context and hand it
// to Server::SetTlsContext: connections accepted afterwards use it; check
// those already open with ClientCertificateStillVerifies. A missing or
// expired CRL refuses every client (fail closed).
//
// Client: server-purpose check; the expected host name is set per connection
// (SetExpectedHost), never here.
//
// The returned contexts are immutable after creation and may be shared by
// many connections on many threads.
#pragma once

#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <filesystem>
#include <memory>
#include <string>

#include "core/result.h"
#include "pki/bundle.h"

namespace loyalty::sync {

core::Result<std::shared_ptr<boost::asio::ssl::context>> MakeServerContext(
    const pki::Bundle& bundle, const std::filesystem::path& crl_file);

// As MakeServerContext, without revocation checks: for a server started
// without any CRL file (loyalty-server logs a warning when it does this).
core::Result<std::shared_ptr<boost::asio::ssl::context>> MakeServerContextWithoutCrl(
    const pki::Bundle& bundle);

core::Result<std::shared_ptr<boost::asio::ssl::context>> MakeClientContext(
    const pki::Bundle& bundle);

// Sets SNI and the name the server certificate must match on `ssl`: a DNS
// name (SAN dNSName, no partial wildcards) or an IP literal (SAN iPAddress).
core::Status SetExpectedHost(SSL* ssl, const std::string& host);

// Whether a client certificate accepted by an earlier handshake would be
// accepted by a handshake against the server context `ctx` now (its CA,
// validity and the CRL `ctx` holds): a reloaded CRL can then close the
// connections of a certificate revoked since, not only refuse its next
// one. True when the check itself cannot run (out of memory): the next
// handshake decides.
bool ClientCertificateStillVerifies(X509* cert, boost::asio::ssl::context& ctx);

}  // namespace loyalty::sync
