// The agent's sync steps against a real SQLite file, without a network:
// what an UploadAck and a ChangesPage do to the terminal database.
#include "sync/outbox.h"

#include <gtest/gtest.h>

#include "storage/sqlite.h"
#include "tests/support/temp_dir.h"

namespace loyalty::sync {
namespace {

namespace v1 = loyalty::v1;
using storage::AgentStore;
using storage::StoredEvent;

const std::string kHashA(64, 'a');
const std::string kHashB(64, 'b');

class OutboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    storage::Database::Options options;
    auto store = AgentStore::Open(dir_.file("agent.db"), options);
    ASSERT_TRUE(store.ok()) << store.error().message;
    store_ = std::move(*store);
  }

  v1::Event Event(uint64_t seq, const std::string& member, uint64_t epoch = 1) {
    v1::Event e;
    e.mutable_id()->set_store_id("S1");
    e.mutable_id()->set_terminal_id("T1");
    e.mutable_id()->set_epoch(epoch);
    e.mutable_id()->set_seq(seq);
    e.mutable_id()->set_uuid("uuid-" + std::to_string(seq));
    e.set_occurred_at_ms(1000 + static_cast<int64_t>(seq));
    e.set_member_id(member);
    e.mutable_visit()->set_pos_txn_id("t" + std::to_string(seq));
    return e;
  }

  void Append(uint64_t from, uint64_t to, const std::string& member) {
    for (uint64_t s = from; s <= to; ++s) ASSERT_TRUE(store_->AppendEvent(Event(s, member)).ok());
  }

  std::vector<StoredEvent> Outbox() {
    auto events = store_->UnackedEvents(0, 10000);
    EXPECT_TRUE(events.ok());
    return events.ok() ? *events : std::vector<StoredEvent>{};
  }

  // Runs `fn` in one transaction, committed only if it succeeds.
  template <typename Fn>
  auto InTransaction(Fn fn) {
    auto txn = storage::Transaction::Begin(store_->db());
    EXPECT_TRUE(txn.ok());
    auto result = fn(*store_);
    if (result.ok()) {
      EXPECT_TRUE(txn->Commit().ok());
    }
    return result;
  }

  v1::MemberSnapshot Snapshot(const std::string& id, const std::string& hash, int64_t points) {
    v1::MemberSnapshot s;
    s.set_member_id(id);
    s.set_card_hash(hash);
    s.set_display_name("Ana");
    s.set_points_balance(points);
    return s;
  }

  testing::TempDir dir_;
  std::unique_ptr<AgentStore> store_;
};

TEST_F(OutboxTest, AcknowledgedEventsLeaveTheOutbox) {
  Append(1, 5, "m-1");
  auto sent = Outbox();
  v1::UploadAck ack;
  for (int i = 0; i < 3; ++i) *ack.add_acknowledged() = sent[i].event.id();
  auto out = InTransaction([&](AgentStore& s) { return ApplyUploadAck(s, sent, ack, 99, 0); });
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->acknowledged, 3);
  EXPECT_EQ(*store_->CountUnackedEvents(), 2);
  EXPECT_EQ(Outbox().front().seq, 4u);
}

TEST_F(OutboxTest, AnAckWithAnotherUuidIsNotAboutOurEvent) {
  Append(1, 1, "m-1");
  auto sent = Outbox();
  v1::UploadAck ack;
  v1::EventId other = sent[0].event.id();
  other.set_uuid("someone-else");
  *ack.add_acknowledged() = other;
  auto out = InTransaction([&](AgentStore& s) { return ApplyUploadAck(s, sent, ack, 99, 0); });
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->acknowledged, 0);
  EXPECT_EQ(*store_->CountUnackedEvents(), 1);
}

TEST_F(OutboxTest, RejectedEventGoesToDeadLettersAndDoesNotBlockTheRest) {
  Append(1, 3, "m-1");
  auto sent = Outbox();
  v1::UploadAck ack;
  v1::EventRejection* r = ack.add_rejected();
  *r->mutable_id() = sent[0].event.id();
  r->set_code("invalid_event");
  r->set_message("bad");
  *ack.add_acknowledged() = sent[1].event.id();
  *ack.add_acknowledged() = sent[2].event.id();
  auto out = InTransaction([&](AgentStore& s) { return ApplyUploadAck(s, sent, ack, 99, 5); });
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->dead_lettered, 1);
  EXPECT_EQ(*store_->CountUnackedEvents(), 0);
  auto dead = store_->DeadLetters(10);
  ASSERT_TRUE(dead.ok());
  ASSERT_EQ(dead->size(), 1u);
  EXPECT_EQ((*dead)[0].seq, 1u);
  EXPECT_EQ((*dead)[0].code, "invalid_event");
  EXPECT_EQ((*dead)[0].event_key, "S1/T1/1/1");
  // The log keeps the event: nothing is deleted.
  auto kept = store_->EventBySeq(1);
  ASSERT_TRUE(kept.ok() && kept->has_value());
}

