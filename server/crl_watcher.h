// CrlWatcher: builds the server-side TLS context (sync/tls.h) from the
// server bundle and the CRL, and rebuilds it when the CRL file's
// modification time changes, handing each new context to `on_reload` (which
// calls SetTlsContext on the sync and admin listeners, and closes the open
// store connections whose certificate the new CRL revokes:
// SyncService::CloseRevoked). Connections accepted afterwards are checked
// against the new CRL.
//
// A CRL that cannot be read or parsed on reload keeps the previous context
// (revocation stays in force) and logs an error. With no CRL at start
// (allowed only when not given explicitly) the context has no revocation
// checks; the watcher keeps looking and enables them once the file appears.
//
// Ownership: shared_ptr; the pending timer keeps it alive until Stop().
// Thread safety: Stop may be called from any thread; the timer runs on its
// own strand.
#pragma once

#include <utility>  // before Asio (Boost 1.74)

#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>

#include "core/result.h"
#include "pki/bundle.h"

namespace loyalty::server {

using SslContextPtr = std::shared_ptr<boost::asio::ssl::context>;

class CrlWatcher : public std::enable_shared_from_this<CrlWatcher> {
 public:
  // Builds the first context (see context()). Errors: the bundle or an
  // explicitly required CRL is unusable.
  static core::Result<std::shared_ptr<CrlWatcher>> Create(boost::asio::io_context& ioc,
                                                          pki::Bundle bundle,
                                                          std::filesystem::path crl_file,
                                                          bool crl_required,
                                                          std::chrono::seconds period);

  SslContextPtr context() const { return ctx_; }  // the first context; set before Start

  // Starts polling; `on_reload` is called on the watcher's strand.
  void Start(std::function<void(SslContextPtr)> on_reload);
  void Stop();

 private:
  CrlWatcher(boost::asio::io_context& ioc, pki::Bundle bundle, std::filesystem::path crl_file,
             std::chrono::seconds period);
  core::Result<SslContextPtr> Build(bool* with_crl);
  void Arm();
  void Check();

  boost::asio::strand<boost::asio::io_context::executor_type> strand_;
  boost::asio::steady_timer timer_;
  const pki::Bundle bundle_;
  const std::filesystem::path crl_file_;
  const std::chrono::seconds period_;
  SslContextPtr ctx_;
  std::function<void(SslContextPtr)> on_reload_;  // on strand_
  std::filesystem::file_time_type mtime_{};       // on strand_
  bool have_crl_ = false;                         // on strand_
  bool stopped_ = false;                          // on strand_
};

}  // namespace loyalty::server
