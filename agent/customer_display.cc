#include <utility>  // before Boost.Asio (Boost 1.74)

#include "agent/customer_display.h"

#include <spdlog/spdlog.h>

#include <boost/beast/http/verb.hpp>
#include <cstdio>
#include <exception>
#include <functional>

#include "agent/display_assets.h"
#include "loyalty/v1/api.pb.h"
#include "proto/json.h"

namespace loyalty::agent {
namespace {

namespace http = boost::beast::http;
namespace v1 = loyalty::v1;

constexpr std::string_view kPrefix = "/display";

// Changes whenever any file of the page does: a page that sees another
// version after a reconnect reloads itself.
std::string PageVersion() {
  std::size_t h = 0;
  for (const DisplayAsset& asset : DisplayAssets()) {
    h = h * 31 + std::hash<std::string_view>{}(asset.path);
    h = h * 31 + std::hash<std::string_view>{}(asset.content);
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016zx", h);
  return buf;
}

std::string ErrorBody(std::string_view code, std::string_view message) {
  v1::ErrorResponse response;
  response.mutable_error()->set_code(std::string(code));
  response.mutable_error()->set_message(std::string(message));
  return proto::ToJson(response);
}

// Only what the screen shows: no member id, segment or pending figures.
v1::DisplayMember ToDisplay(const v1::MemberView& m) {
  v1::DisplayMember out;
  out.set_display_name(m.display_name());
  out.set_tier(m.tier());
  out.set_points_balance(m.points_balance());
  if (m.has_next_tier()) *out.mutable_next_tier() = m.next_tier();
  out.set_qualifying_visits(m.qualifying_visits());
  out.set_qualifying_spend(m.qualifying_spend());
  out.set_language(m.language());
  return out;
}

template <typename Response>
v1::DisplayBasket ToBasket(const Response& r) {
  v1::DisplayBasket out;
  out.set_subtotal(r.subtotal());
  *out.mutable_discounts() = r.discounts();
  out.set_discount_total(r.discount_total());
  out.set_points_redeemed(r.points_redeemed());
  out.set_redemption_value(r.redemption_value());
  out.set_total(r.total());
  out.set_points_earned(r.points_earned());
  *out.mutable_explanation() = r.explanation();
  return out;
}

std::string StateEvent(const v1::DisplayState& state) {
  return FormatSseEvent("state", proto::ToJson(state));
}

}  // namespace

CustomerDisplay::CustomerDisplay(CheckoutService* service, DisplayHub* hub,
                                 CustomerDisplayOptions options)
    : service_(service), hub_(hub), options_(std::move(options)) {
  state_.set_screen("idle");
  state_since_ = Clock::now();
  subscription_ = hub_->Subscribe([this](const DisplayUpdate& update) { OnUpdate(update); });
}

CustomerDisplay::~CustomerDisplay() {
  hub_->Unsubscribe(subscription_);
  std::map<uint64_t, std::shared_ptr<EventStream>> streams;
  {
    std::lock_guard lock(mu_);
    streams.swap(streams_);
  }
  for (auto& [id, stream] : streams) {
    stream->OnClose(nullptr);
    stream->Close();
  }
}

bool CustomerDisplay::Serves(std::string_view path) {
  return path == kPrefix || (path.starts_with(kPrefix) && path[kPrefix.size()] == '/');
}

void CustomerDisplay::Handle(const HttpRequest& request, Respond respond) {
  try {
    const std::string_view target(request.target().data(), request.target().size());
    const std::string_view path = target.substr(0, target.find('?'));
    if (request.method() != http::verb::get && request.method() != http::verb::head) {
      return respond(405, ErrorBody("method_not_allowed", std::string(path) + " accepts GET only"),
                     "application/json", "GET, HEAD");
    }
    std::string_view file = path.substr(kPrefix.size());
    if (!file.empty()) file.remove_prefix(1);  // the '/'
    if (file.empty()) file = "index.html";
    const DisplayAsset* asset = FindDisplayAsset(file);
    if (!asset) {
      return respond(404, ErrorBody("not_found", "no such file: " + std::string(path)),
                     "application/json");
    }
    respond(200, std::string(asset->content), std::string(DisplayContentType(asset->path)));
  } catch (const std::exception& e) {
    spdlog::error("display: {}", e.what());
    respond(500, ErrorBody("internal", "internal error"), "application/json");
  }
}

v1::DisplayConfig CustomerDisplay::Config() const {
  static const std::string kPageVersion = PageVersion();
  const v1::Programme programme = service_->CurrentProgramme();
  v1::DisplayConfig config;
  config.set_programme_name(programme.name());
  config.set_currency(programme.currency());
  config.set_minor_units(programme.minor_units());
  for (const v1::Tier& tier : programme.tiers()) config.add_tiers(tier.name());
  config.set_language(options_.language);
  config.set_idle_seconds(static_cast<uint32_t>(options_.idle_after_thanks.count()));
  config.set_member_seconds(static_cast<uint32_t>(options_.idle_after_member.count()));
  for (v1::OfferView& offer : service_->GeneralOffers()) {
    *config.add_promotions() = std::move(offer);
  }
  config.set_page_version(kPageVersion);
  for (std::string& language : DisplayLanguages()) config.add_languages(std::move(language));
  return config;
}

void CustomerDisplay::OpenStream(std::shared_ptr<EventStream> stream) {
  // Outside the lock: it reads the catalogue.
  const std::string config = FormatSseEvent("config", proto::ToJson(Config()));
  uint64_t id = 0;
  {
    // Under the lock, so that no update is sent before the current state
    // or missed between it and the registration.
    std::lock_guard lock(mu_);
    id = next_stream_id_++;
    stream->Send(FormatSseRetry(options_.reconnect_delay));
    stream->Send(config);
    stream->Send(StateEvent(CurrentStateLocked()));
    streams_.emplace(id, stream);
  }
  // Runs at once if the stream has already ended.
  stream->OnClose([this, id] {
    std::lock_guard lock(mu_);
    streams_.erase(id);
  });
}

v1::DisplayState CustomerDisplay::CurrentState() const {
  std::lock_guard lock(mu_);
  return CurrentStateLocked();
}

v1::DisplayState CustomerDisplay::CurrentStateLocked() const {
  BuildStateLocked();
  const auto age = Clock::now() - state_since_;
  const std::string& screen = state_.screen();
  const bool expired =
      (screen == "thanks" && age >= options_.idle_after_thanks) ||
      ((screen == "member" || screen == "basket") && age >= options_.idle_after_member);
  v1::DisplayState state;
  if (expired) {
    state.set_screen("idle");
    return state;
  }
  state = state_;
  state.set_age_ms(std::chrono::duration_cast<std::chrono::milliseconds>(age).count());
  return state;
}

namespace {

// The update's message when the publisher attached one of the right type
// (the API does), else nullptr.
template <typename Response>
const Response* MessageOf(const std::shared_ptr<const google::protobuf::Message>& message) {
  return dynamic_cast<const Response*>(message.get());
}

// The update's response: its message when attached, else its JSON parsed.
// Returns an error sentence, empty on success.
template <typename Response>
std::string ReadUpdate(const DisplayUpdate& update, Response* out) {
  if (const Response* m = MessageOf<Response>(update.message)) {
    *out = *m;
    return {};
  }
  return proto::ParseJson(update.json, out);
}

bool HasMessage(const DisplayUpdate& update) {
  if (update.kind == "member") return MessageOf<v1::MemberResponse>(update.message) != nullptr;
  if (update.kind == "quote") return MessageOf<v1::QuoteResponse>(update.message) != nullptr;
  if (update.kind == "commit") return MessageOf<v1::CommitResponse>(update.message) != nullptr;
  return false;
}

// The screen for one update, or false when it cannot be read. `member_id` is
// the member of a member or basket screen.
bool ScreenFor(const DisplayUpdate& update, v1::DisplayState* state, std::string* member_id) {
  if (update.kind == "member") {
    v1::MemberResponse r;
    if (std::string err = ReadUpdate(update, &r); !err.empty()) {
      spdlog::warn("display: cannot read a member update: {}", err);
      return false;
    }
    state->set_screen("member");
    *state->mutable_member() = ToDisplay(r.member());
    *state->mutable_offers() = r.offers();
    *member_id = r.member().member_id();
  } else if (update.kind == "quote") {
    v1::QuoteResponse r;
    if (std::string err = ReadUpdate(update, &r); !err.empty()) {
      spdlog::warn("display: cannot read a quote update: {}", err);
      return false;
    }
    state->set_screen("basket");
    *state->mutable_member() = ToDisplay(r.member());
    *state->mutable_offers() = r.offers();
    *state->mutable_basket() = ToBasket(r);
    *member_id = r.member().member_id();
  } else {
    v1::CommitResponse r;
    if (std::string err = ReadUpdate(update, &r); !err.empty()) {
      spdlog::warn("display: cannot read a commit update: {}", err);
      return false;
    }
    state->set_screen("thanks");
    *state->mutable_basket() = ToBasket(r);
    state->mutable_member()->set_tier(r.tier());
    state->mutable_member()->set_points_balance(r.points_balance());
    *member_id = r.member_id();
  }
  return true;
}

}  // namespace

// Makes `state` the screen, as of `since`. Under mu_.
void CustomerDisplay::ShowLocked(v1::DisplayState state, const std::string& member_id,
                                 Clock::time_point since) const {
  if (state.screen() == "thanks") {
    if (member_id == last_member_id_ && !member_id.empty()) {
      v1::DisplayMember* m = state.mutable_member();
      m->set_display_name(last_member_.display_name());
      m->set_language(last_member_.language());
    }
  } else {
    last_member_id_ = member_id;
    last_member_ = state.member();
  }
  state_ = std::move(state);
  state_since_ = since;
}

// Turns the updates kept unread (no page was connected) into the screen.
// Only the newest update and the newest member or basket before it matter:
// each screen replaces the previous one, and a thank-you screen greets the
// member of the last member or basket screen. Under mu_.
void CustomerDisplay::BuildStateLocked() const {
  if (!unread_member_ && !unread_) return;
  std::optional<Unread> member = std::move(unread_member_);
  std::optional<Unread> latest = std::move(unread_);
  unread_member_.reset();
  unread_.reset();
  // Kept updates carry their message, so they always read.
  for (const std::optional<Unread>* unread : {&member, &latest}) {
    v1::DisplayState state;
    std::string member_id;
    if (*unread && ScreenFor((*unread)->update, &state, &member_id)) {
      ShowLocked(std::move(state), member_id, (*unread)->since);
    }
  }
}

void CustomerDisplay::OnUpdate(const DisplayUpdate& update) {
  if (update.kind != "member" && update.kind != "quote" && update.kind != "commit") {
    return;  // a kind this display does not show
  }
  const Clock::time_point now = Clock::now();
  std::lock_guard lock(mu_);
  if (streams_.empty() && HasMessage(update)) {
    // No page is watching: keep the update and build the screen only when a
    // page connects, which saves the request thread the work.
    Unread unread{DisplayUpdate{update.seq, update.kind, {}, update.message}, now};
    if (update.kind != "commit") {
      unread_member_ = unread;
      unread_.reset();
    } else {
      unread_ = std::move(unread);
    }
    return;
  }
  BuildStateLocked();
  v1::DisplayState state;
  std::string member_id;
  if (!ScreenFor(update, &state, &member_id)) return;
  ShowLocked(std::move(state), member_id, now);
  // Under the lock, so every stream sees the updates in publication order.
  // Send only queues: it never blocks.
  if (streams_.empty()) return;
  const std::string event = StateEvent(state_);
  for (auto& [id, stream] : streams_) stream->Send(event);
}

}  // namespace loyalty::agent
