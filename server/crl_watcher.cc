#include "server/crl_watcher.h"

#include <spdlog/spdlog.h>

#include <boost/asio/dispatch.hpp>

#include "sync/tls.h"

namespace loyalty::server {

namespace fs = std::filesystem;
namespace net = boost::asio;

CrlWatcher::CrlWatcher(net::io_context& ioc, pki::Bundle bundle, fs::path crl_file,
                       std::chrono::seconds period)
    : strand_(net::make_strand(ioc)),
      timer_(strand_),
      bundle_(std::move(bundle)),
      crl_file_(std::move(crl_file)),
      period_(period) {}

core::Result<std::shared_ptr<CrlWatcher>> CrlWatcher::Create(net::io_context& ioc,
                                                             pki::Bundle bundle, fs::path crl_file,
                                                             bool crl_required,
                                                             std::chrono::seconds period) {
  std::shared_ptr<CrlWatcher> w(
      new CrlWatcher(ioc, std::move(bundle), std::move(crl_file), period));
  std::error_code ec;
  if (!fs::exists(w->crl_file_, ec)) {
    if (crl_required) {
      return core::MakeError(core::code::kInvalidRequest,
                             "--crl: '" + w->crl_file_.string() + "' does not exist");
    }
    spdlog::warn("no CRL at {}: running WITHOUT revocation checks until it appears",
                 w->crl_file_.string());
  }
  bool with_crl = false;
  auto ctx = w->Build(&with_crl);
  if (!ctx) return ctx.error();
  w->ctx_ = *ctx;
  w->have_crl_ = with_crl;
  if (with_crl) spdlog::info("revocation checks on, CRL {}", w->crl_file_.string());
  return w;
}

core::Result<SslContextPtr> CrlWatcher::Build(bool* with_crl) {
  std::error_code ec;
  const auto mtime = fs::last_write_time(crl_file_, ec);
  if (ec) {
    *with_crl = false;
    return sync::MakeServerContextWithoutCrl(bundle_);
  }
  auto ctx = sync::MakeServerContext(bundle_, crl_file_);
  if (!ctx) return ctx.error();
  *with_crl = true;
  mtime_ = mtime;
  return *ctx;
}

void CrlWatcher::Start(std::function<void(SslContextPtr)> on_reload) {
  net::dispatch(strand_, [self = shared_from_this(), f = std::move(on_reload)]() mutable {
    self->on_reload_ = std::move(f);
    self->Arm();
  });
}

void CrlWatcher::Stop() {
  net::dispatch(strand_, [self = shared_from_this()] {
    self->stopped_ = true;
    self->timer_.cancel();
  });
}

void CrlWatcher::Arm() {
  if (stopped_) return;
  timer_.expires_after(period_);
  timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (ec || self->stopped_) return;
    self->Check();
    self->Arm();
  });
}

void CrlWatcher::Check() {
  std::error_code ec;
  const auto mtime = fs::last_write_time(crl_file_, ec);
  if (ec) {
    if (have_crl_) {
      spdlog::error("CRL {} is gone ({}); keeping the last one loaded", crl_file_.string(),
                    ec.message());
    }
    return;
  }
  if (have_crl_ && mtime == mtime_) return;
  auto ctx = sync::MakeServerContext(bundle_, crl_file_);
  if (!ctx) {
    spdlog::error("cannot reload CRL {}: {} ({}); keeping the previous one", crl_file_.string(),
                  ctx.error().message, ctx.error().code);
    mtime_ = mtime;  // do not retry the same broken file every period
    return;
  }
  mtime_ = mtime;
  have_crl_ = true;
  spdlog::info("CRL {} reloaded; new connections are checked against it", crl_file_.string());
  if (on_reload_) on_reload_(*ctx);
}

}  // namespace loyalty::server
