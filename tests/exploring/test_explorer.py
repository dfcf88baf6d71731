"""The explorer page, opened in real headless Chromium (Debian's chromium + chromium-driver, installed by make test)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits

from curata import (
    ClusterBatchSampler,
    HierarchicalKMeans,
    ImageFolder,
    TextFiles,
    VectorTable,
    curate,
    dedup,
    describe,
    explore,
    split,
)
from curata.exploring.browser import headless_chromium

NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
DOCS = Path(__file__).parents[2] / "docs"


def pixels(images: torch.Tensor) -> torch.Tensor:
    return images.float().flatten(1) / 255


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """600 real digits in class folders (10 exact copies among them), described, clustered, curated, split, deduped."""
    root = tmp_path_factory.mktemp("digits")
    data = load_digits()
    for n in range(600):
        folder = root / "photos" / NAMES[data.target[n]]
        folder.mkdir(parents=True, exist_ok=True)
        source = n - 300 if 300 <= n < 310 else n  # rows 300-309 repeat rows 0-9
        Image.fromarray((data.images[source] * 15).astype(np.uint8)).resize((16, 16)).save(folder / f"{n:04d}.png")
    images = ImageFolder(root / "photos", size=16)
    table = describe(images, pixels, root / "vectors", label_key="label", progress=False)
    tree = HierarchicalKMeans([24, 6], n_resampling_steps=1, n_iter=10, seed=0).fit(table)
    curated = curate(tree, 120, seed=0)
    parts = split(tree.labels_[:, 0], {"train": 0.8, "val": 0.2}, mode="disjoint", seed=0)
    _, groups = dedup(table, space="raw", threshold=0.999, max_removed=0.5)
    sampler = ClusterBatchSampler(tree.labels_[:, 0], 32, seed=0)
    return root, images, table, tree, curated, parts, groups, sampler


def chromium():
    return headless_chromium()


def test_the_page_in_headless_chromium(digits_run, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    root, images, table, tree, curated, parts, groups, sampler = digits_run
    assert len(groups) == 10  # the exact copies
    page = explore(
        table, tmp_path / "page", source=images, tree=tree, curated=curated, splits=parts, duplicates=groups,
        sampler=sampler, max_points=400, selected=np.arange(0, 600, 50),
    )  # fmt: skip
    driver = chromium()
    try:
        driver.get(page.as_uri())
        errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        assert not errors, errors
        assert driver.execute_script("return window.curataExplorer.points") == 400
        assert driver.execute_script("return window.curataExplorer.drawn") == 400
        canvas = driver.find_element(By.ID, "map")
        box = driver.execute_script(
            "const r = arguments[0].getBoundingClientRect(); return [r.left, r.top, r.width, r.height]", canvas
        )
        for point in (5, 123):
            x, y = driver.execute_script(f"return window.curataExplorer.screenPosition({point})")
            dx, dy = x - (box[0] + box[2] / 2), y - (box[1] + box[3] / 2)
            ActionChains(driver).move_to_element_with_offset(canvas, int(dx), int(dy)).click().perform()
            shown = driver.find_element(By.ID, "info-image")
            assert driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", shown) > 0
            info = driver.find_element(By.ID, "info").text
            assert "sample id" in info and "curated" in info and "selected" in info and "split" in info
            assert f"{os.sep}photos{os.sep}" in info and ".png" in info  # the sample's file
        assert driver.find_element(By.ID, "colour").get_attribute("value") == "label"  # labels first, when there are
        assert all(name in driver.find_element(By.ID, "legend").text for name in NAMES)
        gallery = driver.find_elements(By.CSS_SELECTOR, "#gallery .card")
        assert len(gallery) == 24
        loaded = driver.execute_script(
            "return [...document.querySelectorAll('#gallery img')].filter(i => i.complete && i.naturalWidth).length"
        )
        assert loaded >= 24 * 8
        for section in ("balance", "duplicates", "splits", "batches"):
            assert driver.find_element(By.ID, section).is_displayed(), section
        assert len(driver.find_elements(By.CSS_SELECTOR, "#duplicates .card")) == 10
        assert "eight" in driver.find_element(By.ID, "gallery").text  # class names, not numbers
        assert not [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        driver.save_screenshot(str(tmp_path / "explorer.png"))
        assert (tmp_path / "explorer.png").stat().st_size > 10_000
        if os.environ.get("CURATA_UPDATE_SCREENSHOT"):
            shutil.copy(tmp_path / "explorer.png", DOCS / "explorer.png")
    finally:
        driver.quit()


def test_texts_without_a_source_and_bad_input(digits_run, tmp_path):
    from selenium.webdriver.common.by import By

    root, images, table, tree, curated, parts, groups, sampler = digits_run
    bare = explore(table, tmp_path / "bare", tree=tree)
    (tmp_path / "q.txt").write_text("\n".join(f"quote number {n} about {NAMES[n % 10]}" for n in range(40)))
    texts = TextFiles([tmp_path / "q.txt"])
    text_table = describe(texts, lambda t: torch.tensor([[len(s), s.count("e")] for s in t], dtype=torch.float32),
                          tmp_path / "tv", progress=False)  # fmt: skip
    text_page = explore(text_table, tmp_path / "text", source=texts)
    driver = chromium()
    try:
        driver.get(bare.as_uri())
        assert not [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert "No pictures: no source was given" in driver.find_element(By.ID, "why").text
        driver.get(text_page.as_uri())
        assert not [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert driver.execute_script("return window.curataExplorer.points") == 40
        x, y = driver.execute_script("return window.curataExplorer.screenPosition(3)")
        driver.execute_script(
            "arguments[0].dispatchEvent(new MouseEvent('click', {clientX: arguments[1], clientY: arguments[2]}))",
            driver.find_element(By.ID, "map"),
            x,
            y,
        )
        assert "quote number" in driver.find_element(By.ID, "info-text").text
    finally:
        driver.quit()
    with pytest.raises(ValueError, match="curated holds row ids out of range|curated"):
        explore(table, tmp_path / "x", curated=[0, 10_000])
    other = VectorTable.from_arrays(tmp_path / "other", np.zeros((5, table.dim), np.float32))
    with pytest.raises(ValueError, match="tree was fitted on other rows"):
        explore(other, tmp_path / "x", tree=tree)
    with pytest.raises(ValueError, match="source has 40 samples but the table's sample ids go up to 599"):
        explore(table, tmp_path / "x", source=texts)
    assert not (tmp_path / "x").exists()  # refused before anything was written
