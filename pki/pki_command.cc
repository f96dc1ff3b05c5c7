#include "pki/pki_command.h"

#include <chrono>
#include <map>
#include <optional>
#include <set>

#include "pki/ca.h"

namespace loyalty::pki {
namespace {

constexpr const char* kUsage =
    "usage: loyaltyctl pki init         --dir DIR\n"
    "       loyaltyctl pki issue-server --dir DIR --host NAME --out BUNDLE\n"
    "       loyaltyctl pki issue-store  --dir DIR --store STORE_ID --out BUNDLE\n"
    "       loyaltyctl pki issue-admin  --dir DIR --name NAME --out BUNDLE\n"
    "       loyaltyctl pki revoke       --dir DIR --store STORE_ID\n"
    "       loyaltyctl pki renew        --dir DIR --bundle BUNDLE\n";

// The flags each subcommand requires (all of them, none other).
const std::map<std::string, std::set<std::string>>& Subcommands() {
  static const std::map<std::string, std::set<std::string>> kSubcommands = {
      {"init", {"dir"}},
      {"issue-server", {"dir", "host", "out"}},
      {"issue-store", {"dir", "store", "out"}},
      {"issue-admin", {"dir", "name", "out"}},
      {"revoke", {"dir", "store"}},
      {"renew", {"dir", "bundle"}},
  };
  return kSubcommands;
}

// Parses "--flag value" / "--flag=value" pairs; nullopt after printing why.
std::optional<std::map<std::string, std::string>> ParseFlags(const std::vector<std::string>& args,
                                                             const std::set<std::string>& allowed,
                                                             std::ostream& err) {
  std::map<std::string, std::string> flags;
  for (std::size_t i = 1; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg.rfind("--", 0) != 0) {
      err << "unexpected argument \"" << arg << "\"\n";
      return std::nullopt;
    }
    std::string name = arg.substr(2);
    std::string value;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      err << "--" << name << " needs a value\n";
      return std::nullopt;
    }
    if (!allowed.count(name)) {
      err << "unknown flag --" << name << " for pki " << args[0] << "\n";
      return std::nullopt;
    }
    if (value.empty() || !flags.emplace(name, value).second) {
      err << "--" << name << " must be given once, with a non-empty value\n";
      return std::nullopt;
    }
  }
  for (const std::string& name : allowed) {
    if (!flags.count(name)) {
      err << "missing --" << name << " for pki " << args[0] << "\n";
      return std::nullopt;
    }
  }
  return flags;
}

std::string FormatDate(std::chrono::system_clock::time_point t) {
  auto day = std::chrono::floor<std::chrono::days>(t);
  std::chrono::year_month_day ymd{day};
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%04d-%02u-%02u", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
  return buf;
}

int Report(const core::Error& error, std::ostream& err) {
  err << "error: " << error.code << ": " << error.message << "\n";
  return 1;
}

int ReportIssued(const core::Result<IssuedCert>& issued, const std::string& bundle,
                 std::ostream& out, std::ostream& err) {
  if (!issued) return Report(issued.error(), err);
  out << "issued " << KindName(issued->identity.kind) << " certificate for \""
      << issued->identity.id << "\" (serial " << issued->serial << ", expires "
      << FormatDate(issued->not_after) << ") into " << bundle << "\n";
  return 0;
}

}  // namespace

int RunPkiCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  auto sub = args.empty() ? Subcommands().end() : Subcommands().find(args[0]);
  if (sub == Subcommands().end()) {
    if (!args.empty()) err << "unknown pki subcommand \"" << args[0] << "\"\n";
    err << kUsage;
    return 2;
  }
  auto flags = ParseFlags(args, sub->second, err);
  if (!flags) {
    err << kUsage;
    return 2;
  }
  auto& f = *flags;
  const std::string& cmd = sub->first;
  if (cmd == "init") {
    if (auto s = InitCa(f["dir"]); !s) return Report(s.error(), err);
    out << "created CA in " << f["dir"] << "\n";
    return 0;
  }
  if (cmd == "issue-server")
    return ReportIssued(IssueServer(f["dir"], f["host"], f["out"]), f["out"], out, err);
  if (cmd == "issue-store")
    return ReportIssued(IssueStore(f["dir"], f["store"], f["out"]), f["out"], out, err);
  if (cmd == "issue-admin")
    return ReportIssued(IssueAdmin(f["dir"], f["name"], f["out"]), f["out"], out, err);
  if (cmd == "renew") return ReportIssued(Renew(f["dir"], f["bundle"]), f["bundle"], out, err);
  auto revoked = Revoke(f["dir"], f["store"]);
  if (!revoked) return Report(revoked.error(), err);
  out << "revoked " << *revoked << " certificate(s) of store \"" << f["store"]
      << "\"; crl.pem re-signed, reload it on the server\n";
  return 0;
}

}  // namespace loyalty::pki
