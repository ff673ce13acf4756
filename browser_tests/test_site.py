"""Open every page of the built book in headless Chromium and check what a reader sees.

For each page: no SEVERE console entry (JavaScript errors, failed loads of the site's own files), every <img>
loaded with a non-zero size, no error output (tracebacks) from the executed cells, the Colab install cell hidden,
no code or output block wider than its box (one that would scroll sideways), and a full-page screenshot
under _build/screenshots/. Chapters: as many output figures as the notebook has image
outputs (at least one when it has plots) and the Colab/Binder launch links. Also: the search page finds
"temperature", the API page documents every public name, and chapter 02's kernel-free temperature explorer redraws
when its sliders move.
"""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import pytest
import yaml
from conftest import REPORT, ROOT

import sdkit

REPO = "sdkit-book/self-distillation-executed"
COLAB_MARKER = "In Google Colab, install sdkit"


def _toc_files(entries):
    for entry in entries:
        if "file" in entry:
            yield entry["file"]
        yield from _toc_files(entry.get("chapters", []) + entry.get("sections", []))


TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
BOOK_PAGES = [TOC["root"], *_toc_files(TOC["chapters"])]
EXTRA_PAGES = ["index", "search", "genindex", "py-modindex"]
PAGES = BOOK_PAGES + EXTRA_PAGES


def _expected_figures(page: str) -> int | None:
    """Image outputs the chapter's notebook shows (None for a page that is not a notebook)."""
    path = ROOT / f"{page}.ipynb"
    if not path.exists():
        return None
    nb = nbformat.read(path, as_version=4)
    count = 0
    for cell in nb.cells:
        tags = set(cell.get("metadata", {}).get("tags", []))
        if cell.cell_type != "code" or tags & {"remove-output", "remove-cell"}:
            continue
        count += sum(1 for o in cell.get("outputs", []) if "image/png" in o.get("data", {}))
    return count


# code blocks (cell inputs and every highlighted listing) and each output of a cell: none may be wider than its box
_TOO_WIDE = """
return Array.from(document.querySelectorAll('div.highlight pre, .cell_output > *, .cell_output pre'))
  .filter(e => e.offsetParent !== null && e.scrollWidth > e.clientWidth + 1)
  .map(e => `${e.scrollWidth - e.clientWidth}px too wide: ${e.innerText.trim().split('\\n')[0].slice(0, 70)}`)
"""


def _console(driver) -> list[dict]:
    return driver.get_log("browser")


def _wait(condition, timeout: float = 20.0, interval: float = 0.1):
    end = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > end:
            return value
        time.sleep(interval)


def _open(driver, url: str) -> list[dict]:
    _console(driver)  # drop entries from the previous page
    driver.get(url)
    _wait(lambda: driver.execute_script("return document.readyState") == "complete")
    return []


def _screenshot(driver, path: Path) -> None:
    height = driver.execute_script("return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight)")
    driver.set_window_size(1280, max(1000, min(int(height) + 100, 16000)))
    time.sleep(0.2)
    driver.save_screenshot(str(path))
    driver.set_window_size(1280, 1000)


def _severe(entries: list[dict]) -> list[str]:
    """SEVERE console entries: JavaScript errors and failed loads (the site loads nothing from outside itself)."""
    return [entry.get("message", "") for entry in entries if entry.get("level") == "SEVERE"]


#: chapters whose formulas must be typeset by the MathJax served from the site itself
MATH_PAGES = {"book/02_concepts": 1, "book/03_algorithm": 1, "book/04_math": 10}
RAW_TEX = ("\\(", "\\)", "\\[", "\\]", "$$")

_MATH_STATE = """
const math = Array.from(document.querySelectorAll('.math'));
return {total: math.length, typeset: math.filter(e => e.querySelector('mjx-container')).length,
        containers: document.querySelectorAll('mjx-container').length};
"""


def _typeset_math(driver) -> dict:
    """Wait until MathJax has typeset every math element of the page; return the counts."""
    _wait(lambda: (lambda m: m["typeset"] == m["total"])(driver.execute_script(_MATH_STATE)))
    return driver.execute_script(_MATH_STATE)


def _raw_tex(driver) -> list[str]:
    """Snippets of the page's visible text (code blocks excluded) that still hold TeX delimiters."""
    text = driver.execute_script(
        "const root = document.querySelector('main') || document.body; const clone = root.cloneNode(true);"
        "clone.querySelectorAll('pre, code, .highlight, mjx-container, script').forEach(e => e.remove());"
        "return clone.innerText"
    )
    found = []
    for token in RAW_TEX:
        at = text.find(token)
        if at >= 0:
            found.append(text[max(0, at - 40) : at + 40])
    return found


