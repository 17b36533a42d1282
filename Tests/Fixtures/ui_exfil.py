#!/usr/bin/env python3
"""Opens Prefect UI pages in headless Chromium, like a reviewer would, with a loopback listener that records every
request it gets: model text in those pages (artifacts, the Resume form's description, table cells) points images,
links and iframes at the listener, and a page that fetches any of them is a way out of the test sandbox.

Usage: ui_exfil.py PORT SCREENSHOT_DIR PAGE...
PAGE is a URL, or resume:UI_BASE:RUN_ID (the flow run page of the v2 UI with its Resume dialog open).
Prints one line per page: "PAGE <url> TEXT <the page's visible text, one line>", then "REQUESTS <n>" and a line per
request the listener received. Exit 0 when every page loaded.
"""
import http.server, sys, threading, time, traceback
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from prefect_ui import chrome, open_resume_dialog

port, shots, pages = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
received = []


class Listener(http.server.BaseHTTPRequestHandler):
    def handle_one_request(self):
        try:
            super().handle_one_request()
        except Exception:
            pass

    def do_GET(self):
        received.append("GET " + self.path)
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()

    do_POST = do_HEAD = do_OPTIONS = do_GET

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Listener)
threading.Thread(target=server.serve_forever, daemon=True).start()
driver = chrome()
wait = WebDriverWait(driver, 30)
status = 0
try:
    for i, page in enumerate(pages):
        if page.startswith("resume:"):
            base, run_id = page[len("resume:"):].rsplit(":", 1)
            root = open_resume_dialog(driver, wait, base, run_id)
        else:
            driver.get(page)
            # Artifact pages render their content after the API answers.
            wait.until(lambda d: "autonomy-" in d.find_element(By.TAG_NAME, "body").text)
            root = driver.find_element(By.TAG_NAME, "body")
        time.sleep(3)  # let every image and iframe the page holds load
        driver.save_screenshot(f"{shots}/page-{i}.png")
        print("PAGE %s TEXT %s" % (page, " ".join(root.text.split())[:3000]))
except Exception:
    traceback.print_exc()
    driver.save_screenshot(f"{shots}/error.png")
    status = 1
finally:
    driver.quit()
    time.sleep(1)
    print("REQUESTS %d" % len(received))
    for r in received:
        print(r)
sys.exit(status)
