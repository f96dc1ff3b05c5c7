#include "agent/checkout_service.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cctype>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <limits>
#include <mutex>
#include <thread>
#include <unordered_map>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <spdlog/spdlog.h>

#include "core/card.h"
#include "core/member_state.h"
#include "core/offers.h"
#include "core/offers_index.h"
#include "core/pricing.h"
#include "core/programme.h"
#include "core/reversal.h"
#include "core/text.h"
#include "storage/agent_store.h"

namespace loyalty::agent {
namespace {

namespace v1 = loyalty::v1;
using core::Error;
using core::MakeError;
using core::Result;
using core::Status;
using storage::AgentStore;

constexpr const char* kVersion = "0.1.0";
constexpr size_t kMaxIdLength = 64;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string RandomHex(size_t bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string raw(bytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes)) != 1) {
    throw std::runtime_error("RAND_bytes failed");  // no entropy: cannot make safe ids
  }
  std::string out;
  out.reserve(bytes * 2);
  for (unsigned char c : raw) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 0xf]);
  }
  return out;
}

// Random (version 4) UUIDs from a buffer of random bytes filled 32 UUIDs at
// a time: one RAND_bytes call costs as much as formatting many. Not
// thread-safe: the writer's.
class UuidSource {
 public:
  std::string Next() {
    if (used_ == sizeof pool_) {
      if (RAND_bytes(pool_, static_cast<int>(sizeof pool_)) != 1) {
        throw std::runtime_error("RAND_bytes failed");  // no entropy: cannot make safe ids
      }
      used_ = 0;
    }
    unsigned char b[16];
    std::memcpy(b, pool_ + used_, sizeof b);
    used_ += sizeof b;
    b[6] = static_cast<unsigned char>(0x40 | (b[6] & 0x0f));  // version 4
    b[8] = static_cast<unsigned char>(0x80 | (b[8] & 0x3f));  // RFC 4122 variant
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    out.reserve(36);
    for (int i = 0; i < 16; ++i) {
      if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
      out.push_back(kHex[b[i] >> 4]);
      out.push_back(kHex[b[i] & 0xf]);
    }
    return out;
  }

 private:
  unsigned char pool_[16 * 32];
  size_t used_ = sizeof pool_;
};

// A digest of a request, to tell a replay from a different request that
// reuses an id. Deterministic serialization makes it stable across runs.
std::string Digest(const google::protobuf::Message& message) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    message.SerializeToCodedStream(&coded);
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  // Fetched once: EVP_sha256() makes OpenSSL 3 look the algorithm up (under
  // a lock) on every call, a microsecond of each commit.
  static EVP_MD* const sha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  EVP_Digest(bytes.data(), bytes.size(), md, &len, sha256 ? sha256 : EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<char*>(md), len);
}

Status ValidateId(std::string_view id, const char* field, bool required) {
  if (id.empty()) {
    if (!required) return {};
    return MakeError(core::code::kInvalidRequest, std::string(field) + " is required");
  }
  if (id.size() > kMaxIdLength) {
    return MakeError(core::code::kInvalidRequest,
                     std::string(field) + " is longer than 64 characters");
  }
  if (!core::IsPrintableToken(id)) {
    return MakeError(core::code::kInvalidRequest,
                     std::string(field) + " may contain only printable ASCII without spaces");
  }
  return {};
}

// The names the agent gives reversals sent without a reversal_id:
// "<pos_txn_id>:void" for a whole void, "<pos_txn_id>:return:<n>" for the
// n-th return.
bool IsAgentReversalName(std::string_view id) {
  if (id.ends_with(":void")) return true;
  const size_t digits = id.find_last_not_of("0123456789");
  return digits != std::string_view::npos && digits + 1 < id.size() &&
         id.substr(0, digits + 1).ends_with(":return:");
}

Status ValidateDisplayName(std::string_view name) {
  if (name.empty()) return MakeError(core::code::kInvalidRequest, "display_name is required");
  if (name.size() > 80) {
    return MakeError(core::code::kInvalidRequest, "display_name is longer than 80 bytes");
  }
  if (core::HasControlCharacters(name)) {
    return MakeError(core::code::kInvalidRequest, "display_name contains control characters");
  }
  return {};
}

Status ValidateLanguage(std::string_view language) {
  if (language.size() > 12) return MakeError(core::code::kInvalidRequest, "language is too long");
  for (char c : language) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') {
      return MakeError(core::code::kInvalidRequest,
                       "language must be a language tag such as \"es\" or \"pl\"");
    }
  }
  return {};
}

Result<v1::Redemption::Mode> ParseMode(std::string_view mode) {
  if (mode.empty() || mode == "discount") return v1::Redemption::DISCOUNT;
  if (mode == "tender") return v1::Redemption::TENDER;
  return MakeError(core::code::kInvalidRequest, "mode must be \"discount\" or \"tender\"");
}

std::string ModeName(v1::Redemption::Mode mode) {
  return mode == v1::Redemption::TENDER ? "tender" : "discount";
}

// Programme and offers a request works with: an immutable pair swapped as a
// whole when head office pushes a change, so a request never mixes versions.
struct Catalogue {
  Catalogue(v1::Programme p, std::vector<v1::Offer> o)
      : programme(std::move(p)), offers(std::move(o), programme) {}
  v1::Programme programme;
  core::OfferIndex offers;
};

// A member as loaded for one request.
struct LoadedMember {
  storage::MemberRow row;
  std::vector<v1::Event> pending;  // local events the snapshot does not include
  std::vector<v1::Event> all;      // every local event (only when asked for)
  core::MemberState state;
};