def test_every_built_page_is_checked(site):
    built = {
        str(p.relative_to(site).with_suffix(""))
        for p in site.rglob("*.html")
        if not {"_static", "_sources", "_images"} & set(p.relative_to(site).parts)
    }
    assert built == set(PAGES), f"pages built but not checked: {built - set(PAGES)}; missing: {set(PAGES) - built}"


@pytest.mark.parametrize("page", PAGES)
def test_page_renders(page, driver, base_url, site, screenshots):
    assert (site / f"{page}.html").is_file(), f"{page}.html was not built"
    _open(driver, f"{base_url}/{page}.html")
    # every image, including ones below the fold, must load
    driver.execute_script("for (const img of document.images) { img.loading = 'eager'; }")
    pending = "return Array.from(document.images).filter(i => !i.complete).length"
    _wait(lambda: driver.execute_script(pending) == 0)
    images = driver.execute_script(
        "return Array.from(document.images).map(i => ({src: i.currentSrc.slice(0, 80), complete: i.complete, "
        "w: i.naturalWidth, h: i.naturalHeight, "
        "output: i.closest('.cell_output') !== null && i.closest('.sdkit-temperature-explorer') === null}))"
    )
    broken = [i["src"] for i in images if not (i["complete"] and i["w"] > 0 and i["h"] > 0)]
    figures = sum(i["output"] for i in images)
    errors_out = driver.execute_script(
        "return Array.from(document.querySelectorAll('.output.traceback, .output_error, .output.error, "
        ".cell_output .stderr')).map(e => e.innerText.slice(0, 300))"
    )
    # executed cells' outputs only: the API page's doctests show expected errors on purpose
    text = driver.execute_script(
        "return Array.from(document.querySelectorAll('.cell_output')).map(e => e.innerText).join('\\n')"
    )
    launch = driver.execute_script(
        "return Array.from(document.querySelectorAll('a')).map(a => a.href)"
        ".filter(h => h.includes('colab.research.google.com') || h.includes('mybinder.org'))"
    )
    math = _typeset_math(driver)
    raw_tex = _raw_tex(driver)
    too_wide = driver.execute_script(_TOO_WIDE)
    time.sleep(0.3)  # let deferred scripts (search index) report errors
    errors = _severe(_console(driver))
    _screenshot(driver, screenshots / (page.replace("/", "__") + ".png"))

    expected = _expected_figures(page)
    REPORT.append(
        f"{page + '.html':32} images {len(images):3} (output figures {figures:2}"
        + (f", notebook has {expected:2})" if expected is not None else ")")
        + f" | console errors {len(errors)} | math typeset {math['typeset']}/{math['total']}"
        + f" | blocks too wide {len(too_wide)}"
    )
    assert not errors, f"{page}: console errors:\n" + "\n".join(errors)
    assert math["typeset"] == math["total"], f"{page}: {math['total'] - math['typeset']} formulas not typeset"
    assert math["typeset"] >= MATH_PAGES.get(page, 0), f"{page}: expected typeset math, found {math}"
    assert not raw_tex, f"{page}: raw TeX delimiters in the page text: {raw_tex}"
    assert not too_wide, f"{page}: code or output blocks that scroll sideways:\n" + "\n".join(too_wide)
    assert not broken, f"{page}: images that did not load: {broken}"
    assert not [e for e in errors_out if "Traceback" in e or "Error" in e], f"{page}: error outputs: {errors_out}"
    assert "Traceback (most recent call last)" not in text, f"{page}: a traceback is shown"
    assert COLAB_MARKER not in text, f"{page}: the Colab install cell is visible (tag it remove-cell)"
    if expected is not None:
        assert figures == expected, f"{page}: {figures} output figures on the page, the notebook has {expected}"
        colab = f"https://colab.research.google.com/github/{REPO}/blob/main/{page}.ipynb"
        assert colab in launch, f"{page}: no Colab launch link {colab} (found {launch})"
        assert any(h.startswith(f"https://mybinder.org/v2/gh/{REPO}/main") for h in launch), f"{page}: {launch}"


def test_search_finds_temperature(driver, base_url, screenshots):
    _open(driver, f"{base_url}/search.html?q=temperature")
    results = "return document.querySelectorAll('#search-results ul.search li').length"
    count = _wait(lambda: driver.execute_script(results), timeout=30)
    text = driver.execute_script("return document.querySelector('#search-results').innerText")
    errors = _severe(_console(driver))
    _screenshot(driver, screenshots / "search_temperature.png")
    REPORT.append(f"{'search.html?q=temperature':32} {count} results | console errors {len(errors)}")
    assert count and count > 0, f"searching 'temperature' found nothing: {text[:300]!r}"
    assert "temperature" in text.lower()
    assert "02_concepts" in driver.execute_script(
        "return Array.from(document.querySelectorAll('#search-results ul.search li a')).map(a => a.href).join(' ')"
    ), "the temperature chapter is not among the results"
    assert not errors, errors


