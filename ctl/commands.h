// loyaltyctl subcommands. Each is a function of its own arguments (those
// after the subcommand name) writing to `out` (results) and `err`
// (diagnostics), so it can be listed in main.cc's table with one line and
// unit-tested without a process.
//
// Exit codes shared by every subcommand: 0 ok, 1 the API answered with an
// error (its code and message are printed), 2 usage error, 3 cannot reach
// the agent. Stateless; thread-compatible.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace loyalty::ctl {

inline constexpr int kExitOk = 0;
inline constexpr int kExitApiError = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitCannotConnect = 3;

using CommandFn = int (*)(const std::vector<std::string>& args, std::ostream& out,
                          std::ostream& err);

// Checkout commands against the agent's local API (checkout_commands.cc).
int RunEnrol(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int RunLookup(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int RunQuote(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int RunCommit(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int RunVoid(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int RunRedeem(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
int RunHealth(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);
// Sync with the server now (POST /v1/sync), or show its state (--status).
int RunSync(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace loyalty::ctl
