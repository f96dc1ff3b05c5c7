#include "sync/framing.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/wire_format_lite.h>

namespace loyalty::sync {

namespace {

core::Error FrameTooLarge(std::size_t length, std::size_t max_frame_size) {
  return core::MakeError(code::kFrameTooLarge, "frame of " + std::to_string(length) +
                                                   " bytes exceeds the limit of " +
                                                   std::to_string(max_frame_size));
}

// The 4-byte big-endian length that starts a frame.
void WriteHeader(std::size_t length, char* out) {
  out[0] = static_cast<char>((length >> 24) & 0xff);
  out[1] = static_cast<char>((length >> 16) & 0xff);
  out[2] = static_cast<char>((length >> 8) & 0xff);
  out[3] = static_cast<char>(length & 0xff);
}

}  // namespace

DecodeResult DecodeFrame(std::span<const std::uint8_t> bytes, std::size_t max_frame_size) {
  if (bytes.size() < kFrameHeaderSize) return NeedMore{};
  const std::size_t length = (std::size_t{bytes[0]} << 24) | (std::size_t{bytes[1]} << 16) |
                             (std::size_t{bytes[2]} << 8) | std::size_t{bytes[3]};
  if (length > max_frame_size) return FrameTooLarge(length, max_frame_size);
  if (length == 0) return core::MakeError(code::kBadFrame, "empty frame");
  if (bytes.size() - kFrameHeaderSize < length) return NeedMore{};
  DecodedFrame decoded;
  if (!decoded.frame.ParseFromArray(bytes.data() + kFrameHeaderSize, static_cast<int>(length))) {
    return core::MakeError(code::kBadFrame, "frame body is not a valid loyalty.v1.Frame");
  }
  decoded.consumed = kFrameHeaderSize + length;
  return decoded;
}

core::Result<std::string> EncodeFrame(const v1::Frame& frame, std::size_t max_frame_size) {
  const std::size_t length = frame.ByteSizeLong();
  if (length > max_frame_size) return FrameTooLarge(length, max_frame_size);
  if (length == 0) return core::MakeError(code::kBadFrame, "refusing to send an empty frame");
  std::string out(kFrameHeaderSize + length, '\0');
  WriteHeader(length, out.data());
  if (!frame.SerializeToArray(out.data() + kFrameHeaderSize, static_cast<int>(length))) {
    return core::MakeError(code::kBadFrame, "cannot serialize frame");
  }
  return out;
}

namespace {

using google::protobuf::io::CodedInputStream;
using google::protobuf::io::CodedOutputStream;
using google::protobuf::internal::WireFormatLite;

constexpr uint32_t LengthTag(int field) {
  return WireFormatLite::MakeTag(field, WireFormatLite::WIRETYPE_LENGTH_DELIMITED);
}
constexpr uint32_t VarintTag(int field) {
  return WireFormatLite::MakeTag(field, WireFormatLite::WIRETYPE_VARINT);
}

}  // namespace

core::Result<std::string> EncodeUploadFrame(uint64_t correlation_id, uint64_t batch_id,
                                            std::span<const std::string> event_bodies,
                                            std::size_t max_frame_size) {
  constexpr uint32_t kBatchIdTag = VarintTag(v1::UploadBatch::kBatchIdFieldNumber);
  constexpr uint32_t kEventTag = LengthTag(v1::UploadBatch::kEventsFieldNumber);
  constexpr uint32_t kCorrelationTag = VarintTag(v1::Frame::kCorrelationIdFieldNumber);
  constexpr uint32_t kBatchTag = LengthTag(v1::Frame::kUploadBatchFieldNumber);
  // Field by field as protobuf serializes them (zero scalars are omitted).
  std::size_t batch = 0;
  if (batch_id != 0) batch += CodedOutputStream::VarintSize32(kBatchIdTag) +
                              CodedOutputStream::VarintSize64(batch_id);
  for (const std::string& body : event_bodies) {
    batch += CodedOutputStream::VarintSize32(kEventTag) +
             CodedOutputStream::VarintSize64(body.size()) + body.size();
  }
  std::size_t length = CodedOutputStream::VarintSize32(kBatchTag) +
                       CodedOutputStream::VarintSize64(batch) + batch;
  if (correlation_id != 0) length += CodedOutputStream::VarintSize32(kCorrelationTag) +
                                     CodedOutputStream::VarintSize64(correlation_id);
  if (length > max_frame_size) return FrameTooLarge(length, max_frame_size);
  std::string out;
  out.reserve(kFrameHeaderSize + length);
  out.resize(kFrameHeaderSize);
  WriteHeader(length, out.data());
  {
    google::protobuf::io::StringOutputStream stream(&out);
    CodedOutputStream coded(&stream);
    if (correlation_id != 0) {
      coded.WriteTag(kCorrelationTag);
      coded.WriteVarint64(correlation_id);
    }
    coded.WriteTag(kBatchTag);
    coded.WriteVarint64(batch);
    if (batch_id != 0) {
      coded.WriteTag(kBatchIdTag);
      coded.WriteVarint64(batch_id);
    }
    for (const std::string& body : event_bodies) {
      coded.WriteTag(kEventTag);
      coded.WriteVarint64(body.size());
      coded.WriteRaw(body.data(), static_cast<int>(body.size()));
    }
  }  // the coded stream flushes here; StringOutputStream may leave spare room
  out.resize(kFrameHeaderSize + length);
  return out;
}

core::Result<v1::EventId> EventIdOf(std::string_view body) {
  CodedInputStream in(reinterpret_cast<const uint8_t*>(body.data()), static_cast<int>(body.size()));
  for (uint32_t tag = in.ReadTag(); tag != 0; tag = in.ReadTag()) {
    if (tag == LengthTag(v1::Event::kIdFieldNumber)) {
      uint32_t size = 0;
      if (!in.ReadVarint32(&size)) break;
      v1::EventId id;
      const auto limit = in.PushLimit(static_cast<int>(size));
      if (!id.MergePartialFromCodedStream(&in) || !in.ConsumedEntireMessage()) break;
      in.PopLimit(limit);
      return id;
    }
    if (!WireFormatLite::SkipField(&in, tag)) break;
  }
  return core::MakeError(code::kBadFrame, "an outbox event without a readable id");
}

}  // namespace loyalty::sync
