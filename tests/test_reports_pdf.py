"""Reports as PDF with their Chinese text (issue 7; ../shared/realstack.md
"Reports as PDF with Chinese"): WeasyPrint with the Noto CJK fonts, read back
with pdftotext. Skips, saying what is missing, where either is not installed
(.ci/setup installs them)."""

from __future__ import annotations

import subprocess

import pytest

from collector.reports.render import pdf, pdf_problem

from .support.paths import need_binary
from .test_reports_golden import report_text


@pytest.fixture(scope="module")
def pdftotext():
    problem = pdf_problem()
    if problem is not None:
        pytest.skip(problem)
    return need_binary("pdftotext")


def text_of(pdftotext, tmp_path, html: str) -> str:
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf(html))
    return subprocess.run([pdftotext, "-layout", str(path), "-"], capture_output=True,
                          text=True, check=True, timeout=60).stdout


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_the_chinese_written_report_as_pdf_keeps_its_chinese_text(pdftotext, tmp_path):
    text = text_of(pdftotext, tmp_path, report_text("written", "zh", "html"))
    for words in ("信息科技突发事件书面报告", "一、事件发生时间", "十一、需要监管部门协调的事项",
                  "某县农村信用合作联社科技信息部", "张三", "II级（重大）", "市电中断系供电线路故障所致",
                  "<script>alert(1)</script> slow"):       # escaped in HTML, text in the PDF
        assert words in text, words


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_the_english_summary_as_pdf(pdftotext, tmp_path):
    text = text_of(pdftotext, tmp_path, report_text("summary", "en", "html"))
    for words in ("Closing summary of an IT emergency incident", "H. Timeline", "Annex: technical details",
                  "generator would not start"):
        assert words in text, words
