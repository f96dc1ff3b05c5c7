#include "pki/ca_dir.h"

#include <charconv>
#include <sstream>

#include "pki/errors.h"
#include "pki/files.h"

namespace loyalty::pki {
namespace {

core::Error Corrupt(const std::filesystem::path& path, std::string_view why) {
  return core::MakeError(core::code::kInternal,
                         "CA file " + path.string() + " is corrupt: " + std::string(why));
}

bool ParseU64(std::string_view text, std::uint64_t& out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

core::Result<IndexEntry> ParseIndexLine(const std::string& line) {
  std::istringstream fields(line);
  std::string serial, kind, id, not_after, revoked_at;
  if (!std::getline(fields, serial, '\t') || !std::getline(fields, kind, '\t') ||
      !std::getline(fields, id, '\t') || !std::getline(fields, not_after, '\t') ||
      !std::getline(fields, revoked_at)) {
    return core::MakeError("", "expected 5 tab-separated fields");
  }
  IndexEntry entry;
  std::uint64_t na = 0, ra = 0;
  if (!ParseU64(serial, entry.serial) || !ParseU64(not_after, na) || !ParseU64(revoked_at, ra)) {
    return core::MakeError("", "bad number");
  }
  entry.not_after = static_cast<std::int64_t>(na);
  entry.revoked_at = static_cast<std::int64_t>(ra);
  entry.identity.id = id;
  if (kind == "store") {
    entry.identity.kind = IdentityKind::kStore;
  } else if (kind == "admin") {
    entry.identity.kind = IdentityKind::kAdmin;
  } else if (kind == "server") {
    entry.identity.kind = IdentityKind::kServer;
  } else {
    return core::MakeError("", "unknown kind " + kind);
  }
  return entry;
}

}  // namespace

core::Result<LoadedCa> LoadCa(const std::filesystem::path& dir) {
  auto cert_pem = ReadFile(dir / "ca.pem");
  if (!cert_pem) {
    return core::MakeError(code::kNoCa, "no CA in " + dir.string() + " (run pki init first)");
  }
  auto key_pem = ReadFile(dir / "ca-key.pem");
  if (!key_pem) return key_pem.error();
  auto cert = CertFromPem(*cert_pem);
  if (!cert) return cert.error();
  auto key = KeyFromPem(*key_pem);
  if (!key) return key.error();
  if (X509_check_private_key(cert->get(), key->get()) != 1) {
    return Corrupt(dir / "ca-key.pem", "does not match ca.pem");
  }
  return LoadedCa{std::move(*cert), std::move(*key), std::move(*cert_pem)};
}

core::Result<std::vector<IndexEntry>> ReadIndex(const std::filesystem::path& dir) {
  auto data = ReadFile(dir / "index.tsv");
  if (!data) return data.error();
  std::vector<IndexEntry> entries;
  std::istringstream lines(*data);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty()) continue;
    auto entry = ParseIndexLine(line);
    if (!entry) return Corrupt(dir / "index.tsv", entry.error().message);
    entries.push_back(std::move(*entry));
  }
  return entries;
}

core::Status WriteIndex(const std::filesystem::path& dir, const std::vector<IndexEntry>& entries) {
  std::string data;
  for (const IndexEntry& e : entries) {
    data += std::to_string(e.serial) + '\t' + std::string(KindName(e.identity.kind)) + '\t' +
            e.identity.id + '\t' + std::to_string(e.not_after) + '\t' +
            std::to_string(e.revoked_at) + '\n';
  }
  return WriteFileAtomic(dir / "index.tsv", data, 0644);
}

core::Result<std::uint64_t> TakeCounter(const std::filesystem::path& dir, const char* name) {
  auto data = ReadFile(dir / name);
  if (!data) return data.error();
  std::string text = *data;
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  std::uint64_t value = 0;
  if (!ParseU64(text, value) || value == 0) return Corrupt(dir / name, "not a positive number");
  if (auto s = WriteCounter(dir, name, value + 1); !s) return s.error();
  return value;
}

core::Status WriteCounter(const std::filesystem::path& dir, const char* name, std::uint64_t next) {
  return WriteFileAtomic(dir / name, std::to_string(next) + "\n", 0644);
}

core::Status WriteCrl(const std::filesystem::path& dir, const LoadedCa& ca,
                      const std::vector<IndexEntry>& entries, std::chrono::seconds validity) {
  std::vector<RevokedSerial> revoked;
  for (const IndexEntry& e : entries) {
    if (e.revoked_at != 0) revoked.push_back({e.serial, e.revoked_at});
  }
  auto number = TakeCounter(dir, "crlnumber");
  if (!number) return number.error();
  auto now = std::chrono::system_clock::now();
  auto crl = BuildCrl(revoked, *number, {now, now + validity}, ca.cert.get(), ca.key.get());
  if (!crl) return crl.error();
  auto pem = CrlToPem(crl->get());
  if (!pem) return pem.error();
  return WriteFileAtomic(dir / "crl.pem", *pem, 0644);
}

}  // namespace loyalty::pki
