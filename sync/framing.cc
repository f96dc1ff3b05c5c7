#include "sync/framing.h"

namespace loyalty::sync {

DecodeResult DecodeFrame(std::span<const std::uint8_t> bytes, std::size_t max_frame_size) {
  if (bytes.size() < kFrameHeaderSize) return NeedMore{};
  const std::size_t length = (std::size_t{bytes[0]} << 24) | (std::size_t{bytes[1]} << 16) |
                             (std::size_t{bytes[2]} << 8) | std::size_t{bytes[3]};
  if (length > max_frame_size) {
    return core::MakeError(code::kFrameTooLarge, "frame of " + std::to_string(length) +
                                                     " bytes exceeds the limit of " +
                                                     std::to_string(max_frame_size));
  }
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
  if (length > max_frame_size) {
    return core::MakeError(code::kFrameTooLarge, "frame of " + std::to_string(length) +
                                                     " bytes exceeds the limit of " +
                                                     std::to_string(max_frame_size));
  }
  if (length == 0) return core::MakeError(code::kBadFrame, "refusing to send an empty frame");
  std::string out(kFrameHeaderSize + length, '\0');
  out[0] = static_cast<char>((length >> 24) & 0xff);
  out[1] = static_cast<char>((length >> 16) & 0xff);
  out[2] = static_cast<char>((length >> 8) & 0xff);
  out[3] = static_cast<char>(length & 0xff);
  if (!frame.SerializeToArray(out.data() + kFrameHeaderSize, static_cast<int>(length))) {
    return core::MakeError(code::kBadFrame, "cannot serialize frame");
  }
  return out;
}

}  // namespace loyalty::sync