def _explorer_state(driver) -> dict:
    return driver.execute_script(
        """const root = document.querySelector('.sdkit-temperature-explorer');
        return {readout: root.querySelector('.sdkit-readout').textContent,
                heights: Array.from(root.querySelectorAll('rect.sdkit-bar')).map(r => Number(r.getAttribute('height'))),
                image: root.querySelector('img.sdkit-image').getAttribute('src'),
                T: root.querySelector('input.sdkit-T').value, sample: root.querySelector('input.sdkit-sample').value,
                data: JSON.parse(root.querySelector('script.sdkit-data').textContent)};"""
    )


def test_temperature_explorer_works_without_a_kernel(driver, base_url, screenshots):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    _open(driver, f"{base_url}/book/02_concepts.html")
    assert driver.execute_script("return document.querySelectorAll('.sdkit-temperature-explorer').length") == 1
    before = _explorer_state(driver)
    data = before["data"]
    k0, n_temps = int(before["T"]), len(data["temperatures"])
    assert data["tText"][k0] == "1" and "T = 1 |" in before["readout"]
    assert f"entropy H = {data['entropy'][0][k0]:.3f}" in before["readout"]

    # the temperature slider: set its value and fire 'input', as a drag does
    driver.execute_script(
        "const s = document.querySelector('.sdkit-temperature-explorer input.sdkit-T');"
        "s.value = s.max; s.dispatchEvent(new Event('input', {bubbles: true}));"
    )
    hot = _explorer_state(driver)
    assert hot["T"] == str(n_temps - 1) and "T = 100 |" in hot["readout"], hot["readout"]
    assert f"entropy H = {data['entropy'][0][n_temps - 1]:.3f}" in hot["readout"]
    assert hot["heights"] != before["heights"]
    plot_h = data["plotHeight"]
    assert hot["heights"] == pytest.approx([p * plot_h for p in data["probs"][0][n_temps - 1]], abs=0.01)
    assert max(hot["heights"]) < 0.2 * plot_h  # T = 100: nearly uniform over 10 classes

    # the sample slider, with the keyboard
    slider = driver.find_element(By.CSS_SELECTOR, ".sdkit-temperature-explorer input.sdkit-sample")
    slider.send_keys(Keys.ARROW_RIGHT)
    moved = _explorer_state(driver)
    assert moved["sample"] == "1" and moved["readout"].startswith("sample 2 of 12"), moved["readout"]
    assert moved["image"] != hot["image"]
    errors = _severe(_console(driver))
    driver.execute_script("document.querySelector('.sdkit-temperature-explorer').scrollIntoView()")
    driver.save_screenshot(str(screenshots / "02_concepts_explorer_moved.png"))
    REPORT.append(
        f"{'book/02_concepts.html (explorer)':32} T slider -> {hot['readout'].split('|')[1].strip()}, "
        f"sample slider -> {moved['readout'].split('|')[0].strip()}"
    )
    assert not errors, errors


def _public_names() -> dict[str, object]:
    import importlib

    names = {f"sdkit.{n}": getattr(sdkit, n) for n in sdkit.__all__}
    modules = (
        "book.explore",
        "book.explorer",
        "extras.robustness",
        "book.plots",
        "book.stats",
        "extras.compress",
        "extras.tabular",
    )
    for module in modules:
        mod = importlib.import_module(f"sdkit.{module}")
        names.update({f"sdkit.{module}.{n}": getattr(mod, n) for n in mod.__all__})
    return names


def test_api_page_documents_every_public_name(driver, base_url):
    _open(driver, f"{base_url}/book/api.html")
    entries = driver.execute_script(
        "return Object.fromEntries(Array.from(document.querySelectorAll('dt[id^=\"sdkit.\"]')).map(dt => "
        "[dt.id, {example: dt.parentElement.querySelector(':scope > dd .doctest') !== null}]))"
    )
    public = _public_names()

    def entry_ids(name):
        short = name.rsplit(".", 1)[1]
        return [i for i in entries if i == name or (i.startswith("sdkit.") and i.rsplit(".", 1)[1] == short)]

    missing, no_example = [], []
    for name, obj in public.items():
        ids = entry_ids(name)
        # an alias (sdkit.CrossEntropy is sdkit.Method) is rendered as "alias of ..."; its example is the original's
        aliases = [entry_ids(other) for other, o in public.items() if o is obj and other != name]
        if not ids:
            missing.append(name)
        elif ">>>" in (getattr(obj, "__doc__", "") or "") and not any(
            entries[i]["example"] for i in ids + [i for a in aliases for i in a]
        ):
            no_example.append(name)
    REPORT.append(f"{'book/api.html':32} {len(entries)} documented entries, {len(_public_names())} public names")
    assert not missing, f"public names missing from the API page: {missing}"
    assert not no_example, f"docstring examples not rendered on the API page: {no_example}"
