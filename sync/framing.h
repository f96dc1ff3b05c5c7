// Framing of the sync protocol: each frame on the wire is a 4-byte big-endian
// length followed by that many bytes of a serialized loyalty.v1.Frame. Pure
// functions over bytes, no I/O: the connection feeds whatever it has read to
// DecodeFrame until it returns a frame or an error. A frame whose length is 0,
// above the maximum, or which does not parse is an error; the length is
// checked before the body arrives, so an oversize frame is refused after 4
// bytes. Thread-safe (no shared state).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <variant>

#include "core/result.h"
#include "loyalty/v1/sync.pb.h"
#include "sync/protocol.h"

namespace loyalty::sync {

inline constexpr std::size_t kFrameHeaderSize = 4;

// The bytes so far are a valid prefix of a frame; read more.
struct NeedMore {};

struct DecodedFrame {
  v1::Frame frame;
  std::size_t consumed = 0;  // header + body bytes to drop from the input
};

// One of: NeedMore, DecodedFrame, or core::Error with code frame_too_large
// or bad_frame (the stream cannot be resynchronised: close the connection).
using DecodeResult = std::variant<NeedMore, DecodedFrame, core::Error>;

DecodeResult DecodeFrame(std::span<const std::uint8_t> bytes,
                         std::size_t max_frame_size = kDefaultMaxFrameSize);

// Header + serialized `frame`, or frame_too_large if the body would exceed
// `max_frame_size`, or bad_frame if it is empty (no message set).
core::Result<std::string> EncodeFrame(const v1::Frame& frame,
                                      std::size_t max_frame_size = kDefaultMaxFrameSize);

// Header + a serialized Frame{correlation_id, upload_batch{batch_id,
// events}} whose events are `event_bodies`, each already a serialized
// loyalty.v1.Event (the agent's outbox rows), written as they are: the same
// bytes as EncodeFrame of the parsed events, without parsing and
// re-serializing them. frame_too_large as EncodeFrame.
core::Result<std::string> EncodeUploadFrame(uint64_t correlation_id, uint64_t batch_id,
                                            std::span<const std::string> event_bodies,
                                            std::size_t max_frame_size = kDefaultMaxFrameSize);

// The id of the serialized loyalty.v1.Event `body`, read without parsing
// the rest of it; bad_frame if it has none or is not an Event.
core::Result<v1::EventId> EventIdOf(std::string_view body);

}  // namespace loyalty::sync
