// The `loyaltyctl pki ...` subcommands, as a function so that loyaltyctl's
// main only forwards to it. `args` are the words after "pki":
//
//   init         --dir DIR
//   issue-server --dir DIR --host NAME       --out BUNDLE
//   issue-store  --dir DIR --store STORE_ID  --out BUNDLE
//   issue-admin  --dir DIR --name NAME       --out BUNDLE
//   revoke       --dir DIR --store STORE_ID
//   renew        --dir DIR --bundle BUNDLE
//
// Flags take their value as the next word or as --flag=value. Success prints
// one line to `out` and returns 0; a failed operation prints
// "error: <code>: <message>" to `err` and returns 1; a usage error prints
// the usage to `err` and returns 2. Thread-safe as the functions in ca.h.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace loyalty::pki {

int RunPkiCommand(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace loyalty::pki
