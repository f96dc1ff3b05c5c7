// Character rules for what clients and head office name things with, so the
// agent's API, pricing and the admin API refuse the same inputs. Pure,
// header-only, thread-safe.
#pragma once

#include <algorithm>
#include <string_view>

namespace loyalty::core {

// Ids (pos_txn_id, offer ids, ...): printable ASCII without spaces, so they
// survive logs, URLs and receipts unchanged.
inline bool IsPrintableToken(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](unsigned char c) { return c >= 0x21 && c <= 0x7e; });
}

// Text people read (names, SKUs, categories): any UTF-8 but control
// characters.
inline bool HasControlCharacters(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](unsigned char c) { return c < 0x20 || c == 0x7f; });
}

}  // namespace loyalty::core
