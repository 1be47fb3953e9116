"""Every measured number that README.md and docs/GUIDE.md quote is in docs/RESULTS.md.

A number of the prose (code blocks, inline code, link targets and headings are left out) counts
as found when RESULTS.md has the same number (3,570 and 3570.0 are the same, 716 and 716.2 are
not), or, for a percentage, has the share it shows (99.7% is found as 99.7% or as 0.997). So the
docs quote RESULTS.md without rounding it. What is not a measurement is listed in CONSTANTS: the
sizes of the data and the networks, the defaults of the scripts, and textbook values such as
log 10 = 2.303. Small whole numbers (up to 12), years, and ratios of two quoted numbers ("13 times
cheaper") are skipped. A failure names the file, the line and the number."""
import re
from decimal import Decimal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Not measurements: textbook values, data and network sizes, defaults and flags of the scripts.
CONSTANTS = {
    # log 10, log 2, 2 log 2 = log 4, 1/2; the Parzen estimate Goodfellow et al. report
    "2.303", "0.693", "1.386", "0.5", "225",
    # Stable Diffusion's usual guidance scale s = 7.5, our w = 6.5; the classifier's 420k weights
    "7.5", "6.5", "420",
    # data: image sizes, set sizes, pixel range
    "28", "32", "784", "3072", "255", "60000", "50000", "10000", "1000", "2000", "16", "49", "64",
    "100", "128", "256", "512", "1024", "4", "7", "8", "14",
    # the scripts' defaults and flags (learning rates, decays, dropout, eps, clip, lambda, steps)
    "0.0002", "0.0005", "0.0001", "0.00005", "0.002",
    "0.999", "0.9", "0.3", "0.2", "0.1", "0.01", "0.001", "0.05", "0.15", "0.25", "0.99",
    "20000", "100000", "30000", "17000", "7000", "3500", "5000", "15", "20", "30", "40", "50",
    "200", "500",
    # toy2d.py's optimal discriminator between N(2, 0.3^2) and N(-2, 0.3^2): sigmoid(400 x / 9)
    "400",
    # Kurakin et al.'s number of BIM steps, min(eps + 4, 1.25 eps); sigmoid(1) = 0.73
    "1.25", "0.73",
}

NUMBER = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?(?:e-?\d+)?)(%?)(?: times)?")


def prose_lines(path):
    """(line number, text) of the prose: no code blocks, inline code, link targets or headings."""
    inside_code = False
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.lstrip().startswith("```"):
            inside_code = not inside_code
            continue
        if inside_code or line.startswith("#") or line.lstrip().startswith("!["):
            continue
        line = re.sub(r"`[^`]*`", " ", line)
        line = re.sub(r"Python \d+(\.\d+)+\+?", " ", line)        # a version, not a number
        line = re.sub(r"\]\([^)]*\)", "] ", line)
        yield number, line


def canonical(plain):
    """One spelling per number: 3570.0, 3570 and 3.57e3 are all "3570"; 0.50 is "0.5"."""
    return format(Decimal(plain).normalize(), "f")


def numbers_in(text):
    """(as written, its canonical spelling, is a percentage, is a ratio) of each number."""
    for match in NUMBER.finditer(text):
        written = match.group(1) + match.group(2)
        yield (written, canonical(match.group(1).replace(",", "")), match.group(2) == "%",
               match.group(0).endswith(" times"))


def measured(plain, ratio):
    """False for a constant, a small whole number, a year or a ratio."""
    if plain in CONSTANTS or ratio or ("." not in plain and float(plain) <= 12):
        return False
    return not ("." not in plain and 1950 <= float(plain) <= 2030)


def results_numbers(text):
    """Every number of RESULTS.md, and each share of 1 or less as a percentage."""
    found = set()
    for _, plain, percent, _ in numbers_in(text):
        found.add(plain)
        if not percent and Decimal(plain) <= 1:   # 0.997 shown as 99.7%
            found.add(canonical(str(Decimal(plain) * 100)))
    return found


def missing_numbers(paths, results=ROOT / "docs" / "RESULTS.md"):
    known = results_numbers(results.read_text())
    missing = []
    for path in paths:
        for line_number, line in prose_lines(path):
            for written, plain, _, ratio in numbers_in(line):
                if measured(plain, ratio) and plain not in known:
                    missing.append(f"{path.name}:{line_number}: {written}")
    return missing


def test_every_measured_number_of_the_readme_and_the_guide_is_in_results():
    missing = missing_numbers([ROOT / "README.md", ROOT / "docs" / "GUIDE.md"])
    assert not missing, "numbers not in docs/RESULTS.md:\n" + "\n".join(missing)


def test_the_check_names_each_wrong_number_and_its_line(tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text("| run | FID | accuracy |\n| a | 92.7 | 0.9967 |\n14,167 iterations\n")
    page = tmp_path / "page.md"
    page.write_text("# 2. A heading 13.37\n\nFID 92.7 after 14,167 iterations (99.67%), not 91.3;\n"
                    "FID 716 and 3 runs in 2017, about 40.5 times faster, log 10 = 2.303.\n"
                    "```\npython gan.py --iters 123457\n```\n`--eps 0.37` ![x](a_17.5.png)\n")
    assert missing_numbers([page], results) == ["page.md:3: 91.3", "page.md:4: 716"]


@pytest.mark.parametrize("written, known", [("99.7%", True), ("99.67%", True), ("716.2", True),
                                            ("716", False), ("99.6%", False), ("3,570", True),
                                            ("97.7%", True)])
def test_a_share_is_found_as_a_percentage_and_nothing_is_rounded(written, known):
    plain = canonical(written.rstrip("%").replace(",", ""))
    assert (plain in results_numbers("0.9967 99.7% 716.2 3570.0 97.70%")) is known