class Service final : public CheckoutService {
 public:
  Service(ServiceOptions options, std::unique_ptr<AgentStore> writer,
          std::shared_ptr<const Catalogue> catalogue, std::vector<uint64_t> epochs,
          uint64_t epoch, uint64_t last_seq, int64_t pending)
      : options_(std::move(options)),
        db_path_((std::filesystem::path(options_.data_dir) / "agent.db").string()),
        hasher_(options_.card_hash_key),
        terminal_prefix_(options_.store_id + "/" + options_.terminal_id + "/"),
        writer_store_(std::move(writer)),
        catalogue_(std::move(catalogue)),
        epochs_(std::make_shared<const std::vector<uint64_t>>(std::move(epochs))),
        epoch_(epoch),
        next_seq_(last_seq + 1),
        pending_events_(pending) {
    writer_ = std::thread([this] { WriterLoop(); });
  }

  ~Service() override { Stop(); }

  // ------------------------------------------------------------- reads --

  Result<v1::MemberResponse> LookupMember(std::string_view card) override {
    auto hash = HashCard(card);
    if (!hash.ok()) return hash.error();
    auto catalogue = CurrentCatalogue();
    return WithReader<v1::MemberResponse>([&](AgentStore& store) -> Result<v1::MemberResponse> {
      const int64_t now = NowMs();
      auto member = LoadMember(store, *catalogue, *hash, now, false);
      if (!member.ok()) return member.error();
      return MakeMemberResponse(*catalogue, member->state, now);
    });
  }

  Result<v1::QuoteResponse> Quote(const v1::QuoteRequest& req) override {
    auto hash = HashCard(req.card());
    if (!hash.ok()) return hash.error();
    const std::vector<v1::BasketLine> basket(req.lines().begin(), req.lines().end());
    if (auto s = core::ValidateBasket(basket); !s.ok()) return s.error();
    auto mode = ParseMode(req.redeem_mode());
    if (!mode.ok()) return mode.error();
    if (req.redeem_points() < 0) {
      return MakeError(core::code::kInvalidRequest, "redeem_points must not be negative");
    }
    auto catalogue = CurrentCatalogue();
    return WithReader<v1::QuoteResponse>([&](AgentStore& store) -> Result<v1::QuoteResponse> {
      const int64_t now = NowMs();
      auto member = LoadMember(store, *catalogue, *hash, now, false);
      if (!member.ok()) return member.error();
      auto quote = Price(*catalogue, member->state, basket, req.redeem_points(), *mode, now);
      if (!quote.ok()) return quote.error();
      v1::QuoteResponse out;
      *out.mutable_member() = core::MakeMemberView(catalogue->programme, member->state, now);
      FillTotals(*quote, &out);
      out.mutable_lines()->Swap(quote->purchase.mutable_lines());
      out.set_tier(quote->tier);
      out.mutable_offers()->Reserve(static_cast<int>(quote->applied_offers.size()));
      for (const v1::Offer* offer : quote->applied_offers) {
        *out.add_offers() = catalogue->offers.View(offer, member->state);
      }
      return out;
    });
  }

  v1::HealthResponse Health() override {
    auto catalogue = CurrentCatalogue();
    v1::HealthResponse out;
    out.set_status("ok");
    out.set_version(kVersion);
    out.set_store_id(options_.store_id);
    out.set_terminal_id(options_.terminal_id);
    out.set_programme_version(catalogue->programme.version());
    out.set_pending_events(pending_events_.load());
    if (database_damaged_.load()) {
      std::lock_guard lock(damage_mutex_);
      out.set_status("degraded");
      out.set_problem(damage_);
    }
    return out;
  }

  v1::Programme CurrentProgramme() override { return CurrentCatalogue()->programme; }

  std::vector<v1::OfferView> GeneralOffers() override {
    auto catalogue = CurrentCatalogue();
    const core::MemberState nobody;  // in no tier and no segment
    std::vector<v1::OfferView> out;
    for (const v1::Offer* offer : catalogue->offers.Targeted(nobody, Context(NowMs()))) {
      out.push_back(catalogue->offers.View(offer, nobody));
    }
    return out;
  }

  int64_t PendingEvents() override { return pending_events_.load(); }

  // -------------------------------------------------------------- sync --

  void SubmitSyncWrite(std::function<Status(AgentStore&)> write,
                       std::function<void(Status)> done) override {
    Submit<bool>(
        [this, write = std::move(write)](AgentStore& store, const Catalogue&) -> Result<bool> {
          if (auto s = write(store); !s.ok()) return s.error();
          // A re-key switches the terminal to a new epoch: events appended
          // after this write, even in the same group commit, must use it.
          auto epochs = store.Epochs();
          if (!epochs.ok()) return epochs.error();
          if (!epochs->empty() && epochs->back() != epoch_) {
            epoch_ = epochs->back();
            SetEpochs(std::move(*epochs));
          }
          recount_pending_ = true;
          return true;
        },
        Callback<bool>([done = std::move(done)](Result<bool> r) {
          if (!r.ok()) return done(r.error());
          done(Status());
        }),
        Dispatch::kQueued);
  }

  Status ReloadCatalogue() override {
    auto loaded = WithReader<std::shared_ptr<const Catalogue>>(
        [](AgentStore& store) -> Result<std::shared_ptr<const Catalogue>> {
          auto programme = store.LoadProgramme();
          if (!programme.ok()) return programme.error();
          auto offers = store.LoadOffers();
          if (!offers.ok()) return offers.error();
          v1::Programme p = *programme ? **programme : core::DefaultProgramme();
          return std::make_shared<const Catalogue>(std::move(p), std::move(*offers));
        });
    if (!loaded.ok()) return loaded.error();
    spdlog::info("catalogue reloaded: programme v{}, {} offers", (*loaded)->programme.version(),
                 (*loaded)->offers.size());
    std::lock_guard lock(catalogue_mutex_);
    catalogue_ = std::move(*loaded);
    return {};
  }

  void SetCommitHook(std::function<void()> hook) override {
    std::lock_guard lock(hook_mutex_);
    commit_hook_ = std::move(hook);
  }

  // ------------------------------------------------------------ writes --

