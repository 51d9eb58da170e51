"""Replaces one marked section of bench/RESULTS.md, keeping the others.

usage: python3 scripts/lib/results.py NAME < section-body.md
The section sits between <!-- NAME:begin --> and <!-- NAME:end -->; it is appended if absent.
"""
import pathlib
import re
import sys

name = sys.argv[1]
body = sys.stdin.read().rstrip("\n") + "\n"
path = pathlib.Path("bench/RESULTS.md")
text = path.read_text() if path.exists() else "# Benchmark results\n\nWritten by the scripts under `scripts/`; each owns one marked section.\n"
section = f"<!-- {name}:begin -->\n{body}<!-- {name}:end -->"
block = re.compile(rf"<!-- {re.escape(name)}:begin -->.*?<!-- {re.escape(name)}:end -->", re.S)
text = block.sub(lambda _: section, text) if block.search(text) else text.rstrip("\n") + "\n\n" + section + "\n"
path.parent.mkdir(exist_ok=True)
path.write_text(text)
