// `loyaltyctl doctor`: checks a store terminal's setup and says, for each
// check, OK, WARN or FAIL, what is wrong and how to fix it:
//
//   config        the agent's --config file is readable and valid
//   data-dir      the data directory exists (owned by loyalty-agent)
//   database      agent.db passes PRAGMA quick_check; its schema version is
//                 known; events waiting for upload; dead letters
//   certificates  the bundle (ca.pem, cert.pem, key.pem): present, key 0600
//                 and readable by the agent, certificate signed by the CA,
//                 for this store, not expired, not expiring within 30 days
//   agent         the local agent answers GET /v1/health with the same ids
//   server        the configured server accepts TCP and a mutual TLS
//                 handshake with the bundle
//
// Exit codes: 0 no FAIL (WARNs allowed), 1 at least one FAIL, 2 usage.
// `--json` prints {"ok":..., "checks":[{"name","status","message","fix"}]}.
// `--pending` only prints the number of events of the terminal database that
// were not uploaded yet (the package's prerm uses it) and exits 0, or 1 when
// the database cannot be read.
//
// Stateless; thread-compatible.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace loyalty::ctl {

int RunDoctor(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace loyalty::ctl
