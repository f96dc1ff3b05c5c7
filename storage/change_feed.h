// The downlink change feed read from a connection to the server ledger:
// the store's own connection (ServerStore::Changes) or a reader's
// (ServerReader::Changes), so that terminals' pulls can be served off the
// database thread that ingests. See ServerStore::Changes for the contract.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <unordered_map>

#include "core/result.h"
#include "loyalty/v1/sync.pb.h"
#include "storage/sqlite.h"

namespace loyalty::storage {

// The feed's latest version (0 when empty).
core::Result<uint64_t> ReadLatestVersion(Database& db);

// Runs in a read transaction of its own on `db`, so a page is one
// consistent snapshot of the feed; `db` must not be inside a transaction.
core::Result<loyalty::v1::ChangesPage> ReadChangesPage(Database& db, uint64_t after_version,
                                                       uint32_t max_changes,
                                                       const std::string& scope_store);

// Store-scoped pages (ReadChangesPage with a scope_store) for a connection
// that serves many terminals' pulls: which changes are in a store's scope
// is worked out once per change and store, and kept for the changes after a
// recent cursor, instead of once per change and terminal (thousands of
// terminals pull the same changes). A cursor older than what is kept is
// served by ReadChangesPage. Same pages as ReadChangesPage. One thread at a
// time.
class ScopedFeedCache {
 public:
  // At most this many changes kept per store (about 100 bytes each): a few
  // minutes of a busy store's changes, so that terminals pulling every few
  // seconds are served from here.
  explicit ScopedFeedCache(std::size_t max_per_store = 10000) : max_per_store_(max_per_store) {}

  core::Result<loyalty::v1::ChangesPage> Read(Database& db, uint64_t after_version,
                                              uint32_t max_changes, const std::string& store_id);

 private:
  struct Entry {
    uint64_t version;
    std::string kind;
    std::string key;
  };
  // Every change in the store's scope with a version in (from, scanned_to],
  // oldest first; some may since have been superseded by a later version.
  struct StoreFeed {
    uint64_t from = 0;
    uint64_t scanned_to = 0;
    std::deque<Entry> entries;
  };
  std::size_t max_per_store_;
  std::unordered_map<std::string, StoreFeed> stores_;
};

}  // namespace loyalty::storage
