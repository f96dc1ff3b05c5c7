// The agent's side of the sync protocol as pure database steps, apart from
// the network: applying the server's UploadAck to the outbox and a
// ChangesPage (with its cursor) to the terminal's copy of members, offers and
// programme. Each function runs inside the caller's transaction, so the
// caller decides what is atomic: AgentSync runs each one as one write on the
// service's writer thread; tests run them in a plain Transaction. On an error
// the caller must roll back: a failure halfway leaves nothing applied.
//
// Free functions over a borrowed AgentStore; thread-compatible like it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/result.h"
#include "loyalty/v1/sync.pb.h"
#include "storage/agent_store.h"

namespace loyalty::sync {

// Meta key of the downlink cursor (the last change-feed version applied).
inline constexpr const char* kCursorKey = "sync_cursor";
// The member scope (loyalty.v1.MemberScope name) the cursor was reached with.
inline constexpr const char* kScopeKey = "sync_member_scope";
// When the last successful sync round ended (ms since the epoch, UTC),
// written with the round's last page, so that a restart while the server is
// down still tells how stale this terminal is.
inline constexpr const char* kLastSuccessKey = "sync_last_success_ms";
// The rejection code meaning "this store/terminal/epoch/seq is taken by
// another event": the terminal was restored or reinstalled.
inline constexpr const char* kSequenceReused = "sequence_reused";

struct AckOutcome {
  int64_t acknowledged = 0;  // events that left the outbox as acked
  int64_t dead_lettered = 0;
  std::vector<loyalty::v1::EventRejection> rejections;  // dead-lettered ones, to report
  uint64_t new_epoch = 0;                               // non-zero when a new epoch was started
  int64_t rekeyed = 0;
};

// Applies `ack` for the events of `sent` (the batch as uploaded): acknowledged
// events leave the outbox; rejected ones go to dead_letters, except
// sequence_reused, which starts epoch `fresh_epoch` and re-keys every outbox
// event from the first collision on (they are then uploaded again). An id in
// the ack that does not match an event of `sent` (same seq and uuid) is
// ignored: it cannot be about this batch.
core::Result<AckOutcome> ApplyUploadAck(storage::AgentStore& store,
                                        const std::vector<storage::StoredEvent>& sent,
                                        const loyalty::v1::UploadAck& ack, uint64_t fresh_epoch,
                                        int64_t now_ms);

struct PageOutcome {
  uint64_t cursor = 0;
  bool catalogue_changed = false;  // an offer or the programme changed
  int64_t members = 0;             // snapshots installed
  int64_t renamed = 0;             // members whose id changed (confirmed or merged)
  int64_t erased = 0;
};

// Applies every change of `page` in order and stores page.cursor() as the
// new cursor.
core::Result<PageOutcome> ApplyChangesPage(storage::AgentStore& store,
                                           const loyalty::v1::ChangesPage& page);

// Installs one member snapshot from a MemberLookup answer, outside any page:
// the cursor stays. A snapshot older than the one stored is ignored (a page
// applied meanwhile may have brought a newer one). True if installed.
core::Result<bool> ApplyLookedUpMember(storage::AgentStore& store,
                                       const loyalty::v1::MemberSnapshot& snapshot);

// The stored cursor (0 before the first page).
core::Result<uint64_t> LoadCursor(storage::AgentStore& store);

// "store/terminal/epoch/seq", as the server names an event.
std::string EventKey(const loyalty::v1::EventId& id);

}  // namespace loyalty::sync