  void Enrol(v1::EnrolRequest req, Callback<v1::MemberResponse> done) override {
    auto hash = HashCard(req.card());
    if (!hash.ok()) return done(hash.error());
    if (auto s = ValidateDisplayName(req.display_name()); !s.ok()) return done(s.error());
    if (auto s = ValidateLanguage(req.language()); !s.ok()) return done(s.error());
    if (auto s = ValidateId(req.referral_code(), "referral_code", false); !s.ok()) {
      return done(s.error());
    }
    Submit<v1::MemberResponse>(
        [this, req = std::move(req), hash = std::move(*hash)](
            AgentStore& store, const Catalogue& catalogue) -> Result<v1::MemberResponse> {
          auto existing = store.FindMemberByCardHash(hash);
          if (!existing.ok()) return existing.error();
          if (*existing) {
            return MakeError(core::code::kAlreadyEnrolled, "this card is already enrolled");
          }
          storage::MemberRow row;
          row.card_hash = hash;
          row.member_id = "p-" + RandomHex(10);
          row.display_name = req.display_name();
          if (auto s = store.InsertMember(row); !s.ok()) return s.error();
          const int64_t now = NowMs();
          v1::Event event = NewEvent(row.member_id, now);
          auto* enrolment = event.mutable_enrolment();
          enrolment->set_card_hash(hash);
          enrolment->set_display_name(req.display_name());
          enrolment->set_language(req.language());
          enrolment->set_referral_code(req.referral_code());
          if (auto s = Append(store, event); !s.ok()) return s.error();
          const std::vector<v1::Event> events{event};
          core::MemberState state = core::FoldMember(catalogue.programme, nullptr, events, now);
          return MakeMemberResponse(catalogue, state, now);
        },
        std::move(done));
  }

  void Commit(v1::CommitRequest req, Callback<v1::CommitResponse> done) override {
    if (auto s = ValidateId(req.pos_txn_id(), "pos_txn_id", true); !s.ok()) return done(s.error());
    auto card = core::NormalizeCardNumber(req.card());
    if (!card.ok()) return done(card.error());
    req.set_card(*card);  // "4000 0000" and "40000000" are the same request
    std::vector<v1::BasketLine> basket(req.lines().begin(), req.lines().end());
    if (auto s = core::ValidateBasket(basket); !s.ok()) return done(s.error());
    auto mode = ParseMode(req.redeem_mode());
    if (!mode.ok()) return done(mode.error());
    if (req.redeem_points() < 0) {
      return done(MakeError(core::code::kInvalidRequest, "redeem_points must not be negative"));
    }
    if (req.party_size() > 100) {
      return done(MakeError(core::code::kInvalidRequest, "party_size must be at most 100"));
    }
    std::string hash = hasher_.Hash(*card);
    std::string digest = Digest(req);
    Submit<v1::CommitResponse>(
        [this, req = std::move(req), basket = std::move(basket), hash = std::move(hash),
         digest = std::move(digest),
         mode = *mode](AgentStore& store,
                       const Catalogue& catalogue) -> Result<v1::CommitResponse> {
          auto replay = Replay<v1::CommitResponse>(store, "commit", req.pos_txn_id(), digest);
          if (!replay.ok() || replay->has_value()) return Unwrap(std::move(replay));
          const int64_t now = NowMs();
          auto member = LoadMember(store, catalogue, hash, now, false);
          if (!member.ok()) return member.error();
          auto quote = Price(catalogue, member->state, basket, req.redeem_points(), mode, now);
          if (!quote.ok()) return quote.error();

          const std::string& member_id = member->row.member_id;
          std::vector<v1::Event>& pending = member->pending;
          const size_t first_new = pending.size();
          v1::CommitResponse out;
          FillTotals(*quote, &out);  // before the purchase moves into its event
          v1::Event& visit = pending.emplace_back(NewEvent(member_id, now));
          visit.mutable_visit()->set_pos_txn_id(req.pos_txn_id());
          visit.mutable_visit()->set_party_size(req.party_size());
          v1::Event& purchase = pending.emplace_back(NewEvent(member_id, now));
          purchase.mutable_purchase()->Swap(&quote->purchase);
          purchase.mutable_purchase()->set_pos_txn_id(req.pos_txn_id());
          const uint64_t purchase_seq = purchase.id().seq();
          if (quote->points_redeemed > 0) {
            v1::Event& redemption = pending.emplace_back(NewEvent(member_id, now));
            auto* r = redemption.mutable_redemption();
            r->set_redemption_id(req.pos_txn_id());
            r->set_pos_txn_id(req.pos_txn_id());
            r->set_points(quote->points_redeemed);
            r->set_value(quote->redemption_value);
            r->set_mode(mode);
          }
          for (size_t i = first_new; i < pending.size(); ++i) {
            out.add_event_ids(EventIdText(pending[i].id()));
          }
          const core::MemberState after = core::FoldMember(
              catalogue.programme, member->row.snapshot ? &*member->row.snapshot : nullptr,
              pending, now);
          out.set_pos_txn_id(req.pos_txn_id());
          out.set_member_id(member_id);
          out.set_points_balance(after.points_balance);
          out.set_tier(after.tier);
          out.set_committed_at_ms(now);
          // The purchase's row keeps the answer for replays.
          const std::string response = out.SerializeAsString();
          for (size_t i = first_new; i < pending.size(); ++i) {
            const bool holds_answer = pending[i].id().seq() == purchase_seq;
            if (auto s = Append(store, pending[i], holds_answer ? response : std::string_view());
                !s.ok()) {
              return s.error();
            }
          }
          if (auto s = Remember(store, "commit", req.pos_txn_id(), digest, member_id, purchase_seq);
              !s.ok()) {
            return s.error();
          }
          return out;
        },
        std::move(done));
  }

