#!/usr/bin/env python3
"""Answers a gate through the real Prefect UI (v2) in headless Chromium, like a person would.

Usage: ui_resume.py UI_BASE RUN_ID CHOICE COMMENT SCREENSHOT_DIR
Opens UI_BASE/v2/runs/flow-run/RUN_ID, opens the ⋮ menu → Resume, picks CHOICE in the form's select,
types COMMENT, presses Resume. Saves screenshots (always: dialog + filled; on failure: error.png).
Exit 0 when the dialog closed after submitting.
"""
import sys, time, traceback
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from selenium.webdriver.support import expected_conditions as EC

from prefect_ui import chrome, open_resume_dialog

base, run_id, choice, comment, shots = sys.argv[1:6]
driver = chrome()
wait = WebDriverWait(driver, 30)
try:
    dialog = open_resume_dialog(driver, wait, base, run_id)
    driver.save_screenshot(f"{shots}/1-dialog.png")
    # The choice is a select: its trigger shows the current value (the gate's default).
    label = next(l for l in dialog.find_elements(By.TAG_NAME, "label") if l.text.strip().startswith("Choice"))
    trigger = next(b for b in dialog.find_elements(By.TAG_NAME, "button") if b.text.strip() and b.text.strip() not in ("Cancel", "Resume", "Close", "Open menu"))
    trigger.click()
    option = wait.until(lambda d: next((o for o in d.find_elements(By.CSS_SELECTOR, "[role='option']") if o.text.strip() == choice), None))
    option.click()
    wait.until(lambda d: trigger.text.strip() == choice)
    dialog.find_elements(By.TAG_NAME, "textarea")[0].send_keys(comment)
    driver.save_screenshot(f"{shots}/2-filled.png")
    # Like a person whose click landed during a re-render: click Resume again if the dialog is still open.
    for attempt in range(3):
        next(b for b in dialog.find_elements(By.TAG_NAME, "button") if b.get_attribute("type") == "submit").click()
        try:
            WebDriverWait(driver, 10).until(EC.invisibility_of_element_located((By.CSS_SELECTOR, "[role='dialog']")))
            break
        except Exception:
            if attempt == 2: raise
            driver.save_screenshot(f"{shots}/retry-{attempt + 1}.png")
    driver.save_screenshot(f"{shots}/3-submitted.png")
    print("resumed through the UI")
except Exception:
    traceback.print_exc()
    driver.save_screenshot(f"{shots}/error.png")
    sys.exit(1)
finally:
    driver.quit()
