// A loopback TCP port nobody listens on yet, for a server a test starts
// later (an agent configured first, say).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <random>

namespace loyalty::testing {

// Below the kernel's ephemeral range: an agent connecting to a port in that
// range while nobody listens there can get that very port as its own source
// port (a TCP self-connect), and the server could then not bind it. Checked
// free by binding it once. 0 when none was found.
inline uint16_t FreePort() {
  int low = 32768;
  if (std::ifstream range("/proc/sys/net/ipv4/ip_local_port_range"); range) range >> low;
  std::random_device rd;
  for (int attempt = 0; attempt < 100; ++attempt) {
    const int port = low > 12000 ? 10000 + static_cast<int>(rd() % (low - 11000)) : 0;
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    const bool bound = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    ::close(fd);
    if (bound) return ntohs(addr.sin_port);
  }
  return 0;
}

}  // namespace loyalty::testing