  void Void(v1::VoidRequest req, Callback<v1::VoidResponse> done) override {
    if (auto s = ValidateId(req.pos_txn_id(), "pos_txn_id", true); !s.ok()) return done(s.error());
    if (auto s = ValidateId(req.reversal_id(), "reversal_id", false); !s.ok()) {
      return done(s.error());
    }
    for (const auto& line : req.lines()) {
      if (line.quantity() <= 0) {
        return done(MakeError(core::code::kInvalidRequest,
                              "lines[].quantity must be positive for line_index " +
                                  std::to_string(line.line_index())));
      }
    }
    Submit<v1::VoidResponse>(
        [this, req = std::move(req)](AgentStore& store,
                                     const Catalogue& catalogue) -> Result<v1::VoidResponse> {
          auto commit = store.FindRequest("commit", req.pos_txn_id());
          if (!commit.ok()) return commit.error();
          if (!*commit) {
            return MakeError(core::code::kNotFound,
                             "no transaction with pos_txn_id \"" + req.pos_txn_id() +
                                 "\" was committed at this terminal");
          }
          v1::VoidRequest keyed = req;
          const std::string whole_void = req.pos_txn_id() + ":void";
          if (keyed.reversal_id().empty()) {
            // A whole void is naturally idempotent; a return without an id
            // is a new return each time, under the first free name.
            if (keyed.lines().empty()) {
              keyed.set_reversal_id(whole_void);
            } else {
              auto n = store.CountRequests("void", req.pos_txn_id() + ":return:");
              if (!n.ok()) return n.error();
              for (int64_t i = *n + 1;; ++i) {
                const std::string name = req.pos_txn_id() + ":return:" + std::to_string(i);
                auto taken = store.FindRequest("void", name);
                if (!taken.ok()) return taken.error();
                if (!*taken) {
                  keyed.set_reversal_id(name);
                  break;
                }
              }
            }
          } else if (IsAgentReversalName(keyed.reversal_id()) &&
                     !(keyed.reversal_id() == whole_void && keyed.lines().empty())) {
            // The POS may send such a name back to retry the reversal it
            // names, but not pick one for a new reversal: the whole void or
            // the next id-less return would then find it taken, and answer
            // 409 or replay it instead of being recorded.
            auto taken = store.FindRequest("void", keyed.reversal_id());
            if (!taken.ok()) return taken.error();
            if (!*taken) {
              return MakeError(core::code::kInvalidRequest,
                               "reversal_id \"" + keyed.reversal_id() +
                                   "\" has the form the agent gives reversals sent without one "
                                   "(\"<pos_txn_id>:void\", \"<pos_txn_id>:return:<n>\"): "
                                   "choose another");
            }
          }
          const std::string digest = Digest(keyed);
          auto replay = Replay<v1::VoidResponse>(store, "void", keyed.reversal_id(), digest);
          if (!replay.ok() || replay->has_value()) return Unwrap(std::move(replay));

          auto row = store.FindMemberById((*commit)->member_id);
          if (!row.ok()) return row.error();
          if (!*row) return MakeError(core::code::kNotFound, "the transaction's member is gone");
          const int64_t now = NowMs();
          auto member = LoadMemberRow(store, catalogue, std::move(**row), now, true);
          if (!member.ok()) return member.error();
          auto txn = core::FindTxn(member->all, req.pos_txn_id());
          if (!txn) {
            return MakeError(core::code::kNotFound,
                             "the purchase of \"" + req.pos_txn_id() + "\" is not on this terminal");
          }
          std::vector<v1::LineReturn> lines(req.lines().begin(), req.lines().end());
          auto reversal = core::PlanReversal(*txn, lines, keyed.reversal_id());
          if (!reversal.ok()) return reversal.error();
          v1::Event event = NewEvent(member->row.member_id, now);
          *event.mutable_reversal() = *reversal;
          member->pending.push_back(event);
          const core::MemberState after = core::FoldMember(
              catalogue.programme, member->row.snapshot ? &*member->row.snapshot : nullptr,
              member->pending, now);
          v1::VoidResponse out;
          out.set_pos_txn_id(req.pos_txn_id());
          out.set_reversal_id(keyed.reversal_id());
          out.set_points_reversed(reversal->points_reversed());
          out.set_points_restored(reversal->points_restored());
          out.set_refund(reversal->refund());
          *out.mutable_offers_released() = reversal->offers_released();
          out.set_complete(reversal->complete());
          out.set_points_balance(after.points_balance);
          if (auto s = Append(store, event, out.SerializeAsString()); !s.ok()) return s.error();
          if (auto s = Remember(store, "void", keyed.reversal_id(), digest, member->row.member_id,
                                event.id().seq());
              !s.ok()) {
            return s.error();
          }
          return out;
        },
        std::move(done));
  }

  void Redeem(v1::RedeemRequest req, Callback<v1::RedeemResponse> done) override {
    auto card = core::NormalizeCardNumber(req.card());
    if (!card.ok()) return done(card.error());
    req.set_card(*card);
    if (req.points() <= 0) {
      return done(MakeError(core::code::kInvalidRequest, "points must be a positive integer"));
    }
    auto mode = ParseMode(req.mode());
    if (!mode.ok()) return done(mode.error());
    if (auto s = ValidateId(req.redemption_id(), "redemption_id", false); !s.ok()) {
      return done(s.error());
    }
    if (auto s = ValidateId(req.pos_txn_id(), "pos_txn_id", false); !s.ok()) {
      return done(s.error());
    }
    if (req.redemption_id().empty()) req.set_redemption_id("r-" + RandomHex(12));
    std::string hash = hasher_.Hash(*card);
    std::string digest = Digest(req);
    Submit<v1::RedeemResponse>(
        [this, req = std::move(req), hash = std::move(hash), digest = std::move(digest),
         mode = *mode](AgentStore& store,
                       const Catalogue& catalogue) -> Result<v1::RedeemResponse> {
          auto replay = Replay<v1::RedeemResponse>(store, "redeem", req.redemption_id(), digest);
          if (!replay.ok() || replay->has_value()) return Unwrap(std::move(replay));
          const int64_t now = NowMs();
          auto member = LoadMember(store, catalogue, hash, now, false);
          if (!member.ok()) return member.error();
          auto planned = core::PlanRedemption(catalogue.programme, req.points(), mode,
                                              Spendable(catalogue, member->state));
          if (!planned.ok()) return planned.error();
          v1::Event event = NewEvent(member->row.member_id, now);
          *event.mutable_redemption() = *planned;
          event.mutable_redemption()->set_redemption_id(req.redemption_id());
          event.mutable_redemption()->set_pos_txn_id(req.pos_txn_id());
          member->pending.push_back(event);
          const core::MemberState after = core::FoldMember(
              catalogue.programme, member->row.snapshot ? &*member->row.snapshot : nullptr,
              member->pending, now);
          v1::RedeemResponse out;
          out.set_redemption_id(req.redemption_id());
          out.set_points(planned->points());
          out.set_value(planned->value());
          out.set_mode(ModeName(mode));
          out.set_points_balance(after.points_balance);
          if (auto s = Append(store, event, out.SerializeAsString()); !s.ok()) return s.error();
          if (auto s = Remember(store, "redeem", req.redemption_id(), digest, member->row.member_id,
                                event.id().seq());
              !s.ok()) {
            return s.error();
          }
          return out;
        },
        std::move(done));
  }

