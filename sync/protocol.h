// Constants of the agent <-> server wire protocol (proto/loyalty/v1/sync.proto)
// and the error codes the transport reports, in SyncError frames and in the
// core::Error passed to ConnectionCallbacks::on_close. Codes are stable: add,
// never rename.
#pragma once

#include <cstddef>
#include <cstdint>

namespace loyalty::sync {

// The version this build speaks. A server accepts Hellos whose version lies in
// [kMinProtocolVersion, kProtocolVersion]; anything else is refused.
inline constexpr std::uint32_t kProtocolVersion = 1;
inline constexpr std::uint32_t kMinProtocolVersion = 1;

inline constexpr std::size_t kDefaultMaxFrameSize = 4 * 1024 * 1024;  // 4 MiB

// A terminal clock further off the server's than this (NTP keeps clocks
// within milliseconds) is logged by both sides at every connection.
inline constexpr std::int64_t kClockSkewWarningMs = 2 * 60 * 1000;

namespace code {
// Framing.
inline constexpr const char* kFrameTooLarge = "frame_too_large";
inline constexpr const char* kBadFrame = "bad_frame";
// Hello exchange.
inline constexpr const char* kUnsupportedProtocolVersion = "unsupported_protocol_version";
inline constexpr const char* kExpectedHello = "expected_hello";
inline constexpr const char* kInvalidHello = "invalid_hello";
// Transport.
inline constexpr const char* kTlsHandshakeFailed = "tls_handshake_failed";
inline constexpr const char* kForbiddenIdentity = "forbidden_identity";
inline constexpr const char* kTimeout = "timeout";
inline constexpr const char* kConnectFailed = "connect_failed";
inline constexpr const char* kConnectionClosed = "connection_closed";
inline constexpr const char* kWriteQueueFull = "write_queue_full";
inline constexpr const char* kIoError = "io_error";
// Not an error: the connection was closed on purpose by this side.
inline constexpr const char* kClosedLocally = "closed";
}  // namespace code

}  // namespace loyalty::sync
