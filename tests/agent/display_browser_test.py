#!/usr/bin/env python3
"""The customer display end to end, in a real headless Chromium.

Starts loyalty-agent (a real process with a temporary data directory), opens
http://127.0.0.1:PORT/display in headless Chromium driven over the DevTools
protocol (--remote-debugging-pipe: NUL-terminated JSON on fds 3 and 4, so
only the Python standard library is needed), and, through the local API:

  - looks a member up: the page shows the name, tier, balance, progress
    words and the member's offers;
  - quotes and commits: the page shows the points the basket earns, then
    the thank-you screen with the new balance, then idle (the general
    promotions) after --display-idle-seconds;
  - restarts the agent (SIGTERM, then a new process on the same port): the
    page shows idle while it is gone, reconnects by itself, and follows a
    lookup of a Polish-speaking member in Polish.

Screenshots of every screen at 1024x600 and 1920x1080 go to --artifacts.
Run by CTest (tests/agent/CMakeLists.txt); needs `chromium` (scripts/setup).
"""

import argparse
import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio",
    "--remote-debugging-pipe", "--window-size=1024,600",
]
SIZES = [(1024, 600), (1920, 1080)]
WAIT_S = 20

OFFERS = {"offers": [
    {"id": "coffee-double", "name": "Double points on coffee",
     "description": "Every coffee earns twice the points this month.", "priority": 10,
     "stackable": True, "scope": {"kind": "CATEGORY", "value": "Coffee"},
     "points_multiplier_pct": 200},
    {"id": "big-basket-bonus", "name": "100 bonus points over 30.00",
     "description": "Spend 30.00 or more and get 100 bonus points.", "priority": 5,
     "stackable": True, "min_spend": 3000, "bonus_points": 100, "per_member_limit": 4},
    {"id": "croissant-3for2", "name": "Croissants: buy 2, get 1 free",
     "description": "The third croissant is on us.", "priority": 15, "stackable": True,
     "scope": {"kind": "SKU", "value": "CRO-1"}, "buy_x_get_y": {"buy": 2, "get": 1}},
    {"id": "gold-bakery-10", "name": "Gold: 10% off bakery", "priority": 20, "stackable": True,
     "tiers": ["Gold", "Platinum"], "scope": {"kind": "CATEGORY", "value": "Bakery"},
     "percent_off": 10},
]}