  void Stop() override {
    {
      std::lock_guard lock(queue_mutex_);
      stopping_ = true;
    }
    queue_cv_.notify_all();
    std::lock_guard lock(stop_mutex_);
    if (writer_.joinable()) writer_.join();
    // A caller may still be applying a batch of its own.
    std::unique_lock lock2(queue_mutex_);
    queue_cv_.wait(lock2, [this] { return !writing_; });
  }

 private:
  // ---------------------------------------------------------- helpers --

  Result<std::string> HashCard(std::string_view card) {
    auto normalized = core::NormalizeCardNumber(card);
    if (!normalized.ok()) return normalized.error();
    return hasher_.Hash(*normalized);
  }

  std::shared_ptr<const Catalogue> CurrentCatalogue() {
    std::lock_guard lock(catalogue_mutex_);
    return catalogue_;
  }

  std::shared_ptr<const std::vector<uint64_t>> CurrentEpochs() {
    std::lock_guard lock(catalogue_mutex_);
    return epochs_;
  }

  void SetEpochs(std::vector<uint64_t> epochs) {
    auto fresh = std::make_shared<const std::vector<uint64_t>>(std::move(epochs));
    std::lock_guard lock(catalogue_mutex_);
    epochs_ = std::move(fresh);
  }

  int64_t Spendable(const Catalogue& catalogue, const core::MemberState& state) const {
    const int64_t reserve = options_.offline_reserve_points >= 0
                                ? options_.offline_reserve_points
                                : catalogue.programme.offline_reserve_points();
    return std::max<int64_t>(0, state.points_balance - reserve);
  }

  core::CheckoutContext Context(int64_t now) const {
    return core::CheckoutContext{options_.store_id, now, options_.utc_offset_minutes};
  }

  Result<core::Quote> Price(const Catalogue& catalogue, const core::MemberState& state,
                            std::span<const v1::BasketLine> basket, int64_t redeem_points,
                            v1::Redemption::Mode mode, int64_t now) const {
    const std::vector<const v1::Offer*> offers =
        catalogue.offers.ForBasket(state, Context(now), basket);
    return core::PriceTargetedBasket(catalogue.programme, state, basket, offers,
                                     core::RedemptionAsk{redeem_points, mode},
                                     Spendable(catalogue, state));
  }

  // Moves the quote's lists into the response: they are large and the quote
  // is not used for them afterwards.
  template <typename Response>
  static void FillTotals(core::Quote& quote, Response* out) {
    out->set_subtotal(quote.purchase.subtotal());
    out->mutable_discounts()->Swap(&quote.discounts);
    out->set_discount_total(quote.purchase.discount_total());
    out->set_redemption_value(quote.redemption_value);
    out->set_points_redeemed(quote.points_redeemed);
    out->set_total(quote.total_to_pay);
    out->set_points_earned(quote.purchase.points_earned());
    out->mutable_explanation()->Swap(&quote.explanation);
  }

  v1::MemberResponse MakeMemberResponse(const Catalogue& catalogue, const core::MemberState& state,
                                        int64_t now) const {
    v1::MemberResponse out;
    *out.mutable_member() = core::MakeMemberView(catalogue.programme, state, now);
    for (const v1::Offer* offer : catalogue.offers.Targeted(state, Context(now))) {
      *out.add_offers() = catalogue.offers.View(offer, state);
    }
    return out;
  }

  Result<LoadedMember> LoadMember(AgentStore& store, const Catalogue& catalogue,
                                  const std::string& card_hash, int64_t now, bool all_events) {
    auto row = store.FindMemberByCardHash(card_hash);
    if (!row.ok()) return row.error();
    if (!*row) {
      return MakeError(core::code::kUnknownCard, "no member is enrolled with this card");
    }
    return LoadMemberRow(store, catalogue, std::move(**row), now, all_events);
  }

  Result<LoadedMember> LoadMemberRow(AgentStore& store, const Catalogue& catalogue,
                                     storage::MemberRow row, int64_t now, bool all_events) {
    // An event is pending iff the snapshot does not include it: its seq is
    // above included_seq for this terminal in the event's own epoch (events
    // of several epochs coexist after a re-key). Loading from the lowest of
    // those marks keeps the read bounded.
    auto included_in = [&](uint64_t epoch) -> uint64_t {
      if (!row.snapshot) return 0;
      auto it = row.snapshot->included_seq().find(terminal_prefix_ + std::to_string(epoch));
      return it == row.snapshot->included_seq().end() ? 0 : it->second;
    };
    uint64_t lowest = std::numeric_limits<uint64_t>::max();
    for (uint64_t epoch : *CurrentEpochs()) lowest = std::min(lowest, included_in(epoch));
    if (lowest == std::numeric_limits<uint64_t>::max()) lowest = 0;
    auto events = store.MemberEvents(row.member_id, all_events ? 0 : lowest);
    if (!events.ok()) return events.error();
    LoadedMember out;
    for (auto& e : *events) {
      if (e.seq > included_in(e.event.id().epoch())) out.pending.push_back(e.event);
      if (all_events) out.all.push_back(std::move(e.event));
    }
    out.state = core::FoldMember(catalogue.programme, row.snapshot ? &*row.snapshot : nullptr,
                                 out.pending, now);
    out.row = std::move(row);
    return out;
  }

