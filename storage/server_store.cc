#include "storage/server_store.h"

#include <algorithm>
#include <set>
#include <tuple>

namespace loyalty::storage {

namespace {

auto IdTuple(const loyalty::v1::EventId& id) {
  return std::make_tuple(id.store_id(), id.terminal_id(), id.epoch(), id.seq());
}

}  // namespace

core::Result<FoldOutcome> ServerStore::FoldAll(int64_t now_ms) {
  FoldOutcome all;
  for (;;) {
    auto step = Fold(kFoldAllChunk, now_ms);
    if (!step.ok()) return step.error();
    all.folded += step->folded;
    all.latest_version = step->latest_version;
    all.unfolded = step->unfolded;
    for (auto& r : step->rejected) all.rejected.push_back(std::move(r));
    for (auto& m : step->touched_members) all.touched_members.push_back(std::move(m));
    if (step->folded == 0 || UnfoldedEvents() == 0) break;
  }
  std::sort(all.touched_members.begin(), all.touched_members.end());
  all.touched_members.erase(std::unique(all.touched_members.begin(), all.touched_members.end()),
                            all.touched_members.end());
  return all;
}

core::Result<IngestOutcome> ServerStore::Ingest(const std::string& store_id,
                                                std::vector<loyalty::v1::Event> events,
                                                int64_t now_ms) {
  auto out = Append(store_id, std::move(events), now_ms);
  if (!out.ok()) return out;
  auto folded = FoldAll(now_ms);
  if (!folded.ok()) return folded.error();
  out->touched_members = std::move(folded->touched_members);
  out->latest_version = folded->latest_version;
  // The fold may have taken other uploads' events from the inbox too: only
  // this batch's late rejections belong in its answer.
  std::set<std::tuple<std::string, std::string, uint64_t, uint64_t>> mine;
  for (const auto& id : out->acknowledged) mine.insert(IdTuple(id));
  for (auto& r : folded->rejected) {
    const auto id = IdTuple(r.id());
    if (!mine.contains(id)) continue;
    std::erase_if(out->acknowledged, [&](const auto& a) { return IdTuple(a) == id; });
    out->rejected.push_back(std::move(r));
  }
  return out;
}

}  // namespace loyalty::storage