TEST_F(OutboxTest, SequenceReusedStartsANewEpochAndRekeysFromTheFirstCollision) {
  Append(1, 6, "m-1");
  auto sent = Outbox();
  v1::UploadAck ack;
  for (int i = 0; i < 2; ++i) *ack.add_acknowledged() = sent[i].event.id();
  for (int i = 3; i < 5; ++i) {  // seq 4 and 5 collide; 3 and 6 are left unanswered
    v1::EventRejection* r = ack.add_rejected();
    *r->mutable_id() = sent[i].event.id();
    r->set_code(kSequenceReused);
  }
  auto out = InTransaction([&](AgentStore& s) { return ApplyUploadAck(s, sent, ack, 777, 0); });
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->new_epoch, 777u);
  EXPECT_EQ(out->rekeyed, 3);  // 4, 5, 6
  EXPECT_EQ(out->dead_lettered, 0);
  auto left = Outbox();
  ASSERT_EQ(left.size(), 4u);                 // nothing deduplicated away
  EXPECT_EQ(left[0].event.id().epoch(), 1u);  // seq 3 precedes the collision
  for (size_t i = 1; i < left.size(); ++i) {
    EXPECT_EQ(left[i].event.id().epoch(), 777u);
    EXPECT_EQ(left[i].event.id().seq(), left[i].seq);
    EXPECT_EQ(left[i].event.id().uuid(), "uuid-" + std::to_string(left[i].seq));
  }
  EXPECT_EQ(**store_->GetMeta("epoch"), "777");
  EXPECT_EQ(*store_->Epochs(), (std::vector<uint64_t>{1, 777}));
}

TEST_F(OutboxTest, PageInstallsSnapshotsAndRewritesAProvisionalId) {
  ASSERT_TRUE(store_->InsertMember({"p-1", kHashA, std::nullopt, "Ana"}).ok());
  Append(1, 2, "p-1");
  ASSERT_TRUE(store_->PutRequest("commit", "t1", {"d", "r", "p-1"}).ok());
  v1::ChangesPage page;
  *page.add_changes()->mutable_member() = Snapshot("m-42", kHashA, 120);
  page.set_cursor(7);
  auto out = InTransaction([&](AgentStore& s) { return ApplyChangesPage(s, page); });
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->renamed, 1);
  auto row = store_->FindMemberByCardHash(kHashA);
  ASSERT_TRUE(row.ok() && row->has_value());
  EXPECT_EQ((*row)->member_id, "m-42");
  EXPECT_EQ((*row)->snapshot->points_balance(), 120);
  EXPECT_EQ(store_->MemberEvents("m-42", 0)->size(), 2u);
  EXPECT_TRUE(store_->MemberEvents("p-1", 0)->empty());
  EXPECT_EQ((*store_->FindRequest("commit", "t1"))->member_id, "m-42");
  EXPECT_EQ(*LoadCursor(*store_), 7u);
}

TEST_F(OutboxTest, PageUpsertsAndWithdrawsOffersAndSavesANewerProgramme) {
  v1::ChangesPage page;
  v1::Offer* offer = page.add_changes()->mutable_offer();
  offer->set_id("o-1");
  offer->set_name("Double coffee");
  offer->set_bonus_points(50);
  v1::Offer* gone = page.add_changes()->mutable_offer();
  gone->set_id("o-2");
  gone->set_name("Soon gone");
  gone->set_bonus_points(5);
  page.add_changes()->set_withdrawn_offer_id("o-2");
  page.set_cursor(3);
  auto out = InTransaction([&](AgentStore& s) { return ApplyChangesPage(s, page); });
  ASSERT_TRUE(out.ok());
  EXPECT_TRUE(out->catalogue_changed);
  auto offers = store_->LoadOffers();
  ASSERT_TRUE(offers.ok());
  ASSERT_EQ(offers->size(), 1u);
  EXPECT_EQ((*offers)[0].id(), "o-1");
}

TEST_F(OutboxTest, ErasureDeletesTheMemberButKeepsItsEventsForUpload) {
  ASSERT_TRUE(store_->PutSnapshot(Snapshot("m-1", kHashA, 10)).ok());
  Append(1, 2, "m-1");
  v1::ChangesPage page;
  page.add_changes()->set_erased_member_id("m-1");
  page.set_cursor(9);
  auto out = InTransaction([&](AgentStore& s) { return ApplyChangesPage(s, page); });
  ASSERT_TRUE(out.ok());
  EXPECT_FALSE(store_->FindMemberByCardHash(kHashA)->has_value());
  EXPECT_EQ(*store_->CountUnackedEvents(), 2);
}

TEST_F(OutboxTest, AFailureMidPageLeavesNothingApplied) {
  ASSERT_TRUE(store_->PutSnapshot(Snapshot("m-1", kHashA, 10)).ok());
  ASSERT_TRUE(store_->PutMeta(kCursorKey, "4").ok());
  v1::ChangesPage page;
  *page.add_changes()->mutable_member() = Snapshot("m-1", kHashA, 500);
  *page.add_changes()->mutable_member() = Snapshot("m-2", kHashB, 70);
  page.set_cursor(12);
  // A trigger makes the second snapshot fail, like a full disk would.
  ASSERT_TRUE(store_->db()
                  .Exec("CREATE TRIGGER fail BEFORE INSERT ON members WHEN NEW.member_id = 'm-2' "
                        "BEGIN SELECT RAISE(ABORT, 'injected'); END")
                  .ok());
  auto out = InTransaction([&](AgentStore& s) { return ApplyChangesPage(s, page); });
  ASSERT_FALSE(out.ok());
  EXPECT_EQ((*store_->FindMemberByCardHash(kHashA))->snapshot->points_balance(), 10);
  EXPECT_FALSE(store_->FindMemberByCardHash(kHashB)->has_value());
  EXPECT_EQ(*LoadCursor(*store_), 4u);
}

}  // namespace
}  // namespace loyalty::sync
