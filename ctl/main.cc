// loyaltyctl: the command-line client of the loyalty agent (and, later, of
// head office). `loyaltyctl COMMAND [options]`; each command is one row of
// kCommands, so adding one (e.g. `pki`, `admin`) is one line here.
#include <algorithm>
#include <iostream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "ctl/admin_commands.h"
#include "ctl/commands.h"
#include "ctl/doctor_command.h"
#include "pki/pki_command.h"

namespace loyalty::ctl {
namespace {

// `loyaltyctl pki`, with --help: the pki commands know no such flag, and
// given no words they print their usage (as for a usage error), which is
// then the answer.
int RunPki(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  const bool help = (!args.empty() && args[0] == "help") ||
                    std::any_of(args.begin(), args.end(),
                                [](const std::string& a) { return a == "--help" || a == "-h"; });
  if (!help) return loyalty::pki::RunPkiCommand(args, out, err);
  std::ostringstream usage;
  loyalty::pki::RunPkiCommand({}, usage, usage);
  out << usage.str();
  return kExitOk;
}

struct Command {
  std::string_view name;
  std::string_view summary;
  CommandFn run;
};

constexpr Command kCommands[] = {
    {"enrol", "enrol a new member", &RunEnrol},
    {"lookup", "show a member, tier, balance and offers", &RunLookup},
    {"quote", "price a basket (changes nothing)", &RunQuote},
    {"commit", "record a sale", &RunCommit},
    {"void", "void a sale or return some of its lines", &RunVoid},
    {"redeem", "redeem points", &RunRedeem},
    {"health", "show the agent's status", &RunHealth},
    {"sync", "sync with the server now (--status: show the sync state)", &RunSync},
    {"admin", "head office: members, stores, promotions, programme", &RunAdmin},
    {"pki", "head office: CA, store/server/admin certificates", &RunPki},
    {"doctor", "check this terminal: config, database, certificates, agent, server", &RunDoctor},
};

void PrintUsage(std::ostream& out) {
  out << "usage: loyaltyctl COMMAND [options]   (loyaltyctl COMMAND --help for its options)\n\n"
         "commands:\n";
  for (const Command& c : kCommands) {
    out << "  " << c.name << std::string(10 - std::min<std::size_t>(c.name.size(), 9), ' ')
        << c.summary << "\n";
  }
  out << "\nCommon options: --url URL (default http://127.0.0.1:8080), --json (raw API JSON).\n"
         "Basket lines: --line SKU:CATEGORY:QTY:UNIT_PRICE, repeatable; UNIT_PRICE in minor\n"
         "units (350) or with a decimal point (3.50).\n"
         "Exit codes: 0 ok, 1 API error (or an input file that holds no valid request),\n"
         "2 usage error, 3 cannot reach the agent.\n";
}

int Main(int argc, char** argv) {
  if (argc < 2) {
    PrintUsage(std::cerr);
    return kExitUsage;
  }
  const std::string_view name = argv[1];
  if (name == "--help" || name == "-h" || name == "help") {
    PrintUsage(std::cout);
    return kExitOk;
  }
  const std::vector<std::string> args(argv + 2, argv + argc);
  for (const Command& c : kCommands) {
    if (c.name == name) return c.run(args, std::cout, std::cerr);
  }
  std::cerr << "loyaltyctl: unknown command '" << name << "'\n";
  PrintUsage(std::cerr);
  return kExitUsage;
}

}  // namespace
}  // namespace loyalty::ctl

int main(int argc, char** argv) { return loyalty::ctl::Main(argc, argv); }