  v1::Event NewEvent(const std::string& member_id, int64_t now) {
    v1::Event event;
    auto* id = event.mutable_id();
    id->set_store_id(options_.store_id);
    id->set_terminal_id(options_.terminal_id);
    id->set_epoch(epoch_);
    id->set_seq(next_seq_++);  // writer thread only
    id->set_uuid(uuids_.Next());
    event.set_occurred_at_ms(now);
    event.set_member_id(member_id);
    return event;
  }

  static std::string EventIdText(const v1::EventId& id) {
    return id.store_id() + "/" + id.terminal_id() + "/" + std::to_string(id.epoch()) + "/" +
           std::to_string(id.seq());
  }

  // `response`: the serialized answer of the request that wrote the event.
  Status Append(AgentStore& store, const v1::Event& event, std::string_view response = {}) {
    if (auto s = store.AppendEvent(event, response); !s.ok()) return s;
    ++batch_appended_;
    return {};
  }

  // The stored response when `id` was already used with the same digest;
  // a conflict when it was used with a different request.
  template <typename Response>
  Result<std::optional<Response>> Replay(AgentStore& store, const char* kind,
                                         const std::string& id, const std::string& digest) {
    auto found = store.FindRequest(kind, id);
    if (!found.ok()) return found.error();
    if (!*found) return std::optional<Response>();
    if ((*found)->digest != digest) {
      return MakeError(core::code::kConflict,
                       std::string("id \"") + id + "\" was already used for a different " + kind);
    }
    Response response;
    if (!response.ParseFromString((*found)->response)) {
      return MakeError(core::code::kInternal, "stored response is corrupt");
    }
    return std::optional<Response>(std::move(response));
  }

  template <typename Response>
  static Result<Response> Unwrap(Result<std::optional<Response>> replay) {
    if (!replay.ok()) return replay.error();
    return std::move(**replay);
  }

  // Records request `id` of `kind` as answered by the response kept in the
  // row of event `seq` (see AgentStore::AppendEvent).
  static Status Remember(AgentStore& store, const char* kind, const std::string& id,
                         const std::string& digest, const std::string& member_id, uint64_t seq) {
    return store.PutRequest(kind, id, storage::StoredRequest{digest, {}, member_id, seq});
  }

  // ---------------------------------------------------- writer thread --

  // One queued write. `apply` runs inside its own savepoint on the writer
  // thread and returns whether it wrote (else its savepoint is rolled back)
  // and a `finish` that reports to the caller once the batch is durable.
  // `fail` answers the caller when the job could not run at all.
  struct Applied {
    bool keep = false;
    std::function<void(const Status& commit)> finish;
  };
  struct Job {
    std::function<Applied(AgentStore&, const Catalogue&)> apply;
    std::function<void(const Error&)> fail;
  };

  // How a write reaches the writer: `kInline` lets the calling thread apply
  // it (and whatever is queued) itself when no write is in progress, which
  // spares a lone checkout two thread hand-offs; `kQueued` always hands it to
  // the writer thread (sync writes: their callers may hold locks that the
  // callback takes).
  enum class Dispatch { kInline, kQueued };

  template <typename T, typename Fn>
  void Submit(Fn apply, Callback<T> callback, Dispatch dispatch = Dispatch::kInline) {
    auto done = std::make_shared<Callback<T>>(std::move(callback));
    Job job;
    job.apply = [this, apply = std::move(apply), done](
                    AgentStore& store, const Catalogue& catalogue) mutable -> Applied {
      auto result = std::make_shared<Result<T>>(apply(store, catalogue));
      if (!result->ok()) NoteError(result->error());
      const bool keep = result->ok();
      return Applied{keep, [this, result, done](const Status& commit) {
                       if (!commit.ok()) {
                         NoteError(commit.error());
                         return (*done)(commit.error());
                       }
                       (*done)(std::move(*result));
                     }};
    };
    job.fail = [done](const Error& error) { (*done)(error); };
    std::vector<Job> batch;
    bool refused = false;
    {
      std::lock_guard lock(queue_mutex_);
      if (stopping_) {
        refused = true;  // answered below, outside the lock
      } else {
        queue_.push_back(std::move(job));
        if (dispatch == Dispatch::kQueued || writing_) {
          queue_cv_.notify_one();
          return;
        }
        // Nobody is writing: this thread takes the writer's role for one
        // group commit of everything queued, its own job included.
        writing_ = true;
        TakeBatchLocked(&batch);
      }
    }
    if (refused) {
      (*done)(MakeError(core::code::kUnavailable, "the agent is shutting down"));
      return;
    }
    RunBatch(batch);
    std::lock_guard lock(queue_mutex_);
    writing_ = false;
    // Whatever arrived meanwhile is the writer thread's; Stop() waits for
    // the role to be free. Nobody else needs waking: a lone checkout that
    // woke the idle writer thread for nothing paid for a futex call and a
    // fight over this mutex.
    if (!queue_.empty() || stopping_) queue_cv_.notify_all();
  }

