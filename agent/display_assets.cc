#include "agent/display_assets.h"

namespace loyalty::agent {

const DisplayAsset* FindDisplayAsset(std::string_view path) {
  for (const DisplayAsset& asset : DisplayAssets()) {
    if (asset.path == path) return &asset;
  }
  return nullptr;
}

std::string_view DisplayContentType(std::string_view path) {
  if (path.ends_with(".html")) return "text/html; charset=utf-8";
  if (path.ends_with(".js")) return "text/javascript; charset=utf-8";
  if (path.ends_with(".css")) return "text/css; charset=utf-8";
  if (path.ends_with(".json")) return "application/json";
  if (path.ends_with(".svg")) return "image/svg+xml";
  if (path.ends_with(".png")) return "image/png";
  return "application/octet-stream";
}

std::vector<std::string> DisplayLanguages() {
  constexpr std::string_view kDir = "i18n/";
  constexpr std::string_view kSuffix = ".json";
  std::vector<std::string> languages;
  for (const DisplayAsset& asset : DisplayAssets()) {
    std::string_view p = asset.path;
    if (p.starts_with(kDir) && p.ends_with(kSuffix)) {
      p.remove_prefix(kDir.size());
      p.remove_suffix(kSuffix.size());
      languages.emplace_back(p);
    }
  }
  return languages;
}

}  // namespace loyalty::agent