def card(n):
    """A valid 16-digit card number: a 15-digit payload and its Luhn digit."""
    payload = "4%014d" % n
    total = 0
    for i, ch in enumerate(reversed(payload)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return payload + str((10 - total % 10) % 10)


class Agent:
    """loyalty-agent as a child process; stderr goes to a log file."""

    def __init__(self, binary, data_dir, log_path, port=0, extra=()):
        self.log_path = log_path
        self.log = open(log_path, "ab")
        self.start_offset = self.log.tell()
        args = [binary, "--data-dir", data_dir, "--listen", "127.0.0.1:%d" % port, *extra]
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=self.log,
                                     stdin=subprocess.DEVNULL)
        self.port = self._wait_port()
        self.url = "http://127.0.0.1:%d" % self.port

    def _wait_port(self):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with open(self.log_path, "rb") as f:
                f.seek(self.start_offset)
                m = re.search(rb"listening on 127\.0\.0\.1:(\d+)", f.read())
            if m:
                return int(m.group(1))
            if self.proc.poll() is not None:
                raise RuntimeError("loyalty-agent exited: " + self.text_log())
            time.sleep(0.05)
        raise RuntimeError("loyalty-agent did not start: " + self.text_log())

    def text_log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as reply:
                return reply.status, json.loads(reply.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def ok(self, method, path, body=None, status=200):
        got, reply = self.call(method, path, body)
        if got != status:
            raise AssertionError("%s %s: %d %s" % (method, path, got, reply))
        return reply

    def terminate(self):
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        self.log.close()
        if code != 0:
            raise AssertionError("loyalty-agent exited with %d on SIGTERM" % code)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Browser:
    """Headless Chromium over the DevTools protocol on a pipe."""

    def __init__(self, binary, profile_dir, log_path):
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        null_fd = os.open(os.devnull, os.O_RDONLY)
        actions = [
            (os.POSIX_SPAWN_DUP2, null_fd, 0),
            (os.POSIX_SPAWN_DUP2, log_fd, 1),
            (os.POSIX_SPAWN_DUP2, log_fd, 2),
            (os.POSIX_SPAWN_DUP2, to_browser_r, 3),
            (os.POSIX_SPAWN_DUP2, from_browser_w, 4),
        ]
        args = [binary, *CHROMIUM_FLAGS, "--user-data-dir=" + profile_dir, "about:blank"]
        self.pid = os.posix_spawn(binary, args, os.environ, file_actions=actions)
        for fd in (to_browser_r, from_browser_w, log_fd, null_fd):
            os.close(fd)
        self._next_id = 0
        self._lock = threading.Lock()
        self._replies = {}
        self._cv = threading.Condition(self._lock)
        self.console = []  # page console messages and exceptions
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget",
                                 {"targetId": target, "flatten": True})["sessionId"]
        self.page("Runtime.enable")
        self.page("Page.enable")

    def _read(self):
        buf = b""
        while True:
            try:
                chunk = os.read(self._from_browser, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                with self._cv:
                    self._replies[None] = {"error": {"message": "browser closed the pipe"}}
                    self._cv.notify_all()
                return
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                if "id" in msg:
                    with self._cv:
                        self._replies[msg["id"]] = msg
                        self._cv.notify_all()
                elif msg.get("method") == "Runtime.consoleAPICalled":
                    args = msg["params"].get("args", [])
                    self.console.append(" ".join(str(a.get("value", a.get("description")))
                                                 for a in args))
                elif msg.get("method") == "Runtime.exceptionThrown":
                    self.console.append("exception: " + json.dumps(msg["params"])[:500])

    def send(self, method, params=None, session=None, timeout=30):
        with self._lock:
            self._next_id += 1
            mid = self._next_id
        msg = {"id": mid, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        data = json.dumps(msg).encode() + b"\0"
        while data:
            data = data[os.write(self._to_browser, data):]
        with self._cv:
            ok = self._cv.wait_for(lambda: mid in self._replies or None in self._replies,
                                   timeout)
            reply = self._replies.pop(mid, None) or self._replies.get(None)
        if not ok or reply is None:
            raise RuntimeError("no reply to " + method)
        if "error" in reply:
            raise RuntimeError("%s: %s" % (method, reply["error"]))
        return reply["result"]

    def page(self, method, params=None):
        return self.send(method, params, session=self.session)

    def navigate(self, url):
        self.page("Page.navigate", {"url": url})

    def eval(self, expression):
        result = self.page("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise RuntimeError("evaluate %s: %s" % (expression, result["exceptionDetails"]))
        return result["result"].get("value")

    def text(self, element_id):
        return self.eval("(document.getElementById(%s) || {}).textContent" % json.dumps(element_id))

    def wait(self, what, predicate, timeout=WAIT_S):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                last = predicate()
                if last:
                    return last
            except RuntimeError as e:
                last = e
            time.sleep(0.1)
        raise AssertionError("timed out waiting for %s (last: %r)\npage: %s\nconsole: %s" % (
            what, last, self.describe(), "\n".join(self.console[-20:])))

    def wait_text(self, element_id, expected, timeout=WAIT_S):
        self.wait("#%s to read %r" % (element_id, expected),
                  lambda: self.text(element_id) == expected, timeout)

    def wait_contains(self, element_id, expected, timeout=WAIT_S):
        self.wait("#%s to contain %r" % (element_id, expected),
                  lambda: expected in (self.text(element_id) or ""), timeout)

    def wait_screen(self, screen, timeout=WAIT_S):
        self.wait("the %s screen" % screen,
                  lambda: self.eval("document.body.dataset.screen") == screen, timeout)

    def describe(self):
        try:
            return json.dumps(self.eval(
                "({data: {...document.body.dataset}, text: document.body.innerText})"))
        except Exception as e:  # the page itself may be what is broken
            return "(cannot read the page: %s)" % e

    def screenshot(self, path, width, height):
        self.page("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        time.sleep(0.8)  # let the layout and the progress bar's transition settle
        shot = self.page("Page.captureScreenshot", {"format": "png"})
        with open(path, "wb") as f:
            f.write(base64.b64decode(shot["data"]))

    def close(self):
        try:
            self.send("Browser.close", timeout=5)
        except Exception:
            pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            pid, _ = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return
            time.sleep(0.1)
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)


def screenshots(browser, artifacts, name):
    for width, height in SIZES:
        browser.screenshot(os.path.join(artifacts, "display-%s-%dx%d.png" % (name, width, height)),
                           width, height)


def basket(lines):
    return [{"sku": s, "category": c, "quantity": q, "unit_price": p} for s, c, q, p in lines]


def run(args, tmp):
    artifacts = args.artifacts
    os.makedirs(artifacts, exist_ok=True)
    offers_path = os.path.join(tmp, "offers.json")
    with open(offers_path, "w") as f:
        json.dump(OFFERS, f)
    data_dir = os.path.join(tmp, "data")
    agent_log = os.path.join(artifacts, "display-agent.log")
    if os.path.exists(agent_log):
        os.remove(agent_log)
    agent_args = ["--offers", offers_path, "--display-idle-seconds", "4",
                  "--display-language", "en", "--store-id", "store-1"]
    agent = Agent(args.agent, data_dir, agent_log, extra=agent_args)
    browser = None
    try:
        # Ana has been twice before: a balance and progress toward Silver.
        ana, piotr = card(1001), card(1002)
        agent.ok("POST", "/v1/members", {"card": ana, "display_name": "Ana"}, status=201)
        agent.ok("POST", "/v1/members",
                 {"card": piotr, "display_name": "Piotr", "language": "pl"}, status=201)
        for i in range(2):
            agent.ok("POST", "/v1/checkout/commit", {
                "pos_txn_id": "before-%d" % i, "card": ana,
                "lines": basket([("COF-1", "Coffee", 1, 1250)])})

        browser = Browser(args.chromium, os.path.join(tmp, "profile"),
                          os.path.join(artifacts, "display-chromium.log"))
        browser.navigate(agent.url + "/display")
        browser.wait("the first connection", lambda: browser.eval(
            "document.body.dataset.connects") == "1")

        # Idle: the general promotions, not Gold's.
        browser.wait_screen("idle")
        browser.wait("a general promotion", lambda: browser.text("promo-name") in (
            "Double points on coffee", "Croissants: buy 2, get 1 free",
            "100 bonus points over 30.00"))
        assert "Gold" not in browser.eval("document.body.innerText")
        screenshots(browser, artifacts, "idle")

        # Lookup: name, tier, balance, progress, offers.
        member = agent.ok("GET", "/v1/members/" + ana)
        m = member["member"]
        browser.wait_screen("member")
        browser.wait_text("m-greeting", "Hello, %s!" % m["display_name"])
        browser.wait_text("m-tier", m["tier"])
        browser.wait_text("m-balance", "%d points" % m["points_balance"])
        nt = m["next_tier"]
        browser.wait_text("m-next", "%d more visits to %s" % (nt["visits_needed"], nt["name"]))
        for offer in member["offers"][:3]:
            browser.wait_contains("m-offers", offer["name"])
        assert "Gold: 10% off bakery" not in browser.text("m-offers")
        screenshots(browser, artifacts, "member")

        # Quote: the points this basket earns and its discounts.
        lines = basket([("COF-1", "Coffee", 2, 450), ("CRO-1", "Bakery", 4, 1000)])
        quote = agent.ok("POST", "/v1/checkout/quote", {"card": ana, "lines": lines})
        browser.wait_screen("basket")
        browser.wait_text("b-earned", "+%d points" % quote["points_earned"])
        browser.wait_contains("b-explain", "Points on your purchase")
        browser.wait_contains("b-explain", "Offer: Double points on coffee")
        browser.wait_contains("b-explain", "Offer: 100 bonus points over 30.00")
        browser.wait_contains("b-discounts", "Croissants: buy 2, get 1 free")
        browser.wait_contains("b-discounts", "−€10.00")
        browser.wait_text("b-total", "€%d.%02d" % divmod(quote["total"], 100))
        screenshots(browser, artifacts, "basket")

        # Commit: thanks with the new balance, then idle.
        commit = agent.ok("POST", "/v1/checkout/commit",
                          {"pos_txn_id": "t-1", "card": ana, "lines": lines})
        assert commit["points_earned"] == quote["points_earned"]
        browser.wait_screen("thanks")
        browser.wait_text("t-thanks", "Thank you, Ana!")
        browser.wait_text("t-balance", "%d points" % commit["points_balance"])
        browser.wait_text("t-earned", "You earned %d points today." % commit["points_earned"])
        screenshots(browser, artifacts, "thanks")
        browser.wait_screen("idle", timeout=15)  # --display-idle-seconds 4

        # Restart: the page shows idle while the agent is away, then
        # reconnects by itself and follows the next member, in Polish.
        agent.ok("GET", "/v1/members/" + ana)
        browser.wait_screen("member")
        port = agent.port
        agent.terminate()
        browser.wait("the page to notice the agent left",
                     lambda: browser.eval("document.body.dataset.link") == "down")
        browser.wait_screen("idle")
        agent = Agent(args.agent, data_dir, agent_log, port=port, extra=agent_args)
        browser.wait("the page to reconnect", lambda: browser.eval(
            "document.body.dataset.connects") == "2" and browser.eval(
            "document.body.dataset.link") == "up", timeout=30)
        polish = agent.ok("GET", "/v1/members/" + piotr)["member"]
        browser.wait_text("m-greeting", "Dzień dobry, Piotr!")
        browser.wait("the page in Polish", lambda: browser.eval("document.body.dataset.lang") == "pl")
        browser.wait_text("m-balance", "%d punktów" % polish["points_balance"])  # 0 punktów
        screenshots(browser, artifacts, "member-pl")
        agent.terminate()
    except BaseException:
        if browser:
            try:
                browser.screenshot(os.path.join(artifacts, "display-failure.png"), 1024, 600)
            except Exception:
                pass
        sys.stderr.write("agent log:\n" + agent.text_log()[-4000:] + "\n")
        raise
    finally:
        agent.kill()
        if browser:
            browser.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agent", required=True, help="the loyalty-agent binary")
    parser.add_argument("--artifacts", required=True, help="where screenshots and logs go")
    parser.add_argument("--chromium", default=os.environ.get("CHROMIUM") or shutil.which("chromium"))
    args = parser.parse_args()
    if not args.chromium:
        sys.exit("display_browser_test: no chromium on PATH (scripts/setup installs it)")
    with tempfile.TemporaryDirectory(prefix="loyalty-display-") as tmp:
        run(args, tmp)
    print("display_browser_test: passed; screenshots in " + args.artifacts)


if __name__ == "__main__":
    main()