  // Moves up to max_batch queued jobs into `batch`. Under queue_mutex_.
  void TakeBatchLocked(std::vector<Job>* batch) {
    while (!queue_.empty() && batch->size() < static_cast<size_t>(options_.max_batch)) {
      batch->push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
  }

  void WriterLoop() {
    std::vector<Job> batch;
    for (;;) {
      {
        std::unique_lock lock(queue_mutex_);
        queue_cv_.wait(lock, [this] { return !writing_ && (stopping_ || !queue_.empty()); });
        if (queue_.empty()) return;  // stopping and drained
        writing_ = true;
        TakeBatchLocked(&batch);
      }
      RunBatch(batch);
      batch.clear();
      std::lock_guard lock(queue_mutex_);
      writing_ = false;
      queue_cv_.notify_all();
    }
  }

  // Group commit: every job of the batch in one IMMEDIATE transaction, one
  // fsync for all, and no answer before that fsync returned.
  void RunBatch(std::vector<Job>& batch) {
    auto catalogue = CurrentCatalogue();
    AgentStore& store = *writer_store_;
    std::vector<std::function<void(const Status&)>> finishers;
    finishers.reserve(batch.size());
    const uint64_t seq_before_batch = next_seq_;
    const uint64_t epoch_before_batch = epoch_;
    batch_appended_ = 0;
    recount_pending_ = false;

    auto txn = storage::Transaction::Begin(store.db(), storage::Transaction::Mode::kImmediate);
    if (!txn.ok()) {
      spdlog::error("cannot begin write transaction: {}", txn.error().message);
      for (auto& job : batch) job.fail(txn.error());
      return;
    }
    // A lone request needs no savepoint of its own: when it fails, the
    // transaction is rolled back instead of committed.
    const bool alone = batch.size() == 1;
    bool discard = false;
    for (auto& job : batch) {
      std::optional<storage::Savepoint> savepoint;
      if (!alone) {
        auto begun = storage::Savepoint::Begin(store.db());
        if (!begun.ok()) {
          job.fail(begun.error());
          continue;
        }
        savepoint.emplace(std::move(*begun));
      }
      const uint64_t seq_before = next_seq_;
      const int64_t appended_before = batch_appended_;
      Applied applied;
      try {
        applied = job.apply(store, *catalogue);
      } catch (const std::exception& e) {
        spdlog::error("write request failed: {}", e.what());
        applied = Applied{false, [fail = job.fail](const Status&) {
                            fail(MakeError(core::code::kInternal, "the request failed"));
                          }};
      }
      if (applied.keep) {
        if (!savepoint) {
          // Kept as it is: the transaction's commit is the request's.
        } else if (auto s = savepoint->Release(); !s.ok()) {
          savepoint->RollbackTo();
          next_seq_ = seq_before;
          batch_appended_ = appended_before;
          finishers.push_back([error = s.error(), finish = std::move(applied.finish)](
                                  const Status&) { finish(error); });
          continue;
        }
      } else {
        if (savepoint) {
          savepoint->RollbackTo();
        } else {
          discard = true;
        }
        next_seq_ = seq_before;
        batch_appended_ = appended_before;
      }
      finishers.push_back(std::move(applied.finish));
    }
    Status committed;
    if (discard) {
      txn->Rollback();  // the lone request failed: nothing to keep
    } else {
      committed = txn->Commit();
    }
    if (!committed.ok()) {
      spdlog::error("group commit of {} requests failed: {}", batch.size(),
                    committed.error().message);
      txn->Rollback();
      next_seq_ = seq_before_batch;
      if (epoch_ != epoch_before_batch) {
        epoch_ = epoch_before_batch;
        if (auto epochs = store.Epochs(); epochs.ok()) SetEpochs(std::move(*epochs));
      }
    } else if (recount_pending_) {
      // Sync acknowledged or dead-lettered events: count the outbox again
      // (a partial index makes this cheap) rather than track every change.
      if (auto n = store.CountUnackedEvents(); n.ok()) pending_events_ = *n;
    } else {
      pending_events_ += batch_appended_;
    }
    for (auto& finish : finishers) finish(committed);
    if (committed.ok() && batch_appended_ > 0) {
      std::lock_guard lock(hook_mutex_);
      if (commit_hook_) commit_hook_();
    }
  }

  template <typename T, typename Fn>
  Result<T> WithReader(Fn fn) {
    std::unique_ptr<AgentStore> reader;
    {
      std::lock_guard lock(readers_mutex_);
      if (!readers_.empty()) {
        reader = std::move(readers_.back());
        readers_.pop_back();
      }
    }
    if (!reader) {
      storage::Database::Options options;
      options.read_only = true;
      options.durability = storage::Database::Durability::kNormal;
      auto opened = AgentStore::Open(db_path_, options);
      if (!opened.ok()) {
        NoteError(opened.error());  // a damaged file can first show here
        return opened.error();
      }
      reader = std::move(*opened);
    }
    // A read transaction gives the member row and its events one consistent view.
    Result<T> result = [&]() -> Result<T> {
      auto txn = storage::Transaction::Begin(reader->db(), storage::Transaction::Mode::kDeferred);
      if (!txn.ok()) return txn.error();
      return fn(*reader);
    }();
    if (!result.ok()) NoteError(result.error());
    std::lock_guard lock(readers_mutex_);
    readers_.push_back(std::move(reader));
    return result;
  }

  // A damaged database file turns the agent "degraded" (health answers 503
  // with the problem) until it is restarted on a repaired one: store IT must
  // hear of it before more checkouts hit the damaged pages.
  void NoteError(const Error& error) {
    if (error.code != core::code::kDatabaseCorrupt || database_damaged_.load()) return;
    std::lock_guard lock(damage_mutex_);
    if (!damage_.empty()) return;
    damage_ = "the terminal database " + db_path_ + " is damaged (" + error.message +
              "): run `loyaltyctl doctor`, which says how to recover its events";
    spdlog::critical("{}", damage_);
    database_damaged_ = true;
  }

  const ServiceOptions options_;
  const std::string db_path_;
  const core::CardHasher hasher_;
  const std::string terminal_prefix_;  // "store/terminal/": included_seq keys
  std::unique_ptr<AgentStore> writer_store_;

  std::mutex catalogue_mutex_;
  std::shared_ptr<const Catalogue> catalogue_;
  std::shared_ptr<const std::vector<uint64_t>> epochs_;  // every epoch used, oldest first

  std::mutex hook_mutex_;
  std::function<void()> commit_hook_;

  std::mutex readers_mutex_;
  std::vector<std::unique_ptr<AgentStore>> readers_;

  std::mutex queue_mutex_;
  std::condition_variable queue_cv_;
  std::deque<Job> queue_;
  bool stopping_ = false;
  bool writing_ = false;  // a thread holds the writer's role (guarded by queue_mutex_)
  std::thread writer_;
  std::mutex stop_mutex_;

  // The writer's (whichever thread holds the role).
  UuidSource uuids_;
  uint64_t epoch_;
  uint64_t next_seq_;
  int64_t batch_appended_ = 0;
  bool recount_pending_ = false;

  std::atomic<int64_t> pending_events_;

  std::atomic<bool> database_damaged_{false};
  std::mutex damage_mutex_;
  std::string damage_;  // guarded by damage_mutex_
};

// Cards are looked up by a keyed hash, so a database whose members were
// hashed with another key would find nobody (and enrol everybody twice).
// The database remembers a fingerprint of its key (not the key) and refuses
// any other one.
Status CheckCardHashKey(AgentStore& store, const std::string& key) {
  const std::string fingerprint =
      core::CardHash(key, "loyalty-card-hash-key-fingerprint").substr(0, 16);
  auto stored = store.GetMeta("card_hash_key_id");
  if (!stored.ok()) return stored.error();
  if (*stored && **stored != fingerprint) {
    return MakeError("card_hash_key_mismatch",
                     "the members in this data directory were hashed with a different card-hash "
                     "key (key id " + **stored + ", this key " + fingerprint +
                         "); start with the key they were hashed with, or with an empty data "
                         "directory");
  }
  if (!*stored) return store.PutMeta("card_hash_key_id", fingerprint);
  return {};
}

}  // namespace

