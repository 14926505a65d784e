"""Runs the Python code blocks of README.md and docs/*.md, each in a fresh interpreter, from the project root.

A block fenced ```python is meant to run, unless the line just before its fence is `<!-- fragment -->`
(an excerpt that needs context, such as `...`). Blocks of one file run in order, as one script, so a later
block may use what an earlier one defined. Fails, naming the file and line, if a block raises.
"""
import glob
import os
import subprocess
import sys
import tempfile

root = sys.argv[1]
files = [os.path.join(root, "README.md")] + sorted(glob.glob(os.path.join(root, "docs", "*.md")))
failures, ran = [], 0
for path in files:
    lines = open(path).read().split("\n")
    script, starts, inside, skip = [], [], False, False
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if not inside and stripped == "```python":
            inside, skip = True, number > 1 and lines[number - 2].strip() == "<!-- fragment -->"
            if not skip:
                starts.append(number)
                script.append(f"# --- {os.path.relpath(path, root)}:{number}")
            continue
        if inside and stripped == "```":
            inside = False
            continue
        if inside and not skip:
            script.append(line)
    if not starts:
        continue
    ran += len(starts)
    with tempfile.TemporaryDirectory() as work:
        script_path = os.path.join(work, "blocks.py")
        open(script_path, "w").write("\n".join(script) + "\n")
        result = subprocess.run([sys.executable, script_path], cwd=root, capture_output=True, text=True)
        name = os.path.relpath(path, root)
        print(f"{name}: {len(starts)} blocks (lines {', '.join(map(str, starts))}): "
              f"{'ok' if result.returncode == 0 else 'FAILED'}")
        if result.returncode != 0:
            failures.append(name)
            print(result.stdout[-3000:], result.stderr[-3000:])
print(f"{ran} blocks run; {len(failures)} files failed")
sys.exit(1 if failures else 0)
