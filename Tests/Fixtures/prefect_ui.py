"""What the UI tests share: headless Chromium through Debian's chromedriver, and the v2 UI's Resume dialog."""
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC


def chrome():
    opts = webdriver.ChromeOptions()
    for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000", "--disable-dev-shm-usage"]:
        opts.add_argument(a)
    return webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path="/usr/bin/chromedriver"))


def open_resume_dialog(driver, wait, base, run_id):
    """Opens the flow run page (v2 UI: Resume is in the ⋮ menu) and its Resume dialog; returns the dialog once its
    form has rendered."""
    driver.get(f"{base}/v2/runs/flow-run/{run_id}")
    wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, "button[aria-haspopup='menu']"))).click()
    item = wait.until(lambda d: next((m for m in d.find_elements(By.CSS_SELECTOR, "[role='menuitem']") if m.text.strip() == "Resume"), None))
    item.click()
    dialog = wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, "[role='dialog']")))
    wait.until(lambda d: dialog.find_elements(By.TAG_NAME, "textarea"))
    return dialog
