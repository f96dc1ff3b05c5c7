// DisplayHub: what the customer-facing display at the till shows, as a feed.
//
// The API publishes (kind, json) after a successful member lookup or
// enrolment ("member"), quote ("quote") and commit ("commit"); the display
// server subscribes and pushes each update to its pages. The hub keeps the
// latest update so a page that connects later starts from the current state.
// Publishers must never put a card number in the JSON (design invariant 9):
// the API publishes response messages, which carry none.
//
// Thread-safe. Subscribers are called on the publishing thread (an I/O or the
// service's writer thread), outside the hub's lock, so they must be quick and
// non-blocking (e.g. post to their own executor). A subscriber may
// unsubscribe itself or others from inside the callback.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <google/protobuf/message.h>

namespace loyalty::agent {

struct DisplayUpdate {
  uint64_t seq = 0;  // 1, 2, ... in publication order
  std::string kind;  // "member", "quote" or "commit"
  std::string json;  // the API response as JSON
  // The same response as a message, when the publisher has it: subscribers
  // read it instead of parsing `json` again on the request's thread.
  std::shared_ptr<const google::protobuf::Message> message;
};

class DisplayHub {
 public:
  using Subscriber = std::function<void(const DisplayUpdate& update)>;

  DisplayHub() = default;
  DisplayHub(const DisplayHub&) = delete;
  DisplayHub& operator=(const DisplayHub&) = delete;

  // Records the update as the latest state and hands it to every subscriber.
  void Publish(std::string kind, std::string json,
               std::shared_ptr<const google::protobuf::Message> message = nullptr);

  // Returns an id for Unsubscribe. The subscriber sees only later updates;
  // call Latest() for the current state.
  uint64_t Subscribe(Subscriber subscriber);
  void Unsubscribe(uint64_t id);

  std::optional<DisplayUpdate> Latest() const;

 private:
  mutable std::mutex mu_;
  uint64_t next_seq_ = 1;                                       // guarded by mu_
  uint64_t next_id_ = 1;                                        // guarded by mu_
  std::optional<DisplayUpdate> latest_;                         // guarded by mu_
  std::map<uint64_t, std::shared_ptr<const Subscriber>> subs_;  // guarded by mu_
};

}  // namespace loyalty::agent
