#include "sync/outbox.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <limits>
#include <map>
#include <vector>

#include "core/offers.h"
#include "core/programme.h"

namespace loyalty::sync {
namespace {

namespace v1 = loyalty::v1;
using core::MakeError;
using core::Result;
using core::Status;

Status ApplyMember(storage::AgentStore& store, const v1::MemberSnapshot& snapshot,
                   PageOutcome* out) {
  if (snapshot.card_hash().empty() || snapshot.member_id().empty()) {
    spdlog::warn("sync: ignoring a member snapshot without card hash or member id");
    return {};
  }
  auto by_card = store.FindMemberByCardHash(snapshot.card_hash());
  if (!by_card.ok()) return by_card.error();
  if (*by_card && (*by_card)->member_id != snapshot.member_id()) {
    // A provisional id the server confirmed under another id, or a card
    // enrolled offline at two stores and merged: local records follow.
    if (auto s = store.RenameMember((*by_card)->member_id, snapshot.member_id()); !s.ok()) {
      return s;
    }
    ++out->renamed;
  }
  // The same member id under another card hash (a replaced card): the old
  // row would collide with the new one on member_id.
  auto by_id = store.FindMemberById(snapshot.member_id());
  if (!by_id.ok()) return by_id.error();
  if (*by_id && (*by_id)->card_hash != snapshot.card_hash()) {
    if (auto s = store.DeleteMember(snapshot.member_id()); !s.ok()) return s;
  }
  if (auto s = store.PutSnapshot(snapshot); !s.ok()) return s;
  ++out->members;
  return {};
}

Status ApplyProgramme(storage::AgentStore& store, const v1::Programme& programme,
                      PageOutcome* out) {
  if (auto v = core::ValidateProgramme(programme); !v.ok()) {
    spdlog::warn("sync: ignoring invalid programme v{}: {}", programme.version(),
                 v.error().message);
    return {};
  }
  auto stored = store.LoadProgramme();
  if (!stored.ok()) return stored.error();
  if (*stored && (*stored)->version() >= programme.version()) return {};
  if (auto s = store.SaveProgramme(programme); !s.ok()) return s;
  out->catalogue_changed = true;
  return {};
}

// An ack names thousands of consecutive events: one statement per run of
// consecutive seqs, not per event.
Status MarkAckedRuns(storage::AgentStore& store, std::vector<uint64_t> seqs) {
  std::sort(seqs.begin(), seqs.end());
  for (std::size_t i = 0; i < seqs.size();) {
    std::size_t j = i + 1;
    while (j < seqs.size() && seqs[j] <= seqs[j - 1] + 1) ++j;
    if (auto s = store.MarkAcked(seqs[i], seqs[j - 1]); !s.ok()) return s;
    i = j;
  }
  return {};
}

}  // namespace

std::string EventKey(const v1::EventId& id) {
  return id.store_id() + "/" + id.terminal_id() + "/" + std::to_string(id.epoch()) + "/" +
         std::to_string(id.seq());
}

Result<uint64_t> LoadCursor(storage::AgentStore& store) {
  auto text = store.GetMeta(kCursorKey);
  if (!text.ok()) return text.error();
  if (!*text) return uint64_t{0};
  try {
    return static_cast<uint64_t>(std::stoull(**text));
  } catch (const std::exception&) {
    return MakeError(core::code::kInternal, "the stored sync cursor is corrupt");
  }
}

Result<AckOutcome> ApplyUploadAck(storage::AgentStore& store,
                                  const std::vector<storage::StoredEvent>& sent,
                                  const v1::UploadAck& ack, uint64_t fresh_epoch, int64_t now_ms) {
  // An id names one of our events only with the same key and uuid. Looked
  // up by sequence number (an outbox read is in sequence order; sorted here
  // anyway), then compared whole: no key strings per event.
  std::vector<const storage::StoredEvent*> by_seq;
  by_seq.reserve(sent.size());
  for (const auto& e : sent) by_seq.push_back(&e);
  std::sort(by_seq.begin(), by_seq.end(),
            [](const auto* a, const auto* b) { return a->event.id().seq() < b->event.id().seq(); });
  auto find = [&](const v1::EventId& id) -> const storage::StoredEvent* {
    auto it = std::lower_bound(
        by_seq.begin(), by_seq.end(), id.seq(),
        [](const storage::StoredEvent* e, uint64_t seq) { return e->event.id().seq() < seq; });
    for (; it != by_seq.end() && (*it)->event.id().seq() == id.seq(); ++it) {
      const v1::EventId& mine = (*it)->event.id();
      if (mine.epoch() == id.epoch() && mine.uuid() == id.uuid() &&
          mine.terminal_id() == id.terminal_id() && mine.store_id() == id.store_id()) {
        return *it;
      }
    }
    return nullptr;
  };

  AckOutcome out;
  std::vector<uint64_t> acked;
  for (const v1::EventId& id : ack.acknowledged()) {
    const storage::StoredEvent* e = find(id);
    if (!e) continue;
    acked.push_back(e->seq);
    ++out.acknowledged;
  }
  if (auto s = MarkAckedRuns(store, std::move(acked)); !s.ok()) return s.error();
  uint64_t first_collision = std::numeric_limits<uint64_t>::max();
  for (const v1::EventRejection& r : ack.rejected()) {
    const storage::StoredEvent* e = find(r.id());
    if (!e) continue;
    if (r.code() == kSequenceReused) {
      first_collision = std::min(first_collision, e->seq);
      continue;
    }
    if (auto s = store.DeadLetter(e->seq, EventKey(r.id()), r.code(), r.message(), now_ms);
        !s.ok()) {
      return s.error();
    }
    ++out.dead_lettered;
    out.rejections.push_back(r);
  }
  if (first_collision != std::numeric_limits<uint64_t>::max()) {
    auto rekeyed = store.RekeyUnacked(first_collision, fresh_epoch);
    if (!rekeyed.ok()) return rekeyed.error();
    out.new_epoch = fresh_epoch;
    out.rekeyed = *rekeyed;
  }
  return out;
}

Result<bool> ApplyLookedUpMember(storage::AgentStore& store, const v1::MemberSnapshot& snapshot) {
  auto stored = store.FindMemberByCardHash(snapshot.card_hash());
  if (!stored.ok()) return stored.error();
  if (*stored && (*stored)->snapshot && (*stored)->snapshot->version() >= snapshot.version()) {
    return false;
  }
  PageOutcome ignored;
  if (auto s = ApplyMember(store, snapshot, &ignored); !s.ok()) return s.error();
  return ignored.members > 0;
}

Result<PageOutcome> ApplyChangesPage(storage::AgentStore& store, const v1::ChangesPage& page) {
  PageOutcome out;
  for (const v1::Change& change : page.changes()) {
    switch (change.body_case()) {
      case v1::Change::kMember:
        if (auto s = ApplyMember(store, change.member(), &out); !s.ok()) return s.error();
        break;
      case v1::Change::kOffer:
        if (auto v = core::ValidateOffer(change.offer()); !v.ok()) {
          // Skipped, not fatal: the cursor must move past it or the terminal
          // would ask for the same page forever.
          spdlog::warn("sync: ignoring invalid offer {}: {}", change.offer().id(),
                       v.error().message);
          break;
        }
        if (auto s = store.PutOffer(change.offer()); !s.ok()) return s.error();
        out.catalogue_changed = true;
        break;
      case v1::Change::kWithdrawnOfferId:
        if (auto s = store.DeleteOffer(change.withdrawn_offer_id()); !s.ok()) return s.error();
        out.catalogue_changed = true;
        break;
      case v1::Change::kProgramme:
        if (auto s = ApplyProgramme(store, change.programme(), &out); !s.ok()) return s.error();
        break;
      case v1::Change::kErasedMemberId:
        // The member row (card hash, name, balance) goes; its events stay in
        // the outbox until uploaded and carry only ids and amounts.
        if (auto s = store.DeleteMember(change.erased_member_id()); !s.ok()) return s.error();
        ++out.erased;
        break;
      case v1::Change::BODY_NOT_SET:
        break;
    }
  }
  if (auto s = store.PutMeta(kCursorKey, std::to_string(page.cursor())); !s.ok()) {
    return s.error();
  }
  out.cursor = page.cursor();
  return out;
}

}  // namespace loyalty::sync
