// The customer display's page: the files under agent/display/ (HTML, CSS,
// JavaScript and one JSON of translations per language, i18n/<lang>.json),
// compiled into the agent by agent/embed_assets.cmake. Nothing is read from
// disk or fetched from the internet at run time.
//
// Immutable static data: thread-safe.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace loyalty::agent {

struct DisplayAsset {
  std::string_view path;     // relative to agent/display/, e.g. "i18n/en.json"
  std::string_view content;  // the file's bytes
};

// Every file, sorted by path. Defined in the generated display_assets_data.cc.
std::span<const DisplayAsset> DisplayAssets();

// The file at `path`, or null.
const DisplayAsset* FindDisplayAsset(std::string_view path);

// The Content-Type a file is served with, from its extension.
std::string_view DisplayContentType(std::string_view path);

// The languages the page has translations for ("en", "es", "pl", ...): one
// per i18n/<lang>.json.
std::vector<std::string> DisplayLanguages();

}  // namespace loyalty::agent
