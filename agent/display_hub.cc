#include "agent/display_hub.h"

#include <vector>

namespace loyalty::agent {

void DisplayHub::Publish(std::string kind, std::string json,
                         std::shared_ptr<const google::protobuf::Message> message) {
  DisplayUpdate update;
  std::vector<std::shared_ptr<const Subscriber>> subs;
  {
    std::lock_guard lock(mu_);
    update.seq = next_seq_++;
    update.kind = std::move(kind);
    update.json = std::move(json);
    update.message = std::move(message);
    latest_ = update;
    subs.reserve(subs_.size());
    for (const auto& [id, sub] : subs_) subs.push_back(sub);
  }
  // Outside the lock: a subscriber may call back into the hub.
  for (const auto& sub : subs) (*sub)(update);
}

uint64_t DisplayHub::Subscribe(Subscriber subscriber) {
  std::lock_guard lock(mu_);
  const uint64_t id = next_id_++;
  subs_.emplace(id, std::make_shared<const Subscriber>(std::move(subscriber)));
  return id;
}

void DisplayHub::Unsubscribe(uint64_t id) {
  std::lock_guard lock(mu_);
  subs_.erase(id);
}

std::optional<DisplayUpdate> DisplayHub::Latest() const {
  std::lock_guard lock(mu_);
  return latest_;
}

}  // namespace loyalty::agent
