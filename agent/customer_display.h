// CustomerDisplay: the customer-facing screen at the till, served on the
// agent's local API so that a browser in kiosk mode on the terminal's second
// screen shows it (http://127.0.0.1:8080/display).
//
//   GET /display             the page (agent/display/index.html)
//   GET /display/<file>      its CSS, JavaScript and translations
//   GET /display/events      Server-Sent Events: "config" (DisplayConfig),
//                            then "state" (DisplayState) now and on every change
//
// It follows the DisplayHub: a member lookup or enrolment shows the member
// screen, a quote the basket, a commit the thank-you screen, which the page
// leaves for idle (the store's general promotions) after idle_after_thanks.
// A member or basket screen with no news for idle_after_member goes idle
// too, so a customer's name does not stay up for the next one. A page that
// connects (or reconnects after an agent restart) gets the config, then the
// current state.
//
// While no page is connected, updates are only kept (their messages, by
// reference) and the screen is built when a page connects, so a till
// without a customer display does not pay for one on every request.
//
// The API's responses are turned into loyalty.v1.DisplayState, which carries
// no card number, member id or segment (design invariant 9). The name on the
// thank-you screen comes from the member or basket screen before it, when it
// was the same member.
//
// Ownership: borrows the service and the hub, which must outlive it. It must
// outlive the HttpServer that serves its page and streams (the streams'
// close callbacks call into it). Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/checkout_service.h"
#include "agent/display_hub.h"
#include "agent/http_server.h"
#include "loyalty/v1/display.pb.h"

namespace loyalty::agent {

struct CustomerDisplayOptions {
  std::string language = "en";  // the store's default; one of DisplayLanguages()
  std::chrono::seconds idle_after_thanks{20};
  std::chrono::seconds idle_after_member{300};
  std::chrono::milliseconds reconnect_delay{2000};  // the `retry:` hint
};

class CustomerDisplay {
 public:
  static constexpr std::string_view kEventsPath = "/display/events";

  // Subscribes to `hub`.
  CustomerDisplay(CheckoutService* service, DisplayHub* hub, CustomerDisplayOptions options);
  ~CustomerDisplay();
  CustomerDisplay(const CustomerDisplay&) = delete;
  CustomerDisplay& operator=(const CustomerDisplay&) = delete;

  // True for the paths Handle answers: /display and everything below it.
  static bool Serves(std::string_view path);

  // An HttpHandler for the page and its files: 200 with the file, 404
  // not_found, 405 method_not_allowed (GET only). Never throws.
  void Handle(const HttpRequest& request, Respond respond);

  // A StreamHandler body for kEventsPath: sends the reconnect hint, the
  // config and the current state, then every change until the stream ends.
  void OpenStream(std::shared_ptr<EventStream> stream);

  // What a page connecting now is shown first.
  loyalty::v1::DisplayState CurrentState() const;

  // What the first event of a stream carries.
  loyalty::v1::DisplayConfig Config() const;

 private:
  using Clock = std::chrono::steady_clock;

  // An update kept as it came, while no page is connected.
  struct Unread {
    DisplayUpdate update;
    Clock::time_point since;
  };

  void OnUpdate(const DisplayUpdate& update);
  loyalty::v1::DisplayState CurrentStateLocked() const;
  void BuildStateLocked() const;
  void ShowLocked(loyalty::v1::DisplayState state, const std::string& member_id,
                  Clock::time_point since) const;

  CheckoutService* service_;
  DisplayHub* hub_;
  const CustomerDisplayOptions options_;
  uint64_t subscription_ = 0;

  mutable std::mutex mu_;
  // The screen is built lazily: while no page is connected, updates are
  // only kept (unread_member_: the newest member or basket update;
  // unread_: a thank-you update after it) and turned into state_ when a page
  // connects. So these change under const methods.
  mutable loyalty::v1::DisplayState state_;  // guarded by mu_
  mutable Clock::time_point state_since_;    // guarded by mu_
  // The last member shown, to greet them by name on the thank-you screen.
  mutable std::string last_member_id_;              // guarded by mu_
  mutable loyalty::v1::DisplayMember last_member_;  // guarded by mu_
  mutable std::optional<Unread> unread_member_;     // guarded by mu_
  mutable std::optional<Unread> unread_;            // guarded by mu_
  uint64_t next_stream_id_ = 1;                               // guarded by mu_
  std::map<uint64_t, std::shared_ptr<EventStream>> streams_;  // guarded by mu_
};

}  // namespace loyalty::agent
