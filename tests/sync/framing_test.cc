#include "sync/framing.h"

#include <gtest/gtest.h>

#include <vector>

namespace loyalty::sync {
namespace {

std::vector<std::uint8_t> Bytes(const std::string& s) { return {s.begin(), s.end()}; }

v1::Frame HelloFrame() {
  v1::Frame frame;
  frame.set_correlation_id(7);
  frame.mutable_hello()->set_protocol_version(kProtocolVersion);
  frame.mutable_hello()->set_terminal_id("T1");
  return frame;
}

// The error code of `r`, or "" if it is not an error.
std::string ErrorCode(const DecodeResult& r) {
  const auto* error = std::get_if<core::Error>(&r);
  return error ? error->code : "";
}

TEST(FramingTest, EncodeThenDecodeRoundTrips) {
  auto encoded = EncodeFrame(HelloFrame());
  ASSERT_TRUE(encoded.ok());
  auto bytes = Bytes(*encoded);
  DecodeResult result = DecodeFrame(bytes);
  auto* decoded = std::get_if<DecodedFrame>(&result);
  ASSERT_NE(decoded, nullptr);
  EXPECT_EQ(decoded->consumed, bytes.size());
  EXPECT_EQ(decoded->frame.correlation_id(), 7u);
  EXPECT_EQ(decoded->frame.hello().terminal_id(), "T1");
}

TEST(FramingTest, LengthPrefixIsFourBytesBigEndian) {
  auto encoded = *EncodeFrame(HelloFrame());
  std::size_t body = encoded.size() - kFrameHeaderSize;
  EXPECT_EQ(static_cast<std::uint8_t>(encoded[0]), 0);
  EXPECT_EQ(static_cast<std::uint8_t>(encoded[3]), body & 0xff);
  EXPECT_EQ(body, HelloFrame().ByteSizeLong());
}

TEST(FramingTest, EveryTruncatedPrefixNeedsMore) {
  auto bytes = Bytes(*EncodeFrame(HelloFrame()));
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    DecodeResult result = DecodeFrame(std::span(bytes.data(), n));
    EXPECT_TRUE(std::holds_alternative<NeedMore>(result)) << "prefix " << n;
  }
}

TEST(FramingTest, TwoFramesBackToBackDecodeOneAtATime) {
  auto bytes = Bytes(*EncodeFrame(HelloFrame()) + *EncodeFrame(HelloFrame()));
  DecodeResult first = DecodeFrame(bytes);
  ASSERT_TRUE(std::holds_alternative<DecodedFrame>(first));
  std::size_t consumed = std::get<DecodedFrame>(first).consumed;
  EXPECT_LT(consumed, bytes.size());
  DecodeResult second = DecodeFrame(std::span(bytes).subspan(consumed));
  ASSERT_TRUE(std::holds_alternative<DecodedFrame>(second));
  EXPECT_EQ(consumed + std::get<DecodedFrame>(second).consumed, bytes.size());
}

TEST(FramingTest, OversizeLengthIsRefusedFromTheHeaderAlone) {
  std::vector<std::uint8_t> header = {0xff, 0xff, 0xff, 0xff};
  EXPECT_EQ(ErrorCode(DecodeFrame(header)), code::kFrameTooLarge);
  std::vector<std::uint8_t> just_over = {0x00, 0x40, 0x00, 0x01};  // 4 MiB + 1
  EXPECT_EQ(ErrorCode(DecodeFrame(just_over)), code::kFrameTooLarge);
}

TEST(FramingTest, MaximumIsConfigurable) {
  auto bytes = Bytes(*EncodeFrame(HelloFrame()));
  std::size_t body = bytes.size() - kFrameHeaderSize;
  EXPECT_TRUE(std::holds_alternative<DecodedFrame>(DecodeFrame(bytes, body)));
  EXPECT_EQ(ErrorCode(DecodeFrame(bytes, body - 1)), code::kFrameTooLarge);
  auto too_big = EncodeFrame(HelloFrame(), body - 1);
  ASSERT_FALSE(too_big.ok());
  EXPECT_EQ(too_big.error().code, code::kFrameTooLarge);
}

TEST(FramingTest, ZeroLengthFrameIsBad) {
  std::vector<std::uint8_t> empty = {0, 0, 0, 0};
  EXPECT_EQ(ErrorCode(DecodeFrame(empty)), code::kBadFrame);
  auto encoded = EncodeFrame(v1::Frame());
  ASSERT_FALSE(encoded.ok());
  EXPECT_EQ(encoded.error().code, code::kBadFrame);
}

TEST(FramingTest, GarbageBodyIsBad) {
  // 0xff is field 31 with wire type 7, which does not exist.
  std::vector<std::uint8_t> garbage = {0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff};
  EXPECT_EQ(ErrorCode(DecodeFrame(garbage)), code::kBadFrame);
  // A length-delimited field that claims more bytes than the body holds.
  std::vector<std::uint8_t> overrun = {0, 0, 0, 2, 0x52, 0x7f};
  EXPECT_EQ(ErrorCode(DecodeFrame(overrun)), code::kBadFrame);
}

TEST(FramingTest, AsciiTextIsNotMistakenForAFrame) {
  auto bytes = Bytes("GET / HTTP/1.1\r\n\r\n");  // length 0x47455420: far too large
  EXPECT_EQ(ErrorCode(DecodeFrame(bytes)), code::kFrameTooLarge);
}

// ---- uploads from serialized outbox rows

v1::Event OutboxEvent(uint64_t seq, int lines) {
  v1::Event e;
  e.mutable_id()->set_store_id("S1");
  e.mutable_id()->set_terminal_id("till-1");
  e.mutable_id()->set_epoch(1700000000000);
  e.mutable_id()->set_seq(seq);
  e.mutable_id()->set_uuid("0b5e4c1e-5f9a-4c53-9d0e-" + std::to_string(100000000000 + seq));
  e.set_occurred_at_ms(1700000000000 + static_cast<int64_t>(seq));
  e.set_member_id("p-" + std::to_string(seq));
  for (int i = 0; i < lines; ++i) {
    auto* line = e.mutable_purchase()->add_lines();
    line->mutable_line()->set_sku("SKU-" + std::to_string(i));
    line->mutable_line()->set_unit_price(199 + i);
    line->set_points(i);
  }
  return e;
}

TEST(FramingTest, AnUploadFromSerializedEventsIsTheFrameOfTheParsedEvents) {
  // Sizes that move the varint lengths across a byte boundary (127/128).
  for (int events : {0, 1, 3, 40, 700}) {
    v1::Frame expected;
    expected.set_correlation_id(300);
    expected.mutable_upload_batch()->set_batch_id(events == 0 ? 0 : 9);
    std::vector<std::string> bodies;
    for (int i = 0; i < events; ++i) {
      v1::Event e = OutboxEvent(static_cast<uint64_t>(i + 1), i % 12);
      bodies.push_back(e.SerializeAsString());
      *expected.mutable_upload_batch()->add_events() = e;
    }
    auto raw = EncodeUploadFrame(300, expected.upload_batch().batch_id(), bodies);
    ASSERT_TRUE(raw.ok()) << raw.error().message;
    auto reference = EncodeFrame(expected);
    ASSERT_TRUE(reference.ok());
    EXPECT_EQ(*raw, *reference) << events << " events";
    auto bytes = Bytes(*raw);
    DecodeResult result = DecodeFrame(bytes);
    auto* decoded = std::get_if<DecodedFrame>(&result);
    ASSERT_NE(decoded, nullptr) << events << " events";
    EXPECT_EQ(decoded->consumed, bytes.size());
    EXPECT_EQ(decoded->frame.SerializeAsString(), expected.SerializeAsString());
  }
}

TEST(FramingTest, AnUploadOverTheLimitIsRefusedBeforeItIsBuilt) {
  std::vector<std::string> bodies(10, std::string(200, 'x'));
  auto raw = EncodeUploadFrame(1, 1, bodies, 1000);
  ASSERT_FALSE(raw.ok());
  EXPECT_EQ(raw.error().code, code::kFrameTooLarge);
}

TEST(FramingTest, TheIdOfASerializedEventIsReadWithoutTheRest) {
  const v1::Event e = OutboxEvent(42, 3);
  auto id = EventIdOf(e.SerializeAsString());
  ASSERT_TRUE(id.ok()) << id.error().message;
  EXPECT_EQ(id->SerializeAsString(), e.id().SerializeAsString());
  // Fields before the id (not how protobuf writes them, still valid).
  v1::Event tail;
  tail.set_member_id("p-9");
  std::string reordered = tail.SerializeAsString();
  v1::Event head;
  *head.mutable_id() = e.id();
  reordered += head.SerializeAsString();
  auto late = EventIdOf(reordered);
  ASSERT_TRUE(late.ok());
  EXPECT_EQ(late->seq(), 42u);
}

TEST(FramingTest, AnEventWithoutAReadableIdIsAnError) {
  v1::Event no_id;
  no_id.set_member_id("p-1");
  EXPECT_EQ(EventIdOf(no_id.SerializeAsString()).error().code, code::kBadFrame);
  EXPECT_EQ(EventIdOf("\x0a\x40garbage").error().code, code::kBadFrame);  // id longer than the bytes
  EXPECT_EQ(EventIdOf(std::string("\xff\xff\xff", 3)).error().code, code::kBadFrame);
}

}  // namespace
}  // namespace loyalty::sync