Result<std::unique_ptr<CheckoutService>> OpenCheckoutService(const ServiceOptions& options) {
  if (options.data_dir.empty()) {
    return MakeError(core::code::kInvalidRequest, "data_dir is required");
  }
  if (options.card_hash_key.size() < 16) {
    return MakeError(core::code::kInvalidRequest, "card_hash_key must be at least 16 bytes");
  }
  if (auto s = ValidateId(options.store_id, "store_id", true); !s.ok()) return s.error();
  if (auto s = ValidateId(options.terminal_id, "terminal_id", true); !s.ok()) return s.error();
  std::error_code ec;
  std::filesystem::create_directories(options.data_dir, ec);
  if (ec) {
    return MakeError(core::code::kUnavailable,
                     "cannot create data directory " + options.data_dir + ": " + ec.message());
  }
  const std::string path = (std::filesystem::path(options.data_dir) / "agent.db").string();
  storage::Database::Options db_options;
  db_options.durability = storage::Database::Durability::kFull;
  // A commit touches several B-tree pages (event log, its indexes, the
  // request log); checkpointing every 16 MiB instead of 4 MiB writes each hot
  // page back once per many commits.
  db_options.wal_autocheckpoint_pages = 4000;
  auto store = AgentStore::Open(path, db_options);
  if (!store.ok()) return store.error();
  AgentStore& s = **store;

  auto txn = storage::Transaction::Begin(s.db());
  if (!txn.ok()) return txn.error();

  // Programme: the given one when it is newer than what is stored, else the
  // stored one, else the built-in default.
  auto stored = s.LoadProgramme();
  if (!stored.ok()) return stored.error();
  v1::Programme programme = *stored ? **stored : core::DefaultProgramme();
  if (options.programme) {
    if (auto v = core::ValidateProgramme(*options.programme); !v.ok()) return v.error();
    if (!*stored || options.programme->version() > (*stored)->version()) {
      programme = *options.programme;
    } else if (options.programme->version() < (*stored)->version()) {
      spdlog::warn("ignoring programme version {}: version {} is installed",
                   options.programme->version(), (*stored)->version());
    }
  }
  if (auto v = s.SaveProgramme(programme); !v.ok()) return v.error();

  if (options.offers) {
    for (const auto& offer : *options.offers) {
      if (auto v = core::ValidateOffer(offer); !v.ok()) return v.error();
    }
    if (auto v = s.ReplaceOffers(*options.offers); !v.ok()) return v.error();
  }
  auto offers = s.LoadOffers();
  if (!offers.ok()) return offers.error();

  auto epoch_text = s.GetMeta("epoch");
  if (!epoch_text.ok()) return epoch_text.error();
  uint64_t epoch = 1;
  if (*epoch_text) {
    epoch = std::stoull(**epoch_text);
  } else if (auto v = s.PutMeta("epoch", "1"); !v.ok()) {
    return v.error();
  }
  auto epochs = s.Epochs();
  if (!epochs.ok()) return epochs.error();
  if (auto v = CheckCardHashKey(s, options.card_hash_key); !v.ok()) return v.error();
  auto last_seq = s.LastSeq();
  if (!last_seq.ok()) return last_seq.error();
  auto pending = s.CountUnackedEvents();
  if (!pending.ok()) return pending.error();
  if (auto v = txn->Commit(); !v.ok()) return v.error();

  auto catalogue = std::make_shared<const Catalogue>(std::move(programme), std::move(*offers));
  spdlog::info("terminal database {}: programme v{}, {} offers, {} events pending upload", path,
               catalogue->programme.version(), catalogue->offers.size(), *pending);
  return std::unique_ptr<CheckoutService>(
      new Service(options, std::move(*store), std::move(catalogue), std::move(*epochs), epoch,
                  *last_seq, *pending));
}

}  // namespace loyalty::agent
