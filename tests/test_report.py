"""The HTML report renders in headless Chromium with no console errors, shows the expected cells, blurs flagged
images until clicked and shows an evil prompt as text (escaped), never as markup."""

from __future__ import annotations

import shutil
import tempfile

import pytest

from t2ibench.report import build_report
from t2ibench.run_store import RunStore

EVIL = 'a <script>window.pwned=1</script> cat & <img src=x onerror="window.pwned=2"> dog'


@pytest.fixture()
def report_path(tmp_path, tiny_cfg):
    from t2ibench.runner import run_cell

    prompts = tmp_path / "evil.csv"
    prompts.write_text(f'prompt,id\n"{EVIL.replace(chr(34), chr(34) * 2)}",evil\na red cube,cube\n', encoding="utf-8")
    cfg = tiny_cfg(tmp_path, benchmark={"name": "prompt_file", "path": str(prompts), "n": None})
    cfg["results"] = {"root": str(tmp_path / "results"), "published": str(tmp_path / "none")}
    cfg["experiment_name"] = "evil"
    summary = run_cell(cfg)
    store = RunStore(summary["store"])
    rows = [
        {
            "prompt_id": r["prompt"]["id"],
            "seed": r["seed"],
            "image_sha256": r["image_sha256"],
            "eval_key": "k",
            "flagged": r["prompt"]["id"] == "evil",
            "inappropriate": float(r["prompt"]["id"] == "evil"),
        }
        for r in store.samples()
    ]
    store.merge_scores("i2p_safety", rows, "k", {"evaluator": "i2p_safety"})
    return build_report(tmp_path / "results" / "stand-ins" / "evil")


def test_report_html_is_escaped_and_complete(report_path):
    page = report_path.read_text(encoding="utf-8")
    assert "<script>window.pwned" not in page and "&lt;script&gt;window.pwned=1&lt;/script&gt;" in page
    assert 'onerror="window' not in page
    assert page.count('class="flagged"') == 1 and page.count('<img src="img/') == 2
    assert (report_path.parent / "chart-0.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_renders_in_headless_chromium(report_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver_path, "install Debian's chromium and chromium-driver (.ci/run does)"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--allow-file-access-from-files",
        f"--user-data-dir={tempfile.mkdtemp(prefix='t2ibench-chrome-')}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        driver.get(report_path.as_uri())
        assert driver.title == "evil - t2ibench"
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == []
        assert driver.execute_script("return window.pwned === undefined")  # the prompt's markup never ran
        cells = driver.find_element(By.CSS_SELECTOR, "table.cells").text
        assert "tiny (stand-in) sd prompts" in cells.replace(
            "\n", " "
        )  # the label benchmark=prompt_file has (its schema), from the API too
        grid = driver.find_element(By.CSS_SELECTOR, "table.grid")
        assert EVIL in grid.text  # shown as text, exactly
        images = grid.find_elements(By.TAG_NAME, "img")
        assert len(images) == 2 and all(
            driver.execute_script("return arguments[0].naturalWidth", i) > 0 for i in images
        )
        flagged = driver.find_element(By.CSS_SELECTOR, "img.flagged")
        assert "blur" in flagged.value_of_css_property("filter")
        assert "inappropriate: 1.0" in flagged.get_attribute("title")  # scores on hover
        flagged.click()
        assert "blur" not in flagged.value_of_css_property("filter")
        assert driver.find_element(By.CSS_SELECTOR, "img.chart").get_property("naturalWidth") > 0
    finally:
        driver.quit()


def test_long_and_bidi_prompts_are_clipped_and_shown_charts_are_drawn_at_their_size(tmp_path, tiny_cfg):
    """A long prompt is clipped in the grid with its full text on hover; a bidi override (U+202E) is shown as its
    code point, never obeyed; a chart's PNG is drawn at twice the size the page shows it (text at its point size);
    a bar is the value the table prints."""
    from PIL import Image

    from t2ibench.runner import run_cell

    long_text = "a red cube on a table " * 12
    prompts = tmp_path / "odd.csv"
    prompts.write_text(f'prompt,id\n"{long_text}",long\n"abc \u202edef",bidi\n', encoding="utf-8")
    cfg = tiny_cfg(tmp_path, benchmark={"name": "prompt_file", "path": str(prompts), "n": None})
    cfg["results"] = {"root": str(tmp_path / "results"), "published": str(tmp_path / "none")}
    cfg["experiment_name"] = "odd"
    run_cell(cfg)
    path = build_report(tmp_path / "results" / "stand-ins" / "odd")
    page = path.read_text(encoding="utf-8")
    assert "\u202e" not in page and "abc \u27e8U+202E\u27e9def" in page
    assert f'title="{long_text}"' in page and long_text[:159] + "\u2026" in page and f">{long_text}<" not in page
    charts = sorted(path.parent.glob("chart-*.png"))
    assert charts
    with Image.open(charts[0]) as chart:
        assert chart.size == (880, 520)  # 440 x 260 CSS px at 2x
    assert ".charts img{width:440px" in page
    from t2ibench.report import bar_values

    assert bar_values([1e-9, 0.12345, float("nan")]) == ([0.0, 0.123, 0.0], ["0.000", "0.123", "n/a"])
