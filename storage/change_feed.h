// The downlink change feed read from a connection to the server ledger:
// the store's own connection (ServerStore::Changes) or a reader's
// (ServerReader::Changes), so that terminals' pulls can be served off the
// database thread that ingests. See ServerStore::Changes for the contract.
#pragma once

#include <cstdint>
#include <string>

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

}  // namespace loyalty::storage
