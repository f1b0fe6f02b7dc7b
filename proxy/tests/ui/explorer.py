#!/usr/bin/env python3
"""Drives Debian's chromium (through chromium-driver and selenium) over the
proxy's /ui, as a person would: service -> route -> the planted field, in
three clicks, then checks the side-by-side sample, keyboard sorting, a
phone-width layout and that nothing was loaded from anywhere else.

Usage: explorer.py ADMIN_URL SCREENSHOT.png FIELD PRIMARY_VALUE SHADOW_VALUE
Exits non-zero with a message on the first failed check.
"""
import sys

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

base, shot, field, primary_value, shadow_value = sys.argv[1:6]

options = webdriver.ChromeOptions()
options.binary_location = "/usr/bin/chromium"
for arg in [
    "--headless=new",
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--window-size=1280,1000",
    # No network but loopback: names do not resolve, and anything not on
    # 127.0.0.1 goes to a proxy that does not exist.
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    "--proxy-server=http://127.0.0.1:9",
    "--proxy-bypass-list=127.0.0.1",
]:
    options.add_argument(arg)
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
# The page re-renders when its data arrives: an element found a moment
# before may be replaced (stale) by the time it is used, so every use is
# retried until it lands on the element as rendered.
wait = WebDriverWait(driver, 60, ignored_exceptions=(StaleElementReferenceException,))


def act(locator, action):
    """Finds the element at `locator` and applies `action` to it, again
    with a fresh element if the page replaced it in between."""

    def attempt(d):
        element = d.find_element(*locator)
        if not element.is_displayed():
            return False
        action(element)
        return element

    return wait.until(attempt)


def check(ok, message):
    if not ok:
        driver.save_screenshot(shot)
        print("FAILED:", message, file=sys.stderr)
        driver.quit()
        sys.exit(1)


try:
    driver.get(base + "/ui")
    # Click 1: the service.
    act((By.LINK_TEXT, "svc"), lambda e: e.click())
    # Click 2: the route.
    act((By.PARTIAL_LINK_TEXT, "/v1/orders/"), lambda e: e.click())
    first = (By.CSS_SELECTOR, "#fields tbody tr td a")
    text = wait.until(lambda d: d.find_element(*first).text)
    check(text == field, f"the first field is {text!r}, not {field!r}")
    driver.save_screenshot(shot.replace(".png", "-fields.png"))
    # Click 3: the field opens its latest sample, side by side.
    act(first, lambda e: e.click())
    shadow_focus = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, ".answer.shadow .focus")))
    primary_focus = driver.find_element(By.CSS_SELECTOR, ".answer.primary .focus")
    check(shadow_value in shadow_focus.text, f"shadow highlight {shadow_focus.text!r}")
    check(primary_value in primary_focus.text, f"primary highlight {primary_focus.text!r}")
    check(len(driver.find_elements(By.CSS_SELECTOR, ".answer")) >= 3, "request, primary and shadow side by side")
    driver.save_screenshot(shot)

    # Keyboard: back to the route, sort by the keyboard alone.
    driver.back()
    act((By.CSS_SELECTOR, "button[data-focus='sort-path']"), lambda e: e.send_keys(Keys.ENTER))
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "button[data-focus='sort-path']").get_attribute("aria-sort") == "ascending")
    paths = [a.text for a in driver.find_elements(By.CSS_SELECTOR, "#fields tbody tr td:first-child a")]
    check(paths == sorted(paths), f"sorted by path: {paths}")
    active = driver.switch_to.active_element.get_attribute("data-focus")
    check(active == "sort-path", f"focus stays on the sort button after re-rendering, not {active!r}")

    # A phone's width: no sideways scrolling of the page itself.
    driver.set_window_size(390, 844)
    driver.refresh()
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#fields")))
    width = driver.execute_script("return document.documentElement.scrollWidth")
    inner = driver.execute_script("return window.innerWidth")
    check(width <= inner + 1, f"page is {width}px wide in a {inner}px window")

    # Nothing came from anywhere but this admin listener.
    urls = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    foreign = [u for u in urls if not u.startswith(base)]
    check(not foreign, f"loaded from elsewhere: {foreign}")
    print("ok: 3 clicks to the field, highlighted side by side; keyboard sort; phone width; no network")
finally:
    driver.quit()
