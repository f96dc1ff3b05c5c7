// `loyaltyctl admin ...`: head office's commands against loyalty-server's
// admin API (mutual TLS with an admin bundle). `args` are the words after
// "admin":
//
//   --url https://HOST:PORT --tls-dir ADMIN_BUNDLE [--json] [--timeout-ms N]
//   members lookup CARD_OR_MEMBER_ID | stores | promotions list |
//   promotions put FILE | promotions retire ID | programme show |
//   programme load FILE | conflicts | metrics
//
// Exit codes as every loyaltyctl command (ctl/commands.h): 0 ok, 1 the API
// answered with an error, or a FILE holds no valid request (refused before
// sending with invalid_request, printed as the API's errors are: the error
// object on stdout with --json), 2 usage error (also an unusable bundle or
// a FILE that cannot be read), 3 cannot connect (including a TLS handshake
// the server refused). Stateless.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace loyalty::ctl {

int RunAdmin(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace loyalty::ctl
